"""Backing-service credentials from Kubernetes Secrets, against the real control plane.

Test Secret values are asserted with fail_if_secret_in / fail_unless_secret_in so
that not even a failing test prints one.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import typing as t
import uuid
from pathlib import Path

import pytest

from tutoreks import defaults
from tutoreks.config import values as eks_secrets

from .cluster.conftest import Cluster
from .conftest import (
    Project,
    fail_if_secret_in,
    fail_unless_secret_in,
    put_secret,
    use_cluster,
)

pytestmark = pytest.mark.cluster

#: The names of the default EKS_SECRETS.
DEFAULT_SECRET_NAMES = [
    name.rstrip("?") for name in defaults.CONFIG_DEFAULTS["SECRETS"]
]
ROOT_PASSWORD = "yes"
OPENEDX_PASSWORD = "0pen{{ 7*7 }}%{% x %}edx"
REDIS_PASSWORD = "redis-Pa55-w0rd"


@pytest.fixture
def namespace(cluster: Cluster) -> t.Iterator[str]:
    name = f"eks-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def deployed(project: Project, cluster: Cluster, namespace: str) -> Project:
    """dev in its own namespace, with the Secrets a Terraform stack creates."""
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: lms.dev.example.com\nK8S_NAMESPACE: {namespace}\nPLATFORM_NAME: Dev\n",
    )
    put_secret(
        cluster,
        namespace,
        "mysql-root",
        {
            "MYSQL_HOST": "mysql.example.internal",
            "MYSQL_PORT": "3307",
            "MYSQL_ROOT_USERNAME": "admin",
            "MYSQL_ROOT_PASSWORD": ROOT_PASSWORD,
        },
    )
    put_secret(
        cluster,
        namespace,
        "mysql-openedx",
        {
            "OPENEDX_MYSQL_USERNAME": "openedx",
            "OPENEDX_MYSQL_PASSWORD": OPENEDX_PASSWORD,
        },
    )
    put_secret(
        cluster,
        namespace,
        "redis",
        {"REDIS_HOST": "redis.example.internal", "REDIS_PASSWORD": REDIS_PASSWORD},
    )
    del project.environ["TUTOR_EKS_SECRETS"]  # the default list
    use_cluster(project, cluster)
    return project


def runner_unescape(data: str) -> str:
    """What the GitHub Actions runner reads from a workflow command's data."""
    return data.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def all_output(result: t.Any) -> str:
    return str(result.stdout) + str(result.stderr)


def test_values_flow_into_the_rendered_env_and_never_into_config_yml(
    deployed: Project, namespace: str
) -> None:
    result = deployed.tutor("config", "save", "--set", "EKS_ENVIRONMENT=dev")
    for value in (ROOT_PASSWORD, OPENEDX_PASSWORD, REDIS_PASSWORD):
        fail_if_secret_in(value, all_output(result), "the output of tutor config save")
        fail_if_secret_in(
            value, (deployed.root / "config.yml").read_text(), "config.yml"
        )
    assert (
        f"Secrets read from namespace {namespace}: mysql-root, mysql-openedx, redis"
        in result.stderr
    )
    assert (
        "optional, absent: mongodb, mongodb-openedx, smtp, aws-ses-config, "
        "s3-openedx-storage, edx-secret-key, jwt, admin-edx" in result.stderr
    )

    assert deployed.value("MYSQL_HOST") == "mysql.example.internal"
    assert deployed.value("MYSQL_PORT") == "3307"
    assert deployed.value("RUN_MYSQL") == "false"
    assert deployed.value("RUN_REDIS") == "false"
    assert deployed.value("RUN_MONGODB") == "true", (
        "no mongodb Secret: Tutor keeps its own"
    )
    # '{{' and '%' in a password are part of the password; 'yes' stays a string.
    if deployed.value("MYSQL_ROOT_PASSWORD") != ROOT_PASSWORD:
        pytest.fail("a password 'yes' must stay the string 'yes'", pytrace=False)
    fail_unless_secret_in(
        OPENEDX_PASSWORD, deployed.value("OPENEDX_MYSQL_PASSWORD"), "printvalue"
    )
    fail_unless_secret_in(
        f'PASSWORD: "{OPENEDX_PASSWORD}"',
        deployed.env_file("apps/openedx/config/lms.env.yml"),
        "lms.env.yml",
    )
    fail_unless_secret_in(
        REDIS_PASSWORD,
        deployed.env_file("apps/openedx/config/lms.env.yml"),
        "lms.env.yml",
    )
    assert "mysql" not in {
        o["metadata"]["name"] for o in deployed.kustomize() if o["kind"] == "Deployment"
    }


def test_layer5_secret_beats_environment_and_tutor_variable_beats_secret(
    deployed: Project,
) -> None:
    config = deployed.path / "environments/dev/config.yml"
    config.write_text(config.read_text() + "MYSQL_HOST: from-environment\n")
    result = deployed.tutor("config", "save", "--set", "EKS_ENVIRONMENT=dev")
    assert "(the Secret wins): MYSQL_HOST" in all_output(result)
    assert deployed.value("MYSQL_HOST") == "mysql.example.internal"
    assert (
        deployed.value("MYSQL_HOST", env={"TUTOR_MYSQL_HOST": "from-variable"})
        == "from-variable"
    )


def test_renames(deployed: Project, cluster: Cluster, namespace: str) -> None:
    put_secret(
        cluster,
        namespace,
        "smtp",
        {"SMTP_HOST": "smtp.example.com", "host-port": "2525"},
    )
    env = {
        "TUTOR_EKS_SECRET_KEYS": '{"smtp/host-port": "SMTP_PORT"}',
        "TUTOR_EKS_ENVIRONMENT": "dev",
    }
    deployed.tutor("config", "save", env=env)
    assert deployed.value("SMTP_PORT", env=env) == "2525"
    assert deployed.value("RUN_SMTP", env=env) == "false"


def test_masked_under_github_actions_before_anything_else(deployed: Project) -> None:
    result = deployed.tutor(
        "config", "save", env={"GITHUB_ACTIONS": "true", "TUTOR_EKS_ENVIRONMENT": "dev"}
    )
    lines = result.stdout.splitlines()
    masks = [line for line in lines if line.startswith("::add-mask::")]
    assert lines[: len(masks)] == masks, "masks must come before anything else"
    masked = {runner_unescape(line.removeprefix("::add-mask::")) for line in masks}
    for value in (ROOT_PASSWORD, OPENEDX_PASSWORD, REDIS_PASSWORD):
        if value not in masked:
            pytest.fail("a Secret value was not masked", pytrace=False)


@pytest.mark.parametrize(
    "case,message",
    [
        (
            "missing-secret",
            r"Secret {ns}/mysql-openedx not found: create it in namespace '{ns}'",
        ),
        ("missing-key", r"Secret {ns}/mysql-root has no key MYSQL_ROOT_PASSWORD"),
        (
            "bad-value",
            r"Secret {ns}/redis key REDIS_PASSWORD \(REDIS_PASSWORD\): the value contains a newline",
        ),
        ("bad-kubeconfig", r"kubeconfig .*broken\.yml:\d+:\d+: invalid YAML"),
        ("no-kubeconfig", r"No Kubernetes credentials: no kubeconfig at .*nowhere"),
        (
            "bad-port",
            r"Secret {ns}/mysql-root key MYSQL_PORT: MYSQL_PORT must be a whole number",
        ),
    ],
)
def test_faults_are_clear_and_change_nothing(
    deployed: Project, cluster: Cluster, namespace: str, case: str, message: str
) -> None:
    import re

    deployed.tutor("config", "save", "--set", "EKS_ENVIRONMENT=dev")
    before = deployed.fingerprint()
    env: dict[str, str] = {}
    if case == "missing-secret":
        cluster.kubectl("delete", "secret", "mysql-openedx", "-n", namespace)
    elif case == "missing-key":
        put_secret(cluster, namespace, "mysql-root", {"MYSQL_HOST": "h"})
        cluster.kubectl(
            "patch",
            "secret",
            "mysql-root",
            "-n",
            namespace,
            "--type=json",
            "-p",
            '[{"op":"remove","path":"/data/MYSQL_ROOT_PASSWORD"}]',
        )
    elif case == "bad-value":
        put_secret(
            cluster, namespace, "redis", {"REDIS_HOST": "h", "REDIS_PASSWORD": "a\nb"}
        )
    elif case == "bad-kubeconfig":
        env["KUBECONFIG"] = str(
            deployed.write("broken.yml", "apiVersion: v1\nclusters: [\n")
        )
    elif case == "no-kubeconfig":
        env["KUBECONFIG"] = str(deployed.path / "nowhere")
    elif case == "bad-port":
        put_secret(
            cluster,
            namespace,
            "mysql-root",
            {"MYSQL_HOST": "h", "MYSQL_PORT": "33o6", "MYSQL_ROOT_PASSWORD": "p"},
        )
    result = deployed.tutor("config", "save", env=env, check=False)
    output = all_output(result)
    assert result.returncode != 0
    assert re.search(message.format(ns=namespace), output), output
    fail_if_secret_in('a"b$c', output, "the error output")
    assert deployed.fingerprint() == before, "config.yml or env/ changed"


def test_least_privilege_service_account(
    deployed: Project, cluster: Cluster, namespace: str
) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "read-named-secrets", "namespace": namespace},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get"],
                "resourceNames": DEFAULT_SECRET_NAMES,
            }
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(role))
    allowed = cluster.service_account_kubeconfig(namespace, "deployer")
    cluster.kubectl(
        "create",
        "rolebinding",
        "deployer",
        "-n",
        namespace,
        "--role=read-named-secrets",
        f"--serviceaccount={namespace}:deployer",
    )
    use_cluster(deployed, cluster, allowed)
    deployed.tutor("config", "save", "--set", "EKS_ENVIRONMENT=dev")
    assert deployed.value("MYSQL_HOST") == "mysql.example.internal"
    # It can read nothing else: no list, no other Secret.
    assert (
        cluster.kubectl(
            "auth",
            "can-i",
            "list",
            "secrets",
            "-n",
            namespace,
            kubeconfig=allowed,
            check=False,
        ).stdout.strip()
        == "no"
    )

    refused = cluster.service_account_kubeconfig(namespace, "stranger")
    use_cluster(deployed, cluster, refused)
    before = deployed.fingerprint()
    result = deployed.tutor("config", "save", check=False)
    output = all_output(result)
    assert result.returncode != 0
    assert (
        f"Not allowed to read Secret {namespace}/mysql-root (verb get, resource secrets, namespace {namespace})"
        in output
    )
    assert f"system:serviceaccount:{namespace}:stranger" in output, (
        "the identity must be named"
    )
    assert deployed.fingerprint() == before


@pytest.mark.disruptive
def test_api_server_down_gives_a_bounded_error(
    deployed: Project, cluster: Cluster
) -> None:
    deployed.tutor("config", "save", "--set", "EKS_ENVIRONMENT=dev")
    before = deployed.fingerprint()
    cluster.stop_apiserver()
    try:
        started = time.monotonic()
        result = deployed.tutor("config", "save", check=False)
        elapsed = time.monotonic() - started
    finally:
        cluster.start_apiserver()
    assert result.returncode != 0
    assert f"Cannot reach the Kubernetes API server {cluster.server}" in all_output(
        result
    )
    assert elapsed < 30, f"took {elapsed:.1f}s"
    assert deployed.fingerprint() == before


def test_api_server_timing_out_gives_a_bounded_error(
    deployed: Project, tmp_path: Path
) -> None:
    """A server that accepts connections and never answers: read timeouts, bounded."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    kubeconfig = deployed.write(
        "silent.kubeconfig",
        f"""\
apiVersion: v1
kind: Config
clusters: [{{name: silent, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: u, user: {{token: abc}}}}]
contexts: [{{name: silent, context: {{cluster: silent, user: u}}}}]
current-context: silent
""",
    )
    try:
        started = time.monotonic()
        result = deployed.tutor(
            "config",
            "save",
            "--set",
            "EKS_ENVIRONMENT=dev",
            env={"KUBECONFIG": str(kubeconfig)},
            check=False,
        )
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
    assert result.returncode != 0
    assert (
        f"Cannot reach the Kubernetes API server http://127.0.0.1:{port}"
        in all_output(result)
    )
    assert "timed out" in all_output(result)
    assert elapsed < 45, f"took {elapsed:.1f}s"


@pytest.mark.parametrize(
    "key,text,default,expected",
    [
        ("MYSQL_PORT", "3306", 3306, 3306),
        ("MYSQL_ROOT_PASSWORD", "yes", "x", "yes"),
        ("ENABLE_HTTPS", "true", False, True),
        ("S3_REGION", "1", None, "1"),
    ],
)
def test_typed_by_tutor_default(
    key: str, text: str, default: t.Any, expected: t.Any
) -> None:
    assert eks_secrets.typed(key, text, default, "here") == expected


def test_secrets_command_maps_keys_and_never_shows_values(
    deployed: Project, namespace: str
) -> None:
    config = deployed.path / "environments/dev/config.yml"
    config.write_text(config.read_text() + "REDIS_HOST: from-environment\n")
    result = deployed.tutor("eks", "secrets", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
    rows = {
        line.split()[0]: line
        for line in result.stdout.splitlines()
        if line.startswith("  ")
    }
    assert "mysql-root/MYSQL_ROOT_PASSWORD" in rows["MYSQL_ROOT_PASSWORD"]
    assert rows["MYSQL_ROOT_PASSWORD"].split()[2] == str(len(ROOT_PASSWORD)), (
        "the length, never the value"
    )
    assert (
        "redis/REDIS_HOST" in rows["REDIS_HOST"]
        and "(the Secret wins)" in rows["REDIS_HOST"]
    )
    assert "false: MYSQL_HOST from Secret" in rows["RUN_MYSQL"]
    assert (
        "Optional Secrets absent: mongodb, mongodb-openedx, smtp, aws-ses-config, "
        "s3-openedx-storage, edx-secret-key, jwt, admin-edx" in result.stdout
    )
    assert f"namespace {namespace}" in result.stdout
    for value in (ROOT_PASSWORD, OPENEDX_PASSWORD, REDIS_PASSWORD):
        fail_if_secret_in(value, all_output(result), "tutor eks secrets")
