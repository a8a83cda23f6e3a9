"""Where objects live in the Kubernetes API: :class:`Resource` and the table of
the kinds the plugin reads and writes. No client here (``kube.py`` re-exports
all of it): modules that only name resources import nothing heavy."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    """Where an object lives in the API, for URLs and messages."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = (
            f"/api/{self.version}"
            if not self.group
            else f"/apis/{self.group}/{self.version}"
        )
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        return base

    def display(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


@dataclass(frozen=True)
class GroupVersion(Resource):
    """The discovery document of one API group version (``/apis/GROUP/VERSION``)."""

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        if not self.group:
            return f"/api/{self.version}"
        return f"/apis/{self.group}/{self.version}"

    def display(self) -> str:
        return f"API {self.group + '/' if self.group else ''}{self.version}"


SECRETS = Resource("", "v1", "secrets", "Secret")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
SERVICES = Resource("", "v1", "services", "Service")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
JOBS = Resource("batch", "v1", "jobs", "Job")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
AUTOSCALERS = Resource(
    "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"
)
DISRUPTION_BUDGETS = Resource(
    "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"
)
API_SERVICES = Resource(
    "apiregistration.k8s.io", "v1", "apiservices", "APIService", False
)
INGRESS_CLASSES = Resource(
    "networking.k8s.io", "v1", "ingressclasses", "IngressClass", False
)
CRDS = Resource(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    False,
)
CERTIFICATES = Resource("cert-manager.io", "v1", "certificates", "Certificate")

#: The RBAC verb of each request method, in words.
WORDS = {
    "GET": "read",
    "LIST": "list",
    "POST": "create",
    "PUT": "update",
    "DELETE": "delete",
}


def describe(
    verb: str, resource: Resource, namespace: str | None, name: str | None
) -> str:
    """``Secret openedx-prod/mysql-root``: the object of a request, for messages."""
    if name is None:
        where = f" in namespace {namespace}" if namespace else ""
        return f"{resource.display()}{where}"
    target = f"{namespace}/{name}" if namespace else name
    return f"{resource.kind} {target}"
