"""Init Jobs (``tutor k8s init``, ``launch``, any ``tutor k8s do`` task) that fail
are reported, naming the Job, its pod and the reason, instead of Tutor's
"Waiting for job completion..." going on for ever.

Tutor's task runner applies the Job (``backoffLimit: 1``: one retry) and polls it
every 5 s until it succeeded, or failed with no pod active. Each poll first calls
:func:`check` (through ``tutor_compat.wrap_job_wait``), which looks at the Job and
its pods:

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

from tutor import fmt

from ..exceptions import EksError
from . import pods

if t.TYPE_CHECKING:
    from ..kube import Kube

#: Tutor polls again at once when the Job it applied is not listed (yet).
MISSING_GRACE = 30.0


#: When this process first polled each Job.
_started: dict[str, float] = {}
_warned: set[str] = set()


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
        shown = repr(value) if len(repr(value)) <= 40 else f"a {type(value).__name__}"
        raise EksError(
            f"{key} is {shown}: it must be a whole number of seconds from 0 (no "
            f"wait) to {MAX_SECONDS}."
        )
    return value


def check(config: dict[str, t.Any], job_name: str) -> None:
    """One poll of Tutor's task runner on ``job_name``: raise when it failed, cannot
    start, or ran out of time."""
    from ..config import context
    from ..kube import JOBS, PODS, KubeError

    namespace = str(config["K8S_NAMESPACE"])
    timeout = seconds(config, "EKS_JOB_TIMEOUT")
    kube = context.current().kube()
    elapsed = time.monotonic() - _started.setdefault(job_name, time.monotonic())
    job = kube.get(JOBS, job_name, namespace)
    if job is None:
        if elapsed > MISSING_GRACE:
            raise EksError(
                f"Job {namespace}/{job_name} disappeared: it was deleted while "
                "`tutor k8s` waited for it."
            )
        time.sleep(1.0)
        return
    if pods.condition(job, "Complete") == "True":
        return
    scrub = _scrubber()
    try:
        found = kube.list(PODS, namespace, f"job-name={job_name}")
    except KubeError as e:
        # No `list` on pods (a Role applied before this plugin version): the Job's
        # own conditions still tell a failure, its pods cannot be named.
        if job_name not in _warned:
            _warned.add(job_name)
            fmt.echo_alert(f"Cannot look at the pods of Job {job_name}: {e}")
        found = []
    diagnoses: list[pods.Diagnosis] = []
    for pod in sorted(
        found, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp"))
    ):
        phase = (pod.get("status") or {}).get("phase")
        diagnosis = pods.diagnose(pod, scrub)
        if diagnosis is not None and (phase == "Failed" or diagnosis.fatal):
            diagnoses.append(diagnosis)
    failed = pods.condition_of(job, "Failed")
    if failed.get("status") == "True":
        reason = str(failed.get("reason") or "Failed")
        message = scrub(str(failed.get("message") or ""))
        raise EksError(
            _message(
                f"Job {job_name} failed ({reason}{': ' + message if message else ''})",
                diagnoses,
            )
        )
    fatal = [d for d in diagnoses if d.fatal]
    if fatal:
        _delete(kube, namespace, job_name)
        raise EksError(
            _message(
                f"Job {job_name} cannot start, and retrying will not help "
                f"({fatal[0].reason}); it was deleted, so that the next deploy does "
                "not wait for it",
                fatal,
                logs=False,
            )
        )
    if diagnoses:
        # Tutor itself gives up as soon as no pod of the Job is active and one
        # failed; say which pod and why, with the command that shows its logs.
        retries = (job.get("spec") or {}).get("backoffLimit")
        raise EksError(
            _message(
                f"Job {job_name} failed"
                + (
                    f" (Kubernetes may still run it again: backoffLimit {retries})"
                    if retries
                    else ""
                ),
                diagnoses,
            )
        )
    if timeout and elapsed > timeout:
        running = [
            pods.diagnose(pod, scrub) or _phase(pod)
            for pod in found
            if not (pod.get("metadata") or {}).get("deletionTimestamp")
        ]
        raise EksError(
            _message(
                f"Job {job_name} did not finish within {timeout} s (EKS_JOB_TIMEOUT); "
                f"it is left running (`kubectl -n {namespace} delete job {job_name}` "
                "stops it)",
                running,
            )
        )


def _phase(pod: dict[str, t.Any]) -> pods.Diagnosis:
    metadata = pod.get("metadata") or {}
    phase = str((pod.get("status") or {}).get("phase") or "Pending")
    return pods.Diagnosis(
        str(metadata.get("name") or "?"),
        str(metadata.get("namespace") or ""),
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
    from ..kube import JOBS, KubeError

    try:
        kube.delete(JOBS, namespace, job_name)
    except KubeError as e:
        fmt.echo_alert(f"Could not delete Job {namespace}/{job_name}: {e}")


def _scrubber() -> pods.Scrubber:
    from .. import tutor_compat
    from ..config import resolve

    resolution = resolve.for_root(tutor_compat.current_root())
    return pods.Scrubber(resolution.sensitive_values() if resolution else ())
