"""What is read back from the cluster is input: the state Secret supplies Tutor's
generated settings and nothing else, its recorded release must be one this plugin
writes, and its inventory holds references to objects a deploy applies."""

from __future__ import annotations

import json
import re
import typing as t

import pytest
from tutor import config as tutor_config
from tutor import utils as tutor_utils

from tutoreks import tutor_compat
from tutoreks.config import masking
from tutoreks.config import state as state_module
from tutoreks.config.state import State
from tutoreks.deploy import pods, prune, status
from tutoreks.deploy.report import Item, Report
from tutoreks.exceptions import EksError
from tutoreks.render import record

from .cluster.conftest import Cluster
from .conftest import (
    Project,
    delete_deployment,
    deploy_environment,
    mysql_secrets,
    put_secret,
)

PEM = tutor_utils.rsa_private_key(1024)
NOT_A_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"
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
        ("JWT_RSA_PRIVATE_KEY", NOT_A_KEY, "the PEM block is not an RSA private key"),
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


# --- env/ knows what it was rendered for ---------------------------------------------


def render_record(**changes: t.Any) -> dict[str, t.Any]:
    return {
        "environment": "qa",
        "namespace": "openedx-qa",
        "instance": "abc123",
        "cluster_read": True,
        "environment_files": "d1g357",
        **changes,
    }


@pytest.mark.parametrize(
    ("recorded", "problem"),
    [
        (None, "was not rendered for environment 'qa' by tutor-contrib-eks"),
        (
            render_record(environment="prod"),
            "was rendered for environment 'prod', not 'qa'",
        ),
        (render_record(namespace="openedx-prod"), "for namespace 'openedx-prod', not"),
        (render_record(instance="other"), "for instance 'other', not 'abc123'"),
        (render_record(cluster_read=False), "without reading the cluster's Secrets"),
        (render_record(environment_files="0ld"), "older than the files of environment"),
    ],
)
def test_a_render_for_something_else_is_refused(
    recorded: dict[str, t.Any] | None, problem: str
) -> None:
    assert problem in record.mismatch(recorded, render_record())


def test_the_render_for_the_selection_is_applied() -> None:
    assert record.mismatch(render_record(), render_record()) == ""


@pytest.mark.cluster
def test_start_applies_only_the_render_of_the_selected_environment(
    project: Project, cluster: Cluster
) -> None:
    """A root rendered for environment b, then `tutor k8s start` with c selected;
    a root where only `tutor plugins enable` rendered; an environment changed after
    its render: each start is refused, and nothing is applied or pruned."""
    b = deploy_environment(project, cluster, "b")
    project.save()
    project.tutor("k8s", "start")
    c = f"eks-c-{b[-6:]}"
    cluster.kubectl("create", "namespace", c)
    try:
        for name, data in mysql_secrets().items():
            put_secret(cluster, c, name, data)
        project.write(
            "environments/c/config.yml",
            f"LMS_HOST: c.example.com\nK8S_NAMESPACE: {c}\n",
        )
        refused = project.tutor(
            "k8s", "start", env={"TUTOR_EKS_ENVIRONMENT": "c"}, check=False
        )
        assert refused.returncode != 0
        assert "was rendered for environment 'dev', not 'c'" in (
            refused.stdout + refused.stderr
        )
        assert not cluster.get_json("deployments", "-n", c)["items"]
        assert cluster.get_json("deployment", "lms", "-n", b)

        job = project.ci_job("enabled-only")
        (job.root / "config.yml").write_text("PLUGINS: []\n", encoding="utf-8")
        job.tutor("plugins", "enable", "eks")
        refused = job.tutor("k8s", "start", check=False)
        assert "without reading the cluster's Secrets and state" in (
            refused.stderr + refused.stdout
        )
        diff = job.tutor("eks", "diff", check=False)
        assert diff.returncode != 0
        assert "without reading the cluster" in diff.stderr + diff.stdout

        config = project.path / "environments/dev/config.yml"
        config.write_text(
            config.read_text(encoding="utf-8") + "PLATFORM_NAME: B\n", encoding="utf-8"
        )
        refused = project.tutor("k8s", "start", check=False)
        assert "older than the files of environment 'dev'" in (
            refused.stdout + refused.stderr
        )
    finally:
        delete_deployment(cluster, b)
        delete_deployment(cluster, c)


# --- cluster strings are text to show ------------------------------------------------

HOSTILE = (
    "\x1b[31mred\x1b[0m\rline\nbreak | [click](https://evil.example) "
    "![img](https://evil.example/x.png) <script>alert(1)</script> \u202eevil "
    + SECRET_LOOKING
)


def test_cluster_strings_are_scrubbed_stripped_and_shortened() -> None:
    scrub = masking.Scrubber([SECRET_LOOKING])
    item = status.cleaned(
        Item("Certificate", "x" * 400, False, HOSTILE, HOSTILE * 5, {"why": [HOSTILE]}),
        scrub,
    )
    for text in (item.status, item.detail):
        assert SECRET_LOOKING not in text
    for text in (item.status, item.detail, item.data["why"][0]):
        assert all(ch.isprintable() for ch in text), repr(text)
    assert len(item.detail) <= masking.MESSAGE_LIMIT and item.detail.endswith("...")
    assert len(item.name) <= masking.NAME_LIMIT


def test_names_are_shown_as_they_are() -> None:
    """A value from a Secret that is also part of a name (the database user
    `openedx`) does not hide the name (`openedx-tls`, namespace `openedx-dev`)."""
    scrub = masking.Scrubber(["openedx"])
    item = status.cleaned(
        Item("Certificate", "openedx-tls", False, "openedx failed", ""), scrub
    )
    assert (item.name, item.status) == ("openedx-tls", "*** failed")
    pod = {
        "metadata": {"name": "lms-abc", "namespace": "openedx-dev"},
        "status": {"phase": "Failed", "reason": "Evicted", "message": "openedx"},
    }
    diagnosis = pods.diagnose(pod, scrub)
    assert diagnosis is not None
    assert "-n openedx-dev" in diagnosis.logs_command
    assert diagnosis.detail == "Evicted: ***"


def test_a_markdown_cell_shows_text_and_nothing_else() -> None:
    report = Report(
        "qa",
        "openedx-qa",
        None,
        [Item("Ingress", "openedx", False, HOSTILE, HOSTILE)],
    )
    row = status.markdown(report).splitlines()[-1]
    # one row of five cells: every other pipe is escaped
    assert len(re.findall(r"(?<!\\)\|", row)) == 6, row
    assert "](" not in row.replace("\\](", "").replace("\\]\\(", "")
    assert "<script" not in row and "&lt;script&gt;" in row
    assert "\\[click\\]\\(https://evil.example\\)" in row
    assert "\\!\\[img\\]" in row
    assert all(ch.isprintable() for ch in row)


@pytest.mark.parametrize("value", [10**30, -1, 1.5, True, "600"])
def test_a_timeout_is_a_bounded_whole_number(value: t.Any) -> None:
    from tutoreks.deploy import jobs

    with pytest.raises(
        EksError, match=r"EKS_ROLLOUT_TIMEOUT is .*: it must be a whole"
    ):
        jobs.seconds({"EKS_ROLLOUT_TIMEOUT": value}, "EKS_ROLLOUT_TIMEOUT")
    assert jobs.seconds({"EKS_ROLLOUT_TIMEOUT": 600}, "EKS_ROLLOUT_TIMEOUT") == 600


# --- adopt reads odd objects without a traceback -------------------------------------


def test_adopt_recovers_nothing_from_odd_objects() -> None:
    from tutoreks.deploy import adopt

    recovery = adopt.Recovery()
    adopt.recover_from_env_yml(recovery, "DATABASES: [1, 2]\nSECRET_KEY: {a: 1}\n")
    adopt.recover_from_env_yml(recovery, "DATABASES: {default: [x]}\n")
    adopt.recover_from_env_yml(recovery, 'SECRET_KEY: "line\\nbreak"\n')
    adopt.recover_from_env_yml(recovery, ": not yaml : [")
    adopt.recover_from_settings(
        recovery, {"lms/production.py": 'MEILISEARCH_API_KEY = "\x1b"'}
    )
    assert recovery.values == {}
    adopt.recover_from_env_yml(recovery, "SECRET_KEY: good-generated-value\n")
    assert recovery.values == {"OPENEDX_SECRET_KEY": "good-generated-value"}


def test_adopt_skips_data_a_secret_cannot_hold() -> None:
    """An API server validates base64; a proxy or an odd object may not: such data
    is skipped (the only fake of this file: no real server sends it)."""
    from tutoreks import kube as kube_module
    from tutoreks.deploy import adopt

    class OddObjects:
        def list(self, resource: t.Any, namespace: str, selector: str) -> list[t.Any]:
            if resource is kube_module.SECRETS:
                return [
                    {
                        "metadata": {"name": "openedx-config"},
                        "data": {"lms.env.yml": "%%%"},
                    },
                    {"metadata": {"name": "openedx-settings-lms"}, "data": None},
                ]
            return [{"metadata": {"name": "openedx-config-abc"}, "data": {"x": 5}}]

    assert adopt.config_files(OddObjects(), "ns", "abc") == {}  # type: ignore[arg-type]
