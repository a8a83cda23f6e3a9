"""The edge: what faces the internet in front of Caddy (``EKS_EDGE``).

- ``ingress``: an Ingress of class ``EKS_INGRESS_CLASS`` (any controller), TLS by
  cert-manager (the environment's issuer and a Certificate);
- ``gateway``: a Gateway API Gateway of class ``EKS_GATEWAY_CLASS`` with an HTTP
  and an HTTPS listener per public host, an HTTPRoute to Caddy and one that
  redirects HTTP to HTTPS, TLS by cert-manager; or, with ``EKS_GATEWAY``, only an
  HTTPRoute attached to a Gateway someone else runs (TLS is theirs);
- ``alb``: an Ingress of class ``alb`` for the AWS Load Balancer Controller, TLS on
  the ALB with ACM certificates (``EKS_ACM_CERTIFICATE_ARN``, or discovered by host
  name), ``EKS_ALB_GROUP`` to share one ALB, ``EKS_ALB_ANNOTATIONS`` for the rest;
- ``caddy``: Caddy's own LoadBalancer Service (a Classic Load Balancer on EKS).

This module chooses the default manifests of the edge and computes what their
templates (``templates/eks/k8s/defaults/``) need, checking the settings first:
a mistake names the setting and where it was set.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass

from ..exceptions import EksError

#: The name of the environment's own Gateway (and of its Ingress).
GATEWAY_NAME = "openedx"
#: An HTTPRoute names at most 16 host names (and a Gateway holds at most 64
#: listeners: one HTTP and one HTTPS per host).
MAX_ROUTE_HOSTNAMES = 16
ALB = "alb.ingress.kubernetes.io/"
ALB_CLASS = "alb"
HEALTH_CHECK_PATH = "/heartbeat"
ACM_ARN = re.compile(
    r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$"
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
ALB_GROUP = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
ANNOTATION_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")

Sources = t.Callable[[str], str]


@dataclass(frozen=True)
class GatewayRef:
    """The Gateway the HTTPRoutes attach to; ``namespace`` None: the environment's."""

    name: str
    namespace: str | None = None

    def display(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def issues_certificates(config: t.Mapping[str, t.Any]) -> bool:
    """Whether cert-manager issues the environment's certificate: with HTTPS, in
    ``ingress`` mode and in ``gateway`` mode with its own Gateway."""
    if not config.get("ENABLE_HTTPS"):
        return False
    edge = config.get("EKS_EDGE")
    return edge == "ingress" or (edge == "gateway" and not config.get("EKS_GATEWAY"))


def default_templates(config: t.Mapping[str, t.Any]) -> dict[str, str]:
    """The default manifests of the edge: name (``k8s/<name>.yml`` replaces it)
    -> template file under ``templates/eks/k8s/defaults/``."""
    edge = config.get("EKS_EDGE")
    chosen: dict[str, str] = {}
    if edge == "ingress":
        chosen["ingress"] = "ingress"
    elif edge == "alb":
        chosen["ingress"] = "ingress-alb"
    elif edge == "gateway":
        if not config.get("EKS_GATEWAY"):
            chosen["gateway"] = "gateway"
        chosen["httproute"] = "httproute"
    if issues_certificates(config):
        chosen.update(issuer="issuer", certificate="certificate")
    return chosen


def template_values(
    config: t.Mapping[str, t.Any], hosts: list[str], source: Sources
) -> dict[str, t.Any]:
    """``eks_edge`` in the manifests' templates, for the edge mode of ``config``."""
    edge = config.get("EKS_EDGE")
    if edge == "gateway":
        return gateway_values(config, hosts, source)
    if edge == "alb":
        return {"alb_annotations": alb_annotations(config, source)}
    return {}


# --- gateway --------------------------------------------------------------------


def gateway_values(
    config: t.Mapping[str, t.Any], hosts: list[str], source: Sources
) -> dict[str, t.Any]:
    attached = gateway_ref(config.get("EKS_GATEWAY"), source("EKS_GATEWAY"))
    if attached is None:
        gateway_class(config.get("EKS_GATEWAY_CLASS"), source)
    if len(hosts) > MAX_ROUTE_HOSTNAMES:
        raise EksError(
            f"EKS_EDGE gateway: {len(hosts)} public hosts ({', '.join(hosts)}) are "
            f"more than the {MAX_ROUTE_HOSTNAMES} host names an HTTPRoute holds; "
            f"serve fewer hosts (EKS_EXTRA_HOSTS: {source('EKS_EXTRA_HOSTS')}) or "
            "use the ingress edge."
        )
    gateway = attached or GatewayRef(GATEWAY_NAME)
    return {
        "attached": attached is not None,
        "gateway": {"name": gateway.name, "namespace": gateway.namespace},
        "listeners": listeners(hosts),
        "redirect": attached is None and bool(config.get("ENABLE_HTTPS")),
    }


def gateway_ref(value: t.Any, source: str) -> GatewayRef | None:
    """``EKS_GATEWAY``: "" (the environment's own Gateway), "name" or "namespace/name"."""
    if value in (None, ""):
        return None
    parts = value.split("/") if isinstance(value, str) else []
    names_ok = len(parts) in (1, 2) and all(DNS_NAME.match(p) for p in parts)
    if not names_ok or (len(parts) == 2 and not DNS_LABEL.match(parts[0])):
        raise EksError(
            f'{source}: EKS_GATEWAY must name a Gateway as "name" or '
            '"namespace/name" (lower-case Kubernetes names), e.g. '
            "EKS_GATEWAY: gateways/shared."
        )
    return GatewayRef(parts[-1], parts[0] if len(parts) == 2 else None)


def gateway_class(value: t.Any, source: Sources) -> str:
    if isinstance(value, str) and DNS_NAME.match(value):
        return value
    if value in (None, ""):
        raise EksError(
            f"{source('EKS_EDGE')}: EKS_EDGE is gateway and EKS_GATEWAY_CLASS is "
            "empty: set it "
            "to the GatewayClass of your Gateway controller (`kubectl get "
            "gatewayclass`), or set EKS_GATEWAY to attach to an existing Gateway."
        )
    raise EksError(
        f"{source('EKS_GATEWAY_CLASS')}: EKS_GATEWAY_CLASS must be the name of a "
        "GatewayClass "
        "(a lower-case Kubernetes name)."
    )


def listeners(hosts: list[str]) -> list[dict[str, str]]:
    """An HTTP and an HTTPS listener name per host, unique within the Gateway."""
    found: list[dict[str, str]] = []
    taken: set[str] = set()
    for index, host in enumerate(hosts):
        slug = host.replace("*", "wildcard").replace(".", "-")[:240]
        if slug in taken:
            slug = f"{slug[:230]}-{index}"
        taken.add(slug)
        found.append({"host": host, "http": f"http-{slug}", "https": f"https-{slug}"})
    return found


# --- alb --------------------------------------------------------------------------


def alb_annotations(config: t.Mapping[str, t.Any], source: Sources) -> dict[str, str]:
    """The AWS Load Balancer Controller's annotations: an internet-facing ALB to the
    pods' IPs, HTTP redirected to HTTPS, the health check, the certificate, the
    group; ``EKS_ALB_ANNOTATIONS`` added last (it may override any of them)."""
    https = bool(config.get("ENABLE_HTTPS"))
    ports = [{"HTTP": 80}, {"HTTPS": 443}] if https else [{"HTTP": 80}]
    found = {
        f"{ALB}scheme": "internet-facing",
        f"{ALB}target-type": "ip",
        f"{ALB}listen-ports": listen_ports(ports),
        f"{ALB}healthcheck-path": HEALTH_CHECK_PATH,
    }
    if https:
        found[f"{ALB}ssl-redirect"] = "443"
    arns = acm_arns(config.get("EKS_ACM_CERTIFICATE_ARN"), source)
    if arns:
        found[f"{ALB}certificate-arn"] = ",".join(arns)
    group = alb_group(config.get("EKS_ALB_GROUP"), source("EKS_ALB_GROUP"))
    if group:
        found[f"{ALB}group.name"] = group
    found.update(
        extra_annotations(
            config.get("EKS_ALB_ANNOTATIONS"), source("EKS_ALB_ANNOTATIONS")
        )
    )
    return found


def listen_ports(ports: list[dict[str, int]]) -> str:
    return json.dumps(ports, separators=(", ", ": "))


def acm_arns(value: t.Any, source: Sources) -> list[str]:
    """``EKS_ACM_CERTIFICATE_ARN``: ACM certificate ARNs, comma-separated."""
    if value in (None, ""):
        return []
    arns = [a.strip() for a in value.split(",")] if isinstance(value, str) else [""]
    bad = [a for a in arns if not ACM_ARN.match(a)]
    if bad:
        raise EksError(
            f"{source('EKS_ACM_CERTIFICATE_ARN')}: EKS_ACM_CERTIFICATE_ARN must be "
            "ACM certificate ARNs, comma-separated, each like "
            "arn:aws:acm:<region>:<account>:certificate/<id>."
        )
    return arns


def alb_group(value: t.Any, source: str) -> str:
    if value in (None, ""):
        return ""
    if isinstance(value, str) and ALB_GROUP.match(value):
        return value
    raise EksError(
        f"{source}: EKS_ALB_GROUP must be an ALB group name: at most 63 lower-case "
        "letters, digits, '-' and '.', starting and ending with a letter or digit."
    )


def extra_annotations(value: t.Any, source: str) -> dict[str, str]:
    """``EKS_ALB_ANNOTATIONS``: annotation -> text (numbers and booleans as text)."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise EksError(
            f"{source}: EKS_ALB_ANNOTATIONS must be a mapping of annotation to "
            f"text, not a {type(value).__name__}."
        )
    return {
        annotation_key(key, source): annotation_text(key, text, source)
        for key, text in value.items()
    }


def annotation_key(key: t.Any, source: str) -> str:
    prefix, _, name = str(key).rpartition("/")
    if (
        isinstance(key, str)
        and ANNOTATION_NAME.match(name)
        and (not prefix or (len(prefix) <= 253 and DNS_NAME.match(prefix)))
    ):
        return key
    raise EksError(
        f"{source}: EKS_ALB_ANNOTATIONS has the key {str(key)!r}, which is not an "
        "annotation name (an optional DNS prefix and '/', then at most 63 "
        "letters, digits, '-', '_' and '.')."
    )


def annotation_text(key: str, value: t.Any, source: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise EksError(
        f"{source}: EKS_ALB_ANNOTATIONS[{key!r}] must be text, not a "
        f"{type(value).__name__} (write a JSON value as a quoted string)."
    )
