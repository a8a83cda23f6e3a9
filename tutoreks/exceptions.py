"""The one user-facing error type of the plugin."""

from __future__ import annotations

from tutor.exceptions import TutorError


class EksError(TutorError):
    """An error the user can fix: the message names the file, key, Secret or resource.

    Tutor prints ``Error: <message>`` and exits with status 1. A message never
    contains a Secret value.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def kind_of(value: object) -> str:
    """What a wrong setting is, for an error that names it without showing it
    (a value may be a password): "a str", "an int", "a list"."""
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"
