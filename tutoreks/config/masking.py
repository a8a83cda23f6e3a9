"""GitHub Actions masks for every value read from a Secret or the state.

The runner reads ``::add-mask::<value>`` from the job's output and unescapes the
value (``%25`` -> ``%``, ``%0D`` -> CR, ``%0A`` -> LF) before it hides it from the
log. A mask registers one line of the log: a multi-line value (a PEM key) needs a
mask for each of its lines. Masks are written before anything else is printed,
in a stable order.
"""

from __future__ import annotations

import os
import sys
import typing as t


def under_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def escape(value: str) -> str:
    """``value`` as the runner's command parser must read it back."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def mask_lines(values: t.Iterable[str]) -> list[str]:
    """The ``::add-mask::`` lines for ``values``: each whole value and each of its
    lines, escaped, without repeats, sorted."""
    parts: set[str] = set()
    for value in values:
        for part in (value, *value.splitlines()):
            if part.strip():
                parts.add(part)
    return [f"::add-mask::{escape(part)}" for part in sorted(parts)]


def mask(masked: set[str], values: t.Iterable[str]) -> None:
    """Under GitHub Actions, mask every value not in ``masked`` yet (the command's
    context keeps what it masked), on stdout, now."""
    if not under_github_actions():
        return
    fresh = [v for v in values if v not in masked]
    lines = mask_lines(fresh)
    masked.update(fresh)
    if lines:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
