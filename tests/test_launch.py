"""`tutor k8s launch --non-interactive` end to end on the local control plane."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import yaml

from .cluster.conftest import Cluster
from .conftest import Project, use_cluster

pytestmark = pytest.mark.cluster


def test_launch_then_start_again_changes_nothing(
    project: Project, cluster: Cluster
) -> None:
    namespace = f"eks-launch-{uuid.uuid4().hex[:6]}"
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: lms.launch.example.com\nK8S_NAMESPACE: {namespace}\nEKS_ACME_EMAIL: ops@example.com\n",
    )
    cluster.kubectl("create", "namespace", namespace)
    secrets = {
        "mysql-root": {
            "MYSQL_HOST": "mysql.example.internal",
            "MYSQL_ROOT_PASSWORD": uuid.uuid4().hex,
        },
        "mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": uuid.uuid4().hex},
    }
    for name, data in secrets.items():
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": data,
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    del project.environ["TUTOR_EKS_SECRETS"]
    use_cluster(project, cluster)
    env = {"TUTOR_EKS_ENVIRONMENT": "dev"}
    try:
        project.tutor("k8s", "launch", "--non-interactive", env=env)

        ingress = cluster.get_json("ingress", "openedx", "-n", namespace)
        assert ingress["spec"]["rules"][0]["host"] == "lms.launch.example.com"
        issuer = cluster.get_json("clusterissuers.cert-manager.io", f"{namespace}-acme")
        assert issuer["spec"]["acme"]["email"] == "ops@example.com"
        cluster.get_json("certificates.cert-manager.io", "openedx-tls", "-n", namespace)
        deployments = {
            d["metadata"]["name"]
            for d in cluster.get_json("deployments", "-n", namespace)["items"]
        }
        assert {"lms", "cms", "caddy"} <= deployments
        assert "mysql" not in deployments, (
            "MYSQL_HOST from a Secret switches Tutor's MySQL off"
        )
        jobs = cluster.get_json("jobs", "-n", namespace)["items"]
        assert jobs, "tutor k8s init ran no Job"
        for job in jobs:
            assert job["status"].get("succeeded") == 1, job["metadata"]["name"]

        # A second deploy with no change changes nothing.
        project.tutor("k8s", "start", env=env)
        rendered = subprocess.run(
            ["kubectl", "kustomize", str(project.root / "env")],
            capture_output=True,
            text=True,
            check=True,
            env=cluster.env(),
        ).stdout
        applied = [
            doc
            for doc in yaml.safe_load_all(rendered)
            if doc
            and (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
            not in ("job", "namespace")
        ]
        diff = cluster.kubectl(
            "diff", "-f", "-", input=yaml.safe_dump_all(applied), check=False
        )
        assert diff.returncode == 0, (
            f"kubectl diff found changes:\n{diff.stdout[-3000:]}{diff.stderr[-2000:]}"
        )
    finally:
        cluster.kubectl(
            "delete",
            "clusterissuers.cert-manager.io",
            f"{namespace}-acme",
            "--ignore-not-found",
            check=False,
        )
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
