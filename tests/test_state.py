"""Deploy again and again from throwaway CI jobs: Tutor's generated values live in
the environment's state Secret (config/state.py), on the local control plane."""

from __future__ import annotations

import base64
import subprocess
import time
import typing as t
from pathlib import Path

import pytest

from tutoreks import defaults

from .cluster.conftest import Cluster
from .conftest import (
    TUTOR,
    Project,
    delete_deployment,
    deploy_environment,
    fail_if_secret_in,
    put_secret,
    use_cluster,
)

pytestmark = pytest.mark.cluster

STATE = "tutor-eks-state"
KEPT = ("ID", "OPENEDX_SECRET_KEY", "JWT_RSA_PRIVATE_KEY", "CMS_OAUTH2_SECRET")


def state_values(cluster: Cluster, namespace: str) -> dict[str, str]:
    secret = cluster.get_json("secret", STATE, "-n", namespace)
    return {
        key: base64.b64decode(value).decode() for key, value in secret["data"].items()
    }


def generations(cluster: Cluster, namespace: str) -> dict[str, int]:
    return {
        d["metadata"]["name"]: d["metadata"]["generation"]
        for d in cluster.get_json("deployments", "-n", namespace)["items"]
    }


def assert_nowhere_but_secrets(
    cluster: Cluster, namespace: str, values: t.Iterable[str], job: Project
) -> None:
    dumped = cluster.kubectl(
        "get",
        "configmaps,jobs,pods,deployments,replicasets,events",
        "-n",
        namespace,
        "-o",
        "yaml",
    ).stdout
    config = (job.root / "config.yml").read_text(encoding="utf-8")
    for value in values:
        if value in dumped and f"openedx-{value}" in dumped:
            continue  # ID: Tutor's instance label on every object, not a secret
        fail_if_secret_in(value, dumped, "ConfigMaps, Jobs, Pods or Deployments")
        for line in value.splitlines():
            if len(line) > 8:
                fail_if_secret_in(line, config, "the tutor root's config.yml")


def test_three_ci_jobs_from_empty_roots_deploy_one_instance(
    project: Project, cluster: Cluster
) -> None:
    namespace = deploy_environment(project, cluster, "again")
    try:
        first = project.ci_job("run-1")
        started = time.monotonic()
        first.tutor("k8s", "launch", "--non-interactive")
        first_time = time.monotonic() - started
        kept = state_values(cluster, namespace)
        assert set(KEPT) <= set(kept)
        assert "MYSQL_ROOT_PASSWORD" not in kept, "an operator's Secret is never copied"
        assert "OPENEDX_MYSQL_PASSWORD" not in kept
        assert kept["JWT_RSA_PRIVATE_KEY"].startswith(
            "-----BEGIN RSA PRIVATE KEY-----\n"
        )
        deployed = generations(cluster, namespace)
        lms = cluster.get_json("deployment", "lms", "-n", namespace)
        assert (
            lms["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"]
            == f"openedx-{kept['ID']}"
        )
        assert_nowhere_but_secrets(cluster, namespace, kept.values(), first)

        second = project.ci_job("run-2")
        started = time.monotonic()
        second.tutor("k8s", "launch", "--non-interactive")
        second_time = time.monotonic() - started
        assert state_values(cluster, namespace) == kept
        assert generations(cluster, namespace) == deployed, "no Deployment rolled"
        for name in (
            "apps/openedx/config/lms.env.yml",
            "apps/openedx/settings/lms/production.py",
        ):
            assert second.env_file(name) == first.env_file(name), name

        third = project.ci_job("run-3")
        third.tutor("config", "save")
        diff = third.tutor("eks", "diff", check=False)
        assert diff.returncode == 0, diff.stdout[-2000:] + diff.stderr[-2000:]
        assert_nowhere_but_secrets(cluster, namespace, kept.values(), third)
        # The JWT key stands in config.yml as a stand-in: the next command's first
        # load, before the plugin is loaded, generates no key (0.3-1 s).
        assert third.config()["JWT_RSA_PRIVATE_KEY"] == defaults.STAND_IN
        assert third.value("JWT_RSA_PRIVATE_KEY") == kept["JWT_RSA_PRIVATE_KEY"].strip()
        state = cluster.get_json("secret", STATE, "-n", namespace)
        annotations = state["metadata"]["annotations"]
        assert annotations["tutor-contrib-eks/environment"] == "dev"
        assert annotations["tutor-contrib-eks/tutor-version"].startswith("22.")
        print(
            f"\nfirst launch {first_time:.1f} s, no-change relaunch {second_time:.1f} s"
        )
    finally:
        delete_deployment(cluster, namespace)


def test_two_first_saves_racing_end_with_one_set_of_values(
    project: Project, cluster: Cluster
) -> None:
    namespace = deploy_environment(project, cluster, "race")
    try:
        jobs = [project.ci_job(f"racer-{n}") for n in range(2)]
        for job in jobs:
            job.environ["TUTOR_EKS_ENVIRONMENT"] = "dev"
        running = [
            subprocess.Popen(
                [TUTOR, "config", "save"],
                cwd=job.path,
                env=job.environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for job in jobs
        ]
        for process in running:
            _out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err[-2000:]
        kept = state_values(cluster, namespace)
        for job in jobs:
            rendered = job.env_file("apps/openedx/config/lms.env.yml")
            assert f'SECRET_KEY: "{kept["OPENEDX_SECRET_KEY"]}"' in rendered
            assert f"openedx-{kept['ID']}" in job.env_file("kustomization.yml")
    finally:
        delete_deployment(cluster, namespace)


def test_plain_tutor_namespace_is_refused_then_adopted(
    project: Project, cluster: Cluster
) -> None:
    namespace = deploy_environment(project, cluster, "adopt")
    plain = project.ci_job("plain-tutor")
    (plain.root / "config.yml").write_text(
        f"K8S_NAMESPACE: {namespace}\nLMS_HOST: lms.adopt.example.com\nPLUGINS: []\n",
        encoding="utf-8",
    )
    plain.environ.pop("TUTOR_EKS_ENVIRONMENT")
    try:
        plain.tutor("config", "save")
        plain.tutor("k8s", "start")
        original = plain.config()
        deployed = generations(cluster, namespace)

        job = project.ci_job("eks-1")
        refused = job.tutor("k8s", "launch", "--non-interactive", check=False)
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert (
            f"Namespace {namespace} already runs the Tutor instance with ID {original['ID']!r}"
            in output
        )
        assert "tutor eks adopt" in output
        assert (
            cluster.kubectl(
                "get", "secret", STATE, "-n", namespace, check=False
            ).returncode
            != 0
        )
        assert generations(cluster, namespace) == deployed, "a refusal applies nothing"
        for key in KEPT[1:]:  # the ID is named on purpose
            fail_if_secret_in(str(original[key]), output, "the refusal")

        # The operator provides the secret key from a Secret: adopt does not copy
        # it into the state (a higher layer's value is never kept there).
        put_secret(
            cluster,
            namespace,
            "edx-secret-key",
            {"OPENEDX_SECRET_KEY": str(original["OPENEDX_SECRET_KEY"])},
        )
        adopted = job.tutor("eks", "adopt")
        assert "ID" in adopted.stdout and "JWT_RSA_PRIVATE_KEY" in adopted.stdout
        kept = state_values(cluster, namespace)
        assert "OPENEDX_SECRET_KEY" not in kept
        for key in ("ID", "CMS_OAUTH2_SECRET", "MEILISEARCH_MASTER_KEY"):
            assert kept[key] == original[key], key
        assert (
            kept["JWT_RSA_PRIVATE_KEY"].split()
            == str(original["JWT_RSA_PRIVATE_KEY"]).split()
        )

        project.ci_job("eks-2").tutor("k8s", "launch", "--non-interactive")
        lms = cluster.get_json("deployment", "lms", "-n", namespace)
        assert (
            lms["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"]
            == f"openedx-{original['ID']}"
        )
        # Plain Tutor's ConfigMaps that held the passwords are gone.
        left = [
            c["metadata"]["name"]
            for c in cluster.get_json("configmaps", "-n", namespace)["items"]
            if c["metadata"]["name"].startswith(("openedx-config", "openedx-settings"))
        ]
        assert left == []
        dumped = cluster.kubectl(
            "get", "configmaps", "-n", namespace, "-o", "yaml"
        ).stdout
        for key in ("OPENEDX_SECRET_KEY", "CMS_OAUTH2_SECRET"):
            fail_if_secret_in(str(original[key]), dumped, "the ConfigMaps")
    finally:
        delete_deployment(cluster, namespace)


def test_launch_from_an_empty_root_runs_the_release_upgrade(
    project: Project, cluster: Cluster
) -> None:
    namespace = deploy_environment(project, cluster, "upgrade")
    try:
        project.ci_job("run-1").tutor("config", "save")
        cluster.kubectl(
            "annotate",
            "secret",
            STATE,
            "-n",
            namespace,
            "--overwrite",
            "tutor-contrib-eks/tutor-version=21.0.4",
        )
        # The workflow's order: enabling the plugin (which renders env/ and writes
        # env/version) with the environment selected, then launch.
        job = project.ci_job("run-2")
        (job.root / "config.yml").write_text("PLUGINS: []\n", encoding="utf-8")
        job.tutor("plugins", "enable", "eks")
        launched = job.tutor("k8s", "launch", "--non-interactive")
        assert "Upgrading from an older release" in launched.stdout
        annotations = cluster.get_json("secret", STATE, "-n", namespace)["metadata"][
            "annotations"
        ]
        assert annotations["tutor-contrib-eks/tutor-version"].startswith("22.")
        again = project.ci_job("run-3").tutor("k8s", "launch", "--non-interactive")
        assert "Upgrading from an older release" not in again.stdout
    finally:
        delete_deployment(cluster, namespace)


def role(
    cluster: Cluster, namespace: str, name: str, rules: list[dict[str, t.Any]]
) -> Path:
    """A ServiceAccount holding only ``rules`` in ``namespace``; its kubeconfig."""
    import json

    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": namespace},
                "rules": rules,
            }
        ),
    )
    kubeconfig = cluster.service_account_kubeconfig(namespace, name)
    cluster.kubectl(
        "create",
        "rolebinding",
        name,
        "-n",
        namespace,
        f"--role={name}",
        f"--serviceaccount={namespace}:{name}",
    )
    return kubeconfig


READ_OPERATOR_SECRETS = {
    "apiGroups": [""],
    "resources": ["secrets"],
    "resourceNames": [name.rstrip("?") for name in defaults.CONFIG_DEFAULTS["SECRETS"]],
    "verbs": ["get"],
}


def state_secret(namespace: str, data: dict[str, str], environment: str = "dev") -> str:
    import json

    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": STATE,
                "namespace": namespace,
                "annotations": {"tutor-contrib-eks/environment": environment},
            },
            "data": data,
        }
    )


@pytest.mark.parametrize(
    "case",
    [
        "undecodable",
        "other-environment",
        "get-forbidden",
        "create-forbidden",
        pytest.param("api-down", marks=pytest.mark.disruptive),
    ],
)
def test_bad_state_is_a_clear_error_and_changes_nothing(
    project: Project, cluster: Cluster, case: str
) -> None:
    namespace = deploy_environment(project, cluster, "badstate")
    job = project.ci_job("run")
    (job.root / "env").mkdir()
    (job.root / "env" / "marker").write_text("before\n", encoding="utf-8")
    before = job.fingerprint()
    expected = {
        "undecodable": f"state Secret {namespace}/{STATE} key OPENEDX_SECRET_KEY: the value is not UTF-8",
        "other-environment": f"The state Secret {namespace}/{STATE} belongs to environment 'qa', not 'dev'",
        "get-forbidden": f"Not allowed to read Secret {namespace}/{STATE}",
        "create-forbidden": f"Cannot create the state Secret {namespace}/{STATE}",
        "api-down": "Cannot reach the Kubernetes API server https://127.0.0.1:",
    }[case]
    try:
        if case == "undecodable":
            cluster.kubectl(
                "apply",
                "-f",
                "-",
                input=state_secret(
                    namespace,
                    {"OPENEDX_SECRET_KEY": base64.b64encode(b"\xff\xfe").decode()},
                ),
            )
        elif case == "other-environment":
            cluster.kubectl("apply", "-f", "-", input=state_secret(namespace, {}, "qa"))
        elif case == "get-forbidden":
            kubeconfig = role(cluster, namespace, "no-state", [READ_OPERATOR_SECRETS])
            use_cluster(job, cluster, kubeconfig)
        elif case == "create-forbidden":
            kubeconfig = role(
                cluster,
                namespace,
                "no-create",
                [
                    READ_OPERATOR_SECRETS,
                    {
                        "apiGroups": [""],
                        "resources": ["secrets"],
                        "resourceNames": [STATE],
                        "verbs": ["get", "update"],
                    },
                    {
                        "apiGroups": ["apps"],
                        "resources": ["deployments"],
                        "verbs": ["list"],
                    },
                ],
            )
            use_cluster(job, cluster, kubeconfig)
        elif case == "api-down":
            cluster.stop_apiserver()
        started = time.monotonic()
        result = job.tutor("config", "save", check=False)
        elapsed = time.monotonic() - started
    finally:
        if case == "api-down":
            cluster.start_apiserver()
    try:
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-2000:]
        assert expected in output, output[-2000:]
        assert "Traceback" not in output
        assert elapsed < 45, f"{elapsed:.0f} s"
        assert job.fingerprint() == before, "config.yml and env/ are untouched"
        if case in ("get-forbidden", "create-forbidden", "api-down"):
            assert (
                cluster.kubectl(
                    "get", "secret", STATE, "-n", namespace, check=False
                ).returncode
                != 0
            )
        assert cluster.get_json("deployments", "-n", namespace)["items"] == [], (
            "nothing applied"
        )
    finally:
        delete_deployment(cluster, namespace)
