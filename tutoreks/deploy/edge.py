"""The edge on the cluster (``EKS_EDGE``, rendered by ``render/edge.py``): what
``tutor eks check`` requires before a deploy, and the rows of ``tutor eks status``.

- ``ingress``: the IngressClass; with HTTPS, cert-manager's CRDs. Status: each
  Ingress of the instance and its load balancer address, each Certificate.
- ``gateway``: the Gateway API's CRDs, and the GatewayClass (own Gateway) or the
  Gateway of ``EKS_GATEWAY``; with HTTPS and an own Gateway, cert-manager's CRDs.
  Status: the Gateway (its address, whether it is programmed), each HTTPRoute
  (whether its Gateway accepted it), each Certificate.
- ``alb``: the IngressClass ``alb`` (the AWS Load Balancer Controller makes it).
  Status: the Ingress and its ALB host name.
- ``caddy``: nothing to require. Status: caddy's LoadBalancer Service.

Decisions are pure functions of the objects read (``*_item``, ``class_verdict``);
``status_sections`` and ``checks`` read them.
"""

from __future__ import annotations

import datetime
import typing as t

from .. import tutor_compat
from ..config.masking import Scrubber
from ..exceptions import EksError
from ..kube import (
    CERTIFICATES,
    CRDS,
    INGRESS_CLASSES,
    INGRESSES,
    SERVICES,
    KubeError,
    Resource,
)
from ..render.edge import ALB_CLASS, gateway_ref, issues_certificates
from .pods import condition_of
from .report import Item

if t.TYPE_CHECKING:
    from ..kube import Kube

GATEWAY_API = "gateway.networking.k8s.io"
GATEWAYS = Resource(GATEWAY_API, "v1", "gateways", "Gateway")
HTTP_ROUTES = Resource(GATEWAY_API, "v1", "httproutes", "HTTPRoute")
GATEWAY_CLASSES = Resource(GATEWAY_API, "v1", "gatewayclasses", "GatewayClass", False)
CERT_MANAGER_CRDS = ("certificates", "clusterissuers", "issuers")
Check = t.Callable[[], str]  # returns the detail; raises on failure
Section = tuple[str, t.Callable[[], list[Item]]]


# --- tutor eks check ----------------------------------------------------------------


def checks(config: t.Mapping[str, t.Any], kube: Kube) -> list[tuple[str, Check]]:
    """What the edge of ``config`` needs on the cluster, each a check."""
    edge = config.get("EKS_EDGE")
    found: list[tuple[str, Check]] = []
    if edge in ("ingress", "alb"):
        name = ALB_CLASS if edge == "alb" else str(config["EKS_INGRESS_CLASS"])
        found.append(("ingressclass", exists(kube, INGRESS_CLASSES, name)))
    if edge == "gateway":
        found += [
            (f"crd {crd}", exists(kube, CRDS, crd))
            for crd in (f"gateways.{GATEWAY_API}", f"httproutes.{GATEWAY_API}")
        ]
        found.append(gateway_check(config, kube))
    if issues_certificates(config):
        issuers = (
            "clusterissuers"
            if config["EKS_ISSUER_KIND"] == "ClusterIssuer"
            else "issuers"
        )
        found += [
            (
                f"crd {kind}.cert-manager.io",
                exists(kube, CRDS, f"{kind}.cert-manager.io"),
            )
            for kind in ("certificates", issuers)
        ]
    return found


def exists(
    kube: Kube, resource: Resource, name: str, namespace: str | None = None
) -> Check:
    kind = "CRD" if resource is CRDS else resource.kind
    what = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"

    def check() -> str:
        if kube.get(resource, name, namespace) is None:
            raise EksError(f"{what} does not exist")
        return f"{what} exists"

    return check


def gateway_check(config: t.Mapping[str, t.Any], kube: Kube) -> tuple[str, Check]:
    """The GatewayClass of the environment's own Gateway, or the shared Gateway."""
    ref = gateway_ref(config.get("EKS_GATEWAY"), "EKS_GATEWAY")
    if ref is not None:
        namespace = ref.namespace or str(config["K8S_NAMESPACE"])
        return "gateway", exists(kube, GATEWAYS, ref.name, namespace)
    name = str(config.get("EKS_GATEWAY_CLASS") or "")

    def check() -> str:
        return class_verdict(name, kube.get(GATEWAY_CLASSES, name))

    return "gatewayclass", check


def class_verdict(name: str, gateway_class: dict[str, t.Any] | None) -> str:
    """Whether a GatewayClass can serve the Gateway: it exists, and its controller
    has not refused it (not accepted yet is a warning: is the controller running?)."""
    if gateway_class is None:
        raise EksError(
            f"GatewayClass {name} does not exist: install its Gateway controller, "
            "or set EKS_GATEWAY_CLASS to one of `kubectl get gatewayclass`"
        )
    controller = str((gateway_class.get("spec") or {}).get("controllerName") or "?")
    accepted = condition_of(gateway_class, "Accepted")
    if accepted.get("status") == "True":
        return f"GatewayClass {name} exists, accepted by {controller}"
    if accepted.get("status") == "False":
        raise EksError(
            f"GatewayClass {name} was refused by its controller {controller}: "
            f"{accepted.get('reason', '')}: {accepted.get('message', '')}"
        )
    return (
        f"WARNING: GatewayClass {name} exists but {controller} has not accepted it "
        "yet: is its controller running?"
    )


# --- tutor eks status ---------------------------------------------------------------


def status_sections(
    kube: Kube, config: t.Mapping[str, t.Any], namespace: str, scrub: Scrubber
) -> list[Section]:
    """The edge's rows of ``tutor eks status``, each section read on its own."""
    edge = config.get("EKS_EDGE")
    selector = tutor_compat.instance_selector(str(config["ID"]))
    sections: list[Section] = []
    if edge in ("ingress", "alb"):
        hint = controller_hint(config)
        sections.append(
            (
                "Ingress",
                lambda: ingress_items(kube.list(INGRESSES, namespace, selector), hint),
            )
        )
    if edge == "gateway":
        sections += [
            ("Gateway", lambda: gateway_items(kube, config, namespace, selector)),
            (
                "HTTPRoute",
                lambda: route_items(listed(kube, HTTP_ROUTES, namespace, selector)),
            ),
        ]
    if issues_certificates(config):
        sections.append(
            (
                "Certificate",
                lambda: certificate_items(
                    listed(kube, CERTIFICATES, namespace, selector), now(), scrub
                ),
            )
        )
    if edge == "caddy":
        sections.append(
            (
                "Service",
                lambda: [
                    caddy_item(
                        kube.get(SERVICES, "caddy", namespace), str(config["ID"])
                    )
                ],
            )
        )
    return sections


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def listed(
    kube: Kube, resource: Resource, namespace: str, selector: str
) -> list[dict[str, t.Any]] | None:
    """The objects, or None when the cluster does not serve their API (a CRD missing)."""
    try:
        return kube.list(resource, namespace, selector)
    except KubeError as e:
        if e.status == 404:
            return None
        raise


def no_api(kind: str) -> Item:
    owner = "cert-manager's" if kind == "Certificate" else "the Gateway API's"
    return Item(
        kind,
        "-",
        False,
        "no API",
        f"{owner} {kind} API is not installed on the cluster",
    )


def controller_hint(config: t.Mapping[str, t.Any]) -> str:
    if config.get("EKS_EDGE") == "alb":
        return "is the AWS Load Balancer Controller running?"
    return f"is the {config.get('EKS_INGRESS_CLASS')} ingress controller running?"


def by_name(objects: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    return sorted(objects, key=lambda o: str(o["metadata"].get("name")))


def ingress_items(found: list[dict[str, t.Any]], hint: str) -> list[Item]:
    if not found:
        return [Item("Ingress", "-", False, "none", "no Ingress of this instance")]
    return [ingress_item(ingress, hint) for ingress in by_name(found)]


def ingress_item(ingress: dict[str, t.Any], hint: str) -> Item:
    spec = ingress.get("spec") or {}
    hosts = [
        str(rule.get("host"))
        for rule in spec.get("rules") or []
        if isinstance(rule, dict) and rule.get("host")
    ]
    addresses = load_balancer_addresses(ingress)
    waiting = "" if addresses else f"; no load balancer address yet: {hint}"
    return Item(
        "Ingress",
        str(ingress["metadata"]["name"]),
        bool(addresses),
        ", ".join(addresses) or "no address",
        "hosts: " + ", ".join(hosts) + waiting,
        {"hosts": hosts, "addresses": addresses},
    )


def load_balancer_addresses(obj: dict[str, t.Any]) -> list[str]:
    """``status.loadBalancer.ingress`` of an Ingress or a Service."""
    entries = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    return [
        str(entry.get("hostname") or entry.get("ip"))
        for entry in entries or []
        if isinstance(entry, dict) and (entry.get("hostname") or entry.get("ip"))
    ]


def gateway_items(
    kube: Kube, config: t.Mapping[str, t.Any], namespace: str, selector: str
) -> list[Item]:
    """The environment's own Gateway, or the shared one of ``EKS_GATEWAY``."""
    ref = gateway_ref(config.get("EKS_GATEWAY"), "EKS_GATEWAY")
    try:
        if ref is None:
            found = kube.list(GATEWAYS, namespace, selector)
        else:
            shared = kube.get(GATEWAYS, ref.name, ref.namespace or namespace)
            found = [shared] if shared else []
    except KubeError as e:
        if e.status != 404:
            raise
        return [no_api("Gateway")]
    if not found:
        what = f"Gateway {ref.display()}" if ref else "Gateway of this instance"
        return [Item("Gateway", "-", False, "none", f"no {what}")]
    return [gateway_item(gateway) for gateway in by_name(found)]


def gateway_item(gateway: dict[str, t.Any]) -> Item:
    """Ready when programmed by its controller and given an address."""
    spec, state = gateway.get("spec") or {}, gateway.get("status") or {}
    addresses = [
        str(a["value"])
        for a in state.get("addresses") or []
        if isinstance(a, dict) and a.get("value")
    ]
    hosts = [
        str(listener["hostname"])
        for listener in spec.get("listeners") or []
        if isinstance(listener, dict) and listener.get("hostname")
    ]
    programmed = condition_of(gateway, "Programmed")
    ok = programmed.get("status") == "True" and bool(addresses)
    why = ""
    if not ok:
        why = (
            f"; not programmed: {programmed.get('reason', '')}: {programmed.get('message', '')}"
            if programmed.get("status") == "False"
            else f"; no address yet: is the controller of GatewayClass "
            f"{spec.get('gatewayClassName', '?')} running?"
        )
    return Item(
        "Gateway",
        str(gateway["metadata"]["name"]),
        ok,
        ", ".join(addresses) or "no address",
        "hosts: " + ", ".join(dict.fromkeys(hosts)) + why,
        {"hosts": list(dict.fromkeys(hosts)), "addresses": addresses},
    )


def route_items(found: list[dict[str, t.Any]] | None) -> list[Item]:
    if found is None:
        return [no_api("HTTPRoute")]
    if not found:
        return [Item("HTTPRoute", "-", False, "none", "no HTTPRoute of this instance")]
    return [route_item(route) for route in by_name(found)]


def route_item(route: dict[str, t.Any]) -> Item:
    """Ready when every Gateway it names accepted it and resolved its backends."""
    hosts = [str(h) for h in (route.get("spec") or {}).get("hostnames") or []]
    parents = [
        p
        for p in (route.get("status") or {}).get("parents") or []
        if isinstance(p, dict)
    ]
    refused = [
        f"{parent_name(p)}: {c.get('type')} {c.get('reason', '')}: {c.get('message', '')}"
        for p in parents
        for c in p.get("conditions") or []
        if isinstance(c, dict)
        and c.get("type") in ("Accepted", "ResolvedRefs")
        and c.get("status") != "True"
    ]
    ok = bool(parents) and not refused
    status = "accepted" if ok else ("refused" if refused else "not attached")
    why = "; ".join(refused) or ("" if parents else "no Gateway has accepted it yet")
    return Item(
        "HTTPRoute",
        str(route["metadata"]["name"]),
        ok,
        status,
        "hosts: " + ", ".join(hosts) + (f"; {why}" if why else ""),
        {"hosts": hosts},
    )


def parent_name(parent: dict[str, t.Any]) -> str:
    ref = parent.get("parentRef") or {}
    name = (
        f"{ref.get('namespace')}/{ref.get('name')}"
        if ref.get("namespace")
        else str(ref.get("name"))
    )
    return f"{name}/{ref['sectionName']}" if ref.get("sectionName") else name


def certificate_items(
    found: list[dict[str, t.Any]] | None, at: datetime.datetime, scrub: Scrubber
) -> list[Item]:
    if found is None:
        return [no_api("Certificate")]
    if not found:
        return [
            Item("Certificate", "-", False, "none", "no Certificate of this instance")
        ]
    return [certificate_item(c, at, scrub) for c in by_name(found)]


def certificate_item(
    certificate: dict[str, t.Any], at: datetime.datetime, scrub: Scrubber
) -> Item:
    """Ready when cert-manager says so and it has not expired at ``at``."""
    ready = condition_of(certificate, "Ready")
    expiry = str((certificate.get("status") or {}).get("notAfter") or "")
    expires = parse_time(expiry)
    ok = ready.get("status") == "True" and (expires is None or expires > at)
    when = "no expiry yet"
    if expires is not None:
        when = (
            f"expires {expiry} (in {(expires - at).days} days)"
            if expires > at
            else f"EXPIRED {expiry}"
        )
    message = scrub(str(ready.get("message") or ""))
    detail = when if ok else f"{ready.get('reason') or 'not issued'}: {message}; {when}"
    return Item(
        "Certificate",
        str(certificate["metadata"]["name"]),
        ok,
        "Ready" if ready.get("status") == "True" else "not ready",
        detail,
        {"expires": expiry or None},
    )


def parse_time(text: str) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def caddy_item(service: dict[str, t.Any] | None, instance_id: str) -> Item:
    """caddy's LoadBalancer Service (``EKS_EDGE: caddy``) and its address."""
    label = tutor_compat.instance_label_value(instance_id)
    labels = ((service or {}).get("metadata") or {}).get("labels") or {}
    if service is None or labels.get(tutor_compat.INSTANCE_LABEL) != label:
        return Item(
            "Service", "caddy", False, "none", "no caddy Service of this instance"
        )
    kind = (service.get("spec") or {}).get("type")
    if kind != "LoadBalancer":
        return Item(
            "Service",
            "caddy",
            False,
            str(kind),
            "EKS_EDGE caddy expects a LoadBalancer",
        )
    addresses = load_balancer_addresses(service)
    return Item(
        "Service",
        "caddy",
        bool(addresses),
        ", ".join(addresses) or "no address",
        "" if addresses else "the load balancer has no hostname yet",
        {"addresses": addresses},
    )
