"""A cancelled deploy stops what it started.

CI cancels a job with SIGTERM to the tutor process. Tutor runs ``kubectl`` as a
child and waits for it; Python's default would end tutor and leave ``kubectl
apply`` running (then killed half-way by the runner, or orphaned). While a deploy
of an environment runs, SIGTERM is passed on to tutor's child processes first,
then the command ends with 128 + 15 as a killed process does (the save guard's own
handler, when one is installed later, runs before this one).
"""

from __future__ import annotations

import contextlib
import os
import signal
import typing as t


def child_pids(parent: int | None = None) -> list[int]:
    """The direct children of ``parent`` (this process), from /proc (Linux)."""
    parent = os.getpid() if parent is None else parent
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(parent):
            found.append(int(entry))
    return found


def stop_children() -> None:
    """Pass SIGTERM on to this process's children (kubectl ...)."""
    for pid in child_pids():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


class _Handler:
    """A SIGTERM handler: ``action``, then the handler installed before it, then
    the end with 128 + 15. Handlers find each other through the signal module."""

    def __init__(self, key: str, action: t.Callable[[], None], previous: t.Any) -> None:
        self.key = key
        self.action = action
        self.previous = previous

    def __call__(self, signum: int, frame: t.Any) -> None:
        self.action()
        if callable(self.previous):
            self.previous(signum, frame)
        raise SystemExit(128 + signum)


def on_sigterm(key: str, action: t.Callable[[], None]) -> None:
    """On SIGTERM, run ``action``, then the handler installed before it, then end
    with 128 + 15 as a killed process does. One handler per ``key``: a later call
    replaces its action (a later command of the same process). Main thread only
    (the save guard puts the root back this way too)."""
    handler = signal.getsignal(signal.SIGTERM)
    while isinstance(handler, _Handler):
        if handler.key == key:
            handler.action = action
            return
        handler = handler.previous
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(
            signal.SIGTERM, _Handler(key, action, signal.getsignal(signal.SIGTERM))
        )


def pass_sigterm_to_children() -> None:
    on_sigterm("children", stop_children)
