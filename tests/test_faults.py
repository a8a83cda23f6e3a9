"""Faults on the control plane: the API server restarted during `tutor k8s start`."""

from __future__ import annotations

import subprocess
import time

import pytest

from .cluster.conftest import Cluster
from .conftest import (
    TUTOR,
    Project,
    assert_start_changes_nothing,
    delete_deployment,
    deploy_environment,
)

pytestmark = [pytest.mark.cluster, pytest.mark.disruptive]


def test_api_server_restarted_during_start_then_rerun_converges(
    project: Project, cluster: Cluster
) -> None:
    namespace = deploy_environment(project, cluster, "fault", state=False)
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
