"""On the local control plane: the CA bundle reaches the cluster and the pods, goes
again when removed, and a deploy that changes the Redis key prefix says so once."""

from __future__ import annotations

import pytest

from tutoreks.config.state import REDIS_PREFIX_ANNOTATION
from tutoreks.render import services

from .cluster.conftest import Cluster
from .conftest import Project, delete_deployment, deploy_environment
from .services import make_tls_files

pytestmark = pytest.mark.cluster

CHANGED = "Redis keys of this environment now start with"


def start(project: Project, name: str) -> str:
    """A CI run: an empty root, `tutor config save` and `tutor k8s start`."""
    job = project.ci_job(name)
    job.tutor("config", "save")
    result = job.tutor("k8s", "start")
    return result.stdout + result.stderr


def state_annotations(cluster: Cluster, namespace: str) -> dict[str, str]:
    state = cluster.get_json("secret", "tutor-eks-state", "-n", namespace)
    return dict(state["metadata"].get("annotations") or {})


def test_the_ca_bundle_is_mounted_then_pruned(
    project: Project, cluster: Cluster
) -> None:
    namespace = deploy_environment(project, cluster, "ca")
    ca = make_tls_files(project.path, "tutor-contrib-eks-test-CA").ca
    project.write("environments/dev/ca-bundle.pem", ca.read_text(encoding="utf-8"))
    try:
        start(project, "run-1")
        configmap = cluster.get_json(
            "configmap", services.CA_CONFIGMAP, "-n", namespace
        )
        assert configmap["data"][services.CA_KEY] == ca.read_text(encoding="utf-8")
        lms = cluster.get_json("deployment", "lms", "-n", namespace)
        pod = lms["spec"]["template"]["spec"]
        assert {
            "name": services.CA_VOLUME,
            "configMap": {"name": services.CA_CONFIGMAP, "defaultMode": 420},
        } in pod["volumes"]
        mounts = pod["containers"][0]["volumeMounts"]
        assert any(m["mountPath"] == services.CA_DIR for m in mounts)

        (project.path / "environments/dev/ca-bundle.pem").unlink()
        start(project, "run-2")
        gone = cluster.kubectl(
            "get", "configmap", services.CA_CONFIGMAP, "-n", namespace, check=False
        )
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        delete_deployment(cluster, namespace)


def test_a_changed_redis_key_prefix_is_said_once(
    project: Project, cluster: Cluster
) -> None:
    namespace = deploy_environment(project, cluster, "prefix")
    try:
        assert CHANGED not in start(project, "run-1")  # a first deploy
        assert (
            state_annotations(cluster, namespace)[REDIS_PREFIX_ANNOTATION] == namespace
        )

        # A state an earlier plugin version recorded: keys had no prefix.
        cluster.kubectl(
            "annotate", "secret", "tutor-eks-state", "-n", namespace,
            f"{REDIS_PREFIX_ANNOTATION}-",
        )  # fmt: skip
        upgrade = start(project, "run-2")
        assert f"{CHANGED} '{namespace}:' (before: no prefix" in upgrade
        assert CHANGED not in start(project, "run-3")

        config = project.path / "environments/dev/config.yml"
        config.write_text(
            config.read_text(encoding="utf-8") + "REDIS_KEY_PREFIX: courses\n",
            encoding="utf-8",
        )
        changed = start(project, "run-4")
        assert f"{CHANGED} 'courses:' (before: '{namespace}:')" in changed
        assert (
            state_annotations(cluster, namespace)[REDIS_PREFIX_ANNOTATION] == "courses"
        )
        assert CHANGED not in start(project, "run-5")
    finally:
        delete_deployment(cluster, namespace)
