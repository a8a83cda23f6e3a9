"""Rules for a value that comes from a Kubernetes Secret or the state: what Tutor's
templates can hold, typed like Tutor's defaults, escaped for Tutor's Jinja."""

from __future__ import annotations

import typing as t

from ..exceptions import EksError

#: Characters that would break Tutor's own templates: its YAML and Python double-
#: quoted strings, the init Job's shell `--password="..."` and its SQL '...'.
FORBIDDEN_CHARACTERS = set("\"'\\`$")
#: Redis credentials land in a redis:// URL, unescaped.
URL_KEYS = ("REDIS_USERNAME", "REDIS_PASSWORD")
FORBIDDEN_IN_URL = set("@/:#?%[] ")
#: Keys whose value spans lines: a PEM, which Tutor reads with ``rsa_import_key``.
MULTILINE_KEYS = ("JWT_RSA_PRIVATE_KEY",)


def printable(ch: str) -> bool:
    """Printable in a YAML document (Tutor's config files are YAML): YAML 1.1's set."""
    code = ord(ch)
    return (
        0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def check_value(key: str, value: str, source: str) -> None:
    """Refuse a value Tutor's templates cannot hold; name the key, never the value.
    ``source`` is :meth:`SecretValues.where` of the key."""
    where = f"{source} ({key})"
    lines = value.replace("\n", "") if key in MULTILINE_KEYS else value
    if not all(map(printable, lines)):
        raise EksError(
            f"{where}: the value contains a newline, control or non-printable character, "
            "which Tutor's templates cannot hold."
        )
    if FORBIDDEN_CHARACTERS.intersection(value):
        raise EksError(
            f"{where}: the value contains one of \" ' \\ ` $, which would break Tutor's YAML, Python or shell "
            "templates. Rotate it to a value without these characters."
        )
    if key in URL_KEYS and FORBIDDEN_IN_URL.intersection(value):
        raise EksError(
            f"{where}: the value contains one of @ / : # ? % [ ] or a space, which breaks Tutor's redis:// URLs."
        )


def typed(key: str, value: str, default: t.Any, where: str) -> t.Any:
    """A Secret's text, typed like the key's Tutor default (ports are ints ...)."""
    if isinstance(default, bool):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off", ""):
            return False
        raise EksError(f"{where}: {key} must be true or false.")
    if isinstance(default, int):
        try:
            return int(value.strip())
        except ValueError as e:
            raise EksError(f"{where}: {key} must be a whole number.") from e
    if isinstance(default, float):
        try:
            return float(value.strip())
        except ValueError as e:
            raise EksError(f"{where}: {key} must be a number.") from e
    return value


def jinja_literal(value: str) -> str:
    """A Jinja expression that renders to exactly ``value``: Tutor renders every
    config value, and a ``{{`` in a password is a password."""
    safe = set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-@:/+=,;!?*()~^&|<>"
    )
    out = []
    for ch in value:
        if ch in safe:
            out.append(ch)
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '{{ "' + "".join(out) + '" }}'
