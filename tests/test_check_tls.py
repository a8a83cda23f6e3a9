"""`tutor eks check` against managed services over TLS: Redis with an AUTH token
(ElastiCache's in-transit encryption) and MariaDB with require_secure_transport,
verified with the environment's CA bundle, and the Redis key prefix.

Two tiers: the preflight's checks called directly against the servers (services),
then `tutor eks check` reading the Secrets and the CA bundle of an environment
(cluster)."""

from __future__ import annotations

import secrets
import typing as t
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tutoreks.deploy import preflight

from .cluster.conftest import Cluster
from .conftest import Project, fail_if_secret_in, put_secret, use_cluster
from .services import Service, TlsFiles
from .test_check import run_check

# --- the checks, called directly -------------------------------------------------


def redis_config(server: Service, **settings: t.Any) -> dict[str, t.Any]:
    return {
        "REDIS_HOST": server.host,
        "REDIS_PORT": server.port,
        "REDIS_USERNAME": server.username,
        "REDIS_PASSWORD": server.password,
        "REDIS_KEY_PREFIX": "env-a",
        **settings,
    }


def mysql_config(server: Service, **settings: t.Any) -> dict[str, t.Any]:
    return {
        "MYSQL_HOST": server.host,
        "MYSQL_PORT": server.port,
        "MYSQL_ROOT_USERNAME": server.username,
        "MYSQL_ROOT_PASSWORD": server.password,
        **settings,
    }


def outcome(check: preflight.Check, *hidden: str) -> preflight.Result:
    """The check's result as ``tutor eks check`` reports it (``hidden``: the
    values the Secrets gave, scrubbed), asserted free of them."""
    [result] = preflight.run([("service", check)], hidden)
    for value in hidden:
        fail_if_secret_in(value, result.detail, "the check's detail")
    return result


def fails_with(result: preflight.Result, words: str) -> None:
    assert not result.ok, result
    assert words in result.detail, result


@pytest.mark.services
def test_redis_tls_with_the_right_ca(redis_tls: Service, tls_ca: TlsFiles) -> None:
    config = redis_config(redis_tls, REDIS_USE_SSL=True)
    result = outcome(preflight.redis(config, tls_ca.ca), redis_tls.password)
    assert result.ok, result
    assert result.detail == (
        f"127.0.0.1:{redis_tls.port} over TLS: PING answered PONG after AUTH "
        "(token); keys under the prefix 'env-a:' writable"
    )


@pytest.mark.services
def test_redis_tls_flag_as_secret_text(redis_tls: Service, tls_ca: TlsFiles) -> None:
    """A Secret's raw value is text; the host name is checked against the
    certificate (localhost is one of its names)."""
    config = redis_config(
        redis_tls,
        REDIS_HOST="localhost",
        REDIS_USE_SSL="true",
        EKS_TLS_CHECK_HOSTNAME="true",
    )
    result = outcome(preflight.redis(config, tls_ca.ca), redis_tls.password)
    assert result.ok and "over TLS" in result.detail, result


@pytest.mark.services
def test_redis_tls_with_another_ca(redis_tls: Service, other_ca: TlsFiles) -> None:
    config = redis_config(redis_tls, REDIS_USE_SSL=True)
    result = outcome(preflight.redis(config, other_ca.ca), redis_tls.password)
    fails_with(result, f"127.0.0.1:{redis_tls.port}: certificate verify failed: ")
    assert "checked against the CA bundle ca.pem" in result.detail


@pytest.mark.services
def test_redis_tls_without_a_bundle_trusts_the_system(redis_tls: Service) -> None:
    config = redis_config(redis_tls, REDIS_USE_SSL=True)
    result = outcome(preflight.redis(config, None), redis_tls.password)
    fails_with(result, "certificate verify failed")
    assert "checked against the system's CAs" in result.detail


@pytest.mark.services
def test_redis_tls_wrong_token(redis_tls: Service, tls_ca: TlsFiles) -> None:
    wrong = secrets.token_hex(16)
    config = redis_config(redis_tls, REDIS_USE_SSL=True, REDIS_PASSWORD=wrong)
    result = outcome(preflight.redis(config, tls_ca.ca), wrong, redis_tls.password)
    fails_with(result, "AUTH refused (WRONGPASS)")


@pytest.mark.services
def test_plain_client_on_a_tls_port(redis_tls: Service, tls_ca: TlsFiles) -> None:
    config = redis_config(redis_tls, REDIS_USE_SSL=False)
    result = outcome(preflight.redis(config, tls_ca.ca), redis_tls.password)
    fails_with(
        result,
        f"127.0.0.1:{redis_tls.port}: the server closed the connection: "
        "TLS required? (REDIS_USE_SSL is false)",
    )


@pytest.mark.services
def test_redis_acl_user_limited_to_its_prefix(
    redis_tls: Service, tls_ca: TlsFiles
) -> None:
    """An ElastiCache ACL user allowed ``~env-a:*`` passes under that prefix and
    fails clearly under another; the user name is sent with its password."""
    import redis

    user, password = f"eks-{uuid.uuid4().hex[:6]}", secrets.token_hex(16)
    admin = redis.Redis(
        host=redis_tls.host,
        port=redis_tls.port,
        password=redis_tls.password,
        ssl=True,
        ssl_ca_certs=str(tls_ca.ca),
    )
    admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=["env-a:*"],
        commands=["+@all"],
    )
    try:
        allowed = redis_config(
            redis_tls, REDIS_USE_SSL=True, REDIS_USERNAME=user, REDIS_PASSWORD=password
        )
        result = outcome(preflight.redis(allowed, tls_ca.ca), password)
        assert result.ok, result
        assert "after AUTH as REDIS_USERNAME" in result.detail
        other = {**allowed, "REDIS_KEY_PREFIX": "env-b"}
        result = outcome(preflight.redis(other, tls_ca.ca), password)
        fails_with(
            result,
            "may not write keys under the prefix 'env-b:' (REDIS_KEY_PREFIX), "
            "SET env-b:tutor-eks-check refused: ",
        )
    finally:
        admin.acl_deluser(user)
        admin.close()


@pytest.mark.services
def test_redis_user_name_alone_is_not_sent(
    redis_tls: Service, tls_ca: TlsFiles
) -> None:
    """REDIS_USERNAME without REDIS_PASSWORD: no AUTH at all."""
    config = redis_config(
        redis_tls, REDIS_USE_SSL=True, REDIS_USERNAME="someone", REDIS_PASSWORD=""
    )
    result = outcome(preflight.redis(config, tls_ca.ca), redis_tls.password)
    fails_with(result, "the server wants AUTH: REDIS_PASSWORD is empty")


@pytest.mark.services
def test_mysql_tls_with_the_right_ca(mariadb_tls: Service, tls_ca: TlsFiles) -> None:
    config = mysql_config(mariadb_tls, MYSQL_USE_SSL=True)
    result = outcome(preflight.mysql(config, tls_ca.ca), mariadb_tls.password)
    assert result.ok, result
    assert result.detail.startswith("root credentials accepted over TLS, MariaDB 10.")


@pytest.mark.services
def test_mysql_tls_with_another_ca(mariadb_tls: Service, other_ca: TlsFiles) -> None:
    config = mysql_config(mariadb_tls, MYSQL_USE_SSL=True)
    result = outcome(preflight.mysql(config, other_ca.ca), mariadb_tls.password)
    fails_with(result, f"127.0.0.1:{mariadb_tls.port}: certificate verify failed: ")


@pytest.mark.services
def test_mysql_plain_to_require_secure_transport(
    mariadb_tls: Service, tls_ca: TlsFiles
) -> None:
    """MariaDB answers a plain connection "access denied", as for a wrong
    password: the same credentials over verified TLS tell them apart."""
    config = mysql_config(mariadb_tls, MYSQL_USE_SSL=False)
    result = outcome(preflight.mysql(config, tls_ca.ca), mariadb_tls.password)
    fails_with(result, "TLS required (MYSQL_USE_SSL is false)")
    wrong = secrets.token_hex(12)
    config["MYSQL_ROOT_PASSWORD"] = wrong
    result = outcome(preflight.mysql(config, tls_ca.ca), wrong, mariadb_tls.password)
    fails_with(result, "Access denied for user 'root'")
    assert "TLS required" not in result.detail


@pytest.mark.services
def test_mysql_plain_and_a_bundle_that_does_not_verify(
    mariadb_tls: Service, other_ca: TlsFiles
) -> None:
    """Access denied to a plain connection, and the server's certificate does not
    verify: the check cannot tell, and says what to look at."""
    config = mysql_config(mariadb_tls, MYSQL_USE_SSL=False)
    result = outcome(preflight.mysql(config, other_ca.ca), mariadb_tls.password)
    fails_with(result, "Access denied for user 'root'")
    assert "the server offers TLS, its certificate unverified" in result.detail


def test_mysql_insecure_transport_code() -> None:
    """MySQL (RDS for MySQL) names require_secure_transport itself: 3159."""
    import pymysql

    refused = pymysql.err.OperationalError(
        3159,
        "Connections using insecure transport are prohibited while "
        "--require_secure_transport=ON.",
    )
    reason = preflight.mysql_reason(refused, {}, None, use_tls=False)
    assert reason.startswith("TLS required (MYSQL_USE_SSL is false)"), reason
    assert "--require_secure_transport=ON" in reason


@pytest.mark.services
def test_mysql_tls_to_a_server_without_it(mariadb: Service, tls_ca: TlsFiles) -> None:
    config = mysql_config(mariadb, MYSQL_USE_SSL=True)
    result = outcome(preflight.mysql(config, tls_ca.ca), mariadb.password)
    fails_with(result, "the server does not offer TLS (MYSQL_USE_SSL is true)")


def test_mongodb_options(tmp_path: Path) -> None:
    """The client options only: no MongoDB server runs here."""
    base = {"MONGODB_HOST": "docdb.example.internal", "MONGODB_PORT": 27017}
    plain = preflight.mongodb_options(base, tmp_path / "ca.pem")
    assert plain["tls"] is False and plain["retryWrites"] is True
    assert "tlsCAFile" not in plain and "tlsAllowInvalidHostnames" not in plain
    documentdb = {
        **base,
        "MONGODB_USE_SSL": True,
        "MONGODB_RETRY_WRITES": "false",
        "EKS_TLS_CHECK_HOSTNAME": False,
    }
    tls = preflight.mongodb_options(documentdb, tmp_path / "ca.pem")
    assert tls["tls"] is True and tls["retryWrites"] is False
    assert tls["tlsCAFile"] == str(tmp_path / "ca.pem")
    assert tls["tlsAllowInvalidHostnames"] is True
    assert "tlsCAFile" not in preflight.mongodb_options(documentdb, None)


# --- tutor eks check, from an environment's Secrets and CA bundle -----------------


@pytest.fixture
def tls_checked(
    project: Project,
    cluster: Cluster,
    mariadb_tls: Service,
    redis_tls: Service,
    tls_ca: TlsFiles,
) -> Iterator[tuple[Project, str]]:
    """The `dev` environment's Secrets name the TLS servers (MYSQL_USE_SSL and
    REDIS_USE_SSL "true", an AUTH token without user name); its folder holds the
    test CA as ca-bundle.pem."""
    namespace = f"eks-tls-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    put_secret(
        cluster,
        namespace,
        "mysql-root",
        {
            "MYSQL_HOST": mariadb_tls.host,
            "MYSQL_PORT": str(mariadb_tls.port),
            "MYSQL_ROOT_USERNAME": mariadb_tls.username,
            "MYSQL_ROOT_PASSWORD": mariadb_tls.password,
            "MYSQL_USE_SSL": "true",
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
            "REDIS_HOST": redis_tls.host,
            "REDIS_PORT": str(redis_tls.port),
            "REDIS_PASSWORD": redis_tls.password,
            "REDIS_USE_SSL": "true",
        },
    )
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: lms.dev.example.com\nK8S_NAMESPACE: {namespace}\n",
    )
    project.write("environments/dev/ca-bundle.pem", tls_ca.ca.read_text())
    del project.environ["TUTOR_EKS_SECRETS"]
    project.environ["TUTOR_EKS_ENVIRONMENT"] = "dev"
    use_cluster(project, cluster)
    yield project, namespace
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def no_secret_in(output: str, *values: str) -> None:
    for value in values:
        fail_if_secret_in(value, output, "tutor eks check")


def test_tls_services_verified(
    tls_checked: tuple[Project, str], mariadb_tls: Service, redis_tls: Service
) -> None:
    project, namespace = tls_checked
    code, rows, output = run_check(project)
    assert code == 0, output
    # REDIS_HOST and REDIS_PORT came from a Secret: scrubbed, as every such value.
    assert rows["redis"]["detail"] == (
        "***:*** over TLS: PING answered PONG after AUTH (token); "
        f"keys under the prefix '{namespace}:' writable"
    )
    assert "credentials accepted over TLS, MariaDB 10." in rows["mysql"]["detail"]
    no_secret_in(output, mariadb_tls.password, redis_tls.password)


@pytest.mark.parametrize("broken", ["other-ca", "wrong-token", "plain"])
def test_tls_failures(
    tls_checked: tuple[Project, str],
    cluster: Cluster,
    mariadb_tls: Service,
    redis_tls: Service,
    other_ca: TlsFiles,
    broken: str,
) -> None:
    project, namespace = tls_checked
    wrong = secrets.token_hex(16)
    expected = {
        "other-ca": {
            "redis": "certificate verify failed",
            "mysql": "certificate verify failed",
        },
        "wrong-token": {"redis": "AUTH refused (WRONGPASS)"},
        "plain": {
            "redis": "TLS required? (REDIS_USE_SSL is false)",
            "mysql": "TLS required (MYSQL_USE_SSL is false)",
        },
    }[broken]
    if broken == "other-ca":
        project.write("environments/dev/ca-bundle.pem", other_ca.ca.read_text())
    elif broken == "wrong-token":
        put_secret(cluster, namespace, "redis", {"REDIS_PASSWORD": wrong})
    else:
        put_secret(cluster, namespace, "redis", {"REDIS_USE_SSL": "false"})
        put_secret(cluster, namespace, "mysql-root", {"MYSQL_USE_SSL": "false"})
    code, rows, output = run_check(project)
    assert code == 1, output
    assert sorted(name for name, row in rows.items() if not row["ok"]) == sorted(
        expected
    ), output
    for name, words in expected.items():
        assert words in rows[name]["detail"], rows[name]
    no_secret_in(output, mariadb_tls.password, redis_tls.password, wrong)
