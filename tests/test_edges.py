"""The edge modes after ingress-nginx: a Gateway API Gateway and its HTTPRoutes,
an ALB Ingress for the AWS Load Balancer Controller. Real Tutor renders, `kubectl
kustomize` builds, and every object validates against Kubernetes' schemas, the
Gateway API's CRDs and cert-manager's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from .conftest import Project, find, validate
from .test_render import applied_by_start

Schemas = dict[tuple[str, str], dict[str, t.Any]]

GATEWAY_API_MODULE = "sigs.k8s.io/gateway-api"
GATEWAY_API_VERSION = "v1.6.3"
HOSTS = [
    "lms.dev.example.com",
    "studio.dev.example.com",
    "meilisearch.lms.dev.example.com",
]
GATEWAY = {"TUTOR_EKS_EDGE": "gateway", "TUTOR_EKS_GATEWAY_CLASS": "eg"}
ALB = {"TUTOR_EKS_EDGE": "alb"}
ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def strict(schema: t.Any) -> t.Any:
    """Unknown fields refused, as the API server's strict field validation does."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@pytest.fixture(scope="session")
def schemas(crd_schemas: Schemas) -> Schemas:
    """cert-manager's and the Gateway API's (standard channel) CRD schemas."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    found = subprocess.run(
        [go, "mod", "download", "-json", f"{GATEWAY_API_MODULE}@{GATEWAY_API_VERSION}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd="/",
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    folder = Path(json.loads(found.stdout)["Dir"]) / "config/crd/standard"
    result = dict(crd_schemas)
    for path in sorted(folder.glob("gateway.networking.k8s.io_*.yaml")):
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            for version in crd["spec"]["versions"]:
                key = (
                    f"{crd['spec']['group']}/{version['name']}",
                    crd["spec"]["names"]["kind"],
                )
                result[key] = strict(version["schema"]["openAPIV3Schema"])
    assert ("gateway.networking.k8s.io/v1", "HTTPRoute") in result
    return result


def build(
    project: Project, schemas: Schemas, env: dict[str, str]
) -> list[dict[str, t.Any]]:
    project.save("dev", env=env)
    objects = project.kustomize()
    for obj in objects:
        validate(obj, schemas)
    return applied_by_start(objects)


def kinds(objects: list[dict[str, t.Any]]) -> set[str]:
    return {o["kind"] for o in objects}


def test_gateway_edge(project: Project, schemas: Schemas) -> None:
    objects = build(project, schemas, GATEWAY)
    assert "Ingress" not in kinds(objects)
    gateway = find(objects, "Gateway", "openedx")
    assert gateway["metadata"]["namespace"] == "openedx-dev"
    assert gateway["spec"]["gatewayClassName"] == "eg"
    listeners = gateway["spec"]["listeners"]
    for port, protocol in ((80, "HTTP"), (443, "HTTPS")):
        served = [
            item["hostname"]
            for item in listeners
            if (item["port"], item["protocol"]) == (port, protocol)
        ]
        assert served == HOSTS, f"every public host has an {protocol} listener"
    for listener in listeners:
        if listener["protocol"] == "HTTPS":
            assert listener["tls"] == {
                "mode": "Terminate",
                "certificateRefs": [{"kind": "Secret", "name": "openedx-tls"}],
            }
    route = find(objects, "HTTPRoute", "openedx")
    assert route["spec"]["hostnames"] == HOSTS
    https = {item["name"] for item in listeners if item["protocol"] == "HTTPS"}
    assert {p["sectionName"] for p in route["spec"]["parentRefs"]} == https
    assert route["spec"]["rules"] == [{"backendRefs": [{"name": "caddy", "port": 80}]}]
    redirect = find(objects, "HTTPRoute", "openedx-redirect")
    http = {item["name"] for item in listeners if item["protocol"] == "HTTP"}
    assert {p["sectionName"] for p in redirect["spec"]["parentRefs"]} == http
    assert redirect["spec"]["rules"][0]["filters"] == [
        {
            "type": "RequestRedirect",
            "requestRedirect": {"scheme": "https", "statusCode": 301},
        }
    ]
    certificate = find(objects, "Certificate", "openedx-tls")
    assert certificate["spec"]["dnsNames"] == HOSTS
    solver = find(objects, "ClusterIssuer")["spec"]["acme"]["solvers"][0]["http01"]
    assert solver == {
        "gatewayHTTPRoute": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": "openedx",
                    "namespace": "openedx-dev",
                }
            ]
        }
    }
    assert find(objects, "Service", "caddy")["spec"]["type"] == "ClusterIP"


def test_gateway_covers_a_plugins_host(project: Project, schemas: Schemas) -> None:
    pytest.importorskip("tutormfe")
    project.tutor("plugins", "enable", "mfe")
    env = {**GATEWAY, "TUTOR_EKS_EXTRA_HOSTS": '["*.preview.example.com"]'}
    objects = build(project, schemas, env)
    listeners = find(objects, "Gateway")["spec"]["listeners"]
    served = {item["hostname"] for item in listeners}
    assert {"apps.lms.dev.example.com", "*.preview.example.com"} <= served
    names = [item["name"] for item in listeners]
    assert len(names) == len(set(names))
    route = find(objects, "HTTPRoute", "openedx")
    assert "apps.lms.dev.example.com" in route["spec"]["hostnames"]
    assert (
        "apps.lms.dev.example.com" in find(objects, "Certificate")["spec"]["dnsNames"]
    )


def test_gateway_attached_to_a_shared_gateway(
    project: Project, schemas: Schemas
) -> None:
    env = {"TUTOR_EKS_EDGE": "gateway", "TUTOR_EKS_GATEWAY": "edge/shared"}
    objects = build(project, schemas, env)
    assert not kinds(objects) & {"Gateway", "Ingress", "Certificate", "ClusterIssuer"}
    route = find(objects, "HTTPRoute")
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "shared",
            "namespace": "edge",
        }
    ]
    assert route["spec"]["hostnames"] == HOSTS


def test_gateway_without_https(project: Project, schemas: Schemas) -> None:
    objects = build(project, schemas, {**GATEWAY, "TUTOR_ENABLE_HTTPS": "false"})
    listeners = find(objects, "Gateway")["spec"]["listeners"]
    assert {item["protocol"] for item in listeners} == {"HTTP"}
    route = find(objects, "HTTPRoute")
    assert {p["sectionName"] for p in route["spec"]["parentRefs"]} == {
        item["name"] for item in listeners
    }
    assert not kinds(objects) & {"Certificate", "ClusterIssuer"}


def test_alb_edge_with_acm_certificate(project: Project, schemas: Schemas) -> None:
    env = {
        **ALB,
        "TUTOR_EKS_ACM_CERTIFICATE_ARN": ARN,
        "TUTOR_EKS_ALB_GROUP": "openedx-stack",
    }
    objects = build(project, schemas, env)
    assert not kinds(objects) & {"Certificate", "ClusterIssuer", "Issuer", "Gateway"}
    ingress = find(objects, "Ingress", "openedx")
    assert ingress["spec"]["ingressClassName"] == "alb"
    assert [r["host"] for r in ingress["spec"]["rules"]] == HOSTS
    for rule in ingress["spec"]["rules"]:
        backend = rule["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "caddy", "port": {"number": 80}}
    assert "tls" not in ingress["spec"]
    annotations = ingress["metadata"]["annotations"]
    prefix = "alb.ingress.kubernetes.io/"
    assert annotations[prefix + "scheme"] == "internet-facing"
    assert annotations[prefix + "target-type"] == "ip"
    assert json.loads(annotations[prefix + "listen-ports"]) == [
        {"HTTP": 80},
        {"HTTPS": 443},
    ]
    assert annotations[prefix + "ssl-redirect"] == "443"
    assert annotations[prefix + "healthcheck-path"] == "/heartbeat"
    assert annotations[prefix + "certificate-arn"] == ARN
    assert annotations[prefix + "group.name"] == "openedx-stack"
    assert not [a for a in annotations if a.startswith("cert-manager.io/")]
    assert find(objects, "Service", "caddy")["spec"]["type"] == "ClusterIP"


def test_alb_edge_discovers_certificates(project: Project, schemas: Schemas) -> None:
    project.write(
        "environments/dev/config.yml",
        project.path.joinpath("environments/dev/config.yml").read_text()
        + "EKS_EDGE: alb\nEKS_ALB_ANNOTATIONS:\n"
        "  alb.ingress.kubernetes.io/wafv2-acl-arn: arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/x/1\n"
        "  alb.ingress.kubernetes.io/scheme: internal\n"
        "  alb.ingress.kubernetes.io/group.order: 10\n",
    )
    objects = build(project, schemas, {})
    ingress = find(objects, "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": HOSTS}], (
        "without an ARN the controller discovers ACM certificates by host"
    )
    assert (
        "alb.ingress.kubernetes.io/certificate-arn"
        not in ingress["metadata"]["annotations"]
    )
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internal"
    assert annotations["alb.ingress.kubernetes.io/group.order"] == "10"
    assert annotations["alb.ingress.kubernetes.io/wafv2-acl-arn"].startswith(
        "arn:aws:wafv2"
    )
    assert not kinds(objects) & {"Certificate", "ClusterIssuer"}
    caddyfile = project.env_file("apps/caddy/Caddyfile")
    heartbeat = caddyfile[caddyfile.index("EKS_EDGE alb") :]
    assert "handle /heartbeat" in heartbeat
    assert "header_up Host lms.dev.example.com" in heartbeat


def test_alb_caddy_health_site_only_in_alb_mode(project: Project) -> None:
    project.save("dev")
    assert "/heartbeat" not in project.env_file("apps/caddy/Caddyfile")
