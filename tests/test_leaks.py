"""No credential leaks on any path, on the local control plane: planted Secret
values and generated values never appear in any output, in config.yml, or in any
object but Secrets, whatever `tutor k8s do` command runs."""

from __future__ import annotations

import base64
import uuid

import pytest

from .cluster.conftest import Cluster
from .conftest import (
    Project,
    delete_deployment,
    deploy_environment,
    fail_if_secret_in,
)

pytestmark = pytest.mark.cluster

#: Awkward but valid: every character class a real password has.
ROOT_PASSWORD = "r00t$'\"`\\!#%&*()-_=+[]{}<>:?~" + uuid.uuid4().hex[:8]
OPENEDX_PASSWORD = "0pen;&()|<>$(id)`id`'x'" + uuid.uuid4().hex[:8]
MEILI_KEY = "meili-" + uuid.uuid4().hex


def everything(cluster: Cluster, namespace: str) -> str:
    """Every object of the namespace but Secrets, as YAML."""
    return cluster.kubectl(
        "get",
        "configmaps,jobs,pods,deployments,replicasets,events,services,ingresses",
        "-n",
        namespace,
        "-o",
        "yaml",
    ).stdout


def test_no_value_reaches_a_spec_whatever_runs(
    project: Project, cluster: Cluster
) -> None:
    """MySQL runs in the cluster (RUN_MYSQL stays true) while its root password
    comes from a Secret; Meilisearch's master key too. `tutor k8s do init --limit
    mysql` (the plugin's own init callback does not run then) and the MySQL
    maintenance tasks render credentials into Jobs in plain Tutor."""
    namespace = deploy_environment(
        project,
        cluster,
        "leak",
        {
            "db-credentials": {
                "MYSQL_ROOT_PASSWORD": ROOT_PASSWORD,
                "OPENEDX_MYSQL_PASSWORD": OPENEDX_PASSWORD,
                "MEILISEARCH_MASTER_KEY": MEILI_KEY,
            }
        },
        config="EKS_SECRETS: [db-credentials]\n",
    )
    outputs = []
    try:
        outputs.append(project.tutor("k8s", "launch", "--non-interactive"))
        for command in (
            ("k8s", "do", "init", "--limit", "mysql"),
            ("k8s", "do", "init", "--limit", "lms"),
            ("k8s", "do", "convert-mysql-utf8mb4-charset", "--non-interactive"),
            ("k8s", "do", "update-mysql-authentication-plugin", "openedx"),
        ):
            outputs.append(project.tutor(*command))
        mysql = cluster.get_json("deployment", "mysql", "-n", namespace)
        env = {
            e["name"]: e
            for e in mysql["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["MYSQL_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "db-credentials",
            "key": "MYSQL_ROOT_PASSWORD",
        }
        state = cluster.get_json("secret", "tutor-eks-state", "-n", namespace)
        generated = [
            base64.b64decode(v).decode() for k, v in state["data"].items() if k != "ID"
        ]
        jobs = cluster.get_json("jobs", "-n", namespace)["items"]
        names = sorted(j["metadata"]["name"].rsplit("-", 1)[0] for j in jobs)
        for prefix in ("mysql-job", "lms-job"):
            assert names.count(prefix) >= 2, (
                names,
                [o.stdout[-600:] for o in outputs[1:]],
            )
        dumped = everything(cluster, namespace)
        for value in (ROOT_PASSWORD, OPENEDX_PASSWORD, MEILI_KEY, *generated):
            fail_if_secret_in(value, dumped, "the namespace's objects")
            for output in outputs:
                fail_if_secret_in(
                    value, output.stdout + output.stderr, "the command output"
                )
            fail_if_secret_in(
                value, (project.root / "config.yml").read_text(), "config.yml"
            )
    finally:
        delete_deployment(cluster, namespace)


def test_masks_come_first_and_cover_every_line(
    project: Project, cluster: Cluster
) -> None:
    """Under GitHub Actions, read as the runner reads workflow commands: every
    line of every value (a PEM key, a value holding "%0A") is masked before
    anything else is printed."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    tricky = "pa%0Ass%25word-" + uuid.uuid4().hex[:6]
    namespace = deploy_environment(
        project,
        cluster,
        "mask",
        {
            "creds": {
                "JWT_RSA_PRIVATE_KEY": pem,
                "SMTP_HOST": "smtp.example.com",
                "SMTP_PASSWORD": tricky,
            }
        },
        config="EKS_SECRETS: [creds]\n",
    )
    try:
        result = project.tutor(
            "config",
            "save",
            env={"GITHUB_ACTIONS": "true", "TUTOR_EKS_ENVIRONMENT": "dev"},
        )
        lines = result.stdout.splitlines()
        count = next(
            i for i, line in enumerate(lines) if not line.startswith("::add-mask::")
        )
        masks = {
            line.removeprefix("::add-mask::")
            .replace("%0D", "\r")
            .replace("%0A", "\n")
            .replace("%25", "%")
            for line in lines[:count]
        }
        assert not any(line.startswith("::add-mask::") for line in lines[count:])
        state = cluster.get_json("secret", "tutor-eks-state", "-n", namespace)
        generated = [
            base64.b64decode(v).decode() for k, v in state["data"].items() if k != "ID"
        ]
        for value in (pem, tricky, *generated):
            for line in {value, *value.splitlines()}:
                if line.strip() and line not in masks:
                    pytest.fail("a line of a value was not masked first", pytrace=False)
    finally:
        delete_deployment(cluster, namespace)


def test_templates_of_secret_values_stay_templates(
    project: Project, cluster: Cluster
) -> None:
    """A root setting or a `--set` whose template renders a Secret value is kept
    as its template in config.yml; an error about a rendered manifest quotes
    nothing of it."""
    planted = "*PLANT" + uuid.uuid4().hex
    namespace = deploy_environment(
        project,
        cluster,
        "tmpl",
        {
            "creds": {
                "MYSQL_HOST": "mysql.example.com",
                "MYSQL_ROOT_PASSWORD": planted,
                "OPENEDX_MYSQL_PASSWORD": uuid.uuid4().hex,
            }
        },
        config="EKS_SECRETS: [creds]\n",
    )
    root_config = project.root / "config.yml"
    root_config.write_text(
        root_config.read_text()
        + 'MY_DSN: "mysql://root:{{ MYSQL_ROOT_PASSWORD }}@relay"\n',
        encoding="utf-8",
    )
    try:
        project.tutor(
            "config", "save", "--set", "MY_OTHER={{ OPENEDX_MYSQL_PASSWORD }}x"
        )
        saved = project.config()
        assert saved["MY_DSN"] == "mysql://root:{{ MYSQL_ROOT_PASSWORD }}@relay"
        assert saved["MY_OTHER"] == "{{ OPENEDX_MYSQL_PASSWORD }}x"
        fail_if_secret_in(planted, root_config.read_text(), "config.yml")

        project.write(
            "environments/dev/k8s/extra.yml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n"
            "data:\n  password: {{ MYSQL_ROOT_PASSWORD }}\n",
        )
        before = project.fingerprint()
        result = project.tutor("config", "save", check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "environments/dev/k8s/extra.yml (rendered):6:" in output
        fail_if_secret_in(planted, output, "the error")
        fail_if_secret_in(planted[1:], output, "the error")
        assert project.fingerprint() == before
    finally:
        delete_deployment(cluster, namespace)
