"""What `tutor eks status` shows (``tutoreks/deploy/status.py``), from the state
Secret, Deployments, Jobs and pods as the API server returns them."""

from __future__ import annotations

from tutoreks.config.masking import Scrubber
from tutoreks.deploy import rollout, status
from tutoreks.deploy.report import Item

from ..conftest import fail_if_secret_in
from .objects import Obj, items, one

NONE = Scrubber()


def test_the_last_deploy_is_read_from_the_state_annotations() -> None:
    state = one("state-secret-inventory")
    last = status.last_deploy(state["metadata"]["annotations"])
    item = status.last_deploy_item(last, "Secret openedx-fixtures/tutor-eks-state-fx")
    assert item.ok and item.status == "2026-12-06T15:40:02Z"
    assert item.detail == "Tutor 20.0.2, tutor-contrib-eks 0.4.0"


def test_no_recorded_deploy_is_not_ready() -> None:
    item = status.last_deploy_item(
        status.last_deploy({}), "Secret openedx-fixtures/tutor-eks-state-fx"
    )
    assert not item.ok and item.status == "none"
    assert item.detail == (
        "no successful deploy recorded in Secret openedx-fixtures/tutor-eks-state-fx"
    )


def test_a_rolled_out_deployment_is_ready() -> None:
    item = status.deployment_item(one("deployment-caddy-rolled-out"), None)
    assert (item.ok, item.name, item.status, item.detail) == (
        True,
        "caddy",
        "1/1 ready",
        "",
    )


def test_a_crashing_deployment_names_its_pod_and_reason() -> None:
    deployment = one("deployment-lms-crashloop")
    explanation = rollout.explanation(
        deployment, items("replicasets-lms"), items("pods-lms-crashloop"), NONE
    )
    item = status.deployment_item(deployment, explanation)
    assert not item.ok and item.status == "0/1 ready"
    assert item.detail.startswith(
        "pod lms-5cc6fb489-qrnp8: container lms: CrashLoopBackOff, last exit code 1"
    )
    assert item.data["reason"] == "CrashLoopBackOff"
    assert item.data["pod"]["logs"] == (
        "kubectl logs -n openedx-fixtures lms-5cc6fb489-qrnp8 -c lms --previous"
    )


def test_only_the_last_job_of_each_task_is_shown() -> None:
    older = one("job-mysql-complete")
    older["metadata"]["name"] = "mysql-job-20261201090000"
    stray = one("job-mysql-complete")
    stray["metadata"]["name"] = "mysql-backup"
    jobs = [older, one("job-mysql-complete"), stray, one("job-forum-active")]
    latest = status.latest_jobs(jobs)
    assert {task: j["metadata"]["name"] for task, j in latest.items()} == {
        "mysql-job": "mysql-job-20261206160000",
        "forum-job": "forum-job-20261206161500",
    }


def job_item(job: str, found: str) -> Item:
    return status.job_item("lms-job", one(job), items(found), NONE)


def test_a_complete_job_says_when_it_finished() -> None:
    item = job_item("job-mysql-complete", "pods-job-mysql-succeeded")
    assert item.ok and item.status == "Complete"
    assert item.detail == "finished 2026-12-06T16:09:46Z"


def test_a_failed_job_gives_the_reason_and_its_pod() -> None:
    item = job_item("job-lms-backoff-limit-exceeded", "pods-job-lms-crashed")
    assert not item.ok and item.status == "Failed"
    assert item.detail.startswith(
        "BackoffLimitExceeded; pod lms-job-20261206160000-4n8bm: container lms: "
        "exited with code 1 (Error)"
    )
    assert item.data == {"task": "lms-job", "reason": "BackoffLimitExceeded"}


def test_a_running_job_says_what_its_pod_waits_for() -> None:
    item = job_item("job-forum-active", "pods-job-forum-imagepullbackoff")
    assert not item.ok and item.status == "Running"
    assert "container forum: ImagePullBackOff" in item.detail


def test_a_running_job_with_no_pod_yet_is_still_running() -> None:
    item = status.job_item("forum-job", one("job-forum-active"), [], NONE)
    assert item.detail == "still running"


def test_what_the_cluster_says_is_scrubbed_before_it_is_shown() -> None:
    secret = "pa55-w0rd-in-a-message"
    found: list[Obj] = items("pods-lms-worker-unschedulable")
    found[0]["status"]["conditions"][0]["message"] = f"volume {secret} not bound"
    job = one("job-forum-active")
    scrub = Scrubber([secret])
    item = status.cleaned(status.job_item("lms-job", job, found, scrub), scrub)
    fail_if_secret_in(secret, item.detail, "the status detail")
    assert "Unschedulable: volume *** not bound" in item.detail
