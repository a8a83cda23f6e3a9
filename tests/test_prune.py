"""Prune: what an earlier deploy of the environment applied and the current render
no longer holds is deleted by the next deploy, and nothing else: not another
environment's objects (in its own namespace, or of another instance in this one),
not a ClusterIssuer two environments share, not the operator's Secrets or the
state, not a PersistentVolumeClaim unless asked. On the local control plane, as
the least-privileged CI identity of `tutor eks rbac`."""

from __future__ import annotations

import json
import typing as t
import uuid

import pytest

from .cluster.conftest import Cluster
from .conftest import (
    Project,
    delete_deployment,
    fail_if_secret_in,
    put_secret,
    use_cluster,
)

pytestmark = pytest.mark.cluster

EXTRA = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: extra-settings
data:
  MODE: "on"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: extra-worker
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: extra-worker}
  template:
    metadata:
      labels: {app.kubernetes.io/name: extra-worker}
    spec:
      containers:
        - name: worker
          image: docker.io/library/busybox:1.37
---
apiVersion: v1
kind: Service
metadata:
  name: extra-worker
spec:
  selector: {app.kubernetes.io/name: extra-worker}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: extra-data
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: handed-over
data:
  OWNER: "{{ K8S_NAMESPACE }}"
"""


def exists(cluster: Cluster, kind: str, name: str, namespace: str | None) -> bool:
    where = ["-n", namespace] if namespace else []
    return cluster.kubectl("get", kind, name, *where, check=False).returncode == 0


def generations(cluster: Cluster, namespace: str) -> dict[str, t.Any]:
    return {
        d["metadata"]["name"]: d["metadata"]["generation"]
        for d in cluster.get_json("deployments", "-n", namespace)["items"]
    }


def test_removed_manifests_are_pruned_and_nothing_else(
    project: Project, cluster: Cluster
) -> None:
    suffix = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"eks-prune-a-{suffix}", f"eks-prune-b-{suffix}"
    issuer = f"shared-acme-{suffix}"
    planted: list[str] = []
    for name, namespace in (("a", ns_a), ("b", ns_b)):
        project.write(
            f"environments/{name}/config.yml",
            f"LMS_HOST: lms.{name}.prune.example.com\nK8S_NAMESPACE: {namespace}\n"
            f"EKS_CLUSTER_ISSUER: {issuer}\nEKS_ACME_EMAIL: ops@example.com\n",
        )
        project.write(f"environments/{name}/k8s/extra.yml", EXTRA)
        cluster.kubectl("create", "namespace", namespace)
        secrets = {
            "mysql-root": {
                "MYSQL_HOST": "mysql.example.internal",
                "MYSQL_ROOT_PASSWORD": "root-" + uuid.uuid4().hex,
            },
            "mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": "oe-" + uuid.uuid4().hex},
            "unrelated": {"TOKEN": "tok-" + uuid.uuid4().hex},
        }
        for secret, data in secrets.items():
            put_secret(cluster, namespace, secret, data)
            planted += [v for v in data.values() if v != "mysql.example.internal"]
    project.environ.pop("TUTOR_EKS_SECRETS")
    project.environ.pop("TUTOR_EKS_STATE_SECRET")
    use_cluster(project, cluster)
    a = project.ci_job("runner-a")
    a.environ["TUTOR_EKS_ENVIRONMENT"] = "a"
    b = project.ci_job("runner-b")
    b.environ["TUTOR_EKS_ENVIRONMENT"] = "b"
    outputs: list[str] = []

    def run(job: Project, *args: str) -> t.Any:
        result = job.tutor(*args, check=False)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode in (0, 1), (
            result.stdout[-3000:] + result.stderr[-3000:]
        )
        return result

    try:
        # Environment a deploys as the CI identity of `tutor eks rbac`; b as admin.
        rbac = run(a, "eks", "rbac", "--service-account", f"{ns_a}:deployer").stdout
        cluster.kubectl("apply", "-f", "-", input=rbac)
        use_cluster(a, cluster, cluster.service_account_kubeconfig(ns_a, "deployer"))
        for job in (a, b):
            run(job, "config", "save")
            start = run(job, "k8s", "start")
            assert start.returncode == 0, start.stdout[-3000:] + start.stderr[-3000:]
        assert exists(cluster, "clusterissuers.cert-manager.io", issuer, None)
        before_b = generations(cluster, ns_b)

        # Another instance's objects in a's namespace: one that was never a's, and
        # one a applied that another instance has taken over since.
        other = "openedx-someone-else"
        cluster.kubectl(
            "create", "configmap", "neighbour", "-n", ns_a, "--from-literal=X=1"
        )
        for name in ("neighbour", "handed-over"):
            cluster.kubectl(
                "label", "--overwrite", "configmap", name, "-n", ns_a,
                f"app.kubernetes.io/instance={other}",
            )  # fmt: skip

        # Environment a drops its extra manifests, and HTTPS: no Certificate, no
        # issuer in its render any more (the ClusterIssuer is b's too).
        (project.path / "environments/a/k8s/extra.yml").unlink()
        project.write(
            "environments/a/config.yml",
            f"LMS_HOST: lms.a.prune.example.com\nK8S_NAMESPACE: {ns_a}\n"
            f"EKS_CLUSTER_ISSUER: {issuer}\nENABLE_HTTPS: false\n",
        )
        run(a, "config", "save")
        diff = run(a, "eks", "diff")
        assert diff.returncode == 1
        would = {
            line.split(" from namespace")[0].replace("Would prune ", "")
            for line in diff.stdout.splitlines()
            if line.startswith("Would prune ")
        }
        # caddy's Caddyfile changed with HTTPS: Tutor's ConfigMap of the old one
        # (its name carries a hash of its content) goes too.
        old_caddy = {
            name for name in would if name.startswith("ConfigMap caddy-config-")
        }
        assert len(old_caddy) == 1, diff.stdout
        assert would - old_caddy == {
            "ConfigMap extra-settings",
            "Deployment extra-worker",
            "Service extra-worker",
            "Certificate openedx-tls",
        }, diff.stdout
        assert exists(cluster, "deployment", "extra-worker", ns_a), (
            "diff deletes nothing"
        )

        start = run(a, "k8s", "start")
        assert start.returncode == 0, start.stdout[-3000:] + start.stderr[-3000:]
        pruned = [
            line for line in start.stdout.splitlines() if line.startswith("Pruned ")
        ]
        assert len(pruned) == 5, start.stdout
        assert not exists(cluster, "configmap", old_caddy.pop().split()[1], ns_a)
        assert (
            f"Not pruned: PersistentVolumeClaim extra-data in namespace {ns_a}: "
            "EKS_PRUNE_VOLUMES is false" in start.stdout + start.stderr
        )
        assert (
            f"Left alone: ConfigMap handed-over in namespace {ns_a}: it now belongs "
            f"to instance {other}" in start.stdout
        )
        for kind, name in (
            ("configmap", "extra-settings"),
            ("deployment", "extra-worker"),
            ("service", "extra-worker"),
            ("certificates.cert-manager.io", "openedx-tls"),
        ):
            assert not exists(cluster, kind, name, ns_a), (
                f"{kind} {name} was not pruned"
            )
        kept: list[tuple[str, str, str | None]] = [
            ("persistentvolumeclaim", "extra-data", ns_a),
            ("configmap", "handed-over", ns_a),
            ("configmap", "neighbour", ns_a),
            ("secret", "mysql-root", ns_a),
            ("secret", "mysql-openedx", ns_a),
            ("secret", "unrelated", ns_a),
            ("secret", "tutor-eks-state", ns_a),
            ("secret", "openedx-config", ns_a),
            ("deployment", "lms", ns_a),
            ("clusterissuers.cert-manager.io", issuer, None),
            ("configmap", "extra-settings", ns_b),
            ("deployment", "extra-worker", ns_b),
            ("service", "extra-worker", ns_b),
            ("persistentvolumeclaim", "extra-data", ns_b),
            ("configmap", "handed-over", ns_b),
            ("certificates.cert-manager.io", "openedx-tls", ns_b),
        ]
        for kind, name, where in kept:
            assert exists(cluster, kind, name, where), f"{kind} {name} is gone"
        assert generations(cluster, ns_b) == before_b, "b was not touched"

        # The inventory is now what a applies, plus the volume it keeps.
        state = cluster.get_json("secret", "tutor-eks-state", "-n", ns_a)
        inventory = json.loads(
            state["metadata"]["annotations"]["tutor-contrib-eks/applied"]
        )
        assert "v1/PersistentVolumeClaim/extra-data" in inventory
        assert "apps/v1/Deployment/extra-worker" not in inventory
        assert not [ref for ref in inventory if "ClusterIssuer" in ref]

        # Nothing left to prune: diff is clean (the kept volume is only reported).
        clean = run(a, "eks", "diff")
        assert clean.returncode == 0, clean.stdout[-3000:]
        assert "Would prune" not in clean.stdout

        # The CI identity may read the status (HTTP only now: no Certificate).
        status = run(a, "eks", "status", "--json")
        report = json.loads(status.stdout)
        kinds = {(item["kind"], item["name"]): item["ok"] for item in report["items"]}
        assert kinds[("Deployment", "lms")] and kinds[("Deploy", "last")]
        assert ("Certificate", "openedx-tls") not in kinds
        assert kinds[("Ingress", "openedx")], "kwok plays the ingress controller here"

        for value in planted:
            for number, output in enumerate(outputs):
                fail_if_secret_in(value, output, f"the output of command {number + 1}")
    finally:
        for namespace in (ns_a, ns_b):
            delete_deployment(cluster, namespace)
        cluster.kubectl(
            "delete", "clusterissuers.cert-manager.io", issuer, "--ignore-not-found",
            check=False,
        )  # fmt: skip
