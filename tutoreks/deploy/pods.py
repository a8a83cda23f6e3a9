"""Why a pod is not running as it should, in Kubernetes' own words.

Shared by the rollout wait (``rollout.py``), the init Job wait (``jobs.py``) and
``tutor eks status`` (``status.py``). A diagnosis names the pod, the container and
the reason Kubernetes gives (``ErrImagePull``/``ImagePullBackOff``,
``CrashLoopBackOff`` with the last exit code, a failing readiness probe,
``Unschedulable`` ...), and the ``kubectl logs`` command that shows its logs.

Free text that comes from the cluster (a scheduler message, a probe's output) is
shortened and every value from a Secret or the state is replaced by ``***``: a
probe's output or an event could quote anything.
"""

from __future__ import annotations

import shlex
import typing as t
from dataclasses import dataclass

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
MESSAGE_LIMIT = 160
#: Object names are at most 253 characters; reasons are CamelCase words.
NAME_LIMIT = 253
REASON_LIMIT = 80


class Scrubber:
    """Replaces every value from a Secret or the state (and each line of one) in
    free text by ``***``; values shorter than ``shortest`` are left alone."""

    def __init__(self, values: t.Iterable[str] = (), shortest: int = 4) -> None:
        parts: set[str] = set()
        for value in values:
            for part in (value, *value.splitlines()):
                if part.strip() and len(part) >= shortest:
                    parts.add(part)
        self.values = sorted(parts, key=len, reverse=True)

    def __call__(self, text: str, limit: int | None = MESSAGE_LIMIT) -> str:
        """``text`` (from the cluster, a server) made safe to show: values
        replaced, control and format characters (escape sequences, carriage
        returns, bidirectional overrides) made spaces, white space folded,
        shortened to ``limit``."""
        for value in self.values:
            text = text.replace(value, "***")
        text = "".join(ch if ch.isprintable() else " " for ch in text)
        text = " ".join(text.split())
        if limit is None or len(text) <= limit:
            return text
        return text[: limit - 3].rstrip() + "..."


#: Object names are shown as they are (a value that happens to equal part of a
#: name, such as a database user ``openedx``, is not hidden in ``openedx-tls``),
#: but never with a control character and never longer than a name can be.
_NAMES = Scrubber()


def shown(name: str, limit: int = NAME_LIMIT) -> str:
    return _NAMES(name, limit)


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
    """The pod's ``Unhealthy`` events (failing probes), newest last."""
    from ..kube import EVENTS, KubeError

    try:
        events = kube.list(
            EVENTS,
            namespace,
            fields=f"involvedObject.kind=Pod,involvedObject.name={pod},reason=Unhealthy",
        )
    except KubeError:
        return []  # no `list` on events: the probe's words are missing, not more
    return sorted(
        events,
        key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
    )


def diagnose(
    pod: dict[str, t.Any],
    scrub: Scrubber,
    kube: Kube | None = None,
) -> Diagnosis | None:
    """Why ``pod`` is not Ready (or failed), or None when it is fine. With ``kube``,
    a running container that is not ready is explained by its probe's events."""
    metadata = pod.get("metadata") or {}
    name = str(metadata.get("name") or "?")
    namespace = str(metadata.get("namespace") or "")
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    statuses = [
        s
        for s in (status.get("initContainerStatuses") or [])
        + (status.get("containerStatuses") or [])
        if isinstance(s, dict)
    ]

    def found(
        reason: str,
        detail: str,
        container: str = "",
        previous: bool = False,
        fatal: bool = False,
    ) -> Diagnosis:
        where = f"container {container}: " if container else ""
        return Diagnosis(
            shown(name, NAME_LIMIT),
            shown(namespace, NAME_LIMIT),
            scrub(reason, REASON_LIMIT),
            scrub(where + detail),
            shown(container, NAME_LIMIT),
            previous,
            fatal,
        )

    # 1. Images that cannot be pulled, containers that cannot be created.
    for item in statuses:
        waiting = (item.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        container = str(item.get("name") or "")
        if reason in PULL_FAILURES or reason == "ErrImageNeverPull":
            return found(
                reason,
                f"{reason} (image {scrub(str(item.get('image') or '?'))})",
                container,
                fatal=reason in FATAL_WAITING,
            )
        if reason in CONFIG_FAILURES:
            message = scrub(str(waiting.get("message") or ""))
            return found(
                reason,
                f"{reason}: {message}" if message else reason,
                container,
                fatal=True,
            )
    # 2. Crashing containers: the last exit code.
    for item in statuses:
        state = item.get("state") or {}
        container = str(item.get("name") or "")
        waiting = state.get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            last = (item.get("lastState") or {}).get("terminated") or {}
            return found(
                "CrashLoopBackOff",
                f"CrashLoopBackOff, last exit code {last.get('exitCode', '?')}"
                f" ({last.get('reason') or 'no reason'}), "
                f"{item.get('restartCount', 0)} restarts",
                container,
                previous=True,
            )
        terminated = state.get("terminated") or {}
        if terminated and terminated.get("exitCode", 0) != 0:
            return found(
                str(terminated.get("reason") or "Error"),
                f"exited with code {terminated.get('exitCode')}"
                f" ({terminated.get('reason') or 'no reason'})",
                container,
            )
    # 3. A failed pod with no container to blame (evicted, deadline ...).
    if phase == "Failed":
        reason = str(status.get("reason") or "Failed")
        message = scrub(str(status.get("message") or ""))
        return found(reason, f"{reason}: {message}" if message else f"pod {reason}")
    if phase == "Succeeded":
        return None
    # 4. Not scheduled.
    scheduled = condition_of(pod, "PodScheduled")
    if scheduled.get("status") == "False":
        reason = str(scheduled.get("reason") or "Unschedulable")
        message = scrub(str(scheduled.get("message") or ""))
        return found(reason, f"{reason}: {message}" if message else reason)
    if is_ready(pod):
        return None
    # 5. Running but not ready: the readiness probe.
    for item in statuses:
        if item.get("ready") or not (item.get("state") or {}).get("running"):
            continue
        container = str(item.get("name") or "")
        probe = ""
        if kube is not None and namespace:
            events = unready_events(kube, namespace, name)
            if events:
                probe = scrub(str(events[-1].get("message") or ""))
        return found(
            "Unready",
            f"running, not ready: {probe}"
            if probe
            else "running, not ready (readiness probe failing)",
            container,
        )
    # 6. Anything else: waiting to start.
    for item in statuses:
        waiting = (item.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reason = str(waiting["reason"])
            return found(reason, reason, str(item.get("name") or ""))
    return found(phase, f"{phase}, not ready")
