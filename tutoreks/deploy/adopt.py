"""Namespaces deployed before the state existed: by plain Tutor, by the
cookiecutter-openedx-devops workflow, or by an earlier version of this plugin.

Tutor puts ``app.kubernetes.io/instance: openedx-<ID>`` into every Deployment's
label selector, which Kubernetes never lets change. Before a first deploy writes
the state, :func:`~tutoreks.config.instances.refuse_foreign_instance` compares the ``ID`` about to be used with
the live Deployments; a mismatch is refused (nothing is written or applied) with
the command that adopts the namespace: ``tutor eks adopt``, which recovers the
live ``ID`` and every generated value it can read back from the live objects
(:func:`recover`) into the state.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import typing as t
from dataclasses import dataclass, field

import yaml

from .. import tutor_compat
from ..config.state import annotate, check_value
from ..exceptions import EksError
from ..kube import CONFIG_MAPS, DEPLOYMENTS, SECRETS
from . import prune

if t.TYPE_CHECKING:
    from ..kube import Kube

# --- recovering generated values from the live objects ------------------------------------


@dataclass
class Recovery:
    values: dict[str, str] = field(default_factory=dict)
    #: key -> where it was read (an object and field, never the value)
    origins: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, value: t.Any, origin: str) -> None:
        """Keep ``value`` if it is one Tutor could have generated (the state's
        rules, ``config/state.py``); an odd object yields nothing, not an error."""
        if not isinstance(value, str) or not value or key in self.values:
            return
        try:
            check_value(key, value, origin)
        except EksError:
            return
        self.values[key] = value
        self.origins[key] = origin


def recover(kube: Kube, namespace: str, instance: str) -> Recovery:
    """Every generated value that the live objects of ``instance`` reveal."""
    recovery = Recovery()
    recovery.add("ID", instance, "the app.kubernetes.io/instance label")
    files = config_files(kube, namespace, instance)
    recover_from_env_yml(recovery, files.get("lms.env.yml", ""))
    recover_from_settings(recovery, files)
    recover_from_deployments(recovery, kube, namespace, instance)
    return recovery


def config_files(kube: Kube, namespace: str, instance: str) -> dict[str, str]:
    """The newest ``openedx-config`` and ``openedx-settings-*`` files of the
    instance: Secrets (this plugin) or ConfigMaps (plain Tutor, with a hash suffix)."""
    selector = tutor_compat.instance_selector(instance)
    files: dict[str, str] = {}
    for resource in (CONFIG_MAPS, SECRETS):
        objects = sorted(
            kube.list(resource, namespace, selector),
            key=lambda o: str((o.get("metadata") or {}).get("creationTimestamp", "")),
        )
        for obj in objects:
            name = str((obj.get("metadata") or {}).get("name", ""))
            if not name.startswith(tuple(tutor_compat.CREDENTIAL_CONFIGMAPS)):
                continue
            service = "cms" if "settings-cms" in name else "lms"
            data = obj.get("data")
            for key, value in (data if isinstance(data, dict) else {}).items():
                text = decoded(value) if resource is SECRETS else value
                if isinstance(key, str) and isinstance(text, str):
                    files[key if key.endswith(".yml") else f"{service}/{key}"] = text
    return files


def decoded(value: t.Any) -> str | None:
    """A Secret's data value as text; None when it is not base64 of UTF-8."""
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def mapping(value: t.Any) -> dict[str, t.Any]:
    return value if isinstance(value, dict) else {}


def recover_from_env_yml(recovery: Recovery, text: str) -> None:
    try:
        env = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return
    if not isinstance(env, dict):
        return
    recovery.add("OPENEDX_SECRET_KEY", env.get("SECRET_KEY"), "lms.env.yml SECRET_KEY")
    database = mapping(mapping(env.get("DATABASES")).get("default"))
    recovery.add(
        "OPENEDX_MYSQL_PASSWORD",
        database.get("PASSWORD"),
        "lms.env.yml DATABASES.default.PASSWORD",
    )


_ASSIGNMENTS = {
    "MEILISEARCH_MASTER_KEY": (
        "lms/production.py",
        r'^MEILISEARCH_MASTER_KEY = "(.*)"$',
    ),
    "MEILISEARCH_API_KEY": ("lms/production.py", r'^MEILISEARCH_API_KEY = "(.*)"$'),
    "CMS_OAUTH2_SECRET": (
        "cms/production.py",
        r'^SOCIAL_AUTH_EDX_OAUTH2_SECRET = "(.*)"$',
    ),
}


def recover_from_settings(recovery: Recovery, files: dict[str, str]) -> None:
    for key, (name, pattern) in _ASSIGNMENTS.items():
        found = re.search(pattern, files.get(name, ""), re.MULTILINE)
        if found:
            recovery.add(key, found.group(1), f"{name} ({pattern.split(' ')[0][1:]})")
    jwk = re.search(
        r'JWT_PRIVATE_SIGNING_JWK"\] = json.dumps\(\s*(\{.*?\})\s*\)',
        files.get("lms/production.py", ""),
        re.DOTALL,
    )
    if jwk:
        recovery.add(
            "JWT_RSA_PRIVATE_KEY",
            pem_from_jwk(jwk.group(1)),
            "lms/production.py JWT_PRIVATE_SIGNING_JWK",
        )


def pem_from_jwk(text: str) -> str | None:
    """The PEM of an RSA private JWK as Tutor renders it (``rsa_private_key``)."""
    try:
        jwk = json.loads(re.sub(r",\s*\}", "}", text))
        from Crypto.PublicKey import RSA

        numbers = [_b64_int(jwk[part]) for part in ("n", "e", "d", "p", "q")]
        return str(RSA.construct(tuple(numbers)).export_key().decode())
    except (ValueError, KeyError, TypeError):
        return None


def _b64_int(text: str) -> int:
    padded = text + "=" * (-len(text) % 4)
    return int.from_bytes(base64.urlsafe_b64decode(padded), "big")


def recover_from_deployments(
    recovery: Recovery, kube: Kube, namespace: str, instance: str
) -> None:
    selector = tutor_compat.instance_selector(instance)
    wanted = {
        "MYSQL_ROOT_PASSWORD": "MYSQL_ROOT_PASSWORD",
        "MEILI_MASTER_KEY": "MEILISEARCH_MASTER_KEY",
    }
    for deployment in kube.list(DEPLOYMENTS, namespace, selector):
        name = mapping(deployment.get("metadata")).get("name")
        spec = mapping(
            mapping(mapping(deployment.get("spec")).get("template")).get("spec")
        )
        for container in spec.get("containers") or []:
            for env in mapping(container).get("env") or []:
                env = mapping(env)
                key = wanted.get(str(env.get("name")))
                if key and "value" in env:
                    recovery.add(
                        key, env["value"], f"Deployment {name} env {env['name']}"
                    )


def credential_configmaps(kube: Kube, namespace: str, instance: str) -> list[str]:
    """The instance's ConfigMaps that hold credentials in plain Tutor
    (``openedx-config-<hash>`` ...): the plugin ships those files as Secrets."""
    selector = tutor_compat.instance_selector(instance)
    prefixes = tuple(f"{name}-" for name in tutor_compat.CREDENTIAL_CONFIGMAPS)
    return sorted(
        str(item["metadata"]["name"])
        for item in kube.list(CONFIG_MAPS, namespace, selector)
        if str((item.get("metadata") or {}).get("name", "")).startswith(prefixes)
    )


def record_for_prune(kube: Kube, kept: t.Any, names: list[str]) -> t.Any:
    """Add ``names`` (ConfigMaps) to the prune inventory of the state, so that the
    next deploy, which no longer renders them, deletes them."""
    refs = {*prune.recorded(kept), *(prune.Ref("v1", "ConfigMap", n) for n in names)}
    return annotate(
        kube,
        kept,
        {prune.INVENTORY_ANNOTATION: prune.encode(sorted(refs, key=lambda r: r.text))},
        "Recording the adopted instance's ConfigMaps in the state",
    )
