"""What is read back from the cluster is input: the state Secret supplies Tutor's
generated settings and nothing else, its recorded release must be one this plugin
writes, and its inventory holds references to objects a deploy applies."""

from __future__ import annotations

import json

import pytest
from tutor import config as tutor_config

from tutoreks import tutor_compat
from tutoreks.config import state as state_module
from tutoreks.config.state import State
from tutoreks.deploy import prune
from tutoreks.exceptions import EksError

from .cluster.conftest import Cluster
from .conftest import Project, delete_deployment, deploy_environment

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"
SECRET_LOOKING = "s3cr3t-v4lu3-that-must-not-show"


def a_state(values: dict[str, str], **annotations: str) -> State:
    return State("openedx-qa", "tutor-eks-state", "qa", values, dict(annotations))


def checked(values: dict[str, str], **annotations: str) -> list[str]:
    unique = tutor_compat.unique_keys()
    return state_module.check(
        a_state(values, **annotations), unique, tutor_config.load_defaults()
    )


def test_a_state_of_generated_values_is_read() -> None:
    values = {
        "ID": "abcdEFGH1234",
        "JWT_RSA_PRIVATE_KEY": PEM,
        "OPENEDX_SECRET_KEY": "x" * 24,
    }
    for release in ("22.0.0", tutor_compat.tutor_version(), "21.0.4"):
        annotations = {state_module.TUTOR_VERSION_ANNOTATION: release}
        assert checked(values, **annotations) == []


@pytest.mark.parametrize(
    "key",
    ["K8S_NAMESPACE", "DOCKER_IMAGE_OPENEDX", "RUN_MYSQL", "EKS_EDGE", "LMS_HOST"],
)
def test_a_planted_setting_is_refused_by_name(key: str) -> None:
    with pytest.raises(EksError) as error:
        checked({"ID": "abc", key: SECRET_LOOKING})
    message = str(error.value)
    assert (
        f"Secret openedx-qa/tutor-eks-state key {key} is not one of the settings"
        in message
    )
    assert SECRET_LOOKING not in message


def test_a_key_no_loaded_plugin_knows_is_not_read() -> None:
    assert checked({"ID": "abc", "FORUMPLUGIN_SECRET": "x"}) == ["FORUMPLUGIN_SECRET"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ID", "abc\nmetadata:\n  namespace: kube-system", "an ID is a label value"),
        ("ID", "", "an ID is a label value"),
        ("JWT_RSA_PRIVATE_KEY", SECRET_LOOKING, "is not a PEM block"),
        ("OPENEDX_SECRET_KEY", SECRET_LOOKING + "\n", "holds a newline"),
        ("MYSQL_ROOT_PASSWORD", "y" * 20000, "longer than 16 KiB"),
    ],
)
def test_a_value_no_generated_setting_has_is_refused(
    key: str, value: str, message: str
) -> None:
    with pytest.raises(EksError) as error:
        checked({key: value})
    assert f"key {key}" in str(error.value) and message in str(error.value)
    assert SECRET_LOOKING not in str(error.value)


@pytest.mark.parametrize(
    "version", ["15.3.7", "20.0.0", "22.0", "22.99.0", "23.0.0", "22.0.3\nx", "latest"]
)
def test_a_release_this_plugin_never_records_is_refused(version: str) -> None:
    with pytest.raises(EksError, match="annotation tutor-contrib-eks/tutor-version"):
        checked({"ID": "abc"}, **{state_module.TUTOR_VERSION_ANNOTATION: version})


# --- the inventory --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}", "is not a list"),
        ("5", "is not a list"),
        ('"apps/v1/Deployment/lms"', "is not a list"),
        ("[not json", "is not JSON"),
    ],
)
def test_an_inventory_that_is_not_a_list_prunes_nothing(
    text: str, problem: str
) -> None:
    assert prune.read_inventory(text) == ([], problem)


def test_only_references_to_applied_objects_are_kept() -> None:
    good = [
        "apps/v1/Deployment/lms",
        "v1/ConfigMap/openedx-config",
        "networking.k8s.io/v1/Ingress/openedx",
    ]
    bad = [
        "v1/Namespace/openedx-qa",
        "v1/Endpoints/lms",
        "discovery.k8s.io/v1/EndpointSlice/lms-abc",
        "v1/ConfigMap/..",
        "v1/ConfigMap/",
        "v1/ConfigMap/Upper",
        "v1/configmap/x",
        "../v1/ConfigMap/x",
        "ConfigMap/x",
        7,
    ]
    refs, problem = prune.read_inventory(json.dumps(good + bad))
    assert [ref.text for ref in refs] == good
    assert problem.startswith(f"holds {len(bad)} entries that are not references")


# --- on the local control plane ------------------------------------------------------


@pytest.mark.cluster
def test_a_planted_state_key_stops_the_deploy_before_anything_changes(
    project: Project, cluster: Cluster
) -> None:
    namespace = deploy_environment(project, cluster, "trust")
    try:
        project.save()
        project.tutor("k8s", "start")
        cluster.kubectl(
            "patch", "secret", "tutor-eks-state", "-n", namespace, "--type=merge",
            "-p", json.dumps({"stringData": {"K8S_NAMESPACE": "kube-system"}}),
        )  # fmt: skip
        job = project.ci_job("run-2")
        before = job.fingerprint()
        result = job.tutor(
            "config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"}, check=False
        )
        assert result.returncode != 0
        assert (
            f"Secret {namespace}/tutor-eks-state key K8S_NAMESPACE is not one of the settings"
            in result.stdout + result.stderr
        )
        assert "kube-system" not in result.stdout + result.stderr
        assert job.fingerprint() == before

        # An inventory that is not a list: said, nothing pruned, no traceback.
        cluster.kubectl(
            "patch", "secret", "tutor-eks-state", "-n", namespace, "--type=json",
            "-p", json.dumps([{"op": "remove", "path": "/data/K8S_NAMESPACE"}]),
        )  # fmt: skip
        cluster.kubectl(
            "annotate", "--overwrite", "secret", "tutor-eks-state", "-n", namespace,
            f"{prune.INVENTORY_ANNOTATION}={{}}",
        )  # fmt: skip
        job = project.ci_job("run-3")
        job.tutor("config", "save")
        started = job.tutor("k8s", "start")
        assert "annotation tutor-contrib-eks/applied is not a list" in (
            started.stdout + started.stderr
        )
        assert cluster.get_json("deployment", "lms", "-n", namespace)
    finally:
        delete_deployment(cluster, namespace)
