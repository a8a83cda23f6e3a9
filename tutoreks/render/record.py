"""What a root's env/ was rendered for: the save records it beside the render, and
``tutor k8s start`` / ``launch`` and ``tutor eks diff`` refuse a render made for
another environment, namespace or instance, one made without reading the cluster
(``tutor plugins enable`` renders without Secrets or state), or one older than
the environment's files. A root is a CI job's scratch space: what it holds when a
command starts is input, like what is read back from the cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing as t

from .. import tutor_compat
from ..exceptions import EksError

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution
    from ..environment import Environment

#: Under env/; not listed in the kustomization, so never applied.
RECORD = "plugins/eks/render.json"


def environment_digest(environment: Environment) -> str:
    """sha256 of the environment folder's files (config, settings, k8s/, bundle)."""
    digest = hashlib.sha256()
    folders = [environment.path, environment.path / "k8s"]
    for folder in folders:
        try:
            names = sorted(
                entry.name for entry in os.scandir(folder) if entry.is_file()
            )
        except OSError:
            continue
        for name in names:
            digest.update(f"{folder.name}/{name}\0".encode())
            digest.update((folder / name).read_bytes() + b"\0")
    return digest.hexdigest()


def describe(resolution: Resolution, config: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    return {
        "environment": resolution.environment.name,
        "namespace": str(config.get("K8S_NAMESPACE", "")),
        "instance": str(config.get("ID", "")),
        "cluster_read": resolution.online,
        "environment_files": environment_digest(resolution.environment),
    }


def write(
    env_dir: str, resolution: Resolution | None, config: t.Mapping[str, t.Any]
) -> None:
    """ENV_SAVED: record what env/ now holds (or, inert, remove an old record)."""
    path = os.path.join(env_dir, *RECORD.split("/"))
    if resolution is None:
        if os.path.exists(path):
            os.remove(path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(describe(resolution, config), f, indent=2, sort_keys=True)


def read(root: str) -> dict[str, t.Any] | None:
    path = os.path.join(tutor_compat.env_dir(root), *RECORD.split("/"))
    try:
        with open(path, encoding="utf-8") as f:
            loaded = json.load(f)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def check(root: str, resolution: Resolution, config: t.Mapping[str, t.Any]) -> None:
    """Refuse to apply env/ unless it was rendered, reading the cluster, for the
    selected environment, its namespace and instance, from its current files."""
    problem = mismatch(read(root), describe(resolution, config))
    if problem:
        raise EksError(
            f"{tutor_compat.env_dir(root)} {problem}: run `tutor config save` with "
            f"TUTOR_EKS_ENVIRONMENT={resolution.environment.name} first. Nothing was "
            "applied or pruned."
        )


def mismatch(recorded: dict[str, t.Any] | None, current: dict[str, t.Any]) -> str:
    """Why a render recorded as ``recorded`` is not the one for ``current``."""
    if recorded is None:
        return (
            f"was not rendered for environment {current['environment']!r} "
            "by tutor-contrib-eks"
        )
    if recorded.get("cluster_read") is not True:
        return (
            "was rendered without reading the cluster's Secrets and state "
            "(`tutor plugins ...` renders so)"
        )
    for key in ("environment", "namespace", "instance"):
        if recorded.get(key) != current[key]:
            return (
                f"was rendered for {key} {recorded.get(key)!r}, not "
                f"{current[key]!r} (environment {recorded.get('environment')!r}, "
                f"namespace {recorded.get('namespace')!r})"
            )
    if recorded.get("environment_files") != current["environment_files"]:
        return (
            f"is older than the files of environment {current['environment']!r}, "
            "which changed since it was rendered"
        )
    return ""
