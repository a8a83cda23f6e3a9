"""Which Tutor instances a namespace runs: the ``ID`` in the instance label of its
live Deployments. A save about to store a new ``ID`` (``guard.py`` through
``config/state.py``) and a deploy (``deploy/lifecycle.py``) refuse a namespace that
runs another instance, whose Deployments' selectors Kubernetes never lets change;
``tutor eks adopt`` (``deploy/adopt.py``) is the way out.
"""

from __future__ import annotations

import typing as t

from .. import tutor_compat
from ..exceptions import EksError
from ..kube import DEPLOYMENTS

if t.TYPE_CHECKING:
    from ..kube import Kube

TUTOR_SELECTOR = "app.kubernetes.io/managed-by=tutor"


def live_instances(kube: Kube, namespace: str) -> dict[str, list[str]]:
    """Tutor instance IDs of the live Deployments -> their names."""
    found: dict[str, list[str]] = {}
    prefix = tutor_compat.instance_label_value("")
    for deployment in kube.list(DEPLOYMENTS, namespace, TUTOR_SELECTOR):
        metadata = deployment.get("metadata") or {}
        label = (metadata.get("labels") or {}).get(tutor_compat.INSTANCE_LABEL, "")
        if label.startswith(prefix):
            found.setdefault(label[len(prefix) :], []).append(str(metadata.get("name")))
    return found


def refuse_foreign_instance(kube: Kube, namespace: str, wanted: str | None) -> None:
    """Refuse to deploy ``ID`` ``wanted`` into a namespace that runs another one."""
    if wanted is None:
        return
    others = {
        instance: names
        for instance, names in live_instances(kube, namespace).items()
        if instance != wanted
    }
    if not others:
        return
    instance, names = sorted(others.items())[0]
    raise EksError(
        f"Namespace {namespace} already runs the Tutor instance with ID {instance!r} "
        f"(Deployments {', '.join(sorted(names)[:5])}), and this deploy would use ID "
        f"{wanted!r}: Kubernetes refuses to change a Deployment's selector, so nothing "
        "was written or applied. If that instance is this environment, deployed before "
        "tutor-contrib-eks kept its state, run `tutor eks adopt` once to keep its ID "
        "and generated values; otherwise deploy to another K8S_NAMESPACE."
    )
