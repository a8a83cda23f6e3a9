"""A deploy that tells the truth, on the local control plane: `tutor k8s launch`
waits for the rollout and fails naming the Deployment, pod, reason and logs
command (kwok's simulated failures: image tags ending in -crashloop, -pullfail,
-unready); init Jobs that fail are named; `tutor eks status` after a healthy and
after a broken deploy. No Secret value is ever printed."""

from __future__ import annotations

import json
import time
import typing as t
import uuid
from pathlib import Path

import pytest

from .cluster.conftest import Cluster
from .conftest import (
    Project,
    delete_deployment,
    fail_if_secret_in,
    put_secret,
    use_cluster,
)

pytestmark = pytest.mark.cluster

IMAGE = "docker.io/overhangio/openedx:22.0.0"
#: Deployments with DOCKER_IMAGE_OPENEDX (mysql is external here: MYSQL_HOST).
OPENEDX = ("cms", "cms-worker", "lms", "lms-worker")


class Environment:
    """A namespace with the operator's Secrets, and the project deploying it as in
    production (Secrets and the state read from the cluster)."""

    def __init__(
        self, project: Project, cluster: Cluster, label: str, config: str = ""
    ) -> None:
        self.project = project
        self.cluster = cluster
        self.namespace = f"eks-{label}-{uuid.uuid4().hex[:6]}"
        self.secrets = {
            "mysql-root": {
                "MYSQL_HOST": "mysql.example.internal",
                "MYSQL_ROOT_PASSWORD": "root-" + uuid.uuid4().hex,
            },
            "mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": "oe-" + uuid.uuid4().hex},
        }
        project.write(
            "environments/dev/config.yml",
            f"LMS_HOST: lms.{label}.example.com\nK8S_NAMESPACE: {self.namespace}\n"
            + config,
        )
        cluster.kubectl("create", "namespace", self.namespace)
        for name, data in self.secrets.items():
            put_secret(cluster, self.namespace, name, data)
        project.environ.pop("TUTOR_EKS_SECRETS")
        project.environ.pop("TUTOR_EKS_STATE_SECRET")
        project.environ["TUTOR_EKS_ENVIRONMENT"] = "dev"
        use_cluster(project, cluster)
        self.outputs: list[str] = []

    def as_ci_identity(self) -> None:
        """Run the project's commands as a ServiceAccount holding only the RBAC of
        `tutor eks rbac` (the rollout, Job and status diagnosis included)."""
        rbac = self.project.tutor(
            "eks", "rbac", "--service-account", f"{self.namespace}:deployer"
        ).stdout
        self.cluster.kubectl("apply", "-f", "-", input=rbac)
        use_cluster(
            self.project,
            self.cluster,
            self.cluster.service_account_kubeconfig(self.namespace, "deployer"),
        )

    def run(self, *args: str, env: dict[str, str] | None = None) -> t.Any:
        result = self.project.tutor(*args, env=env, check=False)
        self.outputs.append(result.stdout + result.stderr)
        return result

    def failing(self, *args: str) -> tuple[str, float]:
        """Run a command that must fail: its output and how long it took."""
        started = time.monotonic()
        result = self.run(*args)
        elapsed = time.monotonic() - started
        output = str(result.stdout + result.stderr)
        assert result.returncode != 0, output[-3000:]
        return output, elapsed

    def planted(self) -> list[str]:
        """Every value from the operator's Secrets and the state."""
        values = [v for data in self.secrets.values() for v in data.values()]
        values = [v for v in values if v != "mysql.example.internal"]
        state = self.cluster.kubectl(
            "get", "secret", "tutor-eks-state", "-n", self.namespace, check=False
        )
        if state.returncode == 0:
            import base64

            data = self.cluster.get_json(
                "secret", "tutor-eks-state", "-n", self.namespace
            )["data"]
            values += [
                base64.b64decode(v).decode()
                for k, v in data.items()
                if k != "ID"  # Tutor's instance label on every object, not a secret
            ]
        return values

    def assert_no_secret_printed(self) -> None:
        for value in self.planted():
            for number, output in enumerate(self.outputs):
                fail_if_secret_in(value, output, f"the output of command {number + 1}")
                for line in value.splitlines():
                    if len(line) > 8:
                        fail_if_secret_in(line, output, f"command {number + 1}")

    def status(self, *args: str) -> tuple[int, dict[str, t.Any]]:
        result = self.run("eks", "status", "--json", *args)
        return result.returncode, json.loads(result.stdout)

    def state_annotations(self) -> dict[str, str]:
        secret = self.cluster.get_json(
            "secret", "tutor-eks-state", "-n", self.namespace
        )
        return dict(secret["metadata"].get("annotations") or {})


def items(status: dict[str, t.Any], kind: str) -> dict[str, dict[str, t.Any]]:
    return {i["name"]: i for i in status["items"] if i["kind"] == kind}


def status_when(
    env: Environment, ready: bool, timeout: float = 60
) -> tuple[int, dict[str, t.Any]]:
    """`tutor eks status --json` once it is (not) ready, or the last one."""
    deadline = time.monotonic() + timeout
    while True:
        code, status = env.status()
        if status["ok"] is ready or time.monotonic() > deadline:
            return code, status
        time.sleep(1)


def test_healthy_launch_prints_every_deployment_ready_and_status(
    project: Project, cluster: Cluster, tmp_path: Path
) -> None:
    env = Environment(project, cluster, "healthy")
    try:
        launch = env.run("k8s", "launch", "--non-interactive")
        assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-3000:]
        deployments = sorted(
            d["metadata"]["name"]
            for d in cluster.get_json("deployments", "-n", env.namespace)["items"]
        )
        assert set(OPENEDX) | {"caddy"} <= set(deployments)
        for name in deployments:
            assert f"Deployment {name} rolled out (1/1 ready" in launch.stdout, name
        assert f"All {len(deployments)} Deployments rolled out" in launch.stdout
        assert "Waiting up to 600 s (EKS_ROLLOUT_TIMEOUT)" in launch.stdout
        # The rollout was waited for before the init Jobs ran (Tutor's order).
        assert launch.stdout.index("Deployments rolled out in") < launch.stdout.index(
            "Running init task"
        )
        annotations = env.state_annotations()
        assert annotations["tutor-contrib-eks/tutor-version"].startswith("22.")

        # kwok plays the ingress controller and cert-manager (cluster/kwok-stages.yaml):
        # within a second the Ingress has an address and the Certificate is Ready.
        code, status = status_when(env, True)
        assert code == 0 and status["ok"] is True, json.dumps(status["items"], indent=1)
        assert status["environment"] == "dev"
        assert status["namespace"] == env.namespace
        assert status["last_deploy"]["tutor_version"].startswith("22.")
        assert status["last_deploy"]["plugin_version"]
        for name in deployments:
            item = items(status, "Deployment")[name]
            assert item["ok"] and (item["ready"], item["desired"]) == (1, 1)
        jobs = items(status, "Job")
        assert {j["task"] for j in jobs.values()} == {"mysql-job", "lms-job", "cms-job"}
        assert all(j["ok"] and j["status"] == "Complete" for j in jobs.values())
        ingress = items(status, "Ingress")["openedx"]
        assert ingress["ok"] and ingress["hosts"][0] == "lms.healthy.example.com"
        assert ingress["addresses"] == [f"openedx.{env.namespace}.lb.kwok.example"]
        certificate = items(status, "Certificate")["openedx-tls"]
        assert certificate["ok"] and certificate["status"] == "Ready"

        # What a real ingress controller and cert-manager write is what is reported.
        cluster.kubectl(
            "patch", "ingress", "openedx", "-n", env.namespace,
            "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"loadBalancer": {"ingress": [
                {"hostname": "k8s-ingress-0123.elb.eu-west-1.amazonaws.com"}
            ]}}}),
        )  # fmt: skip
        cluster.kubectl(
            "patch", "certificates.cert-manager.io", "openedx-tls", "-n",
            env.namespace, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {
                "notAfter": "2099-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True",
                                "reason": "Ready", "message": "issued",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            }}),
        )  # fmt: skip
        summary = tmp_path / "summary.md"
        code, status = env.status("--markdown", str(summary))
        assert code == 0 and status["ok"] is True, status
        assert items(status, "Ingress")["openedx"]["addresses"] == [
            "k8s-ingress-0123.elb.eu-west-1.amazonaws.com"
        ]
        certificate = items(status, "Certificate")["openedx-tls"]
        assert certificate["expires"] == "2099-01-01T00:00:00Z"
        assert "expires 2099-01-01T00:00:00Z" in certificate["detail"]
        markdown = summary.read_text(encoding="utf-8")
        assert "| ✅ | Deployment | lms | 1/1 ready |" in markdown
        assert "| ✅ | Ingress | openedx | k8s-ingress-0123" in markdown
        table = env.run("eks", "status")
        assert table.returncode == 0
        assert "all ready" in table.stdout

        # Under GitHub Actions the masks go to the log, never into the summary file.
        ci_summary = tmp_path / "ci-summary.md"
        ci = env.run(
            "eks", "status", "--markdown", str(ci_summary),
            env={"GITHUB_ACTIONS": "true"},
        )  # fmt: skip
        assert ci.returncode == 0
        assert "::add-mask::" in ci.stdout
        assert "::add-mask::" not in ci_summary.read_text(encoding="utf-8")
        env.outputs.append(ci_summary.read_text(encoding="utf-8") + markdown)
        env.outputs = [o for o in env.outputs if "::add-mask::" not in o]
        env.assert_no_secret_printed()
    finally:
        delete_deployment(cluster, env.namespace)


def test_pending_host_keeps_ingress_and_certificate_not_ready(
    project: Project, cluster: Cluster
) -> None:
    """No load balancer and no certificate for a host under .pending.example (the
    stages leave it alone, as a missing controller would): not ready, and why."""
    env = Environment(project, cluster, "pending")
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: lms.pending.example\nK8S_NAMESPACE: {env.namespace}\n",
    )
    try:
        for command in (("config", "save"), ("k8s", "start")):
            result = env.run(*command)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        time.sleep(3)  # the stages act within a second on what they match
        code, status = env.status()
        assert code == 1 and status["ok"] is False
        ingress = items(status, "Ingress")["openedx"]
        assert not ingress["ok"] and ingress["hosts"][0] == "lms.pending.example"
        assert ingress["status"] == "no address"
        assert "no load balancer address yet" in ingress["detail"]
        certificate = items(status, "Certificate")["openedx-tls"]
        assert not certificate["ok"] and certificate["status"] == "not ready"
        table = env.run("eks", "status")
        assert table.returncode == 1 and "NOT READY" in table.stdout.upper()
    finally:
        delete_deployment(cluster, env.namespace)


FAILURES = {
    # tag: (the reason `tutor eks status --json` gives, what the lms line holds)
    "crashloop": (
        "CrashLoopBackOff",
        ["container lms: CrashLoopBackOff, last exit code 1 (Error)", "--previous"],
    ),
    "pullfail": (
        "ImagePullBackOff",
        [f"container lms: ImagePullBackOff (image {IMAGE}-pullfail)"],
    ),
    "unready": (
        "Unready",
        ["container lms: running, not ready: Readiness probe failed"],
    ),
}


@pytest.mark.parametrize("tag", list(FAILURES))
def test_launch_with_a_broken_image_fails_naming_deployment_pod_and_reason(
    project: Project, cluster: Cluster, tag: str
) -> None:
    timeout = 12
    env = Environment(
        project,
        cluster,
        tag,
        f"DOCKER_IMAGE_OPENEDX: {IMAGE}-{tag}\nEKS_ROLLOUT_TIMEOUT: {timeout}\n",
    )
    env.as_ci_identity()
    try:
        output, elapsed = env.failing("k8s", "launch", "--non-interactive")
        assert elapsed < timeout + 60, f"the launch took {elapsed:.0f} s"
        assert (
            f"The rollout did not complete within {timeout} s (EKS_ROLLOUT_TIMEOUT): "
            f"{len(OPENEDX)} of " in output
        )
        assert "Deployment caddy rolled out (1/1 ready" in output
        lms = next(line for line in output.splitlines() if "Deployment lms (" in line)
        reason, words = FAILURES[tag]
        assert lms.startswith("  Deployment lms (0/1 ready): pod lms-"), lms
        for word in words:
            assert word in lms, lms
        pod = lms.split("pod ", 1)[1].split(":", 1)[0]
        assert f"logs: kubectl logs -n {env.namespace} {pod} -c lms" in lms
        for name in OPENEDX:
            assert f"  Deployment {name} (0/1 ready): pod {name}-" in output
        # Nothing ran with the broken image, and the deploy was not recorded.
        assert "Running init task" not in output
        assert "tutor-contrib-eks/deployed-at" not in env.state_annotations()

        code, status = env.status()
        assert code == 1 and status["ok"] is False
        assert status["last_deploy"] is None
        deploy = items(status, "Deploy")["last"]
        assert not deploy["ok"] and deploy["status"] == "none"
        item = items(status, "Deployment")["lms"]
        assert not item["ok"] and (item["ready"], item["desired"]) == (0, 1)
        assert item["reason"] == reason
        assert item["pod"]["pod"] == pod
        assert item["pod"]["logs"].startswith(f"kubectl logs -n {env.namespace} {pod}")
        assert items(status, "Deployment")["caddy"]["ok"]
        env.assert_no_secret_printed()
    finally:
        delete_deployment(cluster, env.namespace)


def test_progress_deadline_exceeded_ends_the_wait_early(
    project: Project, cluster: Cluster
) -> None:
    env = Environment(project, cluster, "deadline", "EKS_ROLLOUT_TIMEOUT: 300\n")
    project.write(
        "environments/dev/k8s/stuck.yml",
        f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
spec:
  progressDeadlineSeconds: 3
  selector:
    matchLabels: {{app.kubernetes.io/name: stuck}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: stuck}}
    spec:
      containers:
        - name: stuck
          image: {IMAGE}-crashloop
""",
    )
    try:
        assert env.run("config", "save").returncode == 0
        output, elapsed = env.failing("k8s", "start")
        assert elapsed < 120, f"`tutor k8s start` took {elapsed:.0f} s"
        assert (
            "The rollout failed: Kubernetes gave up on stuck (ProgressDeadlineExceeded)"
            in output
        )
        stuck = next(
            line for line in output.splitlines() if "Deployment stuck (" in line
        )
        assert "ProgressDeadlineExceeded (no progress for 3 s)" in stuck
        assert "container stuck: CrashLoopBackOff, last exit code 1" in stuck
        assert "Deployment lms rolled out" in output
        env.assert_no_secret_printed()
    finally:
        delete_deployment(cluster, env.namespace)


JOB_FAILURES = {
    # tag: (the header of the error, the pod's words)
    "pullfail": (
        "cannot start, and retrying will not help (ImagePullBackOff); it was deleted",
        "container lms: ImagePullBackOff",
    ),
    "crashloop": ("failed", "container lms: exited with code 1 (Error); logs: "),
}


@pytest.mark.parametrize("tag", list(JOB_FAILURES))
def test_failing_init_job_is_named_with_its_pod_and_reason(
    project: Project, cluster: Cluster, tag: str
) -> None:
    # EKS_ROLLOUT_TIMEOUT: 0 skips the rollout wait, so the launch reaches the
    # init Jobs with the broken image.
    env = Environment(
        project,
        cluster,
        f"job-{tag}",
        f"DOCKER_IMAGE_OPENEDX: {IMAGE}-{tag}\nEKS_ROLLOUT_TIMEOUT: 0\n",
    )
    env.as_ci_identity()
    try:
        output, elapsed = env.failing("k8s", "launch", "--non-interactive")
        assert elapsed < 90, f"the launch took {elapsed:.0f} s"
        assert "EKS_ROLLOUT_TIMEOUT is 0: not waiting for the rollout." in output
        header, words = JOB_FAILURES[tag]
        error = output[output.index("Error: Job lms-job-") :]
        job = error.split()[2]
        assert error.startswith(f"Error: Job {job} {header}"), error
        assert f"  pod {job}-" in error and words in error, error
        assert "View the job logs to debug this issue" not in output
        jobs = {
            j["metadata"]["name"]
            for j in cluster.get_json("jobs", "-n", env.namespace)["items"]
        }
        if tag == "pullfail":
            assert job not in jobs, "a Job that cannot start is deleted"
            assert "logs:" not in error, "its pod is gone with it"
        else:
            assert job in jobs
            assert f"logs: kubectl logs -n {env.namespace} {job}-" in error
        env.assert_no_secret_printed()
    finally:
        delete_deployment(cluster, env.namespace)


def test_status_in_caddy_mode_shows_the_load_balancer_hostname(
    project: Project, cluster: Cluster
) -> None:
    env = Environment(project, cluster, "caddy", "EKS_EDGE: caddy\n")
    try:
        assert env.run("config", "save").returncode == 0
        start = env.run("k8s", "start")
        assert start.returncode == 0, start.stdout[-3000:] + start.stderr[-3000:]
        code, status = env.status()
        assert code == 1
        caddy = items(status, "Service")["caddy"]
        assert not caddy["ok"] and caddy["status"] == "no address"
        assert not items(status, "Ingress") and not items(status, "Certificate")
        hostname = "a1b2c3-123456789.eu-west-1.elb.amazonaws.com"
        cluster.kubectl(
            "patch", "service", "caddy", "-n", env.namespace,
            "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"loadBalancer": {"ingress": [{"hostname": hostname}]}}}),
        )  # fmt: skip
        code, status = env.status()
        assert code == 0, status
        caddy = items(status, "Service")["caddy"]
        assert caddy["ok"] and caddy["addresses"] == [hostname]
        env.assert_no_secret_printed()
    finally:
        delete_deployment(cluster, env.namespace)


def test_a_role_applied_before_this_version_still_deploys(
    project: Project, cluster: Cluster
) -> None:
    """An identity bound to the Role of the previous plugin version (no `delete`,
    no `list` on ReplicaSets, Pods, Events, Ingresses, Certificates) deploys as
    before; what it may not read is said, not fatal."""
    import yaml

    env = Environment(project, cluster, "old-role")
    documents = list(
        yaml.safe_load_all(
            project.tutor(
                "eks", "rbac", "--service-account", f"{env.namespace}:deployer"
            ).stdout
        )
    )
    new_lists = {"replicasets", "pods", "events", "ingresses", "certificates"}
    for document in documents:
        if document and document["kind"] == "Role":
            rules = []
            for rule in document["rules"]:
                verbs = [v for v in rule["verbs"] if v != "delete"]
                if new_lists & set(rule["resources"]):
                    verbs = [v for v in verbs if v != "list"]
                if verbs:
                    rules.append({**rule, "verbs": verbs})
            document["rules"] = rules
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))
    use_cluster(
        project, cluster, cluster.service_account_kubeconfig(env.namespace, "deployer")
    )
    try:
        launch = env.run("k8s", "launch", "--non-interactive")
        assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-3000:]
        assert "All services initialised." in launch.stdout
        assert "Cannot look at the pods of Job" in launch.stdout + launch.stderr
        code, status = env.status()
        assert code == 1
        ingress = items(status, "Ingress")["-"]
        assert ingress["status"] == "cannot read"
        assert "Not allowed to list" in ingress["detail"]
        assert items(status, "Deployment")["lms"]["ok"]
        env.assert_no_secret_printed()
    finally:
        delete_deployment(cluster, env.namespace)
