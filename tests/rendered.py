"""The LMS or CMS settings a rendered env/ leaves, as the pods get them: Tutor's own
literal settings (parsed from the rendered ``production.py`` and ``lms.env.yml``),
then the plugin's backing-services block of the same file, executed.

edx-platform itself is not installed here: what its ``production.py`` derives from
the YAML before the plugin's block runs is built the way it builds it
(``BROKER_URL`` from the ``CELERY_BROKER_*`` values, ``BROKER_TRANSPORT_OPTIONS``,
the modulestore's copy of the MongoDB parameters)."""

from __future__ import annotations

import ast
import copy
import typing as t
from pathlib import Path

import yaml

from tutoreks.render.services import CA_PATH

BLOCK_START = "# tutor-contrib-eks: Redis key prefix"
LITERALS = ("CACHES", "mongodb_parameters")


def settings_block(text: str) -> str:
    """The plugin's backing-services block of a rendered production.py."""
    start = text.index(BLOCK_START)
    end = text.index("\ndel _tutoreks_json", start)
    end = text.index("\n", end + 1)
    return text[start:end]


def tutor_literals(text: str) -> dict[str, t.Any]:
    found: dict[str, t.Any] = {}
    for node in ast.parse(text).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id in LITERALS
        ):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return found


def edx_platform_values(env_yml: dict[str, t.Any]) -> dict[str, t.Any]:
    """What edx-platform's production.py sets from the YAML (lms/envs/production.py)."""
    parts = ("TRANSPORT", "USER", "PASSWORD", "HOSTNAME", "VHOST")
    transport, user, password, hostname, vhost = (
        env_yml[f"CELERY_BROKER_{part}"] for part in parts
    )
    broker = f"{transport}://{user}:{password}@{hostname}/{vhost}"
    return {
        "DATABASES": env_yml["DATABASES"],
        "BROKER_URL": broker,
        "BROKER_TRANSPORT_OPTIONS": {"fanout_patterns": True, "fanout_prefix": True},
    }


def applied_settings(
    env_dir: Path, service: str = "lms", ca_file: Path | None = None
) -> dict[str, t.Any]:
    """The settings after the plugin's block ran; ``ca_file`` stands for the CA
    bundle's path in the pods."""
    text = (env_dir / "apps/openedx/settings" / service / "production.py").read_text(
        encoding="utf-8"
    )
    env_yml = yaml.safe_load(
        (env_dir / "apps/openedx/config" / f"{service}.env.yml").read_text(
            encoding="utf-8"
        )
    )
    namespace: dict[str, t.Any] = {
        **edx_platform_values(env_yml),
        **tutor_literals(text),
    }
    namespace["DOC_STORE_CONFIG"] = namespace["mongodb_parameters"]
    store = {"DOC_STORE_CONFIG": copy.deepcopy(namespace["mongodb_parameters"])}
    namespace["MODULESTORE"] = {"default": {"OPTIONS": {"stores": [store]}}}
    # The plugin's own rendered settings code, run as the pods run it.
    code = compile(settings_block(text), f"{service}/production.py", "exec")
    exec(code, namespace)  # noqa: S102
    settings = {k: v for k, v in namespace.items() if not k.startswith("__")}
    if ca_file is not None:
        settings = relocated(settings, str(ca_file))
    return settings


def relocated(value: t.Any, path: str) -> t.Any:
    """``value`` with the pods' CA bundle path replaced by ``path``."""
    if isinstance(value, dict):
        return {k: relocated(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [relocated(v, path) for v in value]
    if isinstance(value, str):
        return value.replace(CA_PATH, path).replace(
            CA_PATH.replace("/", "%2F"), path.replace("/", "%2F")
        )
    return value
