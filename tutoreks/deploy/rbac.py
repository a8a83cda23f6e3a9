"""The least-privilege RBAC of the CI identity that deploys an environment.

Exactly what the plugin (reading its Secrets), ``tutor k8s start`` (``kubectl get
namespaces <ns>``, then ``kubectl apply`` of the rendered objects), ``tutor k8s
init`` (applying Jobs, listing them until they succeed, waiting for Deployments),
``tutor k8s launch`` (all of these), ``tutor eks diff`` (server-side dry-run
apply) and ``tutor eks check`` (CRDs, IngressClass, namespace) need:

- Secrets: ``get`` on the listed names and on the three Secrets the plugin renders
  (``openedx-config``, ``openedx-settings-lms``/``-cms``), ``patch`` on those three,
  ``create`` (Kubernetes cannot limit it by name); never ``list`` or ``watch``;
- the objects Tutor and the plugin apply: ``get``, ``create``, ``patch``, and
  ``delete`` for pruning (``deploy/prune.py``; PersistentVolumeClaims only with
  ``EKS_PRUNE_VOLUMES``, nothing with ``EKS_PRUNE: false``); never on Secrets;
- Deployments: also ``list`` and ``watch`` (``kubectl wait``, the rollout wait);
  Jobs: also ``list`` (Tutor polls them) and ``delete`` (an init Job that cannot
  start is deleted); Ingresses and Certificates: also ``list`` (``tutor eks
  status``); ``list`` on ReplicaSets, Pods and Events (why a rollout or a Job
  failed);
- cluster scope, only where needed: ``get`` on its own namespace, on cert-manager's
  CRDs and on the IngressClass; with a ClusterIssuer, ``get``/``patch`` on that
  issuer and ``create`` on clusterissuers (Kubernetes cannot limit ``create`` by
  name: use ``EKS_ISSUER_KIND: Issuer`` to need no cluster-scoped issuer rights).
"""

from __future__ import annotations

import typing as t

import yaml

from ..config.secrets import parse_specs
from ..exceptions import EksError
from ..tutor_compat import CREDENTIAL_CONFIGMAPS as CONFIGS

ROLE_NAME = "tutor-eks-deployer"
CERT_MANAGER_CRDS = (
    "certificates.cert-manager.io",
    "clusterissuers.cert-manager.io",
    "issuers.cert-manager.io",
)


def rules(
    config: dict[str, t.Any],
) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
    """(namespaced rules, cluster-scoped rules) for the environment's config."""
    secret_names = sorted(
        {spec.name for spec in parse_specs(config["EKS_SECRETS"], "EKS_SECRETS")}
    )
    apply = ["get", "create", "patch"]
    namespaced: list[dict[str, t.Any]] = []
    # The Secrets the plugin reads, by name; the Secrets it renders (credentials.CONFIGS)
    # have fixed names too. `create` cannot be limited by name in Kubernetes.
    generated = sorted(CONFIGS)
    namespaced.append(
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": sorted({*secret_names, *generated}),
            "verbs": ["get"],
        }
    )
    namespaced.append(
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": generated,
            # update: a failed migration puts them back (deploy/upgrade.py)
            "verbs": ["patch", "update"],
        }
    )
    # The state Secret (config/state.py): read, created on the first deploy,
    # updated (PUT with resourceVersion) when keys are added or a deploy recorded.
    if config.get("EKS_STATE_SECRET"):
        namespaced.append(
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [str(config["EKS_STATE_SECRET"])],
                "verbs": ["get", "update"],
            }
        )
    namespaced.append(
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}
    )
    # Pruning (deploy/prune.py) deletes what an earlier deploy applied and this one
    # no longer renders: the kinds Tutor and the plugin render, PVCs only when asked.
    prune = ["delete"] if config.get("EKS_PRUNE", True) else []
    prune_volumes = prune if config.get("EKS_PRUNE_VOLUMES") else []
    namespaced += [
        {
            "apiGroups": [""],
            "resources": ["configmaps", "services"],
            "verbs": [*apply, *prune],
        },
        {
            "apiGroups": [""],
            "resources": ["persistentvolumeclaims"],
            "verbs": [*apply, *prune_volumes],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": [*apply, "list", "watch", *prune],
        },
        # `delete`: an init Job whose pod cannot start (an image that cannot be
        # pulled) is deleted, or Tutor's next run would wait for it for ever.
        {
            "apiGroups": ["batch"],
            "resources": ["jobs"],
            "verbs": [*apply, "list", "delete"],
        },
        # Why a rollout or a Job failed: the newest ReplicaSet, its pods, their
        # probe events (deploy/rollout.py, deploy/jobs.py, `tutor eks status`).
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
        # EKS_WORKLOADS (render/workloads.py): autoscalers and disruption budgets,
        # listed by `tutor eks status`.
        {
            "apiGroups": ["autoscaling"],
            "resources": ["horizontalpodautoscalers"],
            "verbs": [*apply, "list", *prune],
        },
        {
            "apiGroups": ["policy"],
            "resources": ["poddisruptionbudgets"],
            "verbs": [*apply, "list", *prune],
        },
        {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]},
    ]
    ingress_mode = config["EKS_EDGE"] == "ingress"
    https = bool(config["ENABLE_HTTPS"])
    if ingress_mode:
        namespaced.append(
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["ingresses"],
                "verbs": [*apply, "list", *prune],
            }
        )
    issuer_kind = config["EKS_ISSUER_KIND"]
    if ingress_mode and https:
        namespaced.append(
            {
                "apiGroups": ["cert-manager.io"],
                "resources": ["certificates"],
                "verbs": [*apply, "list", *prune],
            }
        )
        if issuer_kind == "Issuer":
            namespaced.append(
                {
                    "apiGroups": ["cert-manager.io"],
                    "resources": ["issuers"],
                    "verbs": [*apply, *prune],
                }
            )

    cluster: list[dict[str, t.Any]] = [
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "resourceNames": [config["K8S_NAMESPACE"]],
            "verbs": ["get"],
        },
    ]
    from .preflight import autoscaled

    if autoscaled(config):
        # `tutor eks check`: is the metrics API the autoscalers need served?
        cluster.append(
            {
                "apiGroups": ["apiregistration.k8s.io"],
                "resources": ["apiservices"],
                "resourceNames": ["v1beta1.metrics.k8s.io"],
                "verbs": ["get"],
            }
        )
    if ingress_mode:
        cluster.append(
            {
                "apiGroups": ["networking.k8s.io"],
                "resources": ["ingressclasses"],
                "resourceNames": [config["EKS_INGRESS_CLASS"]],
                "verbs": ["get"],
            }
        )
    if ingress_mode and https:
        cluster.append(
            {
                "apiGroups": ["apiextensions.k8s.io"],
                "resources": ["customresourcedefinitions"],
                "resourceNames": list(CERT_MANAGER_CRDS),
                "verbs": ["get"],
            }
        )
        if issuer_kind == "ClusterIssuer":
            cluster += [
                {
                    "apiGroups": ["cert-manager.io"],
                    "resources": ["clusterissuers"],
                    "resourceNames": [config["EKS_CLUSTER_ISSUER"]],
                    "verbs": ["get", "patch"],
                },
                {
                    "apiGroups": ["cert-manager.io"],
                    "resources": ["clusterissuers"],
                    "verbs": ["create"],
                },
            ]
    return namespaced, cluster


def subjects(
    namespace: str, service_account: str | None, user: str | None, group: str | None
) -> list[dict[str, t.Any]]:
    result: list[dict[str, t.Any]] = []
    if user:
        result.append(
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
        )
    if group:
        result.append(
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}
        )
    if service_account or not result:
        sa_namespace, _, sa_name = (service_account or "tutor-deployer").rpartition(":")
        result.append(
            {
                "kind": "ServiceAccount",
                "name": sa_name,
                "namespace": sa_namespace or namespace,
            }
        )
    for subject in result:
        if not subject["name"]:
            raise EksError(
                "An RBAC subject needs a name: --service-account [NAMESPACE:]NAME, --user NAME or --group NAME."
            )
    return result


def documents(
    config: dict[str, t.Any],
    *,
    namespace: str | None = None,
    service_account: str | None = None,
    user: str | None = None,
    group: str | None = None,
) -> list[dict[str, t.Any]]:
    namespace = namespace or str(config["K8S_NAMESPACE"])
    namespaced, cluster = rules({**config, "K8S_NAMESPACE": namespace})
    who = subjects(namespace, service_account, user, group)
    cluster_name = f"{ROLE_NAME}-{namespace}"
    labels = {"app.kubernetes.io/managed-by": "tutor-contrib-eks"}
    docs: list[dict[str, t.Any]] = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": ROLE_NAME, "namespace": namespace, "labels": labels},
            "rules": namespaced,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": ROLE_NAME, "namespace": namespace, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": ROLE_NAME,
            },
            "subjects": who,
        },
    ]
    if cluster:
        docs += [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": cluster_name, "labels": labels},
                "rules": cluster,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": cluster_name, "labels": labels},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": cluster_name,
                },
                "subjects": who,
            },
        ]
    if any(s["kind"] == "ServiceAccount" for s in who):
        for subject in who:
            if subject["kind"] == "ServiceAccount":
                docs.insert(
                    0,
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": {
                            "name": subject["name"],
                            "namespace": subject["namespace"],
                            "labels": labels,
                        },
                    },
                )
    return docs


def dump(docs: list[dict[str, t.Any]]) -> str:
    text: str = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)
    return text
