"""Kustomize patches: credentials out of ConfigMaps and Job arguments.

Tutor ships the rendered LMS/CMS config and settings files (database, Redis,
SMTP, MongoDB and AWS credentials included) as ConfigMaps, and renders the MySQL
root password into the init Job's arguments. With an environment selected:

- ``openedx-config``, ``openedx-settings-lms`` and ``openedx-settings-cms`` become
  Secrets with the same names and keys (``secretGenerator`` in the ``kustomization``
  patch), the ConfigMaps are deleted from the build, and every Deployment and Job
  that mounted them mounts the Secret at the same path. The Secret names carry no
  hash (so RBAC can name them); a checksum annotation on each pod template rolls
  the pods when a file changes, a rotated Secret value included;
- Tutor's Jobs get every value that came from a Kubernetes Secret or the state as
  a ``TUTOREKS_<KEY>`` variable from that Secret (``secretKeyRef``), which the task
  scripts read (``render/tasks.py``): the value never appears in a Job, Pod or
  Deployment spec.
"""

from __future__ import annotations

import hashlib
import os
import typing as t

import jinja2
import yaml

from .. import tutor_compat
from ..config import context as command
from ..exceptions import EksError
from ..tutor_compat import CREDENTIAL_CONFIGMAPS as CONFIGS
from . import services
from . import workloads as workloads_module

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution

CHECKSUM_ANNOTATION = "tutor-contrib-eks/config-checksum"
FAST_LOADER: t.Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: libyaml's emitter: the patches hold every workload's YAML as text, which the
#: pure-Python emitter analyses character by character (0.15 s a save).
FAST_DUMPER: t.Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(data: t.Any, **options: t.Any) -> str:
    """``yaml.safe_dump`` with libyaml."""
    text: str = yaml.dump(data, Dumper=FAST_DUMPER, **options)
    return text


#: Task scripts read a value from a Secret as ``${TUTOREKS_<KEY>}``.
ENV_PREFIX = "TUTOREKS_"


def kustomize_patches(context: jinja2.runtime.Context, resolution: Resolution) -> str:
    """Template global: the kustomize patches of this module, as ``patches:`` items
    (built once per renderer: the kustomization renders them more than once)."""
    renderer = getattr(context.get("patch"), "__self__", None)
    ctx = command.current()
    if renderer is not None and ctx.kustomize_patches is not None:
        made_by, text = ctx.kustomize_patches
        if made_by is renderer:
            return text
    text = build_patches(context, resolution)
    ctx.kustomize_patches = (renderer, text)
    return text


def rendered(context: jinja2.runtime.Context, template_name: str) -> str:
    """A template rendered with the config of ``context``.

    ``tutor config save`` renders Tutor's ``apps/`` and ``k8s/`` targets before
    ``kustomization.yml``: a file this process has just written to env/ is read
    back instead of being rendered a second time.
    """
    path = os.path.join(
        tutor_compat.env_dir(tutor_compat.current_root()), *template_name.split("/")
    )
    try:
        if os.stat(path).st_mtime >= tutor_compat.LOADED_AT:
            with open(path, encoding="utf-8") as f:
                return f.read()
    except OSError:
        pass
    return context.environment.get_template(template_name).render(context.get_all())


def build_patches(context: jinja2.runtime.Context, resolution: Resolution) -> str:
    """Delete Tutor's credential ConfigMaps, and patch every Deployment and Job."""
    ca = resolution.ca_bundle
    checksum = config_checksum(context, ca.text if ca is not None else "")
    keys = resolution.secret_keys()
    values = secret_values(resolution.raw_values(), keys)
    patches = [{"patch": dump(delete_configmap(name))} for name in CONFIGS]
    image = str(context.get("DOCKER_IMAGE_OPENEDX") or "")
    found = workloads(context)
    for workload in found:
        mount = ca is not None and wants_ca(workload, image)
        patch = workload_patch(workload, checksum, keys, values, mount)
        if patch is not None:
            patches.append({"patch": dump(patch, sort_keys=False)})
    origin = resolution.sources.get("EKS_WORKLOADS", "")
    patches += production_patches(context, origin, found)
    return dump(patches, sort_keys=False, width=1000)


def deployment_settings(
    context: jinja2.runtime.Context,
    origin: str,
    found: list[dict[str, t.Any]] | None = None,
) -> tuple[list[dict[str, t.Any]], dict[str, workloads_module.Workload]]:
    """Tutor's Deployments, and ``EKS_WORKLOADS`` checked against their names
    (``origin``: where EKS_WORKLOADS is set, for messages)."""
    deployments = [
        w for w in (found or workloads(context)) if w["kind"] == "Deployment"
    ]
    try:
        items = workloads_module.parse(
            context.get("EKS_WORKLOADS"), [d["metadata"]["name"] for d in deployments]
        )
    except EksError as e:
        raise EksError(f"{origin}: {e}" if origin else str(e)) from None
    return deployments, items


def production_patches(
    context: jinja2.runtime.Context, origin: str, found: list[dict[str, t.Any]]
) -> list[dict[str, str]]:
    """Probes, requests, grace periods and replicas (``render/workloads.py``)."""
    deployments, items = deployment_settings(context, origin, found)
    hosts = {
        "lms": str(context.get("LMS_HOST") or ""),
        "cms": str(context.get("CMS_HOST") or ""),
    }
    return [
        {
            "patch": dump(
                workloads_module.deployment_patch(
                    d, items[d["metadata"]["name"]], hosts
                ),
                sort_keys=False,
            )
        }
        for d in deployments
    ]


def config_checksum(context: jinja2.runtime.Context, ca_text: str = "") -> str:
    """sha256 of every file the credential Secrets hold, and of the CA bundle: it
    changes with any of them."""
    walk = context.environment.filters["walk_templates"]
    checksum = hashlib.sha256(ca_text.encode())
    for folder in CONFIGS.values():
        for name in sorted(walk(folder)):
            checksum.update(
                name.encode() + b"\0" + rendered(context, name).encode() + b"\0"
            )
    return checksum.hexdigest()


def delete_configmap(name: str) -> dict[str, t.Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "$patch": "delete",
    }


def secret_values(
    raw: dict[str, str], keys: dict[str, tuple[str, str]]
) -> dict[str, tuple[str, str]]:
    """Value -> (Secret, data key), for the values that came from Secrets."""
    found: dict[str, tuple[str, str]] = {}
    for key, origin in sorted(keys.items()):
        value = raw.get(key)
        if isinstance(value, str) and value:
            found.setdefault(value, origin)
    return found


def workload_patch(
    workload: dict[str, t.Any],
    checksum: str,
    keys: dict[str, tuple[str, str]],
    values: dict[str, tuple[str, str]],
    ca: bool = False,
) -> dict[str, t.Any] | None:
    """Mount the credential Secrets where the ConfigMaps were (with the checksum
    annotation); give Jobs every Secret value as a ``secretKeyRef`` variable; turn
    every container variable whose value came from a Secret into a reference;
    mount the CA bundle when ``ca``."""
    spec = workload["spec"]["template"]["spec"]
    template: dict[str, t.Any] = {"spec": {}}
    volumes = secret_volumes(spec) + ([services.ca_volume()] if ca else [])
    if volumes:
        template["metadata"] = {"annotations": {CHECKSUM_ANNOTATION: checksum}}
        template["spec"]["volumes"] = volumes
    containers = []
    for container in spec.get("containers") or []:
        env = referenced_env(container, values)
        if workload["kind"] == "Job":
            env += secret_env(keys)
        patch: dict[str, t.Any] = {"name": container["name"]}
        if env:
            patch["env"] = env
        if ca:
            patch["volumeMounts"] = [services.ca_mount()]
        if len(patch) > 1:
            containers.append(patch)
    if containers:
        template["spec"]["containers"] = containers
    if not template["spec"]:
        return None
    return {
        "apiVersion": workload["apiVersion"],
        "kind": workload["kind"],
        "metadata": {"name": workload["metadata"]["name"]},
        "spec": {"template": template},
    }


def wants_ca(workload: dict[str, t.Any], openedx_image: str) -> bool:
    """Every Job (init tasks reach MySQL) and every Deployment that runs the Open
    edX image gets the CA bundle."""
    if workload["kind"] == "Job":
        return True
    containers = workload["spec"]["template"]["spec"].get("containers") or []
    return any(c.get("image") == openedx_image for c in containers)


def referenced_env(
    container: dict[str, t.Any], values: dict[str, tuple[str, str]]
) -> list[dict[str, t.Any]]:
    """The container's variables that hold a value from a Secret, as references
    (``value`` removed by the strategic merge patch)."""
    return [
        {
            "name": item["name"],
            "value": None,
            "valueFrom": {
                "secretKeyRef": {
                    "name": values[item["value"]][0],
                    "key": values[item["value"]][1],
                }
            },
        }
        for item in container.get("env") or []
        if isinstance(item.get("value"), str) and item["value"] in values
    ]


def secret_volumes(pod_spec: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    return [
        {
            "name": volume["name"],
            "configMap": None,
            "secret": {"secretName": volume["configMap"]["name"]},
        }
        for volume in pod_spec.get("volumes") or []
        if (volume.get("configMap") or {}).get("name") in CONFIGS
    ]


def secret_env(keys: dict[str, tuple[str, str]]) -> list[dict[str, t.Any]]:
    return [
        {
            "name": ENV_PREFIX + key,
            "valueFrom": {"secretKeyRef": {"name": secret, "key": data_key}},
        }
        for key, (secret, data_key) in sorted(keys.items())
    ]


def workloads(context: jinja2.runtime.Context) -> list[dict[str, t.Any]]:
    """Tutor's Deployments and Jobs, plugins' included, rendered with this config."""
    found = []
    for template_name in tutor_compat.WORKLOAD_TEMPLATES:
        for document in yaml.load_all(
            rendered(context, template_name), Loader=FAST_LOADER
        ):
            if isinstance(document, dict) and document.get("kind") in (
                "Deployment",
                "Job",
            ):
                found.append(document)
    return found
