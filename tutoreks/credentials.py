"""Credentials out of ConfigMaps and Job arguments.

Tutor ships the rendered LMS/CMS config and settings files (database, Redis,
SMTP, MongoDB and AWS credentials included) as ConfigMaps, and renders the MySQL
root password into the init Job's arguments. With an environment selected:

- ``openedx-config``, ``openedx-settings-lms`` and ``openedx-settings-cms`` become
  Secrets with the same names and keys (``secretGenerator`` in the ``kustomization``
  patch), the ConfigMaps are deleted from the build, and every Deployment and Job
  that mounted them mounts the Secret at the same path. The Secret names carry no
  hash (so RBAC can name them); a checksum annotation on each pod template rolls
  the pods when a file changes, a rotated Secret value included;
- every ``{{ KEY }}`` of an init task script whose value came from a Kubernetes
  Secret becomes ``${TUTOREKS_KEY}``, and Tutor's Jobs get that variable from the
  original Secret (``secretKeyRef``): the value never appears in a Job, Pod or
  Deployment spec.
"""

from __future__ import annotations

import hashlib
import os
import re
import typing as t

import jinja2
import yaml

from . import precedence

#: Tutor's ConfigMaps that hold credentials -> the template folder they are built from.
CONFIGS = {
    "openedx-config": "apps/openedx/config",
    "openedx-settings-lms": "apps/openedx/settings/lms",
    "openedx-settings-cms": "apps/openedx/settings/cms",
}
WORKLOAD_TEMPLATES = ("k8s/deployments.yml", "k8s/jobs.yml")
CHECKSUM_ANNOTATION = "tutor-contrib-eks/config-checksum"
FAST_LOADER: t.Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ENV_PREFIX = "TUTOREKS_"

_cache: dict[str, t.Any] = {"renderer": None, "text": ""}


def secret_keys() -> dict[str, tuple[str, str]]:
    """Tutor key -> (Secret name, data key), for the values read from Secrets."""
    resolution = precedence.current()
    if resolution is None or resolution.secrets is None:
        return {}
    return dict(resolution.secrets.origins)


def init_tasks(tasks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """CLI_DO_INIT_TASKS: Secret values reach init scripts as environment variables."""
    keys = secret_keys()
    if not keys:
        return tasks
    pattern = re.compile(
        r"\{\{\s*(" + "|".join(re.escape(k) for k in sorted(keys)) + r")\s*\}\}"
    )
    return [
        (service, pattern.sub(lambda m: "${" + ENV_PREFIX + m.group(1) + "}", script))
        for service, script in tasks
    ]


def kustomize_patches(context: jinja2.runtime.Context) -> str:
    """Template global: the kustomize patches of this module, as ``patches:`` items."""
    renderer = getattr(context.get("patch"), "__self__", None)
    if renderer is not None and _cache["renderer"] is renderer:
        return t.cast(str, _cache["text"])
    text = build_patches(context)
    _cache.update(renderer=renderer, text=text)
    return text


def rendered(context: jinja2.runtime.Context, template_name: str) -> str:
    """A template rendered with the config of ``context``.

    ``tutor config save`` renders Tutor's ``apps/`` and ``k8s/`` targets before
    ``kustomization.yml``: a file this process has just written to env/ is read
    back instead of being rendered a second time.
    """
    path = os.path.join(precedence.tutor_root(), "env", *template_name.split("/"))
    try:
        if os.stat(path).st_mtime >= precedence.STARTED:
            with open(path, encoding="utf-8") as f:
                return f.read()
    except OSError:
        pass
    return context.environment.get_template(template_name).render(context.get_all())


def build_patches(context: jinja2.runtime.Context) -> str:
    walk = context.environment.filters["walk_templates"]
    checksum = hashlib.sha256()
    for folder in CONFIGS.values():
        for name in sorted(walk(folder)):
            checksum.update(
                name.encode() + b"\0" + rendered(context, name).encode() + b"\0"
            )
    keys = secret_keys()
    patches: list[dict[str, str]] = []
    for name in CONFIGS:
        patches.append(
            {
                "patch": yaml.safe_dump(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": name},
                        "$patch": "delete",
                    }
                )
            }
        )
    for workload in workloads(context):
        spec = workload["spec"]["template"]["spec"]
        volumes = [
            {
                "name": volume["name"],
                "configMap": None,
                "secret": {"secretName": volume["configMap"]["name"]},
            }
            for volume in spec.get("volumes") or []
            if (volume.get("configMap") or {}).get("name") in CONFIGS
        ]
        template: dict[str, t.Any] = {"spec": {}}
        if volumes:
            template["metadata"] = {
                "annotations": {CHECKSUM_ANNOTATION: checksum.hexdigest()}
            }
            template["spec"]["volumes"] = volumes
        if workload["kind"] == "Job" and keys:
            env = [
                {
                    "name": ENV_PREFIX + key,
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": data_key}},
                }
                for key, (secret, data_key) in sorted(keys.items())
            ]
            template["spec"]["containers"] = [
                {"name": c["name"], "env": env} for c in spec.get("containers") or []
            ]
        if not template["spec"]:
            continue
        patch = {
            "apiVersion": workload["apiVersion"],
            "kind": workload["kind"],
            "metadata": {"name": workload["metadata"]["name"]},
            "spec": {"template": template},
        }
        patches.append({"patch": yaml.safe_dump(patch, sort_keys=False)})
    return yaml.safe_dump(patches, sort_keys=False, width=1000)


def workloads(context: jinja2.runtime.Context) -> list[dict[str, t.Any]]:
    """Tutor's Deployments and Jobs, plugins' included, rendered with this config."""
    found = []
    for template_name in WORKLOAD_TEMPLATES:
        for document in yaml.load_all(
            rendered(context, template_name), Loader=FAST_LOADER
        ):
            if isinstance(document, dict) and document.get("kind") in (
                "Deployment",
                "Job",
            ):
                found.append(document)
    return found
