"""After ``tutor k8s start`` applied the objects: wait until they run.

What is waited for: **every Deployment of the instance** (label
``app.kubernetes.io/instance=openedx-<ID>`` in ``K8S_NAMESPACE``), not only those
the deploy changed. A deploy that changed nothing while a Deployment still crashes
from an earlier one must not go green, and a re-run of a failed deploy must fail
again. A Deployment has rolled out, as ``kubectl rollout status`` decides, when the
controller has seen its last change (``observedGeneration``) and its updated, ready
and available replicas are the desired number, with no old pod left.

The wait ends at the first of: every Deployment rolled out (success); Kubernetes
gave up on one (condition ``Progressing`` False, ``ProgressDeadlineExceeded``,
after its ``progressDeadlineSeconds``); ``EKS_ROLLOUT_TIMEOUT`` seconds. A failure
names each Deployment that is not rolled out, one line each: its pod, the reason
Kubernetes gives (``pods.py``) and the ``kubectl logs`` command.

One line is printed per Deployment as it becomes ready: no spinner in CI logs.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass

from tutor import fmt

from .. import tutor_compat
from ..exceptions import EksError
from . import pods

if t.TYPE_CHECKING:
    from ..kube import Kube

#: Seconds between two looks at the Deployments.
POLL = 2.0
REVISION = "deployment.kubernetes.io/revision"


@dataclass
class Progress:
    """Where one Deployment's rollout stands."""

    name: str
    desired: int
    ready: int
    updated: int
    available: int
    replicas: int
    observed: bool
    deadline_exceeded: bool

    @property
    def done(self) -> bool:
        return (
            self.observed
            and self.updated >= self.desired
            and self.replicas <= self.updated
            and self.available >= self.desired
            and self.ready >= self.desired
        )

    @property
    def ratio(self) -> str:
        return f"{self.ready}/{self.desired} ready"


def progress(deployment: dict[str, t.Any]) -> Progress:
    metadata = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    desired = spec.get("replicas")
    observed = int(status.get("observedGeneration") or 0) >= int(
        metadata.get("generation") or 0
    )
    progressing = pods.condition_of(deployment, "Progressing")
    return Progress(
        name=str(metadata.get("name") or "?"),
        desired=1 if desired is None else int(desired),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        replicas=int(status.get("replicas") or 0),
        observed=observed,
        deadline_exceeded=observed
        and progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded",
    )


def deployments(kube: Kube, namespace: str, instance_id: str) -> list[dict[str, t.Any]]:
    from ..kube import DEPLOYMENTS

    found = kube.list(
        DEPLOYMENTS, namespace, tutor_compat.instance_selector(instance_id)
    )
    return sorted(found, key=lambda d: str((d.get("metadata") or {}).get("name")))


# --- why a Deployment is not rolled out -----------------------------------------------


@dataclass
class Explanation:
    """Why one Deployment has not rolled out."""

    progress: Progress
    reasons: list[str]
    #: The most telling pod of the newest ReplicaSet, if one is not right.
    pod: pods.Diagnosis | None
    #: How many pods of the newest ReplicaSet are not right.
    failing_pods: int
    #: Ready pods of the newest ReplicaSet (the others may be the old version's).
    new_ready: int = 0

    @property
    def reason(self) -> str:
        """Kubernetes' word for it: CrashLoopBackOff, ProgressDeadlineExceeded ..."""
        if self.pod is not None:
            return self.pod.reason
        if self.progress.deadline_exceeded:
            return "ProgressDeadlineExceeded"
        return "Progressing"

    @property
    def detail(self) -> str:
        parts = list(self.reasons)
        if self.pod is not None:
            more = self.failing_pods - 1
            parts.append(
                self.pod.line() + (f" (and {more} more pods)" if more > 0 else "")
            )
        return "; ".join(parts) or "rolling out"

    @property
    def status(self) -> str:
        state = self.progress
        if state.ready == self.new_ready:
            return state.ratio
        return f"{state.ratio}, {self.new_ready}/{state.desired} of the new version"

    def line(self) -> str:
        return f"Deployment {self.progress.name} ({self.status}): {self.detail}"

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "reason": self.reason,
            "detail": self.detail,
            "pod": self.pod.as_dict() if self.pod is not None else None,
        }


def explain(
    kube: Kube, deployment: dict[str, t.Any], scrub: pods.Scrubber
) -> Explanation:
    """Look at the newest ReplicaSet of ``deployment`` and its pods."""
    from ..kube import KubeError

    state = progress(deployment)
    spec = deployment.get("spec") or {}
    reasons: list[str] = []
    if state.deadline_exceeded:
        seconds = spec.get("progressDeadlineSeconds", 600)
        reasons.append(f"ProgressDeadlineExceeded (no progress for {seconds} s)")
    if not state.observed:
        reasons.append("the Deployment controller has not seen the change yet")
    diagnoses: list[pods.Diagnosis] = []
    new_ready = 0
    try:
        new_ready = _inspect_pods(kube, deployment, state, scrub, reasons, diagnoses)
    except KubeError as e:
        # An identity without `list` on ReplicaSets or Pods (a Role applied before
        # this plugin version): the reason is unknown, not the rollout's outcome.
        reasons.append(f"its pods could not be read ({e})")
    return Explanation(
        state, reasons, diagnoses[0] if diagnoses else None, len(diagnoses), new_ready
    )


def _inspect_pods(
    kube: Kube,
    deployment: dict[str, t.Any],
    state: Progress,
    scrub: pods.Scrubber,
    reasons: list[str],
    diagnoses: list[pods.Diagnosis],
) -> int:
    """Add why the newest ReplicaSet's pods are not right; its ready pods."""
    from ..kube import PODS, REPLICASETS

    metadata = deployment.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    spec = deployment.get("spec") or {}
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    owned = [
        rs
        for rs in kube.list(REPLICASETS, namespace, selector)
        if _owned_by(rs, str(metadata.get("uid") or ""))
    ]
    revision = (metadata.get("annotations") or {}).get(REVISION)
    newest = [
        rs
        for rs in owned
        if (rs.get("metadata", {}).get("annotations") or {}).get(REVISION) == revision
    ] or sorted(owned, key=lambda rs: str(rs["metadata"].get("creationTimestamp")))[-1:]
    if not newest:
        if not reasons:
            reasons.append("no ReplicaSet yet")
        return 0
    replica_set = newest[0]
    new_ready = int((replica_set.get("status") or {}).get("readyReplicas") or 0)
    failure = pods.condition_of(replica_set, "ReplicaFailure")
    if failure.get("status") == "True":
        reasons.append(
            f"{failure.get('reason') or 'ReplicaFailure'}: "
            f"{scrub(str(failure.get('message') or ''))}"
        )
    hash_label = (replica_set["metadata"].get("labels") or {}).get("pod-template-hash")
    pod_selector = selector + (f",pod-template-hash={hash_label}" if hash_label else "")
    for pod in sorted(
        kube.list(PODS, namespace, pod_selector),
        key=lambda p: str(p["metadata"].get("name")),
    ):
        if not _owned_by(pod, str(replica_set["metadata"].get("uid") or "")):
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        found = pods.diagnose(pod, scrub, kube if not diagnoses else None)
        if found is not None:
            diagnoses.append(found)
    if not diagnoses and state.replicas > state.updated:
        reasons.append(f"{state.replicas - state.updated} old pods still running")
    elif not diagnoses and state.updated < state.desired:
        reasons.append(f"{state.updated} of {state.desired} new pods created")
    return new_ready


def _owned_by(obj: dict[str, t.Any], uid: str) -> bool:
    return any(
        ref.get("uid") == uid
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


# --- the wait -------------------------------------------------------------------------


def wait(
    kube: Kube,
    namespace: str,
    instance_id: str,
    timeout: int,
    scrub: pods.Scrubber,
) -> list[str]:
    """Wait until every Deployment of the instance has rolled out (the names, in
    order), or raise :class:`EksError` naming each one that has not."""
    started = time.monotonic()
    deadline = started + timeout
    reported: set[str] = set()
    announced = False
    while True:
        found = deployments(kube, namespace, instance_id)
        if not found:
            fmt.echo_info(
                f"No Deployment of this instance in namespace {namespace}: "
                "nothing to wait for."
            )
            return []
        states = [progress(d) for d in found]
        if not announced:
            fmt.echo_info(
                f"Waiting up to {timeout} s (EKS_ROLLOUT_TIMEOUT) for {len(states)} "
                f"Deployments to roll out: {', '.join(s.name for s in states)}"
            )
            announced = True
        elapsed = time.monotonic() - started
        for state in states:
            if state.done and state.name not in reported:
                reported.add(state.name)
                fmt.echo_info(
                    f"Deployment {state.name} rolled out ({state.ratio}, {elapsed:.0f} s)"
                )
        pending = [d for d, s in zip(found, states, strict=True) if not s.done]
        if not pending:
            fmt.echo_info(
                f"All {len(states)} Deployments rolled out in {elapsed:.0f} s."
            )
            return [s.name for s in states]
        given_up = [s.name for s in states if s.deadline_exceeded]
        now = time.monotonic()
        if given_up or now >= deadline:
            break
        time.sleep(min(POLL, max(0.0, deadline - now)))
    lines = [explain(kube, d, scrub).line() for d in pending]
    if given_up:
        header = (
            f"The rollout failed: Kubernetes gave up on {', '.join(given_up)} "
            f"(ProgressDeadlineExceeded). {len(pending)} of {len(found)} Deployments "
            "are not rolled out:"
        )
    else:
        header = (
            f"The rollout did not complete within {timeout} s (EKS_ROLLOUT_TIMEOUT): "
            f"{len(pending)} of {len(found)} Deployments are not rolled out:"
        )
    raise EksError("\n".join([header, *("  " + line for line in lines)]))
