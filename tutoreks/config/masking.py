"""Values from a Secret or the state kept out of what is shown: one place for both
ways of hiding them.

- GitHub Actions masks: the runner reads ``::add-mask::<value>`` from the job's
  output and unescapes the value (``%25`` -> ``%``, ``%0D`` -> CR, ``%0A`` -> LF)
  before it hides it from the log. A mask registers one line of the log: a
  multi-line value (a PEM key) needs a mask for each of its lines. Masks are
  written before anything else is printed, in a stable order.
- :class:`Scrubber`: free text that comes from a cluster or a server (a scheduler
  message, a probe's output, a driver's error) quoted by this plugin, with every
  such value (and each line of one) replaced by ``***``, control and format
  characters made spaces, and shortened.
"""

from __future__ import annotations

import os
import sys
import typing as t

#: Free text from a cluster or a server is shortened to this many characters.
MESSAGE_LIMIT = 160
#: Object names are at most 253 characters; reasons are CamelCase words.
NAME_LIMIT = 253
REASON_LIMIT = 80


def under_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def value_parts(values: t.Iterable[str], shortest: int = 1) -> set[str]:
    """Each value and each of its lines (what one line of a log can show of it),
    blank ones and those shorter than ``shortest`` left out."""
    return {
        part
        for value in values
        for part in (value, *value.splitlines())
        if part.strip() and len(part) >= shortest
    }


def escape(value: str) -> str:
    """``value`` as the runner's command parser must read it back."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def mask_lines(values: t.Iterable[str]) -> list[str]:
    """The ``::add-mask::`` lines for ``values``: each whole value and each of its
    lines, escaped, without repeats, sorted."""
    return [f"::add-mask::{escape(part)}" for part in sorted(value_parts(values))]


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


def one_line(text: str) -> str:
    """``text`` with control and format characters (escape sequences, carriage
    returns, bidirectional overrides) made spaces and white space folded."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def shortened(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 3].rstrip() + "..."


class Scrubber:
    """Replaces every value from a Secret or the state (and each line of one) in
    free text by ``***``; values shorter than ``shortest`` are left alone."""

    def __init__(self, values: t.Iterable[str] = (), shortest: int = 4) -> None:
        self.values = sorted(value_parts(values, shortest), key=len, reverse=True)

    def __call__(self, text: str, limit: int | None = MESSAGE_LIMIT) -> str:
        """``text`` (from the cluster, a server) made safe to show: values
        replaced, on one line (:func:`one_line`), shortened to ``limit``."""
        for value in self.values:
            text = text.replace(value, "***")
        return shortened(one_line(text), limit)


#: Object names are shown as they are (a value that happens to equal part of a
#: name, such as a database user ``openedx``, is not hidden in ``openedx-tls``),
#: but never with a control character and never longer than a name can be.
_NAMES = Scrubber()


def shown(name: str, limit: int = NAME_LIMIT) -> str:
    return _NAMES(name, limit)
