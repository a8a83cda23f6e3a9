"""The least-privilege RBAC of the CI identity that deploys an environment.

``templates/eks/rbac/rbac.yml`` holds the objects and says which command needs
which verb; this module only chooses the values: the Secrets read by name, the
kinds of the edge (``EKS_EDGE``), the cluster-scoped objects named, the subjects.
"""

from __future__ import annotations

import typing as t

from .. import tutor_compat
from ..config.secrets import parse_specs
from ..exceptions import EksError
from ..render.edge import ALB_CLASS, gateway_ref, issues_certificates
from ..tutor_compat import CREDENTIAL_CONFIGMAPS
from .preflight import autoscaled

ROLE_NAME = "tutor-eks-deployer"
TEMPLATE = "eks/rbac/rbac.yml"
GATEWAY_API = "gateway.networking.k8s.io"
CERT_MANAGER_CRDS = ["certificates", "clusterissuers", "issuers"]
#: What each edge applies in the namespace, as (API group, resource).
INGRESSES = ("networking.k8s.io", "ingresses")
GATEWAYS = (GATEWAY_API, "gateways")
ROUTES = (GATEWAY_API, "httproutes")
CERTIFICATES = ("cert-manager.io", "certificates")
ISSUERS = ("cert-manager.io", "issuers")
EVERY_EDGE_KIND = [INGRESSES, GATEWAYS, ROUTES, CERTIFICATES, ISSUERS]


def render(
    config: dict[str, t.Any], namespace: str | None = None, **who: str | None
) -> str:
    """The ServiceAccount, Role, ClusterRole and their bindings, as YAML.

    ``who``: ``service_account`` ([NAMESPACE:]NAME), ``user``, ``group``."""
    namespace = namespace or str(config["K8S_NAMESPACE"])
    values = {**edge_values(config), **namespace_values(config, namespace)}
    values.update(subject_values(namespace, **who))
    text = tutor_compat.render_template({**config, "eks_rbac": values}, TEMPLATE)
    return text.lstrip("\n") + "\n"


def namespace_values(config: dict[str, t.Any], namespace: str) -> dict[str, t.Any]:
    listed = {spec.name for spec in parse_specs(config["EKS_SECRETS"], "EKS_SECRETS")}
    rendered = sorted(CREDENTIAL_CONFIGMAPS)
    return {
        "namespace": namespace,
        "role": ROLE_NAME,
        "cluster_role": f"{ROLE_NAME}-{namespace}",
        "read_secrets": sorted({*listed, *rendered}),
        "rendered_secrets": rendered,
        "state_secret": config.get("EKS_STATE_SECRET") or None,
        "prune": bool(config.get("EKS_PRUNE", True)),
        "prune_volumes": bool(config.get("EKS_PRUNE_VOLUMES")),
        "metrics_api": bool(autoscaled(config)),
    }


def edge_values(config: dict[str, t.Any]) -> dict[str, t.Any]:
    edge = config["EKS_EDGE"]
    on_gateway = edge == "gateway"
    shared = (
        gateway_ref(config.get("EKS_GATEWAY"), "EKS_GATEWAY") if on_gateway else None
    )
    kinds = {"ingress": [INGRESSES], "alb": [INGRESSES]}.get(edge, [])
    if on_gateway:
        kinds = [ROUTES] if shared else [GATEWAYS, ROUTES]
    issuer = config["EKS_ISSUER_KIND"] if issues_certificates(config) else None
    kinds += [CERTIFICATES] if issuer else []
    crds = [f"{name}.cert-manager.io" for name in CERT_MANAGER_CRDS] if issuer else []
    crds += [f"{kind[1]}.{GATEWAY_API}" for kind in (GATEWAYS, ROUTES) if on_gateway]
    owned = kinds + ([ISSUERS] if issuer == "Issuer" else [])
    own_class = on_gateway and not shared
    return {
        "edge_kinds": kinds,
        "namespaced_issuer": issuer == "Issuer",
        "former_edge_kinds": [kind for kind in EVERY_EDGE_KIND if kind not in owned],
        "ingress_class": {"alb": ALB_CLASS, "ingress": config["EKS_INGRESS_CLASS"]}.get(
            edge
        ),
        "crds": crds,
        "gateway_class": config.get("EKS_GATEWAY_CLASS") if own_class else None,
        "shared_gateway": shared.name if shared else None,
        "cluster_issuer": config["EKS_CLUSTER_ISSUER"]
        if issuer == "ClusterIssuer"
        else None,
    }


def subject_values(
    namespace: str,
    service_account: str | None = None,
    user: str | None = None,
    group: str | None = None,
) -> dict[str, t.Any]:
    """The bindings' subjects; a ServiceAccount (``tutor-deployer`` by default)
    is created too."""
    api = "rbac.authorization.k8s.io"
    subjects = [{"apiGroup": api, "kind": "User", "name": user}] if user else []
    subjects += [{"apiGroup": api, "kind": "Group", "name": group}] if group else []
    accounts = []
    if service_account or not subjects:
        account_namespace, _, name = (service_account or "tutor-deployer").rpartition(
            ":"
        )
        accounts = [{"name": name, "namespace": account_namespace or namespace}]
        subjects.append({"kind": "ServiceAccount", **accounts[0]})
    if not all(subject["name"] for subject in subjects):
        raise EksError(
            "An RBAC subject needs a name: --service-account [NAMESPACE:]NAME, --user NAME or --group NAME."
        )
    return {"subjects": subjects, "service_accounts": accounts}
