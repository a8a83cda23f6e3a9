"""Migrations before new code serves.

Tutor's ``tutor k8s launch`` applies everything (``start``), then runs the init
Jobs (``init``): during every upgrade the new image serves against the old
schema, and a failed migration leaves the new pods running. When ``launch``
brings a new image to an instance that already runs, the plugin changes the
order:

1. everything but the Deployments that run the Open edX image is applied (the
   backing services the Jobs need, their configuration);
2. the init Jobs run with the new image (``tutor k8s init``) and must succeed;
3. then ``start`` applies the Deployments, and the rollout is waited for; the
   ``init`` Tutor's ``launch`` runs next is skipped (it already ran).

If a migration fails, the command fails before any Deployment changed, and the
configuration Secrets the running pods mount are put back as they were. A first
install (nothing runs yet) keeps Tutor's order. Running pods keep the settings
they loaded while the Jobs run; only a container that restarts meanwhile reads
the new files.
"""

from __future__ import annotations

import subprocess
import typing as t

from tutor import fmt

from .. import tutor_compat
from ..exceptions import EksError
from ..kube import SECRETS, KubeError
from . import prune, rollout

if t.TYPE_CHECKING:
    from ..kube import Kube

NAME_LABEL = "app.kubernetes.io/name"


def openedx_deployments(objects: list[dict[str, t.Any]], image: str) -> list[str]:
    """The rendered Deployments that run the Open edX image."""
    return sorted(
        str(obj["metadata"]["name"])
        for obj in objects
        if obj.get("kind") == "Deployment"
        and any(
            c.get("image") == image
            for c in obj["spec"]["template"]["spec"].get("containers") or []
        )
    )


def changed_images(
    live: list[dict[str, t.Any]], names: list[str], image: str
) -> list[str]:
    """The running Deployments of ``names`` whose containers run another image
    than ``image`` (empty on a first install)."""
    changed = []
    for deployment in live:
        name = str(deployment["metadata"].get("name"))
        containers = deployment["spec"]["template"]["spec"].get("containers") or []
        if name in names and any(c.get("image") != image for c in containers[:1]):
            changed.append(name)
    return sorted(changed)


def selector(names: list[str]) -> str:
    """What ``tutor k8s start`` applies, less the Deployments of ``names``."""
    return f"{tutor_compat.APPLY_SELECTOR},{NAME_LABEL} notin ({','.join(names)})"


def migrate_first(
    kube: Kube, root: str, config: dict[str, t.Any], run_init: t.Callable[[], None]
) -> bool:
    """Steps 1 and 2 when ``launch`` brings a new image; False when Tutor's own
    order applies (a first install, or the same image)."""
    image = str(config["DOCKER_IMAGE_OPENEDX"])
    names = openedx_deployments(prune.rendered(root), image)
    live = rollout.deployments(kube, str(config["K8S_NAMESPACE"]), str(config["ID"]))
    changed = changed_images(live, names, image)
    if not names or not changed:
        return False
    fmt.echo_info(
        f"New image for {', '.join(changed)}: the migrations (init Jobs) run first, "
        "then the Deployments switch to it."
    )
    saved = configuration(kube, str(config["K8S_NAMESPACE"]))
    apply_without(root, names)
    try:
        run_init()
    except BaseException:
        restore(kube, str(config["K8S_NAMESPACE"]), saved)
        fmt.echo_alert(
            f"The migrations failed: {', '.join(names)} still run their previous image "
            "and configuration; nothing else of the deploy was applied to them."
        )
        raise
    return True


def apply_without(root: str, names: list[str]) -> None:
    env_dir = tutor_compat.env_dir(root)
    command = [
        "kubectl",
        "apply",
        "--kustomize",
        env_dir,
        "--selector",
        selector(names),
    ]
    fmt.echo(fmt.command(" ".join(command)))
    try:
        code = subprocess.call(command, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EksError(f"`kubectl apply` of the backing services failed: {e}") from e
    if code != 0:
        raise EksError(
            f"`kubectl apply` of the backing services failed (exit {code}); nothing "
            f"of {', '.join(names)} was changed."
        )


def configuration(kube: Kube, namespace: str) -> dict[str, dict[str, t.Any]]:
    """The configuration Secrets the running pods mount, as they are now."""
    saved = {}
    for name in tutor_compat.CREDENTIAL_CONFIGMAPS:
        secret = kube.get(SECRETS, name, namespace)
        if secret is not None:
            saved[name] = secret
    return saved


def restore(kube: Kube, namespace: str, saved: dict[str, dict[str, t.Any]]) -> None:
    """Put the configuration Secrets back (their data only)."""
    for name, secret in saved.items():
        try:
            current = kube.get(SECRETS, name, namespace)
            if current is None:
                continue
            current["data"] = secret.get("data") or {}
            kube.replace(SECRETS, namespace, name, current)
        except KubeError as e:
            fmt.echo_alert(f"Could not put Secret {namespace}/{name} back: {e}")
