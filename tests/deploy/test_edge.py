"""The edge's decisions (``tutoreks/deploy/edge.py``) from objects as the API server
returns them: what `tutor eks status` shows for a Gateway, an HTTPRoute, an ALB
Ingress, a Certificate, and what `tutor eks check` says of a GatewayClass."""

from __future__ import annotations

import copy
import datetime
import json
import typing as t
from pathlib import Path

import pytest

from tutoreks.config.masking import Scrubber
from tutoreks.deploy import edge
from tutoreks.exceptions import EksError

FIXTURES = Path(__file__).parent / "fixtures"
AT = datetime.datetime(2026, 12, 6, tzinfo=datetime.timezone.utc)


def fixture(name: str) -> dict[str, t.Any]:
    loaded = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_a_programmed_gateway_with_an_address_is_ready() -> None:
    item = edge.gateway_item(fixture("gateway-programmed.json"))
    assert item.ok
    assert item.status == "a1b2c3.elb.eu-west-1.amazonaws.com"
    assert item.data["hosts"] == ["lms.example.com", "studio.example.com"]
    assert item.detail == "hosts: lms.example.com, studio.example.com"


def test_a_gateway_its_controller_refused_says_why() -> None:
    item = edge.gateway_item(fixture("gateway-invalid-certificate.json"))
    assert not item.ok and item.status == "no address"
    assert "not programmed: Invalid: No listeners are valid: Secret" in item.detail


def test_a_gateway_no_controller_touched_names_its_class() -> None:
    gateway = fixture("gateway-programmed.json")
    del gateway["status"]
    item = edge.gateway_item(gateway)
    assert not item.ok
    assert (
        "no address yet: is the controller of GatewayClass eg running?" in item.detail
    )


def test_an_address_without_programmed_is_not_ready() -> None:
    gateway = fixture("gateway-programmed.json")
    gateway["status"]["conditions"] = gateway["status"]["conditions"][:1]
    assert not edge.gateway_item(gateway).ok


def test_a_route_refused_by_a_shared_gateway_names_it_and_why() -> None:
    item = edge.route_item(fixture("httproute-refused.json"))
    assert not item.ok and item.status == "refused"
    assert (
        "edge/shared: Accepted NotAllowedByListeners: No listeners included"
        in item.detail
    )


def test_an_accepted_route_is_ready_and_an_unattached_one_is_not() -> None:
    route = fixture("httproute-refused.json")
    accepted = copy.deepcopy(route)
    accepted["status"]["parents"][0]["conditions"][0].update(
        status="True", reason="Accepted"
    )
    item = edge.route_item(accepted)
    assert item.ok and item.status == "accepted"
    assert item.data["hosts"] == ["lms.qa.example.com"]
    del route["status"]
    lonely = edge.route_item(route)
    assert not lonely.ok and lonely.status == "not attached"
    assert "no Gateway has accepted it yet" in lonely.detail


def test_an_alb_ingress_shows_the_alb_host_name() -> None:
    item = edge.ingress_item(fixture("ingress-alb.json"), "hint")
    assert item.ok
    assert item.data["addresses"] == [
        "k8s-openedxstack-0a1b2c3d4e-1234567890.eu-west-1.elb.amazonaws.com"
    ]
    pending = fixture("ingress-alb.json")
    del pending["status"]
    item = edge.ingress_item(pending, "is the AWS Load Balancer Controller running?")
    assert not item.ok
    assert item.detail.endswith("is the AWS Load Balancer Controller running?")


def test_the_hint_names_the_controller_of_the_edge() -> None:
    assert "AWS Load Balancer Controller" in edge.controller_hint({"EKS_EDGE": "alb"})
    hint = edge.controller_hint({"EKS_EDGE": "ingress", "EKS_INGRESS_CLASS": "traefik"})
    assert "traefik ingress controller" in hint


def certificate(ready: str, not_after: str, message: str = "") -> dict[str, t.Any]:
    return {
        "metadata": {"name": "openedx-tls"},
        "status": {
            "notAfter": not_after,
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "Why", "message": message}
            ],
        },
    }


@pytest.mark.parametrize(
    ("ready", "not_after", "ok", "said"),
    [
        (
            "True",
            "2027-03-01T00:00:00Z",
            True,
            "expires 2027-03-01T00:00:00Z (in 85 days)",
        ),
        ("True", "2026-12-01T00:00:00Z", False, "EXPIRED 2026-12-01T00:00:00Z"),
        ("False", "", False, "Why: "),
    ],
)
def test_certificate_readiness_and_expiry(
    ready: str, not_after: str, ok: bool, said: str
) -> None:
    item = edge.certificate_item(certificate(ready, not_after), AT, Scrubber([]))
    assert item.ok is ok
    assert said in item.detail


def test_certificate_message_is_scrubbed_of_secret_values() -> None:
    secret = "s3cr3t-Value-42"
    item = edge.certificate_item(
        certificate("False", "", f"order failed for {secret}"), AT, Scrubber([secret])
    )
    assert secret not in item.detail


def test_missing_apis_are_said_once() -> None:
    assert [i.status for i in edge.route_items(None)] == ["no API"]
    assert "Gateway API" in edge.route_items(None)[0].detail
    assert "cert-manager" in edge.certificate_items(None, AT, Scrubber([]))[0].detail


def test_gateway_class_verdicts() -> None:
    with pytest.raises(EksError, match="GatewayClass eg does not exist"):
        edge.class_verdict("eg", None)
    klass: dict[str, t.Any] = {
        "spec": {"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"}
    }
    assert edge.class_verdict("eg", klass).startswith("WARNING: GatewayClass eg exists")
    klass["status"] = {"conditions": [{"type": "Accepted", "status": "True"}]}
    assert "accepted by gateway.envoyproxy.io" in edge.class_verdict("eg", klass)
    klass["status"]["conditions"][0].update(
        status="False", reason="InvalidParameters", message="no such EnvoyProxy"
    )
    with pytest.raises(EksError, match=r"refused .* InvalidParameters: no such"):
        edge.class_verdict("eg", klass)


def test_caddy_service_of_another_instance_is_not_ours() -> None:
    service = {
        "metadata": {"labels": {"app.kubernetes.io/instance": "openedx-other"}},
        "spec": {"type": "LoadBalancer"},
    }
    assert edge.caddy_item(service, "mine").status == "none"
    assert edge.caddy_item(None, "mine").status == "none"
