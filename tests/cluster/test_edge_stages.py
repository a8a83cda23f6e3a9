"""The edges' controllers, as kwok plays them (cluster/kwok-stages.yaml).

No ingress controller, Gateway controller or cert-manager runs on the local
control plane: kwok's stages write the status theirs would. What a user of the
cluster sees, as admin: the Gateway API's standard CRDs, the GatewayClass
``local`` accepted, the IngressClasses ``nginx`` and ``alb``; a Gateway of class
``local`` programmed with an address, an HTTPRoute accepted by each parent, an
Ingress given a load balancer hostname, a Certificate Ready, each within
seconds; none of it for hosts under ``.pending.example``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .conftest import Cluster

pytestmark = pytest.mark.cluster

CONTROLLER = "example.com/local-gateway"
GATEWAY_API_CRDS = (
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
    "referencegrants.gateway.networking.k8s.io",
    "grpcroutes.gateway.networking.k8s.io",
)


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    found = (obj.get("status") or {}).get("conditions") or []
    return {c["type"]: c["status"] for c in found}


def edge(name: str, host: str) -> list[dict[str, Any]]:
    """A Gateway of class local, an HTTPRoute on it, a Certificate and an alb
    Ingress, all for ``host``."""
    backend = {"service": {"name": "lms", "port": {"number": 8000}}}
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": name},
            "spec": {
                "gatewayClassName": "local",
                "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP", "hostname": host}
                ],
            },
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name},
            "spec": {
                "parentRefs": [{"name": name, "sectionName": "http"}],
                "hostnames": [host],
                "rules": [{"backendRefs": [{"name": "lms", "port": 8000}]}],
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": name},
            "spec": {
                "secretName": f"{name}-tls",
                "dnsNames": [host],
                "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"},
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name},
            "spec": {
                "ingressClassName": "alb",
                "rules": [
                    {
                        "host": host,
                        "http": {
                            "paths": [
                                {"path": "/", "pathType": "Prefix", "backend": backend}
                            ]
                        },
                    }
                ],
            },
        },
    ]


@pytest.fixture(scope="module")
def edges(cluster: Cluster) -> Iterator[str]:
    """A namespace holding a ready edge ``ok`` and a pending one ``pending``."""
    namespace = f"edge-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    objects = edge("ok", "lms.ok.example.com") + edge("pending", "lms.pending.example")
    try:
        cluster.kubectl(
            "-n", namespace, "apply", "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
        )  # fmt: skip
        yield namespace
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def soon(what: str, probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``probe()`` once truthy, polled every 0.2 s: the stages act within a second."""
    deadline = time.monotonic() + timeout
    while not (got := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f}s")
        time.sleep(0.2)
    return got


def test_gateway_api_crds_and_classes_exist(cluster: Cluster) -> None:
    for crd in GATEWAY_API_CRDS:
        obj = cluster.get_json("crd", crd)
        assert conditions(obj)["Established"] == "True", crd
        assert any(v["name"] == "v1" and v["served"] for v in obj["spec"]["versions"])
    gateway_class = cluster.get_json("gatewayclass", "local")
    assert gateway_class["spec"]["controllerName"] == CONTROLLER
    soon(
        "Accepted GatewayClass local",
        lambda: (
            conditions(cluster.get_json("gatewayclass", "local")).get("Accepted")
            == "True"
        ),
    )
    classes = {
        c["metadata"]["name"]: c["spec"]["controller"]
        for c in cluster.get_json("ingressclasses")["items"]
    }
    assert classes["alb"] == "ingress.k8s.aws/alb"
    assert classes["nginx"] == "k8s.io/ingress-nginx"


def test_gateway_is_programmed_with_an_address(cluster: Cluster, edges: str) -> None:
    def programmed() -> dict[str, Any] | None:
        gateway = cluster.get_json("-n", edges, "gateway", "ok")
        return gateway if conditions(gateway).get("Programmed") == "True" else None

    gateway = soon("Programmed Gateway", programmed)
    assert conditions(gateway)["Accepted"] == "True"
    assert gateway["status"]["addresses"] == [
        {"type": "Hostname", "value": f"ok.{edges}.gateway.kwok.example"}
    ]
    # kubectl's own columns show it as a user would.
    row = cluster.kubectl("-n", edges, "get", "gateway", "ok", "--no-headers").stdout
    assert f"ok.{edges}.gateway.kwok.example" in row and "True" in row


def test_httproute_is_accepted_by_its_parent(cluster: Cluster, edges: str) -> None:
    def parents() -> list[dict[str, Any]]:
        route = cluster.get_json("-n", edges, "httproute", "ok")
        return list((route.get("status") or {}).get("parents") or [])

    [parent] = soon("HTTPRoute status.parents", parents)
    assert parent["controllerName"] == CONTROLLER
    assert parent["parentRef"]["name"] == "ok"
    assert parent["parentRef"]["sectionName"] == "http"
    assert {c["type"]: c["status"] for c in parent["conditions"]} == {
        "Accepted": "True",
        "ResolvedRefs": "True",
    }


def test_ingress_gets_a_load_balancer_hostname(cluster: Cluster, edges: str) -> None:
    def addresses() -> list[dict[str, str]]:
        ingress = cluster.get_json("-n", edges, "ingress", "ok")
        balancer = (ingress.get("status") or {}).get("loadBalancer") or {}
        return list(balancer.get("ingress") or [])

    assert soon("Ingress address", addresses) == [
        {"hostname": f"ok.{edges}.lb.kwok.example"}
    ]


def test_certificate_becomes_ready(cluster: Cluster, edges: str) -> None:
    def ready() -> dict[str, Any] | None:
        certificate = cluster.get_json("-n", edges, "certificate", "ok")
        return certificate if conditions(certificate).get("Ready") == "True" else None

    status = soon("Ready Certificate", ready)["status"]
    assert status["notAfter"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def test_pending_hosts_get_no_status(cluster: Cluster, edges: str) -> None:
    # Once the ready edge of the same namespace is done, the stages have seen both.
    soon(
        "Ready Certificate ok",
        lambda: (
            conditions(cluster.get_json("-n", edges, "certificate", "ok")).get("Ready")
            == "True"
        ),
    )
    time.sleep(1)
    gateway = cluster.get_json("-n", edges, "gateway", "pending")
    assert not gateway["status"].get("addresses")
    assert conditions(gateway)["Programmed"] == "Unknown"  # the CRD's default
    route = cluster.get_json("-n", edges, "httproute", "pending")
    assert not (route.get("status") or {}).get("parents")
    ingress = cluster.get_json("-n", edges, "ingress", "pending")
    assert not ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    certificate = cluster.get_json("-n", edges, "certificate", "pending")
    assert "Ready" not in conditions(certificate)


def test_a_gateway_of_another_class_is_left_alone(cluster: Cluster, edges: str) -> None:
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "other", "namespace": edges},
        "spec": {
            "gatewayClassName": "nosuch",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(gateway))
    soon(
        "Programmed Gateway ok",
        lambda: (
            conditions(cluster.get_json("-n", edges, "gateway", "ok")).get("Programmed")
            == "True"
        ),
    )
    time.sleep(1)
    other = cluster.get_json("-n", edges, "gateway", "other")
    assert conditions(other)["Programmed"] == "Unknown"
