"""A Job's verdict (``tutoreks/deploy/jobs.py``), from Jobs and their pods as the
API server returns them: what `tutor k8s init` / `launch` say when a task fails,
cannot start, or runs too long."""

from __future__ import annotations

import types
import typing as t

import pytest

from tutoreks.config import context
from tutoreks.config.masking import Scrubber
from tutoreks.deploy import jobs
from tutoreks.exceptions import EksError

from ..conftest import fail_if_secret_in
from .objects import items, one

NONE = Scrubber()


def test_a_complete_job_is_done() -> None:
    found = jobs.verdict(
        one("job-mysql-complete"), items("pods-job-mysql-succeeded"), NONE
    )
    assert found == jobs.Verdict("Complete")


def test_a_job_past_its_backoff_limit_names_each_failed_pod() -> None:
    found = jobs.verdict(
        one("job-lms-backoff-limit-exceeded"), items("pods-job-lms-crashed"), NONE
    )
    assert found.state == "Failed" and not found.delete
    header, *lines = found.message.splitlines()
    assert header == (
        "Job lms-job-20261206160000 failed (BackoffLimitExceeded: Job has reached "
        "the specified backoff limit):"
    )
    assert lines == [
        "  pod lms-job-20261206160000-4n8bm: container lms: exited with code 1 "
        "(Error); logs: kubectl logs -n openedx-fixtures "
        "lms-job-20261206160000-4n8bm -c lms",
        "  pod lms-job-20261206160000-wqvhp: container lms: exited with code 1 "
        "(Error); logs: kubectl logs -n openedx-fixtures "
        "lms-job-20261206160000-wqvhp -c lms",
    ]


def test_a_failed_pod_fails_the_job_before_kubernetes_does() -> None:
    job = one("job-lms-backoff-limit-exceeded")
    del job["status"]["conditions"]
    found = jobs.verdict(job, items("pods-job-lms-crashed")[:1], NONE)
    assert found.state == "Failed"
    assert found.message.splitlines()[0] == (
        "Job lms-job-20261206160000 failed (Kubernetes may still run it again: "
        "backoffLimit 1):"
    )


def test_a_job_whose_image_cannot_be_pulled_is_deleted_and_fails_at_once() -> None:
    found = jobs.verdict(
        one("job-forum-active"), items("pods-job-forum-imagepullbackoff"), NONE
    )
    assert found.state == "CannotStart" and found.delete
    assert found.message.splitlines() == [
        "Job forum-job-20261206161500 cannot start, and retrying will not help "
        "(ImagePullBackOff); it was deleted, so that the next deploy does not wait "
        "for it:",
        "  pod forum-job-20261206161500-tfkjd: container forum: ImagePullBackOff "
        "(image docker.io/overhangio/openedx-forum:20.0.0-pullfail)",
    ]


def running_pods() -> list[dict[str, t.Any]]:
    pod = items("pods-job-forum-imagepullbackoff")[0]
    pod["status"]["phase"] = "Running"
    pod["status"]["containerStatuses"][0]["state"] = {
        "running": {"startedAt": "2026-12-06T16:10:25Z"}
    }
    pod["status"]["containerStatuses"][0]["ready"] = True
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    return [pod]


def test_a_running_job_within_its_time_goes_on() -> None:
    found = jobs.verdict(one("job-forum-active"), running_pods(), NONE, 30.0, 60)
    assert found == jobs.Verdict("Running")
    assert jobs.verdict(
        one("job-forum-active"), running_pods(), NONE, 9e9, 0
    ).state == ("Running")


def test_a_job_out_of_time_is_left_running_and_says_how_to_stop_it() -> None:
    found = jobs.verdict(one("job-forum-active"), running_pods(), NONE, 61.0, 60)
    assert found.state == "TimedOut" and not found.delete
    header, line = found.message.splitlines()
    assert header == (
        "Job forum-job-20261206161500 did not finish within 60 s (EKS_JOB_TIMEOUT); "
        "it is left running (`kubectl -n openedx-fixtures delete job "
        "forum-job-20261206161500` stops it):"
    )
    assert line.startswith("  pod forum-job-20261206161500-tfkjd: Running;")


def test_a_job_failure_message_is_scrubbed() -> None:
    secret = "hunter2-but-longer"
    job = one("job-lms-backoff-limit-exceeded")
    job["status"]["conditions"][1]["message"] = f"connect to redis://:{secret}@redis"
    found = jobs.verdict(job, [], Scrubber([secret]))
    fail_if_secret_in(secret, found.message, "the Job's verdict")
    assert found.message == (
        "Job lms-job-20261206160000 failed (BackoffLimitExceeded: connect to "
        "redis://:***@redis)."
    )


@pytest.mark.parametrize("value", [10**30, -1, 1.5, True, "600", "s3cr3t" * 20])
def test_a_bad_timeout_names_the_key_and_never_the_value(value: t.Any) -> None:
    with pytest.raises(EksError) as raised:
        jobs.seconds({"EKS_JOB_TIMEOUT": value}, "EKS_JOB_TIMEOUT")
    message = str(raised.value)
    assert message.startswith("EKS_JOB_TIMEOUT ")
    fail_if_secret_in(str(value), message, "the error")
    fail_if_secret_in(repr(value), message, "the error")


# --- while a Job runs: looks between Tutor's polls ---------------------------------


class Clock:
    """``time`` as ``jobs`` sees it: sleeping moves it on, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class JobAnswers:
    """The API server as :func:`jobs.check` reads it: the Job as each GET finds it
    (the last answer repeats), no pod listed yet."""

    def __init__(self, answers: list[dict[str, t.Any]]) -> None:
        self.answers = answers
        self.gets = 0

    def get(self, _resource: t.Any, _name: str, _namespace: str) -> t.Any:
        self.gets += 1
        return self.answers[min(self.gets, len(self.answers)) - 1]

    def list(self, *_args: t.Any) -> list[dict[str, t.Any]]:
        return []


def one_poll_of_tutor(
    monkeypatch: pytest.MonkeyPatch, answers: list[dict[str, t.Any]]
) -> tuple[Clock, JobAnswers]:
    """One of Tutor's polls of the Job (``jobs.check``), against ``answers``."""
    clock, cluster = Clock(), JobAnswers(answers)
    ctx = types.SimpleNamespace(kube=lambda: cluster, job_started={}, warned=set())
    monkeypatch.setattr(jobs, "time", clock)
    monkeypatch.setattr(context, "current", lambda: ctx)
    monkeypatch.setattr(jobs, "_scrubber", lambda: NONE)
    config = {"K8S_NAMESPACE": "openedx-fixtures", "EKS_JOB_TIMEOUT": 0}
    jobs.check(config, "mysql-job-20261206160000")
    return clock, cluster


def running_job() -> dict[str, t.Any]:
    job = one("job-mysql-complete")
    job["status"] = {"active": 1, "startTime": job["status"]["startTime"]}
    return job


def test_a_job_done_between_tutors_polls_is_seen_done_at_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tutor sleeps 5 s after a poll that finds the Job running: the poll looks
    again every 0.5 s, so Tutor's next look finds a Job done in 1.5 s done."""
    done = one("job-mysql-complete")
    clock, cluster = one_poll_of_tutor(monkeypatch, [running_job()] * 3 + [done])
    assert cluster.gets == 4
    assert clock.sleeps == [jobs.LOOK_EVERY] * 3


def test_a_job_still_running_is_left_to_tutors_next_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, cluster = one_poll_of_tutor(monkeypatch, [running_job()])
    assert sum(clock.sleeps) == jobs.LOOK_FOR < 5
    assert cluster.gets == len(clock.sleeps) + 1
