"""Production workloads: the safe defaults, EKS_WORKLOADS and each bad input; what
kustomize builds; on the control plane, autoscalers and budgets applied, shown and
pruned."""

from __future__ import annotations

import json
import typing as t

import pytest

from tutoreks.exceptions import EksError
from tutoreks.render import workloads

from .cluster.conftest import Cluster
from .conftest import Project, delete_deployment, deploy_environment

DEPLOYMENTS = ["caddy", "cms", "cms-worker", "lms", "lms-worker", "mfe", "redis"]


def parsed(setting: t.Any) -> dict[str, workloads.Workload]:
    return workloads.parse(setting, DEPLOYMENTS)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"forum": {}}, "names forum, which this environment does not deploy; its "
         "Deployments: caddy, cms, cms-worker, lms, lms-worker, mfe, redis"),
        ([], "EKS_WORKLOADS must be a mapping"),
        ({"lms": {"replica": 2}}, "EKS_WORKLOADS.lms has replica; the keys are"),
        ({"lms": {"autoscaling": {"min": 5, "max": 2, "cpu": 70}}}, "min (5) is above max (2)"),
        ({"lms": {"autoscaling": {"min": 2, "max": 4}}}, "needs a target: cpu or memory"),
        ({"lms": {"autoscaling": {"max": 4, "cpu": 70}}}, "needs min and max"),
        ({"cms": {"replicas": 2, "max_unavailable": 0}}, "0 would block every node drain"),
        ({"cms": {"max_unavailable": 1}}, "a disruption budget needs 2 or more replicas"),
        (
            {"lms": {"requests": {"memory": "2Gi"}, "autoscaling": {"min": 2, "max": 4, "cpu": 70}}},
            "EKS_WORKLOADS.lms.autoscaling.cpu: a cpu target needs a cpu request",
        ),
        ({"lms": {"requests": {"cpu": "lots"}}}, "requests.cpu is not a Kubernetes quantity"),
        ({"lms": {"limits": {"gpu": 1}}}, "limits is a mapping of cpu and memory"),
        (
            {"lms": {"replicas": 2, "autoscaling": {"min": 2, "max": 4, "cpu": 70}}},
            "replicas and autoscaling exclude each other",
        ),
        ({"lms-worker": {"grace": -5}}, "grace must be a whole number from 0 to 86400"),
        ({"lms": {"replicas": True}}, "replicas must be a whole number"),
    ],
)  # fmt: skip
def test_each_bad_setting_names_the_workload_and_key(
    setting: t.Any, message: str
) -> None:
    with pytest.raises(EksError) as error:
        parsed(setting)
    assert message in str(error.value)


def deployment(name: str, containers: int = 1) -> dict[str, t.Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": name if i == 0 else f"sidecar{i}"}
                        for i in range(containers)
                    ]
                }
            }
        },
    }


HOSTS = {"lms": "lms.example.com", "cms": "studio.example.com"}


def test_web_defaults_probe_without_restarting_on_a_database_blip() -> None:
    patch = workloads.deployment_patch(deployment("lms"), parsed({})["lms"], HOSTS)
    pod = patch["spec"]["template"]["spec"]
    container = pod["containers"][0]
    readiness = container["readinessProbe"]["httpGet"]
    assert (readiness["path"], readiness["port"]) == ("/heartbeat", 8000)
    assert readiness["httpHeaders"] == [{"name": "Host", "value": "lms.example.com"}]
    # /heartbeat checks MySQL and MongoDB: liveness must not call it
    assert container["livenessProbe"] == {
        "tcpSocket": {"port": 8000}, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 6,
    }  # fmt: skip
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert pod["terminationGracePeriodSeconds"] > 10
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "2Gi"}}
    assert "replicas" not in patch["spec"]


def test_workers_get_time_to_finish_and_every_container_requests() -> None:
    items = parsed({"cms-worker": {"grace": 900}})
    worker = workloads.deployment_patch(
        deployment("lms-worker"), items["lms-worker"], HOSTS
    )
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 300
    assert "readinessProbe" not in worker["spec"]["template"]["spec"]["containers"][0]
    custom = workloads.deployment_patch(
        deployment("cms-worker"), items["cms-worker"], HOSTS
    )
    assert custom["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 900
    mfe = workloads.deployment_patch(
        deployment("mfe", containers=2), items["mfe"], HOSTS
    )
    for container in mfe["spec"]["template"]["spec"]["containers"]:
        assert set(container["resources"]["requests"]) == {"cpu", "memory"}


def test_autoscaling_and_budgets() -> None:
    items = parsed(
        {
            "lms": {
                "autoscaling": {"min": 2, "max": 8, "cpu": 70},
                "limits": {"memory": "3Gi"},
            },
            "cms": {"replicas": 3, "max_unavailable": "50%"},
            "lms-worker": {"replicas": 1},
        }
    )
    lms = workloads.deployment_patch(deployment("lms"), items["lms"], HOSTS)
    assert "replicas" not in lms["spec"], "a deploy never resets the autoscaler's count"
    assert lms["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "memory": "3Gi"
    }
    cms = workloads.deployment_patch(deployment("cms"), items["cms"], HOSTS)
    assert cms["spec"]["replicas"] == 3
    objects = {
        (o["kind"], o["metadata"]["name"]): o for o in workloads.extra_objects(items)
    }
    assert set(objects) == {
        ("HorizontalPodAutoscaler", "lms"),
        ("PodDisruptionBudget", "lms"),
        ("PodDisruptionBudget", "cms"),
    }, "no budget for one replica"
    hpa = objects[("HorizontalPodAutoscaler", "lms")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert hpa["metrics"][0]["resource"] == {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70},
    }  # fmt: skip
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert objects[("PodDisruptionBudget", "lms")]["spec"]["maxUnavailable"] == 1
    assert objects[("PodDisruptionBudget", "cms")]["spec"]["maxUnavailable"] == "50%"


def test_a_bad_setting_in_config_yml_changes_nothing(project: Project) -> None:
    project.write(
        "environments/dev/config.yml",
        "LMS_HOST: lms.example.com\nEKS_WORKLOADS:\n  lms: {autoscaling: {min: 3, max: 2, cpu: 50}}\n",
    )
    project.write("environments/ok/config.yml", "LMS_HOST: lms.example.com\n")
    project.save("ok")
    before = project.fingerprint()
    result = project.tutor(
        "config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"}, check=False
    )
    assert result.returncode != 0
    assert (
        "environments/dev/config.yml: EKS_WORKLOADS.lms.autoscaling: min (3) is above max (2)"
        in result.stdout + result.stderr
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert project.fingerprint() == before


# --- what kustomize builds ------------------------------------------------------------


@pytest.mark.kubectl
def test_kustomize_builds_probes_requests_and_the_autoscaler(project: Project) -> None:
    project.write(
        "environments/dev/config.yml",
        "LMS_HOST: lms.example.com\nEKS_WORKLOADS:\n  lms: {autoscaling: {min: 2, max: 6, cpu: 60}}\n",
    )
    project.save("dev")
    objects = {(o["kind"], o["metadata"]["name"]): o for o in project.kustomize()}
    lms = objects[("Deployment", "lms")]["spec"]
    container = lms["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/heartbeat"
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "2Gi"}
    assert "replicas" not in lms
    for (kind, _name), obj in objects.items():
        if kind == "Deployment":
            for c in obj["spec"]["template"]["spec"]["containers"]:
                assert {"cpu", "memory"} <= set(c["resources"]["requests"]), obj
    pdb = objects[("PodDisruptionBudget", "lms")]["spec"]["selector"]["matchLabels"]
    assert pdb["app.kubernetes.io/name"] == "lms"
    assert pdb["app.kubernetes.io/instance"].startswith("openedx-"), (
        "this instance only"
    )
    assert ("HorizontalPodAutoscaler", "lms") in objects


# --- on the control plane -------------------------------------------------------------


@pytest.mark.cluster
def test_autoscalers_and_budgets_are_applied_shown_and_pruned(
    project: Project, cluster: Cluster
) -> None:
    scaled = (
        "EKS_WORKLOADS:\n  lms: {autoscaling: {min: 2, max: 4, cpu: 70}}\n"
        "  cms: {replicas: 2}\n"
    )
    namespace = deploy_environment(project, cluster, "scale", config=scaled)
    try:
        project.save()
        project.tutor(
            "k8s", "start"
        )  # the API server validates autoscaling/v2, policy/v1
        hpa = cluster.get_json("hpa", "lms", "-n", namespace)
        assert hpa["spec"]["minReplicas"] == 2
        assert (
            cluster.get_json("pdb", "cms", "-n", namespace)["spec"]["maxUnavailable"]
            == 1
        )
        cms = cluster.get_json("deployment", "cms", "-n", namespace)
        assert cms["spec"]["replicas"] == 2
        status = json.loads(
            project.tutor("eks", "status", "--json", check=False).stdout
        )
        rows = {(i["kind"], i["name"]): i for i in status["items"]}
        hpa_row = rows[("HorizontalPodAutoscaler", "lms")]
        assert (hpa_row["min"], hpa_row["max"]) == (2, 4)
        assert rows[("PodDisruptionBudget", "cms")]["disruptions_allowed"] >= 0
        check = json.loads(project.tutor("eks", "check", "--json", check=False).stdout)
        metrics = {row["name"]: row for row in check}["metrics api"]
        assert metrics["ok"], "a warning, not a failure"
        assert metrics["detail"].startswith(
            "WARNING: v1beta1.metrics.k8s.io is not served: the autoscalers of lms"
        )

        config = project.path / "environments/dev/config.yml"
        config.write_text(
            config.read_text(encoding="utf-8").replace(scaled, ""), encoding="utf-8"
        )
        project.save()
        project.tutor("k8s", "start")
        for kind, name in (("hpa", "lms"), ("pdb", "cms"), ("pdb", "lms")):
            gone = cluster.kubectl("get", kind, name, "-n", namespace, check=False)
            assert gone.returncode != 0, f"{kind} {name} was not pruned"
    finally:
        delete_deployment(cluster, namespace)


# --- migrations before new code serves ---------------------------------------------------


def lms_image(cluster: Cluster, namespace: str) -> str:
    lms = cluster.get_json("deployment", "lms", "-n", namespace)
    return str(lms["spec"]["template"]["spec"]["containers"][0]["image"])


def with_image(project: Project, image: str) -> None:
    config = project.path / "environments/dev/config.yml"
    lines = [
        line
        for line in config.read_text(encoding="utf-8").splitlines()
        if not line.startswith("DOCKER_IMAGE_OPENEDX:")
    ]
    config.write_text(
        "\n".join([*lines, f"DOCKER_IMAGE_OPENEDX: {image}", ""]), encoding="utf-8"
    )


@pytest.mark.cluster
def test_a_new_image_migrates_before_it_serves(
    project: Project, cluster: Cluster
) -> None:
    """launch 1 installs (Tutor's order); launch 2, a new image: its init Jobs
    complete before lms's new ReplicaSet exists; launch 3, a migration that fails:
    the command fails and lms keeps its image and configuration."""
    namespace = deploy_environment(project, cluster, "order")
    try:
        first = project.ci_job("run-1").tutor("k8s", "launch", "--non-interactive")
        assert "run first" not in first.stdout + first.stderr
        new = "docker.io/overhangio/openedx:22.0.3-next"
        with_image(project, new)
        second = project.ci_job("run-2").tutor("k8s", "launch", "--non-interactive")
        output = second.stdout + second.stderr
        assert (
            "New image for cms, cms-worker, lms, lms-worker: the migrations" in output
        )
        assert "The migrations already ran before the Deployments switched" in output
        assert lms_image(cluster, namespace) == new
        jobs = [
            j
            for j in cluster.get_json("jobs", "-n", namespace)["items"]
            if j["spec"]["template"]["spec"]["containers"][0]["image"] == new
        ]
        assert {j["metadata"]["name"].split("-job-")[0] for j in jobs} >= {"lms", "cms"}
        replicasets = [
            r
            for r in cluster.get_json("replicasets", "-n", namespace)["items"]
            if r["spec"]["template"]["spec"]["containers"][0]["image"] == new
            and r["metadata"]["ownerReferences"][0]["name"] == "lms"
        ]
        assert len(replicasets) == 1
        created = replicasets[0]["metadata"]["creationTimestamp"]
        assert all(j["status"]["completionTime"] <= created for j in jobs), (
            [j["status"]["completionTime"] for j in jobs],
            created,
        )

        settings = cluster.get_json("secret", "openedx-settings-lms", "-n", namespace)
        with_image(project, "docker.io/overhangio/openedx:22.0.3-crashloop")
        third = project.ci_job("run-3").tutor(
            "k8s", "launch", "--non-interactive", check=False
        )
        assert third.returncode != 0
        assert "The migrations failed: cms, cms-worker, lms, lms-worker still run" in (
            third.stdout + third.stderr
        )
        assert lms_image(cluster, namespace) == new
        after = cluster.get_json("secret", "openedx-settings-lms", "-n", namespace)
        assert after["data"] == settings["data"], "the running pods' settings are back"
    finally:
        delete_deployment(cluster, namespace)
