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
from ..config.masking import Scrubber
from ..exceptions import EksError
from ..kube import DEPLOYMENTS, PODS, REPLICASETS, KubeError
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


def explain(kube: Kube, deployment: dict[str, t.Any], scrub: Scrubber) -> Explanation:
    """Read the newest ReplicaSet of ``deployment`` and its pods, and say why it
    has not rolled out (:func:`explanation`)."""
    namespace = str((deployment.get("metadata") or {}).get("namespace") or "")
    selector = pod_selector(deployment)
    try:
        replica_sets = kube.list(REPLICASETS, namespace, selector)
        newest = newest_replica_set(deployment, replica_sets)
        found = (
            []
            if newest is None
            else kube.list(PODS, namespace, pod_selector(deployment, newest))
        )
    except KubeError as e:
        # An identity without `list` on ReplicaSets or Pods (a Role applied before
        # this plugin version): the reason is unknown, not the rollout's outcome.
        return explanation(deployment, [], [], scrub, unreadable=str(e))
    first = explanation(deployment, replica_sets, found, scrub)
    if first.pod is None or first.pod.reason != pods.UNREADY:
        return first
    events = {first.pod.pod: pods.unready_events(kube, namespace, first.pod.pod)}
    return explanation(deployment, replica_sets, found, scrub, events)


# --- the decisions: pure, over the objects as read -------------------------------------


def explanation(
    deployment: dict[str, t.Any],
    replica_sets: list[dict[str, t.Any]],
    found: list[dict[str, t.Any]],
    scrub: Scrubber,
    events: t.Mapping[str, list[dict[str, t.Any]]] | None = None,
    unreadable: str = "",
) -> Explanation:
    """Why ``deployment`` has not rolled out, from its ReplicaSets and the pods of
    the newest one (``events``: the probe events of a pod, by name; ``unreadable``:
    why the ReplicaSets or pods could not be read)."""
    state = progress(deployment)
    reasons = deployment_reasons(deployment, state)
    if unreadable:
        reasons.append(f"its pods could not be read ({unreadable})")
        return Explanation(state, reasons, None, 0)
    newest = newest_replica_set(deployment, replica_sets)
    if newest is None:
        return Explanation(state, reasons or ["no ReplicaSet yet"], None, 0)
    reasons += replica_failure(newest, scrub)
    diagnoses = [
        d
        for d in (
            pods.diagnose(pod, scrub, (events or {}).get(_name(pod), ()))
            for pod in new_pods(newest, found)
        )
        if d is not None
    ]
    if not diagnoses:
        reasons += replica_counts(state)
    new_ready = int((newest.get("status") or {}).get("readyReplicas") or 0)
    first = diagnoses[0] if diagnoses else None
    return Explanation(state, reasons, first, len(diagnoses), new_ready)


def deployment_reasons(deployment: dict[str, t.Any], state: Progress) -> list[str]:
    """What the Deployment's own status says: Kubernetes gave up, or has not
    seen the change yet."""
    reasons = []
    if state.deadline_exceeded:
        seconds = (deployment.get("spec") or {}).get("progressDeadlineSeconds", 600)
        reasons.append(f"ProgressDeadlineExceeded (no progress for {seconds} s)")
    if not state.observed:
        reasons.append("the Deployment controller has not seen the change yet")
    return reasons


def replica_failure(replica_set: dict[str, t.Any], scrub: Scrubber) -> list[str]:
    """Why the ReplicaSet cannot create pods (a quota, an admission webhook)."""
    failure = pods.condition_of(replica_set, "ReplicaFailure")
    if failure.get("status") != "True":
        return []
    message = scrub(str(failure.get("message") or ""))
    return [f"{failure.get('reason') or 'ReplicaFailure'}: {message}"]


def replica_counts(state: Progress) -> list[str]:
    """With no pod to blame: old pods still running, new ones not created yet."""
    if state.replicas > state.updated:
        return [f"{state.replicas - state.updated} old pods still running"]
    if state.updated < state.desired:
        return [f"{state.updated} of {state.desired} new pods created"]
    return []


def pod_selector(
    deployment: dict[str, t.Any], replica_set: dict[str, t.Any] | None = None
) -> str:
    """The label selector of the Deployment's pods (of one ReplicaSet's pods)."""
    spec = deployment.get("spec") or {}
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if replica_set is None:
        return selector
    template_hash = _labels(replica_set).get("pod-template-hash")
    return selector + (f",pod-template-hash={template_hash}" if template_hash else "")


def newest_replica_set(
    deployment: dict[str, t.Any], replica_sets: list[dict[str, t.Any]]
) -> dict[str, t.Any] | None:
    """The Deployment's ReplicaSet of its current revision (the newest created,
    when none carries the revision)."""
    owned = [rs for rs in replica_sets if _owned_by(rs, _uid(deployment))]
    revision = _annotations(deployment).get(REVISION)
    current = [rs for rs in owned if _annotations(rs).get(REVISION) == revision]
    by_age = sorted(owned, key=lambda rs: str(_metadata(rs).get("creationTimestamp")))
    newest = current or by_age[-1:]
    return newest[0] if newest else None


def new_pods(
    replica_set: dict[str, t.Any], found: list[dict[str, t.Any]]
) -> list[dict[str, t.Any]]:
    """The ReplicaSet's pods that are not being deleted, by name."""
    return sorted(
        (
            pod
            for pod in found
            if _owned_by(pod, _uid(replica_set))
            and not _metadata(pod).get("deletionTimestamp")
        ),
        key=_name,
    )


def _metadata(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    return obj.get("metadata") or {}


def _name(obj: dict[str, t.Any]) -> str:
    return str(_metadata(obj).get("name") or "")


def _uid(obj: dict[str, t.Any]) -> str:
    return str(_metadata(obj).get("uid") or "")


def _labels(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    return _metadata(obj).get("labels") or {}


def _annotations(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    return _metadata(obj).get("annotations") or {}


def _owned_by(obj: dict[str, t.Any], uid: str) -> bool:
    return any(
        ref.get("uid") == uid for ref in _metadata(obj).get("ownerReferences") or []
    )


def failure_message(explanations: list[Explanation], total: int, timeout: int) -> str:
    """The error of a rollout that failed: why, then one line per Deployment not
    rolled out."""
    given_up = [e.progress.name for e in explanations if e.progress.deadline_exceeded]
    pending = len(explanations)
    if given_up:
        header = (
            f"The rollout failed: Kubernetes gave up on {', '.join(given_up)} "
            f"(ProgressDeadlineExceeded). {pending} of {total} Deployments "
            "are not rolled out:"
        )
    else:
        header = (
            f"The rollout did not complete within {timeout} s (EKS_ROLLOUT_TIMEOUT): "
            f"{pending} of {total} Deployments are not rolled out:"
        )
    return "\n".join([header, *("  " + e.line() for e in explanations)])


# --- the wait -------------------------------------------------------------------------


def wait(
    kube: Kube,
    namespace: str,
    instance_id: str,
    timeout: int,
    scrub: Scrubber,
) -> list[str]:
    """Wait until every Deployment of the instance has rolled out (the names, in
    order), or raise :class:`EksError` naming each one that has not."""
    started = time.monotonic()
    reported: set[str] = set()
    found = deployments(kube, namespace, instance_id)
    _announce(namespace, [progress(d) for d in found], timeout)
    while True:
        states = [progress(d) for d in found]
        _report_done(states, reported, time.monotonic() - started)
        pending = [(d, s) for d, s in zip(found, states, strict=True) if not s.done]
        if not pending:
            return [s.name for s in states]
        remaining = started + timeout - time.monotonic()
        if any(s.deadline_exceeded for _d, s in pending) or remaining <= 0:
            break
        time.sleep(min(POLL, remaining))
        found = deployments(kube, namespace, instance_id)
    explanations = [explain(kube, d, scrub) for d, _s in pending]
    raise EksError(failure_message(explanations, len(found), timeout))


def _announce(namespace: str, states: list[Progress], timeout: int) -> None:
    if not states:
        fmt.echo_info(
            f"No Deployment of this instance in namespace {namespace}: "
            "nothing to wait for."
        )
        return
    fmt.echo_info(
        f"Waiting up to {timeout} s (EKS_ROLLOUT_TIMEOUT) for {len(states)} "
        f"Deployments to roll out: {', '.join(s.name for s in states)}"
    )


def _report_done(states: list[Progress], reported: set[str], elapsed: float) -> None:
    """One line per Deployment as it becomes ready; one when all are."""
    for state in states:
        if state.done and state.name not in reported:
            reported.add(state.name)
            fmt.echo_info(
                f"Deployment {state.name} rolled out ({state.ratio}, {elapsed:.0f} s)"
            )
    if states and all(s.done for s in states):
        fmt.echo_info(f"All {len(states)} Deployments rolled out in {elapsed:.0f} s.")
