"""Why a pod is not right (``tutoreks/deploy/pods.py``), from pods as the API server
returns them: what a failed deploy, a failed Job and `tutor eks status` say of it."""

from __future__ import annotations

from tutoreks.config.masking import MESSAGE_LIMIT, Scrubber
from tutoreks.deploy import pods

from ..conftest import fail_if_secret_in
from .objects import Obj, items, named, one

NONE = Scrubber()


def diagnosed(
    pod: Obj, scrub: Scrubber = NONE, events: list[Obj] | None = None
) -> pods.Diagnosis:
    found = pods.diagnose(pod, scrub, events or [])
    assert found is not None
    return found


def test_a_crash_loop_names_pod_container_exit_code_and_previous_logs() -> None:
    found = diagnosed(items("pods-lms-crashloop")[0])
    assert found.reason == "CrashLoopBackOff"
    assert found.line() == (
        "pod lms-5cc6fb489-qrnp8: container lms: CrashLoopBackOff, last exit code 1 "
        "(Error), 6 restarts; logs: kubectl logs -n openedx-fixtures "
        "lms-5cc6fb489-qrnp8 -c lms --previous"
    )
    assert not found.fatal


def test_an_image_that_cannot_be_pulled_is_named_and_fatal() -> None:
    found = diagnosed(items("pods-cms-imagepullbackoff")[0])
    assert found.reason == "ImagePullBackOff"
    assert found.detail == (
        "container cms: ImagePullBackOff "
        "(image docker.io/overhangio/openedx:20.0.0-pullfail)"
    )
    assert found.fatal and "--previous" not in found.logs_command


def test_the_first_pull_error_is_not_yet_fatal() -> None:
    pod = items("pods-cms-imagepullbackoff")[0]
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] = "ErrImagePull"
    found = diagnosed(pod)
    assert found.reason == "ErrImagePull" and not found.fatal


def test_a_missing_secret_key_is_fatal_and_quoted() -> None:
    pod = items("pods-cms-imagepullbackoff")[0]
    pod["status"]["containerStatuses"][0]["state"]["waiting"] = {
        "reason": "CreateContainerConfigError",
        "message": "couldn't find key MYSQL_ROOT_PASSWORD in Secret "
        "openedx-fixtures/openedx-mysql",
    }
    found = diagnosed(pod)
    assert found.fatal
    assert found.detail == (
        "container cms: CreateContainerConfigError: couldn't find key "
        "MYSQL_ROOT_PASSWORD in Secret openedx-fixtures/openedx-mysql"
    )


def test_a_failing_readiness_probe_is_told_in_its_events_words() -> None:
    pod = items("pods-mfe-unready")[0]
    events = [
        e
        for e in items("events-unhealthy")
        if e["involvedObject"]["name"] == pod["metadata"]["name"]
    ]
    found = diagnosed(pod, events=events)
    assert found.reason == pods.UNREADY
    assert found.line(logs=False) == (
        "pod mfe-7ff69dd55f-fd8km: container mfe: running, not ready: Readiness "
        "probe failed: simulated by kwok (image tag ends in -unready)"
    )


def test_without_events_a_running_unready_container_blames_the_probe() -> None:
    found = diagnosed(items("pods-mfe-unready")[0])
    assert found.detail == "container mfe: running, not ready (readiness probe failing)"


def test_the_newest_probe_event_is_the_one_told() -> None:
    old = items("events-unhealthy")[1]
    new = {
        **old,
        "lastTimestamp": "2026-12-06T16:30:00Z",
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
    }
    found = diagnosed(items("pods-mfe-unready")[0], events=[new, old])
    assert found.detail.endswith("HTTP probe failed with statuscode: 503")


def test_a_pod_no_node_fits_gives_the_schedulers_words() -> None:
    found = diagnosed(items("pods-lms-worker-unschedulable")[0])
    assert found.reason == "Unschedulable"
    assert found.detail.startswith(
        "Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node "
        "affinity/selector."
    )
    assert len(found.detail) <= MESSAGE_LIMIT


def test_a_job_pod_that_exited_with_an_error_names_its_exit_code() -> None:
    found = diagnosed(items("pods-job-lms-crashed")[0])
    assert found.reason == "Error"
    assert found.detail == "container lms: exited with code 1 (Error)"
    assert not found.previous


def test_ready_and_succeeded_pods_are_fine() -> None:
    assert pods.diagnose(named(items("pods-caddy-rolling"), "caddy-5c57"), NONE) is None
    assert pods.diagnose(items("pods-job-mysql-succeeded")[0], NONE) is None


def test_an_evicted_pod_gives_the_kubelets_reason() -> None:
    pod = items("pods-job-mysql-succeeded")[0]
    del pod["status"]["containerStatuses"]
    pod["status"].update(
        phase="Failed",
        reason="Evicted",
        message="The node was low on resource: ephemeral-storage.",
    )
    found = diagnosed(pod)
    assert found.detail == "Evicted: The node was low on resource: ephemeral-storage."


def test_secret_values_in_a_probe_message_are_hidden() -> None:
    secret = "s3cr3t-Value-42"
    event = {
        **items("events-unhealthy")[1],
        "message": f"Readiness probe failed: mysql://openedx:{secret}@mysql refused",
    }
    found = diagnosed(items("pods-mfe-unready")[0], Scrubber([secret]), [event])
    fail_if_secret_in(secret, found.line(), "the diagnosis")
    assert "mysql://openedx:***@mysql refused" in found.detail


def test_control_characters_from_the_cluster_become_spaces() -> None:
    pod = items("pods-lms-worker-unschedulable")[0]
    pod["status"]["conditions"][0]["message"] = "no\x1b[31m node\r\nfits\u202e"
    found = diagnosed(pod)
    assert found.detail == "Unschedulable: no [31m node fits"
    assert all(ch.isprintable() for ch in found.line())


def test_conditions_are_read_by_type() -> None:
    deployment = one("deployment-cms-deadline-exceeded")
    assert pods.condition(deployment, "Progressing") == "False"
    assert pods.condition_of(deployment, "Progressing")["reason"] == (
        "ProgressDeadlineExceeded"
    )
    assert pods.condition(deployment, "ReplicaFailure") == ""
    assert pods.is_ready(named(items("pods-caddy-rolling"), "caddy-5c57"))
