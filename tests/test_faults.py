"""Faults on the control plane: the API server restarted during `tutor k8s start`."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from .cluster.conftest import Cluster
from .conftest import (
    TUTOR,
    Project,
    assert_start_changes_nothing,
    delete_deployment,
    put_secret,
    use_cluster,
)

pytestmark = [pytest.mark.cluster, pytest.mark.disruptive]


def test_api_server_restarted_during_start_then_rerun_converges(
    project: Project, cluster: Cluster
) -> None:
    namespace = f"eks-fault-{uuid.uuid4().hex[:6]}"
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: lms.fault.example.com\nK8S_NAMESPACE: {namespace}\n",
    )
    cluster.kubectl("create", "namespace", namespace)
    for name, data in {
        "mysql-root": {
            "MYSQL_HOST": "mysql.example.internal",
            "MYSQL_ROOT_PASSWORD": uuid.uuid4().hex,
        },
        "mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": uuid.uuid4().hex},
    }.items():
        put_secret(cluster, namespace, name, data)
    project.environ.pop("TUTOR_EKS_SECRETS")
    project.environ["TUTOR_EKS_ENVIRONMENT"] = "dev"
    use_cluster(project, cluster)
    project.tutor("config", "save")
    try:
        # `tutor k8s start` while the API server goes away under it.
        start = subprocess.Popen(
            [TUTOR, "k8s", "start"],
            cwd=project.path,
            env=project.environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        cluster.stop_apiserver()
        start.wait(timeout=120)
        cluster.start_apiserver()

        # The re-run converges: it succeeds, and leaves nothing to change.
        project.tutor("k8s", "start")
        assert_start_changes_nothing(project, cluster)
        deployments = {
            d["metadata"]["name"]
            for d in cluster.get_json("deployments", "-n", namespace)["items"]
        }
        assert {"lms", "cms", "caddy"} <= deployments
    finally:
        if not cluster.apiserver_ready():
            cluster.start_apiserver()
        delete_deployment(cluster, namespace)
