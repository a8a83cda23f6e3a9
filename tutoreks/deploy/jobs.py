"""Init Jobs (``tutor k8s init``, ``launch``, any ``tutor k8s do`` task) that fail
are reported, naming the Job, its pod and the reason, instead of Tutor's
"Waiting for job completion..." going on for ever.

Tutor's task runner applies the Job (``backoffLimit: 1``: one retry) and polls it
every 5 s until it succeeded, or failed with no pod active. Each poll first calls
:func:`check` (through ``tutor_compat.wrap_job_wait``), which looks at the Job and
its pods, every 0.5 s for up to 4 s while it runs (so that Tutor's poll finds a
short Job done rather than sleeping 5 s more):

- a pod of the Job failed, or the Job did (condition ``Failed``:
  ``BackoffLimitExceeded``, ``DeadlineExceeded``): the command fails at once,
  naming each failed pod, its exit code and the ``kubectl logs`` command (Tutor
  itself gives up when it sees a failed pod and none active, with "View the job
  logs to debug this issue"; a retry Kubernetes starts meanwhile runs on);
- a pod that cannot start and that no retry can fix (``ImagePullBackOff``,
  ``InvalidImageName``, ``CreateContainerConfigError`` such as a missing Secret
  key): the command fails at once, and the Job is deleted, since it would stay
  active for ever and Tutor waits for active Jobs before it starts the next one;
- ``EKS_JOB_TIMEOUT`` seconds passed (0: no limit): the command fails; the Job is
  left running (a long migration may still finish; the next deploy waits for it).
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass

from tutor import fmt

from .. import tutor_compat
from ..config import context, resolve
from ..config.masking import Scrubber, shown
from ..exceptions import EksError, kind_of
from ..kube import JOBS, PODS, KubeError
from . import pods

if t.TYPE_CHECKING:
    from ..kube import Kube

#: Tutor polls again at once when the Job it applied is not listed (yet).
MISSING_GRACE = 30.0
#: While a Job runs, each of Tutor's polls looks at it this often, for this long
#: (less than the 5 s Tutor then sleeps), so that the next poll finds it done.
LOOK_EVERY = 0.5
LOOK_FOR = 4.0


#: A week: longer is a mistake (and past what a clock or a CI job can wait).
MAX_SECONDS = 7 * 24 * 3600


def seconds(config: dict[str, t.Any], key: str) -> int:
    """A ``EKS_*_TIMEOUT`` value: whole seconds, 0 or more."""
    value = config.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_SECONDS
    ):
        raise EksError(
            f"{key} is {kind_of(value)}: it must be a whole number of seconds from 0 "
            f"(no wait) to {MAX_SECONDS}."
        )
    return value


def check(config: dict[str, t.Any], job_name: str) -> None:
    """One poll of Tutor's task runner on ``job_name``: raise when it failed, cannot
    start, or ran out of time. While it runs, look again every :data:`LOOK_EVERY`
    seconds for up to :data:`LOOK_FOR`: Tutor sleeps 5 s after each poll that finds
    it running, so a Job done in 2 s would cost 5."""
    namespace = str(config["K8S_NAMESPACE"])
    timeout = seconds(config, "EKS_JOB_TIMEOUT")
    ctx = context.current()
    end = time.monotonic() + LOOK_FOR
    while _running(ctx, namespace, job_name, timeout) and time.monotonic() < end:
        time.sleep(LOOK_EVERY)


def _running(ctx: context.Context, namespace: str, job_name: str, timeout: int) -> bool:
    """One look at the Job and its pods: raise when it failed, cannot start or ran
    out of time; whether it is still running."""
    kube = ctx.kube()
    elapsed = time.monotonic() - ctx.job_started.setdefault(job_name, time.monotonic())
    job = kube.get(JOBS, job_name, namespace)
    if job is None:
        _missing(namespace, job_name, elapsed)
        return False
    if pods.condition(job, "Complete") == "True":
        return False
    found = _job_pods(kube, namespace, job_name, ctx.warned)
    decided = verdict(job, found, _scrubber(), elapsed, timeout)
    if decided.delete:
        _delete(kube, namespace, job_name)
    if decided.message:
        raise EksError(decided.message)
    return decided.state == "Running"


def _missing(namespace: str, job_name: str, elapsed: float) -> None:
    """Tutor polls a Job it applied: not listed yet, or deleted meanwhile."""
    if elapsed > MISSING_GRACE:
        raise EksError(
            f"Job {namespace}/{job_name} disappeared: it was deleted while "
            "`tutor k8s` waited for it."
        )
    time.sleep(1.0)


def _job_pods(
    kube: Kube, namespace: str, job_name: str, warned: set[str]
) -> list[dict[str, t.Any]]:
    try:
        return kube.list(PODS, namespace, f"job-name={job_name}")
    except KubeError as e:
        # No `list` on pods (a Role applied before this plugin version): the Job's
        # own conditions still tell a failure, its pods cannot be named.
        if f"pods of Job {job_name}" not in warned:
            warned.add(f"pods of Job {job_name}")
            fmt.echo_alert(f"Cannot look at the pods of Job {job_name}: {e}")
        return []


# --- the decision: pure, over the Job and its pods as read ------------------------------


@dataclass(frozen=True)
class Verdict:
    """Where a Job stands: ``Complete``, ``Running``, ``Failed``, ``CannotStart``
    (delete it: it would stay active for ever) or ``TimedOut``; the error to raise
    ("" when the wait goes on or is over)."""

    state: str
    message: str = ""

    @property
    def delete(self) -> bool:
        return self.state == "CannotStart"


def verdict(
    job: dict[str, t.Any],
    found: list[dict[str, t.Any]],
    scrub: Scrubber,
    elapsed: float = 0.0,
    timeout: int = 0,
) -> Verdict:
    """Where ``job`` stands, from its pods (``found``), ``elapsed`` seconds after
    the wait started, with ``EKS_JOB_TIMEOUT`` ``timeout`` (0: no limit)."""
    name = str((job.get("metadata") or {}).get("name") or "?")
    if pods.condition(job, "Complete") == "True":
        return Verdict("Complete")
    diagnoses = failed_pods(found, scrub)
    failed = pods.condition_of(job, "Failed")
    if failed.get("status") == "True":
        return Verdict("Failed", _job_failed(name, failed, diagnoses, scrub))
    fatal = [d for d in diagnoses if d.fatal]
    if fatal:
        return Verdict("CannotStart", _cannot_start(name, fatal))
    if diagnoses:
        retries = (job.get("spec") or {}).get("backoffLimit")
        return Verdict("Failed", _pod_failed(name, retries, diagnoses))
    if timeout and elapsed > timeout:
        namespace = str((job.get("metadata") or {}).get("namespace") or "")
        return Verdict("TimedOut", _timed_out(name, namespace, timeout, found, scrub))
    return Verdict("Running")


def failed_pods(found: list[dict[str, t.Any]], scrub: Scrubber) -> list[pods.Diagnosis]:
    """The pods that failed, or cannot start and no retry can fix, oldest first."""
    diagnoses = []
    for pod in sorted(
        found, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp"))
    ):
        phase = (pod.get("status") or {}).get("phase")
        diagnosis = pods.diagnose(pod, scrub)
        if diagnosis is not None and (phase == "Failed" or diagnosis.fatal):
            diagnoses.append(diagnosis)
    return diagnoses


def _job_failed(
    name: str,
    failed: dict[str, t.Any],
    diagnoses: list[pods.Diagnosis],
    scrub: Scrubber,
) -> str:
    """The Job's condition Failed: BackoffLimitExceeded, DeadlineExceeded ..."""
    reason = str(failed.get("reason") or "Failed")
    message = scrub(str(failed.get("message") or ""))
    return _message(
        f"Job {name} failed ({reason}{': ' + message if message else ''})", diagnoses
    )


def _cannot_start(name: str, fatal: list[pods.Diagnosis]) -> str:
    return _message(
        f"Job {name} cannot start, and retrying will not help "
        f"({fatal[0].reason}); it was deleted, so that the next deploy does "
        "not wait for it",
        fatal,
        logs=False,
    )


def _pod_failed(name: str, retries: t.Any, diagnoses: list[pods.Diagnosis]) -> str:
    """Tutor itself gives up as soon as no pod of the Job is active and one failed:
    which pod and why, with the command that shows its logs."""
    again = f" (Kubernetes may still run it again: backoffLimit {retries})"
    return _message(f"Job {name} failed" + (again if retries else ""), diagnoses)


def _timed_out(
    name: str,
    namespace: str,
    timeout: int,
    found: list[dict[str, t.Any]],
    scrub: Scrubber,
) -> str:
    running = [
        pods.diagnose(pod, scrub) or _phase(pod)
        for pod in found
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
    ]
    return _message(
        f"Job {name} did not finish within {timeout} s (EKS_JOB_TIMEOUT); "
        f"it is left running (`kubectl -n {namespace} delete job {name}` "
        "stops it)",
        running,
    )


def _phase(pod: dict[str, t.Any]) -> pods.Diagnosis:
    metadata = pod.get("metadata") or {}
    phase = str((pod.get("status") or {}).get("phase") or "Pending")
    return pods.Diagnosis(
        shown(str(metadata.get("name") or "?")),
        shown(str(metadata.get("namespace") or "")),
        phase,
        phase,
    )


def _message(header: str, diagnoses: list[pods.Diagnosis], logs: bool = True) -> str:
    return "\n".join(
        [
            header + ":" if diagnoses else header + ".",
            *("  " + d.line(logs) for d in diagnoses),
        ]
    )


def _delete(kube: Kube, namespace: str, job_name: str) -> None:
    try:
        kube.delete(JOBS, namespace, job_name)
    except KubeError as e:
        fmt.echo_alert(f"Could not delete Job {namespace}/{job_name}: {e}")


def _scrubber() -> Scrubber:
    resolution = resolve.for_root(tutor_compat.current_root())
    return Scrubber(resolution.sensitive_values() if resolution else ())
