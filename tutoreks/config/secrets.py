"""Layer 5 of the configuration: values read from the operator's Kubernetes Secrets.

Convention (compatible with the cookiecutter-openedx-devops Terraform stacks):
every data key of a listed Secret, upper-cased, is a Tutor config key;
:data:`BUILTIN_RENAMES` and ``EKS_SECRET_KEYS`` (which wins) rename others. A key
two Secrets hold with the same value is taken once (the stack repeats
``MYSQL_HOST``/``MYSQL_PORT`` in every ``mysql-*`` Secret); different values are an
error naming both. Secrets are fetched by name with GET
(``get`` on those names is the only permission needed), concurrently, once per
process. No value is ever printed or logged; under GitHub Actions each value is
masked before anything else is printed.
"""

from __future__ import annotations

import base64
import binascii
import re
import typing as t
from dataclasses import dataclass, field

from ..exceptions import EksError
from ..kube import SECRETS, Kube

#: How a resolution's ``sources`` name a value that comes from an operator's Secret.
SOURCE_PREFIX = "Secret "
#: Requests in flight at once when Secrets are read.
CONNECTIONS = 4
KEY_PATTERN = re.compile(r"^[A-Z][A-Z0-9_]*$")
NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

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
#: Keys each conventional Secret must hold (after renames), not empty. The
#: cookiecutter-openedx-devops Terraform names are here beside the plugin's own:
#: ``mongodb-openedx`` for ``mongodb``, ``aws-ses-config`` for ``smtp``.
REQUIRED_KEYS = {
    "mysql-root": ("MYSQL_HOST", "MYSQL_ROOT_PASSWORD"),
    "mysql-openedx": ("OPENEDX_MYSQL_PASSWORD",),
    "redis": ("REDIS_HOST",),
    "mongodb": ("MONGODB_HOST",),
    "mongodb-openedx": ("MONGODB_HOST",),
    "smtp": ("SMTP_HOST",),
    "aws-ses-config": ("SMTP_HOST",),
    "s3-openedx-storage": ("S3_STORAGE_BUCKET", "S3_REGION"),
    "edx-secret-key": ("OPENEDX_SECRET_KEY",),
    "jwt": ("JWT_RSA_PRIVATE_KEY",),
    "admin-edx": ("ADMIN_USER", "ADMIN_EMAIL", "ADMIN_PASSWORD"),
}
#: Data keys that are not Tutor setting names, in the Secrets of the
#: cookiecutter-openedx-devops Terraform: ``(Secret, data key)`` -> Tutor key.
#: ``EKS_SECRET_KEYS`` entries win over these.
BUILTIN_RENAMES: dict[tuple[str, str], str] = {
    ("jwt", "private_key"): "JWT_RSA_PRIVATE_KEY",
}


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
        if not NAME_PATTERN.match(spec.name):
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
    return {**BUILTIN_RENAMES, **renames}


def fetch(
    kube: Kube,
    namespace: str,
    specs: list[SecretSpec],
    renames: dict[tuple[str, str], str],
) -> SecretValues:
    """GET every listed Secret concurrently and map its keys to Tutor keys."""
    # A few connections, reused (a TLS handshake costs more than a GET), and one
    # deadline for all requests: an unreachable API server costs one request's
    # bounded time, whatever the number of Secrets (the default list has eleven).
    found = kube.get_each(
        SECRETS, [spec.name for spec in specs], namespace, connections=CONNECTIONS
    )
    answers = list(zip(specs, found, strict=True))
    for spec, secret in answers:
        if secret is None and not spec.optional:
            raise EksError(
                f"Secret {namespace}/{spec.name} not found: create it in namespace "
                f"{namespace!r}, or mark it optional in EKS_SECRETS ({spec.name}?)."
            )
    result = SecretValues(namespace=namespace)
    for spec, secret in answers:
        if secret is None:
            result.missing_optional.append(spec.name)
        else:
            result.found.append(spec.name)
            add_secret(result, spec.name, secret, renames)
    check_endpoints(result)
    return result


def add_secret(
    result: SecretValues,
    name: str,
    secret: dict[str, t.Any],
    renames: dict[tuple[str, str], str],
) -> None:
    """Map one Secret's data keys to Tutor keys into ``result``."""
    namespace = result.namespace
    data = secret.get("data") or {}
    if not isinstance(data, dict):
        raise EksError(f"Secret {namespace}/{name}: its data is not a mapping.")
    for data_key in sorted(data):
        key = renames.get((name, data_key), str(data_key).upper())
        where = f"Secret {namespace}/{name} key {data_key}"
        if not KEY_PATTERN.match(key):
            raise EksError(
                f"{where}: {key!r} is not a Tutor setting name; rename it with "
                f'EKS_SECRET_KEYS: {{"{name}/{data_key}": "TUTOR_KEY"}}.'
            )
        value = decode(data[data_key], where)
        if key in result.origins:
            if result.values[key] == value:
                continue  # the same endpoint in two Secrets (mysql-root, mysql-openedx)
            raise EksError(
                f"{where}: {key} differs from {result.where(key)}; "
                "both Secrets provide it: make them equal or remove one."
            )
        result.values[key] = value
        result.origins[key] = (name, data_key)
    for required in REQUIRED_KEYS.get(name, ()):
        if required not in result.values:
            raise EksError(
                f"Secret {namespace}/{name} has no key {required} (needed by the Secret contract)."
            )
        if not result.values[required]:
            raise EksError(
                f"{result.where(required)}: {required} is empty (needed by the Secret contract)."
            )


def decode(encoded: t.Any, where: str) -> str:
    """A Secret's base64 data value as text."""
    if not isinstance(encoded, str):
        raise EksError(f"{where}: the API answered a value that is not base64 text.")
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as e:
        raise EksError(f"{where}: the value is not UTF-8 text.") from e


def check_endpoints(result: SecretValues) -> None:
    """An endpoint from a Secret comes with what it needs."""
    for endpoint, needs in ENDPOINT_NEEDS.items():
        if endpoint not in result.values:
            continue
        for need in needs:
            if need not in result.values:
                secret_name = result.origins[endpoint][0]
                raise EksError(
                    f"Secret {result.namespace}/{secret_name} provides {endpoint} "
                    f"but no Secret provides {need}."
                )
