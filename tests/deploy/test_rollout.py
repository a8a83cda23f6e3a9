"""Whether a rollout is done, and why not (``tutoreks/deploy/rollout.py``), from
Deployments, ReplicaSets and pods as the API server returns them: what a deploy
prints when it fails."""

from __future__ import annotations

from tutoreks.config.masking import Scrubber
from tutoreks.deploy import rollout

from .objects import Obj, items, named, one

NONE = Scrubber()


#: The fixtures of each Deployment that has not rolled out: its state, its pods'.
BROKEN = {
    "lms": ("crashloop", "crashloop"),
    "cms": ("deadline-exceeded", "imagepullbackoff"),
    "mfe": ("unready", "unready"),
    "lms-worker": ("unschedulable", "unschedulable"),
}


def explained(
    app: str, events: dict[str, list[Obj]] | None = None
) -> rollout.Explanation:
    """The explanation of fixture Deployment ``app``, from its ReplicaSets and pods."""
    deployment, found = BROKEN[app]
    return rollout.explanation(
        one(f"deployment-{app}-{deployment}"),
        items(f"replicasets-{app}"),
        items(f"pods-{app}-{found}"),
        NONE,
        events,
    )


def test_a_deployment_whose_pods_are_all_new_and_ready_is_rolled_out() -> None:
    state = rollout.progress(one("deployment-caddy-rolled-out"))
    assert state.done and state.ratio == "1/1 ready"


def test_a_rollout_with_an_old_pod_left_is_not_done() -> None:
    state = rollout.progress(one("deployment-caddy-rolling"))
    assert (state.updated, state.replicas, state.ready) == (1, 2, 1)
    assert not state.done


def test_a_change_the_controller_has_not_seen_is_not_done() -> None:
    deployment = one("deployment-caddy-rolled-out")
    deployment["metadata"]["generation"] += 1
    state = rollout.progress(deployment)
    assert not state.observed and not state.done


def test_too_few_available_replicas_is_not_done() -> None:
    deployment = one("deployment-caddy-rolled-out")
    deployment["status"]["availableReplicas"] = 0
    assert not rollout.progress(deployment).done


def test_progress_deadline_exceeded_is_kubernetes_giving_up() -> None:
    assert rollout.progress(one("deployment-cms-deadline-exceeded")).deadline_exceeded
    assert not rollout.progress(one("deployment-lms-crashloop")).deadline_exceeded


def test_a_crashing_deployment_names_its_pod_reason_and_logs() -> None:
    found = explained("lms")
    assert found.reason == "CrashLoopBackOff"
    assert found.line() == (
        "Deployment lms (0/1 ready): pod lms-5cc6fb489-qrnp8: container lms: "
        "CrashLoopBackOff, last exit code 1 (Error), 6 restarts; logs: kubectl logs "
        "-n openedx-fixtures lms-5cc6fb489-qrnp8 -c lms --previous"
    )


def test_a_deployment_kubernetes_gave_up_on_says_so_and_why() -> None:
    found = explained("cms")
    assert found.reason == "ImagePullBackOff"
    assert found.detail.startswith(
        "ProgressDeadlineExceeded (no progress for 5 s); pod cms-747fc48ffc-qsm88: "
        "container cms: ImagePullBackOff (image docker.io/overhangio/openedx:"
        "20.0.0-pullfail)"
    )


def test_an_unready_pod_is_explained_by_its_probe_events() -> None:
    events = {"mfe-7ff69dd55f-fd8km": items("events-unhealthy")[1:]}
    found = explained("mfe", events)
    assert found.reason == "Unready"
    assert "running, not ready: Readiness probe failed" in found.detail


def test_an_unschedulable_pod_is_named() -> None:
    found = explained("lms-worker")
    assert found.reason == "Unschedulable"
    assert "pod lms-worker-5dcc4c4f8d-8h7rn: Unschedulable: 0/1 nodes" in found.detail


def test_during_a_rollout_only_the_new_version_is_blamed() -> None:
    found = rollout.explanation(
        one("deployment-caddy-rolling"),
        items("replicasets-caddy-rolling"),
        items("pods-caddy-rolling"),
        NONE,
    )
    assert found.pod is not None and found.pod.pod == "caddy-54c8c4bcff-hj52h"
    assert found.failing_pods == 1
    assert found.status == "1/1 ready, 0/1 of the new version"


def test_the_newest_replica_set_is_the_current_revision() -> None:
    deployment = one("deployment-caddy-rolling")
    newest = rollout.newest_replica_set(deployment, items("replicasets-caddy-rolling"))
    assert newest is not None and newest["metadata"]["name"] == "caddy-54c8c4bcff"
    assert rollout.pod_selector(deployment, newest) == (
        "app.kubernetes.io/name=caddy,pod-template-hash=54c8c4bcff"
    )
    assert rollout.newest_replica_set(one("deployment-lms-crashloop"), []) is None


def test_old_pods_still_running_are_counted_when_the_new_ones_are_fine() -> None:
    found_pods = items("pods-caddy-rolling")
    new = named(found_pods, "caddy-54c8")
    new["status"] = named(found_pods, "caddy-5c57")["status"]
    found = rollout.explanation(
        one("deployment-caddy-rolling"),
        items("replicasets-caddy-rolling"),
        found_pods,
        NONE,
    )
    assert found.pod is None
    assert found.detail == "1 old pods still running"


def test_pods_being_deleted_are_not_blamed() -> None:
    found_pods = items("pods-lms-crashloop")
    found_pods[0]["metadata"]["deletionTimestamp"] = "2026-12-06T16:12:00Z"
    found = rollout.explanation(
        one("deployment-lms-crashloop"), items("replicasets-lms"), found_pods, NONE
    )
    assert found.pod is None


def test_no_replica_set_yet() -> None:
    found = rollout.explanation(one("deployment-lms-crashloop"), [], [], NONE)
    assert found.detail == "no ReplicaSet yet" and found.reason == "Progressing"


def test_pods_that_cannot_be_read_are_said_so() -> None:
    found = rollout.explanation(
        one("deployment-lms-crashloop"),
        [],
        [],
        NONE,
        unreadable='replicasets.apps is forbidden: User "ci" cannot list',
    )
    assert found.detail.startswith("its pods could not be read (replicasets.apps is")


def test_a_replica_set_that_cannot_create_pods_says_why() -> None:
    replica_sets = items("replicasets-lms")
    replica_sets[0]["status"]["conditions"] = [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": 'pods "lms-5cc6fb489-x" is forbidden: exceeded quota: compute',
        }
    ]
    found = rollout.explanation(one("deployment-lms-crashloop"), replica_sets, [], NONE)
    assert found.detail.startswith('FailedCreate: pods "lms-5cc6fb489-x" is forbidden')


def explanations(*pairs: tuple[str, str, str]) -> list[rollout.Explanation]:
    return [
        rollout.explanation(one(d), items(f"replicasets-{rs}"), items(p), NONE)
        for d, rs, p in pairs
    ]


def test_a_rollout_kubernetes_gave_up_on_fails_naming_each_deployment() -> None:
    message = rollout.failure_message(
        explanations(
            ("deployment-cms-deadline-exceeded", "cms", "pods-cms-imagepullbackoff"),
            ("deployment-lms-crashloop", "lms", "pods-lms-crashloop"),
        ),
        total=5,
        timeout=600,
    )
    header, *lines = message.splitlines()
    assert header == (
        "The rollout failed: Kubernetes gave up on cms (ProgressDeadlineExceeded). "
        "2 of 5 Deployments are not rolled out:"
    )
    assert [line.split(" (")[0] for line in lines] == [
        "  Deployment cms",
        "  Deployment lms",
    ]


def test_a_rollout_out_of_time_names_the_timeout_setting() -> None:
    message = rollout.failure_message(
        explanations(("deployment-lms-crashloop", "lms", "pods-lms-crashloop")),
        total=3,
        timeout=300,
    )
    assert message.splitlines()[0] == (
        "The rollout did not complete within 300 s (EKS_ROLLOUT_TIMEOUT): 1 of 3 "
        "Deployments are not rolled out:"
    )
    assert "CrashLoopBackOff" in message
