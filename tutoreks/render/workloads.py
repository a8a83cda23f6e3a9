"""Production workloads: what Tutor's Deployments lack, as kustomize patches over
Tutor's own manifests (no copy of its templates), and ``EKS_WORKLOADS``.

Safe defaults, for every environment:

- lms and cms: a readiness probe that GETs ``/heartbeat`` with the Host header
  Django expects (a pod gets traffic once uwsgi serves); a liveness probe on the
  uwsgi port over TCP (``/heartbeat`` checks MySQL and MongoDB: probing liveness
  on it would restart every pod during a database blip); a startup probe that
  allows ten minutes for a cold start; a ``preStop`` pause so the load balancer
  stops sending before uwsgi stops; a grace period that lets requests finish;
- the Celery workers: a grace period of 300 s, so a running task can finish;
- every container of every Deployment requests CPU and memory (Tutor's lms and
  cms request only memory): the scheduler places pods by requests, and an
  autoscaler on CPU needs one.

``EKS_WORKLOADS`` (the environment's config.yml), per Deployment name::

    lms:
      autoscaling: {min: 2, max: 8, cpu: 70}   # an autoscaling/v2 HPA
      requests: {cpu: 500m, memory: 2Gi}       # replaces the default requests
      limits: {memory: 3Gi}
    cms: {replicas: 2, max_unavailable: 1}     # a PodDisruptionBudget
    lms-worker: {grace: 900}                   # terminationGracePeriodSeconds

A Deployment with ``autoscaling`` has no ``spec.replicas`` (a deploy never resets
the autoscaler's count). A PodDisruptionBudget (``maxUnavailable``, 1 unless
``max_unavailable`` says otherwise) exists only for a workload with two or more
replicas: one on a single pod blocks every node drain. The HPAs and budgets ship
in the plugin's manifests and are pruned when removed from the configuration.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass, field

from ..exceptions import EksError

WEB = ("lms", "cms")
WORKERS = ("lms-worker", "cms-worker")
WEB_PORT = 8000
PRE_STOP_SECONDS = 10
WEB_GRACE = 60
WORKER_GRACE = 300
#: Default requests per Deployment (Tutor's own memory request of lms and cms kept).
DEFAULT_REQUESTS: dict[str, dict[str, str]] = {
    "lms": {"cpu": "500m", "memory": "2Gi"},
    "cms": {"cpu": "250m", "memory": "2Gi"},
    "lms-worker": {"cpu": "250m", "memory": "1Gi"},
    "cms-worker": {"cpu": "250m", "memory": "1Gi"},
    "caddy": {"cpu": "50m", "memory": "64Mi"},
    "mfe": {"cpu": "50m", "memory": "64Mi"},
    "meilisearch": {"cpu": "100m", "memory": "256Mi"},
    "mysql": {"cpu": "250m", "memory": "1Gi"},
    "mongodb": {"cpu": "250m", "memory": "1Gi"},
    "redis": {"cpu": "50m", "memory": "128Mi"},
    "smtp": {"cpu": "10m", "memory": "32Mi"},
}
OTHER_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
KEYS = ("replicas", "autoscaling", "requests", "limits", "max_unavailable", "grace")
AUTOSCALING_KEYS = ("min", "max", "cpu", "memory")
RESOURCES = ("cpu", "memory")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
SOURCE = "EKS_WORKLOADS"


@dataclass
class Workload:
    """One Deployment's settings, checked."""

    name: str
    replicas: int | None = None
    autoscaling: dict[str, int] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    max_unavailable: int | str | None = None
    grace: int | None = None

    @property
    def least_replicas(self) -> int:
        if self.autoscaling:
            return self.autoscaling["min"]
        return self.replicas if self.replicas is not None else 1


# --- reading EKS_WORKLOADS -----------------------------------------------------------


def parse(setting: t.Any, deployments: t.Iterable[str]) -> dict[str, Workload]:
    """``EKS_WORKLOADS`` for the rendered Deployments (their names), checked;
    every Deployment gets a :class:`Workload`, with the defaults."""
    known = sorted(deployments)
    if setting in (None, ""):
        setting = {}
    if not isinstance(setting, dict):
        raise EksError(f"{SOURCE} must be a mapping of Deployment names to settings.")
    unknown = sorted(str(name) for name in setting if name not in known)
    if unknown:
        raise EksError(
            f"{SOURCE} names {', '.join(unknown)}, which this environment does not "
            f"deploy; its Deployments: {', '.join(known)}."
        )
    return {name: workload(name, setting.get(name) or {}) for name in known}


def check_keys(values: t.Any, allowed: tuple[str, ...], where: str) -> None:
    """``values`` is a mapping of the ``allowed`` keys only."""
    if not isinstance(values, dict):
        raise EksError(f"{where} must be a mapping ({', '.join(allowed)}).")
    unknown = sorted(str(k) for k in values if k not in allowed)
    if unknown:
        raise EksError(
            f"{where} has {', '.join(unknown)}; the keys are {', '.join(allowed)}."
        )


def workload(name: str, values: t.Any) -> Workload:
    where = f"{SOURCE}.{name}"
    check_keys(values, KEYS, where)
    result = Workload(
        name,
        replicas=whole(values, "replicas", where, 0, 1000),
        autoscaling=autoscaling(values.get("autoscaling"), f"{where}.autoscaling"),
        requests=quantities(
            values, "requests", where, DEFAULT_REQUESTS.get(name, OTHER_REQUESTS)
        ),
        limits=quantities(values, "limits", where, {}),
        max_unavailable=budget(
            values.get("max_unavailable"), f"{where}.max_unavailable"
        ),
        grace=whole(values, "grace", where, 0, 86400),
    )
    check_consistent(result, where)
    return result


def whole(
    values: dict[str, t.Any], key: str, where: str, low: int, high: int
) -> int | None:
    value = values.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise EksError(f"{where}.{key} must be a whole number from {low} to {high}.")
    return value


def autoscaling(values: t.Any, where: str) -> dict[str, int]:
    if values is None:
        return {}
    check_keys(values, AUTOSCALING_KEYS, where)
    result: dict[str, int] = {}
    for key, low, high in (
        ("min", 1, 1000),
        ("max", 1, 1000),
        ("cpu", 1, 1000),
        ("memory", 1, 1000),
    ):
        value = whole(values, key, where, low, high)
        if value is not None:
            result[key] = value
    if "min" not in result or "max" not in result:
        raise EksError(f"{where} needs min and max.")
    if result["min"] > result["max"]:
        raise EksError(
            f"{where}: min ({result['min']}) is above max ({result['max']})."
        )
    if "cpu" not in result and "memory" not in result:
        raise EksError(
            f"{where} needs a target: cpu or memory (percent of the request)."
        )
    return result


def quantities(
    values: dict[str, t.Any], key: str, where: str, default: dict[str, str]
) -> dict[str, str]:
    """Requests or limits: given ones replace the defaults."""
    given = values.get(key)
    if given is None:
        return dict(default)
    if not isinstance(given, dict) or not set(given) <= set(RESOURCES):
        raise EksError(f"{where}.{key} is a mapping of cpu and memory quantities.")
    result = {}
    for resource, quantity in given.items():
        text = str(quantity) if not isinstance(quantity, bool) else ""
        if not QUANTITY.match(text):
            raise EksError(
                f"{where}.{key}.{resource} is not a Kubernetes quantity (500m, 2, 512Mi, 2Gi ...)."
            )
        result[str(resource)] = text
    return result


def budget(value: t.Any, where: str) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, str) and re.match(r"^[1-9][0-9]?%$|^100%$", value):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EksError(
            f"{where} must be 1 or more, or a percentage: 0 would block every node drain."
        )
    return value


def check_consistent(workload: Workload, where: str) -> None:
    if workload.replicas is not None and workload.autoscaling:
        raise EksError(
            f"{where}: replicas and autoscaling exclude each other (the autoscaler "
            "sets the number of replicas)."
        )
    for resource in RESOURCES:
        if resource in workload.autoscaling and resource not in workload.requests:
            raise EksError(
                f"{where}.autoscaling.{resource}: a {resource} target needs a {resource} "
                f"request ({where}.requests.{resource})."
            )
    if workload.max_unavailable is not None and workload.least_replicas < 2:
        raise EksError(
            f"{where}.max_unavailable: a disruption budget needs 2 or more replicas "
            "(on one pod it blocks every node drain)."
        )


# --- rendering --------------------------------------------------------------------------


def deployment_patch(
    deployment: dict[str, t.Any], item: Workload, hosts: dict[str, str]
) -> dict[str, t.Any]:
    """A strategic merge patch of one of Tutor's Deployments."""
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    containers = []
    for container in pod.get("containers") or []:
        patch: dict[str, t.Any] = {
            "name": container["name"],
            "resources": resources(item),
        }
        if name in WEB and container["name"] == name:
            patch.update(web_probes(hosts.get(name, "")))
        containers.append(patch)
    spec: dict[str, t.Any] = {"template": {"spec": {"containers": containers}}}
    grace = item.grace
    if grace is None:
        grace = WEB_GRACE if name in WEB else WORKER_GRACE if name in WORKERS else None
    if grace is not None:
        spec["template"]["spec"]["terminationGracePeriodSeconds"] = grace
    if item.replicas is not None:
        spec["replicas"] = item.replicas
    return {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": spec,
    }


def resources(item: Workload) -> dict[str, t.Any]:
    result: dict[str, t.Any] = {"requests": dict(item.requests)}
    if item.limits:
        result["limits"] = dict(item.limits)
    return result


def web_probes(host: str) -> dict[str, t.Any]:
    headers = [{"name": "Host", "value": host}] if host else []
    return {
        "readinessProbe": {
            "httpGet": {"path": "/heartbeat", "port": WEB_PORT, "httpHeaders": headers},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "tcpSocket": {"port": WEB_PORT},
            "periodSeconds": 20,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "startupProbe": {
            "tcpSocket": {"port": WEB_PORT},
            "periodSeconds": 10,
            "failureThreshold": 60,
        },
        "lifecycle": {
            "preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}
        },
    }


def autoscaler(item: Workload) -> dict[str, t.Any]:
    """The autoscaling/v2 HPA of a Deployment, scaling down slowly."""
    metrics = [
        {
            "type": "Resource",
            "resource": {
                "name": resource,
                "target": {
                    "type": "Utilization",
                    "averageUtilization": item.autoscaling[resource],
                },
            },
        }
        for resource in RESOURCES
        if resource in item.autoscaling
    ]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": item.name},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": item.name,
            },
            "minReplicas": item.autoscaling["min"],
            "maxReplicas": item.autoscaling["max"],
            "metrics": metrics,
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
                }
            },
        },
    }


def disruption_budget(item: Workload) -> dict[str, t.Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": item.name},
        "spec": {
            "maxUnavailable": item.max_unavailable
            if item.max_unavailable is not None
            else 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": item.name}},
        },
    }


def extra_objects(items: dict[str, Workload]) -> list[dict[str, t.Any]]:
    """The HPAs and PodDisruptionBudgets the settings ask for."""
    objects = []
    for item in items.values():
        if item.autoscaling:
            objects.append(autoscaler(item))
        if item.least_replicas >= 2:
            objects.append(disruption_budget(item))
    return objects
