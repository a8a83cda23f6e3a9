"""The local control plane behaves like a real cluster (issue #3).

Everything here talks to the processes of ``cluster/up.sh`` through kubectl or
HTTPS on 127.0.0.1; nothing is mocked. Pods never run a container: kwok plays
the kubelet of the fake node and only moves their status along.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

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


def test_anonymous_cannot_list_secrets(cluster: Cluster) -> None:
    ctx = ssl.create_default_context(cafile=str(cluster.ca_file))
    url = f"{cluster.server}/api/v1/namespaces/default/secrets"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, context=ctx, timeout=10)  # noqa: S310
    assert err.value.code in (401, 403)


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
    assert got["spec"]["storageClassName"] == "standard"


def test_service_account_without_role_is_forbidden(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=MYSQL_ROOT_PASSWORD=s3cret",
    )
    sa_kubeconfig = cluster.service_account_kubeconfig(namespace, "ci")

    who = json.loads(
        cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=sa_kubeconfig).stdout
    )
    assert (
        who["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:ci"
    )

    denied = cluster.kubectl(
        "-n", namespace, "get", "secret", "db", kubeconfig=sa_kubeconfig, check=False
    )
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert (
        f'User "system:serviceaccount:{namespace}:ci" cannot get resource "secrets"'
        in denied.stderr
    )

    admin = cluster.get_json("-n", namespace, "secret", "db")
    assert admin["data"]["MYSQL_ROOT_PASSWORD"] == "czNjcmV0"  # base64 of s3cret

    # A Role makes the same request pass: RBAC decides, not a blanket refusal.
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "role",
        "read-db",
        "--verb=get",
        "--resource=secrets",
        "--resource-name=db",
    )
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "ci-read-db",
        "--role=read-db",
        f"--serviceaccount={namespace}:ci",
    )
    allowed = cluster.kubectl(
        "-n",
        namespace,
        "get",
        "secret",
        "db",
        "-o",
        "name",
        kubeconfig=sa_kubeconfig,
        check=False,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.strip() == "secret/db"


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


def test_crd_validation_accepts_valid_clusterissuer(cluster: Cluster) -> None:
    ok = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=_cluster_issuer(VALID_ACME),
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "created (server dry run)" in ok.stdout


def test_crd_validation_rejects_unknown_field(cluster: Cluster) -> None:
    bad = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        input=_cluster_issuer({**VALID_ACME, "emial": "typo@example.com"}),
        check=False,
    )
    assert bad.returncode != 0
    assert 'unknown field "spec.acme.emial"' in bad.stderr


def test_crd_validation_rejects_wrong_type(cluster: Cluster) -> None:
    bad = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=_cluster_issuer({**VALID_ACME, "privateKeySecretRef": "acme"}),
        check=False,
    )
    assert bad.returncode != 0
    assert "spec.acme.privateKeySecretRef" in bad.stderr
    assert "Invalid value" in bad.stderr


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
