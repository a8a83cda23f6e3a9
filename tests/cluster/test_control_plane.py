"""The local control plane behaves like a real cluster (issue #3).

Everything here talks to the processes of ``cluster/up.sh`` through kubectl or
HTTPS on 127.0.0.1; nothing is mocked. Pods never run a container: kwok plays
the kubelet of the fake node and only moves their status along.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import KUBE_VERSION, STATE_DIR, Cluster

pytestmark = pytest.mark.cluster

CERT_MANAGER_CRDS = (
    "clusterissuers.cert-manager.io",
    "issuers.cert-manager.io",
    "certificates.cert-manager.io",
)


def wait_for(what: str, probe: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists (pods can be created)."""
    name = new_namespace(cluster)
    wait_for(f"serviceaccount default in {name}", lambda: has_default_sa(cluster, name))
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def new_namespace(cluster: Cluster) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    return name


def has_default_sa(cluster: Cluster, namespace: str) -> bool:
    res = cluster.kubectl(
        "-n", namespace, "get", "serviceaccount", "default", check=False
    )
    return res.returncode == 0


def test_server_version_matches_pin(cluster: Cluster) -> None:
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == KUBE_VERSION
    assert out["clientVersion"]["gitVersion"] == KUBE_VERSION
    major, minor = KUBE_VERSION.lstrip("v").split(".")[:2]
    assert (out["serverVersion"]["major"], out["serverVersion"]["minor"]) == (
        major,
        minor,
    )
    assert (major, int(minor)) >= ("1", 34)


def test_kubeconfig_is_admin_and_loopback(cluster: Cluster) -> None:
    assert re.fullmatch(r"https://127\.0\.0\.1:[0-9]+", cluster.server)
    who = json.loads(cluster.kubectl("auth", "whoami", "-o", "json").stdout)
    assert "system:masters" in who["status"]["userInfo"]["groups"]
    assert (
        cluster.kubectl(
            "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
        ).stdout
        == cluster.server
    )


def test_every_component_listens_on_loopback_only(cluster: Cluster) -> None:
    pids = set()
    for name in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok-controller",
    ):
        # kwokctl's pid files (.cluster/pids -> .cluster/kwok/clusters/<name>/pids)
        pid_file = STATE_DIR / "pids" / f"{name}.pid"
        assert pid_file.is_file(), f"{name} has no pid file"
        pids.add(pid_file.read_text().strip())
    out = subprocess.run(
        ["ss", "-ltnupH"], capture_output=True, text=True, check=True
    ).stdout
    ours = [line for line in out.splitlines() if any(f"pid={p}," in line for p in pids)]
    assert len(ours) >= 5, out
    for line in ours:
        local = line.split()[4]
        assert local.startswith("127.0.0.1:"), f"not loopback-only: {line}"


def test_fake_node_is_ready(cluster: Cluster) -> None:
    nodes = cluster.get_json("nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["kwok-node-0"]
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}
    assert ready["Ready"] == "True"
    assert not any(
        t["key"].startswith("node.kubernetes.io/not-ready")
        for t in nodes[0]["spec"].get("taints", [])
    )


def test_deployment_becomes_available(cluster: Cluster, namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "web", "image": "registry.invalid/web:1"}]
                },
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    cluster.kubectl(
        "-n",
        namespace,
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=90s",
    )
    dep = cluster.get_json("-n", namespace, "deployment", "web")
    assert dep["status"]["readyReplicas"] == 2
    pods = cluster.get_json("-n", namespace, "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] == "kwok-node-0"  # placed by kube-scheduler
        assert pod["status"]["phase"] == "Running"
        conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert conditions["Ready"] == "True"
        # ServiceAccount admission injected the projected token volume.
        assert pod["spec"]["serviceAccountName"] == "default"
        assert any("projected" in v for v in pod["spec"]["volumes"])


def test_job_completes(cluster: Cluster, namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": namespace},
        "spec": {
            "backoffLimit": 1,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "migrate",
                            "image": "registry.invalid/job:1",
                            "args": ["sh", "-c", "exit 0"],
                        }
                    ],
                }
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(job))
    cluster.kubectl(
        "-n",
        namespace,
        "wait",
        "--for=condition=Complete",
        "job/migrate",
        "--timeout=90s",
    )
    status = cluster.get_json("-n", namespace, "job", "migrate")["status"]
    assert status["succeeded"] == 1
    assert status.get("failed", 0) == 0


def test_pvc_binds_with_default_storage_class(cluster: Cluster, namespace: str) -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pvc))
    cluster.kubectl(
        "-n",
        namespace,
        "wait",
        "--for=jsonpath={.status.phase}=Bound",
        "pvc/data",
        "--timeout=60s",
    )
    got = cluster.get_json("-n", namespace, "pvc", "data")
    assert got["spec"]["storageClassName"] == "kwok-volume"  # kwok's, the default


def test_cert_manager_crds_and_ingress_class_exist(cluster: Cluster) -> None:
    for crd in CERT_MANAGER_CRDS:
        obj = cluster.get_json("crd", crd)
        established = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        assert established["Established"] == "True", crd
    ingress_class = cluster.get_json("ingressclass", "nginx")
    assert ingress_class["spec"]["controller"] == "k8s.io/ingress-nginx"
    # The CRD files handed to render tests are those installed here.
    files = {p.name for p in cluster.crds_dir.glob("*.yaml")}
    assert "cert-manager.io_clusterissuers.yaml" in files
    assert "cert-manager.io_certificates.yaml" in files


def test_default_service_account_appears_in_new_namespace(cluster: Cluster) -> None:
    namespace = new_namespace(cluster)
    try:
        wait_for(
            f"serviceaccount default in {namespace}",
            lambda: has_default_sa(cluster, namespace),
            timeout=30,
        )
        # and kube-root-ca.crt (the controller-manager's --root-ca-file) is published.
        wait_for(
            f"configmap kube-root-ca.crt in {namespace}",
            lambda: (
                cluster.kubectl(
                    "-n", namespace, "get", "configmap", "kube-root-ca.crt", check=False
                ).returncode
                == 0
            ),
            timeout=30,
        )
        cm = cluster.get_json("-n", namespace, "configmap", "kube-root-ca.crt")
        assert cm["data"]["ca.crt"].strip() == cluster.ca_file.read_text().strip()
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _cluster_issuer(acme: dict[str, object]) -> str:
    return json.dumps(
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": f"test-{uuid.uuid4().hex[:8]}"},
            "spec": {"acme": acme},
        }
    )


VALID_ACME: dict[str, object] = {
    "server": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "email": "ops@example.com",
    "privateKeySecretRef": {"name": "acme-account"},
    "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}],
}


@pytest.mark.disruptive
def test_apiserver_stop_and_start(cluster: Cluster, tmp_path: Path) -> None:
    cluster.stop_apiserver()
    try:
        assert not cluster.apiserver_ready()
        down = cluster.kubectl("get", "--raw", "/readyz", check=False, timeout=30)
        assert down.returncode != 0
        assert "refused" in down.stderr
    finally:
        cluster.start_apiserver()
    assert cluster.apiserver_ready()
    assert cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"
    # State survived in etcd: the fake node is still there.
    assert (
        cluster.kubectl("get", "node", "kwok-node-0", "-o", "name").stdout.strip()
        == "node/kwok-node-0"
    )


def test_apiserver_never_dials_fake_node_or_pod(
    cluster: Cluster, namespace: str
) -> None:
    """Logs, exec and proxy requests fail locally: nothing leaves 127.0.0.1."""
    cluster.kubectl("-n", namespace, "run", "p", "--image=registry.invalid/p:1")
    cluster.kubectl(
        "-n", namespace, "wait", "--for=condition=Ready", "pod/p", "--timeout=60s"
    )
    pod_ip = cluster.kubectl(
        "-n", namespace, "get", "pod", "p", "-o", "jsonpath={.status.podIP}"
    ).stdout
    assert pod_ip  # kwok gave it an address that nothing routes to
    for args in (
        ("-n", namespace, "logs", "p"),
        ("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/p/proxy/"),
    ):
        res = cluster.kubectl(*args, check=False, timeout=30)
        assert res.returncode != 0
        assert "no-egress.sock" in res.stderr, res.stderr


# ---- simulated failures (cluster/kwok-stages.yaml, "pod-fault-*") -----------
# kwok plays a kubelet whose images fail by their tag: -crashloop, -pullfail,
# -unready. One namespace holds a Deployment and a Job per case, all created at
# once (module fixture), so the tests below wait for them together.

FAULT_TIMEOUT = 60.0
"""Upper bound for any one wait below; each normally takes 2-15 s."""


def _poll(
    what: str, probe: Callable[[], object], timeout: float = FAULT_TIMEOUT
) -> Any:
    """Call ``probe`` every 0.5 s until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def _deployment(name: str, containers: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 5,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers},
            },
        },
    }


def _job(
    name: str, image: str, restart_policy: str, backoff_limit: int
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": restart_policy,
                    "containers": [{"name": "task", "image": image}],
                }
            },
        },
    }


IMAGE = "registry.invalid/openedx:21.0.0"

FAULT_OBJECTS: list[dict[str, Any]] = [
    # Healthy: tags that merely contain a fault word, and a registry port with a
    # repository named like one (no tag at all), run as usual.
    _deployment(
        "healthy",
        [
            {"name": "app", "image": IMAGE},
            {"name": "b", "image": f"{IMAGE}-crashloop-fixed"},
            {"name": "c", "image": "registry.invalid:5000/app-crashloop"},
        ],
    ),
    _deployment("crashloop", [{"name": "app", "image": f"{IMAGE}-crashloop"}]),
    _deployment("pullfail", [{"name": "app", "image": f"{IMAGE}-pullfail"}]),
    _deployment(
        "unready",
        [
            {"name": "app", "image": f"{IMAGE}-unready"},
            {"name": "sidecar", "image": IMAGE},
        ],
    ),
    _job("healthy", IMAGE, "Never", 1),
    _job("crashloop", f"{IMAGE}-crashloop", "Never", 1),
    _job("crashloop-onfailure", f"{IMAGE}-crashloop", "OnFailure", 1),
    _job("pullfail", f"{IMAGE}-pullfail", "Never", 0),
    _job("unready", f"{IMAGE}-unready", "Never", 1),
]


@pytest.fixture(scope="module")
def faults(cluster: Cluster) -> Iterator[str]:
    """A namespace where every object of FAULT_OBJECTS was created; yields its name."""
    name = new_namespace(cluster)
    try:
        wait_for(
            f"serviceaccount default in {name}", lambda: has_default_sa(cluster, name)
        )
        items = {"apiVersion": "v1", "kind": "List", "items": FAULT_OBJECTS}
        cluster.kubectl("-n", name, "apply", "-f", "-", input=json.dumps(items))
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _pod(cluster: Cluster, namespace: str, selector: str) -> dict[str, Any] | None:
    pods = cluster.get_json("-n", namespace, "pods", "-l", selector)["items"]
    return pods[0] if pods else None


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    for status in pod["status"].get("containerStatuses", []):
        if status["name"] == name:
            return status  # type: ignore[no-any-return]
    raise AssertionError(f"no status for container {name}: {pod['status']}")


def _waiting_reason(pod: dict[str, Any] | None, name: str = "app") -> str | None:
    if pod is None or not pod["status"].get("containerStatuses"):
        return None
    return _container(pod, name)["state"].get("waiting", {}).get("reason")  # type: ignore[no-any-return]


def _deployment_stalled(
    cluster: Cluster, namespace: str, name: str
) -> dict[str, Any] | None:
    """The Deployment once the controller-manager reports ProgressDeadlineExceeded."""
    dep = cluster.get_json("-n", namespace, "deployment", name)
    progressing = _conditions(dep).get("Progressing", {})
    return dep if progressing.get("reason") == "ProgressDeadlineExceeded" else None


def _job_finished(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The Job once it has a Complete or Failed condition that is True."""
    job = cluster.get_json("-n", namespace, "job", name)
    conds = _conditions(job)
    done = any(conds.get(t, {}).get("status") == "True" for t in ("Complete", "Failed"))
    return job if done else None


def test_fault_healthy_images_run_and_complete(cluster: Cluster, faults: str) -> None:
    cluster.kubectl(
        "-n", faults, "wait", "--for=condition=Available", "deployment/healthy",
        f"--timeout={FAULT_TIMEOUT:.0f}s",
    )  # fmt: skip
    pod = _pod(cluster, faults, "app=healthy")
    assert pod is not None
    assert pod["status"]["phase"] == "Running"
    assert _conditions(pod)["Ready"]["status"] == "True"
    for name in ("app", "b", "c"):
        status = _container(pod, name)
        assert status["ready"] is True
        assert "running" in status["state"]
    job = _poll(
        "job/healthy to finish", lambda: _job_finished(cluster, faults, "healthy")
    )
    assert _conditions(job)["Complete"]["status"] == "True"
    assert job["status"]["succeeded"] == 1


def test_fault_crashloop_deployment(cluster: Cluster, faults: str) -> None:
    pod = _poll(
        "a crashlooping pod",
        lambda: (
            (p := _pod(cluster, faults, "app=crashloop"))
            and _waiting_reason(p) == "CrashLoopBackOff"
            and p
        ),
    )
    assert pod["status"]["phase"] == "Running"
    assert _conditions(pod)["Ready"]["status"] == "False"
    status = _container(pod, "app")
    assert status["ready"] is False
    assert status["lastState"]["terminated"]["exitCode"] != 0
    assert status["lastState"]["terminated"]["reason"] == "Error"
    first = status["restartCount"]
    assert first >= 1
    _poll(
        "restartCount to grow",
        lambda: (
            _container(
                cluster.get_json("-n", faults, "pod", pod["metadata"]["name"]), "app"
            )["restartCount"]
            > first
        ),
    )
    dep = _poll(
        "ProgressDeadlineExceeded",
        lambda: _deployment_stalled(cluster, faults, "crashloop"),
    )
    assert _conditions(dep)["Available"]["status"] == "False"
    assert dep["status"].get("readyReplicas", 0) == 0


def test_fault_crashloop_job_fails(cluster: Cluster, faults: str) -> None:
    job = _poll(
        "job/crashloop to finish", lambda: _job_finished(cluster, faults, "crashloop")
    )
    failed = _conditions(job)["Failed"]
    assert failed["status"] == "True"
    assert failed["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2  # backoffLimit 1: the first pod and one retry
    assert "Complete" not in _conditions(job)
    pods = cluster.get_json("-n", faults, "pods", "-l", "job-name=crashloop")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        terminated = _container(pod, "task")["state"]["terminated"]
        assert terminated["exitCode"] == 1
        assert terminated["reason"] == "Error"


def test_fault_crashloop_job_with_restart_on_failure_fails(
    cluster: Cluster, faults: str
) -> None:
    """restartPolicy OnFailure: the container's restarts count against backoffLimit."""
    job = _poll(
        "job/crashloop-onfailure to finish",
        lambda: _job_finished(cluster, faults, "crashloop-onfailure"),
    )
    assert _conditions(job)["Failed"]["status"] == "True"
    assert "Complete" not in _conditions(job)


def test_fault_pullfail_deployment(cluster: Cluster, faults: str) -> None:
    pod = _poll(
        "a pod in ImagePullBackOff",
        lambda: (
            (p := _pod(cluster, faults, "app=pullfail"))
            and _waiting_reason(p) == "ImagePullBackOff"
            and p
        ),
    )
    assert pod["status"]["phase"] == "Pending"
    assert _conditions(pod)["Ready"]["status"] == "False"
    status = _container(pod, "app")
    assert status["ready"] is False
    assert status["restartCount"] == 0
    assert "Back-off pulling image" in status["state"]["waiting"]["message"]
    # ErrImagePull came first and was recorded as an event.
    events = cluster.get_json(
        "-n", faults, "events", "--field-selector",
        f"involvedObject.name={pod['metadata']['name']},reason=Failed",
    )["items"]  # fmt: skip
    assert events and "Failed to pull image" in events[0]["message"]
    dep = _poll(
        "ProgressDeadlineExceeded",
        lambda: _deployment_stalled(cluster, faults, "pullfail"),
    )
    assert _conditions(dep)["Available"]["status"] == "False"


def test_fault_pullfail_job_fails(cluster: Cluster, faults: str) -> None:
    job = _poll(
        "job/pullfail to finish", lambda: _job_finished(cluster, faults, "pullfail")
    )
    failed = _conditions(job)["Failed"]
    assert failed["status"] == "True"
    assert failed["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 1
    pod = _pod(cluster, faults, "job-name=pullfail")
    assert pod is not None
    assert pod["status"]["phase"] == "Failed"
    assert _waiting_reason(pod, "task") == "ImagePullBackOff"


def test_fault_unready_deployment(cluster: Cluster, faults: str) -> None:
    pod = _poll(
        "a running, unready pod",
        lambda: (
            (p := _pod(cluster, faults, "app=unready"))
            and p["status"].get("phase") == "Running"
            and p
        ),
    )
    conds = _conditions(pod)
    assert conds["Ready"]["status"] == "False"
    assert conds["ContainersReady"]["status"] == "False"
    app, sidecar = _container(pod, "app"), _container(pod, "sidecar")
    assert app["ready"] is False
    assert app["started"] is True
    assert "running" in app["state"]
    assert app["restartCount"] == 0
    assert sidecar["ready"] is True
    dep = _poll(
        "ProgressDeadlineExceeded",
        lambda: _deployment_stalled(cluster, faults, "unready"),
    )
    assert _conditions(dep)["Available"]["status"] == "False"
    assert dep["status"].get("readyReplicas", 0) == 0
    assert "timed out progressing" in _conditions(dep)["Progressing"]["message"]


def test_fault_unready_job_still_completes(cluster: Cluster, faults: str) -> None:
    """Readiness does not matter to a Job: its pod runs to completion."""
    job = _poll(
        "job/unready to finish", lambda: _job_finished(cluster, faults, "unready")
    )
    assert _conditions(job)["Complete"]["status"] == "True"
    assert job["status"]["succeeded"] == 1
