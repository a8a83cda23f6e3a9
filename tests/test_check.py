"""`tutor eks check` against real servers on 127.0.0.1 and the control plane."""

from __future__ import annotations

import base64
import json
import typing as t
import uuid
from collections.abc import Iterator

import pytest

from .cluster.conftest import Cluster
from .conftest import Project, fail_if_secret_in, put_secret, use_cluster
from .services import Service, free_port, s3_client

pytestmark = pytest.mark.cluster


@pytest.fixture
def checked(
    project: Project,
    cluster: Cluster,
    mariadb: Service,
    redis_server: Service,
    s3_server: str,
) -> Iterator[tuple[Project, str]]:
    namespace = f"eks-check-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    bucket = f"uploads-{uuid.uuid4().hex[:6]}"
    s3_client(s3_server).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    put_secret(
        cluster,
        namespace,
        "mysql-root",
        {
            "MYSQL_HOST": mariadb.host,
            "MYSQL_PORT": str(mariadb.port),
            "MYSQL_ROOT_USERNAME": mariadb.username,
            "MYSQL_ROOT_PASSWORD": mariadb.password,
        },
    )
    put_secret(
        cluster,
        namespace,
        "mysql-openedx",
        {"OPENEDX_MYSQL_PASSWORD": uuid.uuid4().hex},
    )
    put_secret(
        cluster,
        namespace,
        "redis",
        {
            "REDIS_HOST": redis_server.host,
            "REDIS_PORT": str(redis_server.port),
            "REDIS_PASSWORD": redis_server.password,
        },
    )
    put_secret(
        cluster,
        namespace,
        "s3-openedx-storage",
        {
            "S3_STORAGE_BUCKET": bucket,
            "S3_REGION": "eu-west-1",
            "S3_ENDPOINT_URL": s3_server,
            "OPENEDX_AWS_ACCESS_KEY": "testing",
            "OPENEDX_AWS_SECRET_ACCESS_KEY": "testing",
        },
    )
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: lms.dev.example.com\nK8S_NAMESPACE: {namespace}\n",
    )
    del project.environ["TUTOR_EKS_SECRETS"]
    project.environ["TUTOR_EKS_ENVIRONMENT"] = "dev"
    use_cluster(project, cluster)
    yield project, namespace
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def run_check(project: Project) -> tuple[int, dict[str, dict[str, t.Any]], str]:
    result = project.tutor("eks", "check", "--json", check=False)
    rows = json.loads(result.stdout)
    assert all(
        set(row) == {"name", "ok", "detail"} and isinstance(row["ok"], bool)
        for row in rows
    )
    return (
        result.returncode,
        {row["name"]: row for row in rows},
        result.stdout + result.stderr,
    )


def test_everything_reachable(
    checked: tuple[Project, str], mariadb: Service, redis_server: Service
) -> None:
    project, _ = checked
    code, rows, output = run_check(project)
    assert code == 0, output
    assert set(rows) == {
        "secrets",
        "namespace",
        "ingressclass",
        "crd certificates.cert-manager.io",
        "crd clusterissuers.cert-manager.io",
        "mysql",
        "redis",
        "s3",
    }
    assert all(row["ok"] for row in rows.values())
    assert rows["secrets"]["detail"].startswith(
        "13 keys from mysql-root, mysql-openedx, redis, s3-openedx-storage"
    )
    assert (
        "MariaDB 10." in rows["mysql"]["detail"]
        and "Tutor wants MySQL 8.4" in rows["mysql"]["detail"]
    )
    assert "after AUTH" in rows["redis"]["detail"]
    assert "reachable with OPENEDX_AWS_ACCESS_KEY" in rows["s3"]["detail"]
    for value in (mariadb.password, redis_server.password):
        fail_if_secret_in(value, output, "tutor eks check")

    human = project.tutor("eks", "check")
    assert "ok    mysql" in human.stdout


@pytest.mark.parametrize(
    "broken", ["mysql-password", "redis-port", "bucket", "ingressclass"]
)
def test_each_broken_service_fails_clearly(
    checked: tuple[Project, str],
    cluster: Cluster,
    mariadb: Service,
    redis_server: Service,
    broken: str,
) -> None:
    project, namespace = checked
    if broken == "mysql-password":
        put_secret(
            cluster,
            namespace,
            "mysql-root",
            {"MYSQL_ROOT_PASSWORD": "wrong-" + uuid.uuid4().hex},
        )
        failing, message = "mysql", "Access denied"
    elif broken == "redis-port":
        put_secret(cluster, namespace, "redis", {"REDIS_PORT": str(free_port())})
        failing, message = "redis", "connection refused"
    elif broken == "bucket":
        put_secret(
            cluster,
            namespace,
            "s3-openedx-storage",
            {"S3_STORAGE_BUCKET": "no-such-bucket"},
        )
        failing, message = "s3", "S3_STORAGE_BUCKET: the bucket does not exist"
    else:
        project.environ["TUTOR_EKS_INGRESS_CLASS"] = "traefik"
        failing, message = "ingressclass", "IngressClass traefik does not exist"
    code, rows, output = run_check(project)
    assert code == 1
    assert [name for name, row in rows.items() if not row["ok"]] == [failing], output
    assert message in rows[failing]["detail"], rows[failing]
    for value in (mariadb.password, redis_server.password):
        fail_if_secret_in(value, output, "tutor eks check")


def test_missing_secret_is_a_failed_check(
    checked: tuple[Project, str], cluster: Cluster
) -> None:
    project, namespace = checked
    cluster.kubectl("delete", "secret", "mysql-openedx", "-n", namespace)
    code, rows, _ = run_check(project)
    assert code == 1
    assert rows["secrets"]["ok"] is False
    assert f"Secret {namespace}/mysql-openedx not found" in rows["secrets"]["detail"]


def test_s3_with_the_ambient_credentials(
    checked: tuple[Project, str], cluster: Cluster
) -> None:
    """No key in the Secret: boto3's own chain (on EKS, the pod's IRSA role; here the
    standard AWS variables) reaches the bucket."""
    project, namespace = checked
    secret = cluster.get_json("secret", "s3-openedx-storage", "-n", namespace)
    data = {
        k: base64.b64decode(v).decode()
        for k, v in secret["data"].items()
        if not k.startswith("OPENEDX_AWS")
    }
    put_secret(cluster, namespace, "s3-openedx-storage", data, replace=True)
    project.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    code, rows, output = run_check(project)
    assert code == 0, output
    assert (
        "reachable with the ambient AWS credentials (IRSA role)" in rows["s3"]["detail"]
    )
