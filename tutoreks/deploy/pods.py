"""Why a pod is not running as it should, in Kubernetes' own words.

Shared by the rollout wait (``rollout.py``), the init Job wait (``jobs.py``) and
``tutor eks status`` (``status.py``). A diagnosis names the pod, the container and
the reason Kubernetes gives (``ErrImagePull``/``ImagePullBackOff``,
``CrashLoopBackOff`` with the last exit code, a failing readiness probe,
``Unschedulable`` ...), and the ``kubectl logs`` command that shows its logs.

The decision is :func:`diagnose`, a pure function of the pod as the API server
returns it (and its probe events, which :func:`unready_events` reads). Free text that comes from the cluster (a scheduler message, a
probe's output) goes through ``config.masking.Scrubber``: shortened, and every
value from a Secret or the state replaced by ``***`` (a probe's output or an event
could quote anything).
"""

from __future__ import annotations

import shlex
import typing as t
from dataclasses import dataclass

from ..config.masking import REASON_LIMIT, Scrubber, shown
from ..kube import EVENTS, KubeError

if t.TYPE_CHECKING:
    from ..kube import Kube

#: A container waiting for one of these will not start without a change.
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
CONFIG_FAILURES = ("CreateContainerConfigError", "CreateContainerError")
#: Waiting reasons that retrying a Job's pod cannot fix.
FATAL_WAITING = (
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    *CONFIG_FAILURES,
)
UNREADY = "Unready"


@dataclass
class Diagnosis:
    """What is wrong with one pod."""

    pod: str
    namespace: str
    reason: str
    #: The words that explain it: ``CrashLoopBackOff, last exit code 1 (Error)``.
    detail: str
    container: str = ""
    #: The logs to look at are those of the previous (crashed) container.
    previous: bool = False
    #: Retrying cannot fix it (an image that cannot be pulled, a missing Secret key).
    fatal: bool = False

    @property
    def logs_command(self) -> str:
        words = ["kubectl", "logs", "-n", self.namespace, self.pod]
        if self.container:
            words += ["-c", self.container]
        if self.previous:
            words.append("--previous")
        return " ".join(shlex.quote(w) for w in words)

    def line(self, logs: bool = True) -> str:
        text = f"pod {self.pod}: {self.detail}"
        return f"{text}; logs: {self.logs_command}" if logs else text

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "pod": self.pod,
            "container": self.container,
            "reason": self.reason,
            "detail": self.detail,
            "logs": self.logs_command,
        }


def is_ready(pod: dict[str, t.Any]) -> bool:
    return condition(pod, "Ready") == "True"


def condition(obj: dict[str, t.Any], kind: str) -> str:
    """The status ("True", "False", "Unknown") of a condition, "" when absent."""
    for item in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == kind:
            return str(item.get("status") or "")
    return ""


def condition_of(obj: dict[str, t.Any], kind: str) -> dict[str, t.Any]:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(item, dict) and item.get("type") == kind:
            return item
    return {}


def unready_events(kube: Kube, namespace: str, pod: str) -> list[dict[str, t.Any]]:
    """The pod's ``Unhealthy`` events (failing probes)."""
    try:
        return kube.list(
            EVENTS,
            namespace,
            fields=f"involvedObject.kind=Pod,involvedObject.name={pod},reason=Unhealthy",
        )
    except KubeError:
        return []  # no `list` on events: the probe's words are missing, not more


# --- the decision: pure, over the pod (and its probe events) as read -------------------


class Finding(t.NamedTuple):
    """What is wrong, before it is made safe to show."""

    reason: str
    detail: str
    container: str = ""
    #: The logs to look at are those of the previous (crashed) container.
    previous: bool = False
    fatal: bool = False


def diagnose(
    pod: dict[str, t.Any],
    scrub: Scrubber,
    events: t.Sequence[dict[str, t.Any]] = (),
) -> Diagnosis | None:
    """Why ``pod`` is not Ready (or failed), or None when it is fine. ``events``:
    the pod's ``Unhealthy`` events, whose newest explains a failing probe."""
    found = find_problem(pod, events)
    return None if found is None else _diagnosis(pod, found, scrub)


def _diagnosis(pod: dict[str, t.Any], found: Finding, scrub: Scrubber) -> Diagnosis:
    metadata = pod.get("metadata") or {}
    where = f"container {found.container}: " if found.container else ""
    return Diagnosis(
        shown(str(metadata.get("name") or "?")),
        shown(str(metadata.get("namespace") or "")),
        scrub(found.reason, REASON_LIMIT),
        scrub(where + found.detail),
        shown(found.container),
        found.previous,
        found.fatal,
    )


def find_problem(
    pod: dict[str, t.Any], events: t.Sequence[dict[str, t.Any]] = ()
) -> Finding | None:
    """The first of: a container that cannot start, one that crashed, the pod
    failed, not scheduled, a probe failing, waiting; None when it is fine."""
    statuses = container_statuses(pod)
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    found = cannot_start(statuses) or crashed(statuses)
    if found is not None:
        return found
    if phase == "Failed":
        return _failed_pod(status)
    if phase == "Succeeded":
        return None
    found = unscheduled(pod)
    if found is not None or is_ready(pod):
        return found
    return (
        probe_failing(statuses, events)
        or waiting(statuses)
        or Finding(phase, f"{phase}, not ready")
    )


def container_statuses(pod: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The init containers' statuses, then the containers'."""
    status = pod.get("status") or {}
    return [
        s
        for s in (status.get("initContainerStatuses") or [])
        + (status.get("containerStatuses") or [])
        if isinstance(s, dict)
    ]


def _waiting_reason(item: dict[str, t.Any]) -> str:
    return str(((item.get("state") or {}).get("waiting") or {}).get("reason") or "")


def _with_message(reason: str, message: t.Any) -> str:
    return f"{reason}: {message}" if message else reason


def cannot_start(statuses: list[dict[str, t.Any]]) -> Finding | None:
    """An image that cannot be pulled, a container that cannot be created."""
    for item in statuses:
        reason = _waiting_reason(item)
        container = str(item.get("name") or "")
        if reason in PULL_FAILURES or reason == "ErrImageNeverPull":
            image = str(item.get("image") or "?")
            fatal = reason in FATAL_WAITING
            return Finding(reason, f"{reason} (image {image})", container, False, fatal)
        if reason in CONFIG_FAILURES:
            message = (item.get("state") or {}).get("waiting", {}).get("message")
            return Finding(
                reason, _with_message(reason, message), container, False, True
            )
    return None


def crashed(statuses: list[dict[str, t.Any]]) -> Finding | None:
    """A container in CrashLoopBackOff (its last exit code), or one that exited
    with an error."""
    for item in statuses:
        container = str(item.get("name") or "")
        if _waiting_reason(item) == "CrashLoopBackOff":
            last = (item.get("lastState") or {}).get("terminated") or {}
            detail = (
                f"CrashLoopBackOff, last exit code {last.get('exitCode', '?')}"
                f" ({last.get('reason') or 'no reason'}), "
                f"{item.get('restartCount', 0)} restarts"
            )
            return Finding("CrashLoopBackOff", detail, container, previous=True)
        terminated = (item.get("state") or {}).get("terminated") or {}
        if terminated and terminated.get("exitCode", 0) != 0:
            reason = terminated.get("reason")
            detail = f"exited with code {terminated.get('exitCode')} ({reason or 'no reason'})"
            return Finding(str(reason or "Error"), detail, container)
    return None


def _failed_pod(status: dict[str, t.Any]) -> Finding:
    """A failed pod with no container to blame (evicted, deadline ...)."""
    reason = str(status.get("reason") or "Failed")
    message = status.get("message")
    return Finding(reason, f"{reason}: {message}" if message else f"pod {reason}")


def unscheduled(pod: dict[str, t.Any]) -> Finding | None:
    """Not scheduled: the scheduler's words (no node fits, an unbound volume)."""
    scheduled = condition_of(pod, "PodScheduled")
    if scheduled.get("status") != "False":
        return None
    reason = str(scheduled.get("reason") or "Unschedulable")
    return Finding(reason, _with_message(reason, scheduled.get("message")))


def probe_failing(
    statuses: list[dict[str, t.Any]], events: t.Sequence[dict[str, t.Any]]
) -> Finding | None:
    """A running container that is not ready: its readiness probe, in the words
    of the newest ``Unhealthy`` event when there is one."""
    for item in statuses:
        if item.get("ready") or not (item.get("state") or {}).get("running"):
            continue
        probe = latest_message(events)
        detail = (
            f"running, not ready: {probe}"
            if probe
            else "running, not ready (readiness probe failing)"
        )
        return Finding(UNREADY, detail, str(item.get("name") or ""))
    return None


def latest_message(events: t.Sequence[dict[str, t.Any]]) -> str:
    """The message of the newest event ("" without one)."""
    if not events:
        return ""
    newest = sorted(
        events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or "")
    )[-1]
    return str(newest.get("message") or "")


def waiting(statuses: list[dict[str, t.Any]]) -> Finding | None:
    """A container waiting to start, for a reason Kubernetes names."""
    for item in statuses:
        reason = _waiting_reason(item)
        if reason:
            return Finding(reason, reason, str(item.get("name") or ""))
    return None
