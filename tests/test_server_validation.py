"""Every manifest the plugin renders, validated by the API server (dry-run)."""

from __future__ import annotations

import subprocess
import typing as t
import uuid

import pytest

from .cluster.conftest import Cluster
from .conftest import Project, use_cluster

pytestmark = pytest.mark.cluster

VARIANTS = {
    "dev-example": ("dev", {}),
    "prod-example": ("prod", {}),
    "caddy-edge": ("dev", {"TUTOR_EKS_EDGE": "caddy"}),
    "namespaced-issuer": ("prod", {"TUTOR_EKS_ISSUER_KIND": "Issuer"}),
    "http-only": ("dev", {"TUTOR_ENABLE_HTTPS": "false"}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_objects_pass_server_side_dry_run(
    tmp_path: t.Any, cluster: Cluster, variant: str
) -> None:
    environment, env = VARIANTS[variant]
    project = Project(tmp_path)
    project.copy_examples()
    namespace = f"eks-dry-{uuid.uuid4().hex[:6]}"
    project.write(
        f"environments/{environment}/config.yml",
        (project.path / f"environments/{environment}/config.yml")
        .read_text(encoding="utf-8")
        .replace(
            f"K8S_NAMESPACE: openedx-{environment}", f"K8S_NAMESPACE: {namespace}"
        ),
    )
    use_cluster(project, cluster)
    project.save(environment, env=env)
    cluster.kubectl("create", "namespace", namespace)
    try:
        # Everything in the kustomization, the init Jobs included.
        result = subprocess.run(
            [
                "kubectl",
                "apply",
                "--dry-run=server",
                "--kustomize",
                str(project.root / "env"),
            ],
            capture_output=True,
            text=True,
            env=cluster.env(),
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "(server dry run)" in result.stdout
        kinds = {
            line.split("/")[0].split(".")[0]
            for line in result.stdout.splitlines()
            if "/" in line
        }
        expected = {"deployment", "service", "configmap", "secret", "job"}
        if variant in ("dev-example", "prod-example", "namespaced-issuer"):
            expected |= {"ingress", "certificate"}
        assert expected <= kinds, kinds
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
