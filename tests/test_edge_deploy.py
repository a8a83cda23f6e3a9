"""Each edge on the local control plane: `tutor k8s start` applies it as the CI
identity holding only `tutor eks rbac`, the API server accepts it (the Gateway
API's CRDs validate Gateways and HTTPRoutes, with their CEL rules), and `tutor
eks status` follows what the edge's controllers report. kwok's stages play those
controllers (cluster/kwok-stages.yaml): a load balancer address for an Ingress or
a Gateway, Programmed and Accepted conditions, a Ready Certificate; not for host
names under `.pending.example`, which keep the failure path. `tutor eks check`
names what the edge lacks."""

from __future__ import annotations

import json
import time
import typing as t
import uuid

import pytest

from .cluster.conftest import Cluster
from .conftest import Project, delete_deployment, use_cluster
from .test_rollout import Environment, items, status_when

pytestmark = pytest.mark.cluster

ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
EDGES = {
    "gateway": "EKS_EDGE: gateway\nEKS_GATEWAY_CLASS: local\n",
    "alb": f"EKS_EDGE: alb\nEKS_ACM_CERTIFICATE_ARN: {ARN}\n",
}
#: The edge's rows of `tutor eks status`, by edge.
ROWS = {
    "gateway": {"Gateway", "HTTPRoute", "Certificate"},
    "alb": {"Ingress"},
}


def deploy(env: Environment) -> None:
    env.as_ci_identity()
    for command in (("config", "save"), ("k8s", "start")):
        result = env.run(*command)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("edge", list(EDGES))
def test_edge_deploys_and_its_status_becomes_ready(
    project: Project, cluster: Cluster, edge: str
) -> None:
    env = Environment(project, cluster, edge, EDGES[edge])
    try:
        deploy(env)
        code, status = status_when(env, True)
        assert code == 0 and status["ok"], json.dumps(status["items"], indent=1)
        edge_rows = {i["kind"] for i in status["items"]} & (
            {"Gateway", "HTTPRoute", "Ingress", "Certificate", "Service"}
        )
        assert edge_rows == ROWS[edge]
        host = f"lms.{edge}.example.com"
        if edge == "gateway":
            gateway = items(status, "Gateway")["openedx"]
            assert gateway["addresses"] and host in gateway["hosts"]
            routes = items(status, "HTTPRoute")
            assert set(routes) == {"openedx", "openedx-redirect"}
            assert all(r["status"] == "accepted" for r in routes.values())
            assert items(status, "Certificate")["openedx-tls"]["status"] == "Ready"
            assert not cluster.get_json("ingresses", "-n", env.namespace)["items"]
        else:
            ingress = items(status, "Ingress")["openedx"]
            assert ingress["addresses"] and host in ingress["hosts"]
            applied = cluster.get_json("ingress", "openedx", "-n", env.namespace)
            assert applied["spec"]["ingressClassName"] == "alb"
        env.assert_no_secret_printed()
    finally:
        delete_deployment(cluster, env.namespace)


def test_pending_hosts_keep_status_not_ready_and_say_why(
    project: Project, cluster: Cluster
) -> None:
    env = Environment(project, cluster, "pending", EDGES["gateway"])
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: lms.pending.example\nK8S_NAMESPACE: {env.namespace}\n"
        + EDGES["gateway"],
    )
    try:
        deploy(env)
        time.sleep(3)  # the stages act within a second on what they match
        code, status = env.status()
        assert code == 1 and not status["ok"]
        gateway = items(status, "Gateway")["openedx"]
        assert not gateway["ok"] and gateway["status"] == "no address"
        assert "is the controller of GatewayClass local running?" in gateway["detail"]
        certificate = items(status, "Certificate")["openedx-tls"]
        assert not certificate["ok"] and certificate["status"] == "not ready"
        table = env.run("eks", "status")
        assert table.returncode == 1 and "NOT READY" in table.stdout.upper()
    finally:
        delete_deployment(cluster, env.namespace)


def test_moving_from_ingress_to_gateway_prunes_the_ingress(
    project: Project, cluster: Cluster
) -> None:
    env = Environment(project, cluster, "move")
    try:
        deploy(env)
        assert cluster.get_json("ingress", "openedx", "-n", env.namespace)
        project.write(
            "environments/dev/config.yml",
            f"LMS_HOST: lms.move.example.com\nK8S_NAMESPACE: {env.namespace}\n"
            + EDGES["gateway"],
        )
        deploy(env)
        left = cluster.get_json("ingresses", "-n", env.namespace)["items"]
        assert left == [], "the old edge's Ingress is pruned"
        assert cluster.get_json("gateway", "openedx", "-n", env.namespace)
        code, status = status_when(env, True)
        assert code == 0, json.dumps(status["items"], indent=1)
    finally:
        delete_deployment(cluster, env.namespace)


def check_rows(project: Project) -> dict[str, dict[str, t.Any]]:
    result = project.tutor("eks", "check", "--json", check=False)
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_check_names_what_each_edge_lacks(project: Project, cluster: Cluster) -> None:
    namespace = f"eks-check-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    use_cluster(project, cluster)
    project.environ["TUTOR_EKS_ENVIRONMENT"] = "dev"
    base = f"LMS_HOST: lms.example.com\nK8S_NAMESPACE: {namespace}\n"

    def rows(config: str) -> dict[str, dict[str, t.Any]]:
        project.write("environments/dev/config.yml", base + config)
        return check_rows(project)

    try:
        found = rows("EKS_EDGE: gateway\nEKS_GATEWAY_CLASS: nosuch\n")
        assert not found["gatewayclass"]["ok"]
        assert "GatewayClass nosuch does not exist" in found["gatewayclass"]["detail"]
        for crd in ("gateways", "httproutes"):
            assert found[f"crd {crd}.gateway.networking.k8s.io"]["ok"]
        assert found["crd certificates.cert-manager.io"]["ok"]
        assert "ingressclass" not in found

        found = rows("EKS_EDGE: gateway\nEKS_GATEWAY_CLASS: local\n")
        assert found["gatewayclass"]["ok"], found["gatewayclass"]

        shared = f"EKS_EDGE: gateway\nEKS_GATEWAY: {namespace}/shared\n"
        found = rows(shared)
        assert not found["gateway"]["ok"]
        assert (
            f"Gateway {namespace}/shared does not exist" in found["gateway"]["detail"]
        )
        assert "crd certificates.cert-manager.io" not in found, "nothing to issue"
        cluster.kubectl(
            "apply", "-f", "-",
            input=json.dumps({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"name": "shared", "namespace": namespace},
                "spec": {"gatewayClassName": "local", "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP"}]},
            }),
        )  # fmt: skip
        assert rows(shared)["gateway"]["ok"]

        found = rows("EKS_EDGE: alb\n")
        assert found["ingressclass"]["ok"], found["ingressclass"]
        assert "crd certificates.cert-manager.io" not in found
        found = rows("EKS_EDGE: ingress\nEKS_INGRESS_CLASS: nosuch\n")
        assert "IngressClass nosuch does not exist" in found["ingressclass"]["detail"]
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
