"""`tutor k8s launch --non-interactive` end to end on the local control plane, as a CI
identity that holds only the RBAC `tutor eks rbac` prints."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from .cluster.conftest import Cluster
from .conftest import (
    Project,
    assert_start_changes_nothing,
    delete_deployment,
    fail_if_secret_in,
    put_secret,
    use_cluster,
)

pytestmark = pytest.mark.cluster


def can_i(cluster: Cluster, kubeconfig: Path, *args: str) -> str:
    return cluster.kubectl(
        "auth", "can-i", *args, kubeconfig=kubeconfig, check=False
    ).stdout.strip()


def test_launch_as_least_privileged_ci_identity(
    project: Project, cluster: Cluster
) -> None:
    namespace = f"eks-launch-{uuid.uuid4().hex[:6]}"
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: lms.launch.example.com\nK8S_NAMESPACE: {namespace}\nEKS_ACME_EMAIL: ops@example.com\n",
    )
    del project.environ["TUTOR_EKS_SECRETS"]
    project.environ["TUTOR_EKS_ENVIRONMENT"] = "dev"
    use_cluster(project, cluster)

    # The cluster admin's part: namespace, Secrets, and the RBAC of `tutor eks rbac`.
    cluster.kubectl("create", "namespace", namespace)
    secrets = {
        "mysql-root": {
            "MYSQL_HOST": "mysql.example.internal",
            "MYSQL_ROOT_PASSWORD": uuid.uuid4().hex,
        },
        "mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": uuid.uuid4().hex},
        "unrelated": {"TOKEN": uuid.uuid4().hex},
    }
    for name, data in secrets.items():
        put_secret(cluster, namespace, name, data)
    rbac = project.tutor(
        "eks", "rbac", "--service-account", f"{namespace}:deployer"
    ).stdout
    cluster.kubectl("apply", "-f", "-", input=rbac)
    ci = cluster.service_account_kubeconfig(namespace, "deployer")
    use_cluster(project, cluster, ci)

    try:
        # The CI job's part, as the ServiceAccount.
        project.tutor("k8s", "launch", "--non-interactive")

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
        project.tutor("k8s", "start")
        assert_start_changes_nothing(project, cluster)
        assert project.tutor("eks", "diff").returncode == 0

        # A change in the environment shows in `tutor eks diff` (exit 1), as the CI identity.
        project.write(
            "environments/dev/config.yml",
            f"LMS_HOST: lms2.launch.example.com\nK8S_NAMESPACE: {namespace}\nEKS_ACME_EMAIL: ops@example.com\n",
        )
        project.tutor("config", "save")
        changed = project.tutor("eks", "diff", check=False)
        assert changed.returncode == 1, changed.stderr
        assert "lms2.launch.example.com" in changed.stdout

        # No value that came from a Secret in any ConfigMap, Job, Pod or Deployment.
        dumped = cluster.kubectl(
            "get", "configmaps,jobs,pods,deployments", "-n", namespace, "-o", "yaml"
        ).stdout
        for data in secrets.values():
            for value in data.values():
                fail_if_secret_in(
                    value, dumped, "ConfigMaps, Jobs, Pods or Deployments"
                )
        config_maps = {
            c["metadata"]["name"]
            for c in cluster.get_json("configmaps", "-n", namespace)["items"]
        }
        assert not [
            name
            for name in config_maps
            if name.startswith(("openedx-config", "openedx-settings"))
        ]
        config_secret = cluster.get_json("secret", "openedx-config", "-n", namespace)
        assert "lms.env.yml" in config_secret["data"], (
            "the services find their files where they read them"
        )
        mysql_job = next(
            j for j in jobs if j["metadata"]["name"].startswith("mysql-job")
        )
        job_env = {
            e["name"]: e
            for e in mysql_job["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert job_env["TUTOREKS_MYSQL_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "mysql-root",
            "key": "MYSQL_ROOT_PASSWORD",
        }
        assert "${TUTOREKS_MYSQL_ROOT_PASSWORD}" in " ".join(
            mysql_job["spec"]["template"]["spec"]["containers"][0]["args"]
        )

        # A rotated Secret: the next save picks it up and the deploy rolls the pods using it.
        before = cluster.get_json("deployment", "lms", "-n", namespace)["spec"][
            "template"
        ]["metadata"]["annotations"]
        rotated = {"OPENEDX_MYSQL_PASSWORD": uuid.uuid4().hex}
        put_secret(cluster, namespace, "mysql-openedx", rotated)
        project.tutor("config", "save")
        project.tutor("k8s", "start")
        after = cluster.get_json("deployment", "lms", "-n", namespace)["spec"][
            "template"
        ]["metadata"]["annotations"]
        assert (
            after["tutor-contrib-eks/config-checksum"]
            != before["tutor-contrib-eks/config-checksum"]
        ), "lms must roll"
        dumped = cluster.kubectl(
            "get", "configmaps,jobs,pods,deployments", "-n", namespace, "-o", "yaml"
        ).stdout
        fail_if_secret_in(
            rotated["OPENEDX_MYSQL_PASSWORD"],
            dumped,
            "ConfigMaps, Jobs, Pods or Deployments",
        )

        # What the identity cannot do.
        assert can_i(cluster, ci, "get", "secret/unrelated", "-n", namespace) == "no"
        assert can_i(cluster, ci, "list", "secrets", "-n", namespace) == "no"
        assert can_i(cluster, ci, "watch", "secrets", "-n", namespace) == "no"
        assert can_i(cluster, ci, "get", "secret/mysql-root", "-n", "default") == "no"
        assert can_i(cluster, ci, "create", "deployments", "-n", "default") == "no"
        assert can_i(cluster, ci, "get", "secret/mysql-root", "-n", namespace) == "yes"
    finally:
        delete_deployment(cluster, namespace)
