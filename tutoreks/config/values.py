"""Rules for a value that comes from a Kubernetes Secret or the state: what each
place Tutor puts it can hold, typed like Tutor's defaults, escaped for Tutor's
templates and Jinja.

Where Tutor 22's templates put each credential decides what it may contain:

- **quoted** keys (passwords, user names, keys) land in double-quoted YAML strings
  (``lms.env.yml``) and double-quoted Python strings (the settings), and in task
  scripts. Both string syntaxes read ``\\\\``, ``\\"`` and ``\\uXXXX``, so the value
  given to Tutor is escaped that way and arrives exactly; task scripts read the
  raw value from the Secret through an environment variable
  (``render/tasks.py``). Any printable character works: ``$ ' " \\ ` ! # % & * ( )
  [ ] { } < > : ?`` included, which covers every RDS master password and
  Terraform's ``override_special`` sets;
- the Redis user and password (quoted too) also make up ``redis://`` URLs: the
  plugin's settings patch builds those URLs again with the parts percent-escaped
  (``render/services.py``), so any printable character works there as well;
- the **prefix** key (``REDIS_KEY_PREFIX``) begins every Redis key and event bus
  topic of the environment: letters, digits, ``. _ -``;
- **pem** keys (``JWT_RSA_PRIVATE_KEY``) are read by ``rsa_import_key``: a PEM
  block, newlines included, given raw;
- **host** keys are checked as host names, IP addresses or (MongoDB)
  comma-separated hosts or a ``mongodb+srv://`` address, since Tutor loops over
  them in shell scripts the rewrite cannot reach;
- other keys (plugins' settings whose templates are unknown here) keep the
  strict rule: none of ``" ' \\ ` $``.

No message ever quotes a value.
"""

from __future__ import annotations

import ipaddress
import re
import typing as t

from .. import tutor_compat
from ..exceptions import EksError

QUOTED_KEYS = frozenset(
    {
        "MYSQL_ROOT_USERNAME",
        "MYSQL_ROOT_PASSWORD",
        "OPENEDX_MYSQL_USERNAME",
        "OPENEDX_MYSQL_PASSWORD",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "MONGODB_USERNAME",
        "MONGODB_PASSWORD",
        "OPENEDX_AWS_ACCESS_KEY",
        "OPENEDX_AWS_SECRET_ACCESS_KEY",
        "OPENEDX_SECRET_KEY",
        "CMS_OAUTH2_SECRET",
        "MEILISEARCH_MASTER_KEY",
        "MEILISEARCH_API_KEY",
        "ADMIN_USER",
        "ADMIN_PASSWORD",
        "ADMIN_EMAIL",
        "REDIS_USERNAME",
        "REDIS_PASSWORD",
    }
)
PREFIX_KEYS = frozenset({"REDIS_KEY_PREFIX"})
PEM_KEYS = frozenset({"JWT_RSA_PRIVATE_KEY"})
HOST_KEYS = frozenset({"MYSQL_HOST", "REDIS_HOST", "SMTP_HOST", "MONGODB_HOST"})
#: SQL identifiers, unquoted in Tutor's init script.
IDENTIFIER_KEYS = frozenset({"OPENEDX_MYSQL_DATABASE"})
#: Keys that steer the deploy itself: never from a Secret.
STEERING_KEYS = frozenset(
    {
        "PLUGINS",
        "PLUGIN_INDEXES",
        "K8S_NAMESPACE",
        "ENABLE_WEB_PROXY",
        "ENABLE_HTTPS",
        "LMS_HOST",
        "CMS_HOST",
        "PREVIEW_LMS_HOST",
        "MFE_HOST",
        "ID",
        "DOCKER_REGISTRY",
    }
)
STEERING_PREFIXES = ("EKS_", "RUN_", "DOCKER_IMAGE_")

#: Characters that would break Tutor's templates for a key of unknown context.
STRICT_FORBIDDEN = set("\"'\\`$")
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_$]{1,64}$")
_LINE_SEPARATORS = ("\u2028", "\u2029", "\u0085")


def printable(ch: str) -> bool:
    """Printable in a YAML document (Tutor's config files are YAML): YAML 1.1's
    set, without the characters YAML and Python read as line breaks."""
    code = ord(ch)
    return (
        0x20 <= code <= 0x7E
        or (0xA0 <= code <= 0xD7FF and ch not in _LINE_SEPARATORS)
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def is_steering(key: str) -> bool:
    return key in STEERING_KEYS or key.startswith(STEERING_PREFIXES)


def check_value(key: str, value: str, source: str) -> None:
    """Refuse a value no place Tutor puts it can hold; name the key, never the
    value. ``source`` is :meth:`SecretValues.where` of the key."""
    where = f"{source} ({key})"
    if is_steering(key):
        raise EksError(
            f"{where}: {key} steers the deploy itself and cannot come from a Secret; "
            "set it in the environment's config.yml."
        )
    if key in PEM_KEYS:
        check_pem(value, where)
        check_rsa_key(value, where)
        return
    if not all(map(printable, value)):
        raise EksError(
            f"{where}: the value contains a newline, control or non-printable "
            "character, which Tutor's templates cannot hold."
        )
    if key in HOST_KEYS:
        check_hosts(key, value, where)
    elif key in IDENTIFIER_KEYS:
        if not _IDENTIFIER.match(value):
            raise EksError(
                f"{where}: a database name holds letters, digits, _ and $ only "
                "(Tutor's init script uses it unquoted)."
            )
    elif key in PREFIX_KEYS:
        check_prefix(value, where)
    elif key not in QUOTED_KEYS and STRICT_FORBIDDEN.intersection(value):
        raise EksError(
            f"{where}: the value contains one of \" ' \\ ` $, and where Tutor or a "
            f"plugin puts {key} is not known to tutor-contrib-eks. Rotate it to a "
            "value without these characters."
        )


def check_rsa_key(value: str, where: str) -> None:
    """The JWT signing key: Tutor renders its public part from it."""
    if not tutor_compat.is_rsa_private_key(value):
        raise EksError(
            f"{where}: the PEM block is not an RSA private key (Tutor signs the "
            "platform's JWTs with it)."
        )


def check_prefix(value: str, where: str) -> None:
    """A Redis key prefix: it also names event bus topics."""
    if not PREFIX_PATTERN.match(value):
        raise EksError(
            f"{where}: a Redis key prefix holds 1 to 63 letters, digits, '.', '_' "
            "and '-', and starts with a letter or digit."
        )


def check_pem(value: str, where: str) -> None:
    if "\r" in value or not all(ch == "\n" or 0x20 <= ord(ch) <= 0x7E for ch in value):
        raise EksError(
            f"{where}: the value contains a newline, control or non-printable "
            "character that a PEM block cannot hold (carriage returns included)."
        )
    lines = value.rstrip("\n").split("\n")
    if (
        len(lines) < 3
        or not re.match(r"^-----BEGIN [A-Z ]+-----$", lines[0])
        or not re.match(r"^-----END [A-Z ]+-----$", lines[-1])
    ):
        raise EksError(f"{where}: the value is not a PEM block (-----BEGIN ...).")


def check_hosts(key: str, value: str, where: str) -> None:
    """A host name or IP address; MongoDB also takes comma-separated hosts and a
    ``mongodb+srv://`` address."""
    text = value
    if key == "MONGODB_HOST" and text.startswith("mongodb+srv://"):
        text = text[len("mongodb+srv://") :]
    hosts = text.split(",") if key == "MONGODB_HOST" else [text]
    for host in hosts:
        if not is_host(host.strip()):
            raise EksError(
                f"{where}: the value is not a host name or IP address"
                + (" (or comma-separated ones)" if key == "MONGODB_HOST" else "")
                + "."
            )


def is_host(host: str) -> bool:
    if not host or len(host) > 253:
        return False
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    return all(_HOST_LABEL.match(label) for label in host.rstrip(".").split("."))


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


def quoted_string_escape(value: str) -> str:
    """``value`` escaped for a double-quoted YAML or Python string: both read
    ``\\\\``, ``\\"`` and ``\\uXXXX`` the same way."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _LINE_SEPARATORS:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def template_value(key: str, value: t.Any) -> t.Any:
    """What the plugin gives Tutor for ``key``: a string becomes a Jinja literal
    (Tutor renders every config value), escaped first where Tutor puts it into
    quoted strings."""
    if not isinstance(value, str):
        return value
    if key in QUOTED_KEYS:
        value = quoted_string_escape(value)
    return jinja_literal(value)


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
