"""Backing-service credentials from Kubernetes Secrets (layer 4 of the precedence).

Convention (compatible with the cookiecutter-openedx-devops Terraform stacks):
every data key of a listed Secret, upper-cased, is a Tutor config key;
``EKS_SECRET_KEYS`` renames others. Secrets are fetched by name with GET
(``get`` on those names is the only permission needed), concurrently, once per
process. No value is ever printed or logged; under GitHub Actions each value is
masked before anything else is printed.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import re
import sys
import typing as t
import urllib.parse
from dataclasses import dataclass, field

from .exceptions import EksError

KEY_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]*$")

#: External endpoints switch Tutor's in-cluster service off.
ENDPOINT_SWITCHES = {
    "MYSQL_HOST": "RUN_MYSQL",
    "REDIS_HOST": "RUN_REDIS",
    "MONGODB_HOST": "RUN_MONGODB",
    "SMTP_HOST": "RUN_SMTP",
}
#: An endpoint from a Secret needs these keys from a Secret too.
ENDPOINT_NEEDS = {
    "MYSQL_HOST": ("MYSQL_ROOT_PASSWORD",),
    "S3_STORAGE_BUCKET": ("S3_REGION",),
    "OPENEDX_MYSQL_USERNAME": ("OPENEDX_MYSQL_PASSWORD",),
}
#: Keys each conventional Secret must hold (after renames).
REQUIRED_KEYS = {
    "mysql-root": ("MYSQL_HOST", "MYSQL_ROOT_PASSWORD"),
    "mysql-openedx": ("OPENEDX_MYSQL_PASSWORD",),
    "redis": ("REDIS_HOST",),
    "mongodb": ("MONGODB_HOST",),
    "smtp": ("SMTP_HOST",),
    "s3-openedx-storage": ("S3_STORAGE_BUCKET", "S3_REGION"),
}
#: Characters that would break Tutor's own templates: its YAML and Python double-
#: quoted strings, the init Job's shell `--password="..."` and its SQL '...'.
FORBIDDEN_CHARACTERS = set("\"'\\`$")
#: Redis credentials land in a redis:// URL, unescaped.
URL_KEYS = ("REDIS_USERNAME", "REDIS_PASSWORD")
FORBIDDEN_IN_URL = set("@/:#?%[] ")


@dataclass(frozen=True)
class SecretSpec:
    name: str
    optional: bool

    @classmethod
    def parse(cls, text: str) -> SecretSpec:
        optional = text.endswith("?")
        return cls(text[:-1] if optional else text, optional)


@dataclass
class SecretValues:
    """What the listed Secrets provide, with where each key came from."""

    namespace: str
    values: dict[str, str] = field(default_factory=dict)
    #: Tutor key -> (Secret name, data key)
    origins: dict[str, tuple[str, str]] = field(default_factory=dict)
    missing_optional: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)

    def origin(self, key: str) -> str:
        """``secret/data-key`` of a Tutor key, for tables."""
        return "/".join(self.origins[key])

    def where(self, key: str) -> str:
        """``Secret namespace/name key data-key``, the start of every message about it."""
        secret, data_key = self.origins[key]
        return f"Secret {self.namespace}/{secret} key {data_key}"


def parse_specs(setting: t.Any, source: str) -> list[SecretSpec]:
    if not isinstance(setting, list) or not all(
        isinstance(s, str) and s.strip("?") for s in setting
    ):
        raise EksError(
            f"{source}: EKS_SECRETS must be a list of Secret names (a trailing '?' marks an optional one)."
        )
    specs = [SecretSpec.parse(s) for s in setting]
    for spec in specs:
        if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", spec.name):
            raise EksError(
                f"{source}: EKS_SECRETS has {spec.name!r}, which is not a valid Secret name."
            )
    return specs


def parse_renames(setting: t.Any, source: str) -> dict[tuple[str, str], str]:
    if not isinstance(setting, dict):
        raise EksError(
            f'{source}: EKS_SECRET_KEYS must be a mapping of "secret/key": "TUTOR_KEY".'
        )
    renames = {}
    for origin, key in setting.items():
        secret, _, data_key = str(origin).partition("/")
        if (
            not secret
            or not data_key
            or not isinstance(key, str)
            or not KEY_PATTERN.match(key)
        ):
            raise EksError(
                f'{source}: EKS_SECRET_KEYS entry {origin!r}: {key!r} must be "secret/key": "TUTOR_KEY".'
            )
        renames[(secret, data_key)] = key
    return renames


def fetch(
    client: t.Any,
    namespace: str,
    specs: list[SecretSpec],
    renames: dict[tuple[str, str], str],
) -> SecretValues:
    """GET every listed Secret concurrently and map its keys to Tutor keys."""
    from .kube import ApiError

    def get(spec: SecretSpec) -> tuple[SecretSpec, dict[str, t.Any] | None]:
        path = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/secrets/{urllib.parse.quote(spec.name)}"
        try:
            return spec, client.get(path)
        except ApiError as e:
            if e.status == 404:
                if spec.optional:
                    return spec, None
                raise EksError(
                    f"Secret {namespace}/{spec.name} not found: create it in namespace {namespace!r}, "
                    f"or mark it optional in EKS_SECRETS ({spec.name}?)."
                ) from e
            if e.status == 403:
                raise EksError(
                    f"Not allowed to read Secret {namespace}/{spec.name} (verb get, resource secrets, "
                    f"namespace {namespace}): {e.message} Grant it with the Role of `tutor eks rbac`."
                ) from e
            if e.status == 401:
                raise EksError(
                    f"The Kubernetes API server {client.creds.server} refused the credentials of "
                    f"{client.creds.source} (user {client.creds.user!r}): {e.message}"
                ) from e
            raise EksError(
                f"Reading Secret {namespace}/{spec.name} failed: HTTP {e.status} {e.message}"
            ) from e

    result = SecretValues(namespace=namespace)
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=min(8, max(1, len(specs)))
    ) as pool:
        answers = list(pool.map(get, specs))
    for spec, secret in answers:
        if secret is None:
            result.missing_optional.append(spec.name)
            continue
        result.found.append(spec.name)
        data = secret.get("data") or {}
        for data_key in sorted(data):
            key = renames.get((spec.name, data_key), data_key.upper())
            where = f"Secret {namespace}/{spec.name} key {data_key}"
            if not KEY_PATTERN.match(key):
                raise EksError(
                    f"{where}: {key!r} is not a Tutor setting name; rename it with "
                    f'EKS_SECRET_KEYS: {{"{spec.name}/{data_key}": "TUTOR_KEY"}}.'
                )
            try:
                value = base64.b64decode(data[data_key], validate=True).decode("utf-8")
            except (binascii.Error, ValueError) as e:
                raise EksError(f"{where}: the value is not UTF-8 text.") from e
            if key in result.origins:
                raise EksError(
                    f"{where}: {key} is also provided by {result.origin(key)}; keep one."
                )
            result.values[key] = value
            result.origins[key] = (spec.name, data_key)
        for required in REQUIRED_KEYS.get(spec.name, ()):
            if (
                required not in result.values
                or result.origins[required][0] != spec.name
            ):
                raise EksError(
                    f"Secret {namespace}/{spec.name} has no key {required} (needed by the Secret contract)."
                )
    for endpoint, needs in ENDPOINT_NEEDS.items():
        if endpoint in result.values:
            for need in needs:
                if need not in result.values:
                    secret_name = result.origins[endpoint][0]
                    raise EksError(
                        f"Secret {namespace}/{secret_name} provides {endpoint} but no Secret provides {need}."
                    )
    return result


def _printable(ch: str) -> bool:
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
    if not all(map(_printable, value)):
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


def mask_for_github(values: t.Iterable[str]) -> None:
    """``::add-mask::`` every value (and each of its lines) before anything else is printed."""
    lines = []
    for value in values:
        for part in {value, *value.splitlines()}:
            if part.strip():
                lines.append(f"::add-mask::{part}\n")
    sys.stdout.write("".join(lines))
    sys.stdout.flush()
