"""Two environments of one stack on one real Redis, plain and over TLS with an AUTH
token: each uses the settings `tutor config save` rendered for it, with the
clients the pods use (kombu for Celery, django-redis for the caches, redis-py for
the event bus). And Tutor's MySQL init script over TLS against a MariaDB that
refuses plain connections."""

from __future__ import annotations

import queue
import subprocess
import typing as t
from pathlib import Path

import pytest
import redis
from kombu.connection import Connection
from tutor import env as tutor_env

from tutoreks.render import services

from .conftest import Project, fail_if_secret_in
from .rendered import applied_settings
from .services import Service, TlsFiles
from .test_passwords import rendered_config

pytestmark = pytest.mark.services

ENVIRONMENTS = ("qa", "prod")
#: Celery's queue names are the same in every Open edX installation.
LMS_QUEUE = "edx.lms.core.default"


def deploy_settings(
    project: Project, server: Service, ca: Path | None, tls: bool
) -> dict[str, dict[str, t.Any]]:
    """The LMS settings each environment renders for ``server``, as its pods get
    them (the CA bundle's path in the pods mapped to ``ca``)."""
    project.environ["TUTOR_REDIS_PASSWORD"] = server.password
    found = {}
    for name in ENVIRONMENTS:
        project.write(
            f"environments/{name}/config.yml",
            f"LMS_HOST: lms.{name}.example.com\nK8S_NAMESPACE: openedx-{name}\n"
            f"REDIS_HOST: {server.host}\nREDIS_PORT: {server.port}\n"
            f"REDIS_USE_SSL: {str(tls).lower()}\n",
        )
        if ca is not None:
            project.write(
                f"environments/{name}/ca-bundle.pem", ca.read_text(encoding="utf-8")
            )
        project.save(name)
        found[name] = applied_settings(project.root / "env", "lms", ca)
    return found


@pytest.fixture(params=["plain", "tls"])
def stack(
    request: pytest.FixtureRequest, project: Project, tls_ca: TlsFiles
) -> tuple[Service, dict[str, dict[str, t.Any]]]:
    """One Redis (``redis_server``, or ``redis_tls`` with its CA as the bundle)
    and the settings of two environments on it."""
    tls = request.param == "tls"
    server: Service = request.getfixturevalue("redis_tls" if tls else "redis_server")
    return server, deploy_settings(project, server, tls_ca.ca if tls else None, tls)


def broker(settings: dict[str, t.Any]) -> Connection:
    return Connection(  # type: ignore[no-untyped-call]
        settings["BROKER_URL"],
        transport_options=settings["BROKER_TRANSPORT_OPTIONS"],
        ssl=settings.get("BROKER_USE_SSL") or False,
        connect_timeout=5,
    )


def test_a_celery_task_of_one_environment_never_reaches_the_other(
    stack: tuple[Service, dict[str, dict[str, t.Any]]],
) -> None:
    _, settings = stack
    with broker(settings["prod"]) as prod, broker(settings["qa"]) as qa:
        prod_queue, qa_queue = prod.SimpleQueue(LMS_QUEUE), qa.SimpleQueue(LMS_QUEUE)
        prod_queue.put(
            {"task": "lms.djangoapps.grades.tasks.recalculate", "env": "prod"}
        )
        with pytest.raises(queue.Empty):
            qa_queue.get(timeout=1)
        message = prod_queue.get(timeout=5)
        assert message.payload["env"] == "prod"
        message.ack()
        prod_queue.close()
        qa_queue.close()
    client = redis.Redis.from_url(
        settings["qa"]["EVENT_BUS_REDIS_CONNECTION_URL"], socket_timeout=5
    )
    kombu_keys = [
        key.decode()
        for key in client.scan_iter(count=1000)
        if b"kombu" in key or LMS_QUEUE.encode() in key
    ]
    assert kombu_keys
    assert all(k.startswith(("openedx-qa:", "openedx-prod:")) for k in kombu_keys), (
        kombu_keys
    )


def test_sessions_and_caches_never_meet(
    stack: tuple[Service, dict[str, dict[str, t.Any]]],
) -> None:
    from django.conf import settings as django_settings

    if not django_settings.configured:
        django_settings.configure()
    from django.core.cache import CacheHandler

    _, settings = stack
    qa, prod = (CacheHandler(settings[n]["CACHES"]) for n in ENVIRONMENTS)
    session = "django.contrib.sessions.cache" + "e3b0c44298fc1c149afbf4c8996fb924"
    qa["default"].set(session, {"user": "qa-staff"}, 60)
    assert prod["default"].get(session) is None
    assert qa["default"].get(session) == {"user": "qa-staff"}
    for alias in ("general", "course_structure_cache", "celery"):
        prod[alias].set("key", "prod", 60)
        assert qa[alias].get("key") is None
        assert prod[alias].get("key") == "prod"


def test_the_event_bus_reaches_redis_under_its_own_topics(
    stack: tuple[Service, dict[str, dict[str, t.Any]]],
) -> None:
    _, settings = stack
    for name in ENVIRONMENTS:
        client = redis.Redis.from_url(
            settings[name]["EVENT_BUS_REDIS_CONNECTION_URL"], socket_timeout=5
        )
        assert client.ping()
        assert settings[name]["EVENT_BUS_TOPIC_PREFIX"] == f"openedx-{name}"


def test_another_ca_is_refused(
    project: Project, redis_tls: Service, other_ca: TlsFiles
) -> None:
    """Certificates are verified: a bundle that did not sign the server's
    certificate fails every client."""
    settings = deploy_settings(project, redis_tls, other_ca.ca, tls=True)["qa"]
    url = settings["EVENT_BUS_REDIS_CONNECTION_URL"]
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis.from_url(url, socket_timeout=5).ping()
    with (
        pytest.raises(Exception, match="certificate verify failed"),
        broker(settings) as connection,
    ):
        connection.ensure_connection(max_retries=1)


# --- MySQL: Tutor's init script over TLS ---------------------------------------------------


def mysql_init(
    server: Service, ca: Path, use_ssl: bool, database: str
) -> subprocess.CompletedProcess[str]:
    """Tutor's jobs/init/mysql.sh with the plugin's prelude, rendered by Tutor and
    run with the real mysql client (the CA bundle's path in the pods mapped to ``ca``)."""
    config = rendered_config({})
    config.update(
        MYSQL_HOST=server.host,
        MYSQL_PORT=server.port,
        MYSQL_ROOT_USERNAME=server.username,
        MYSQL_ROOT_PASSWORD=server.password,
        OPENEDX_MYSQL_DATABASE=database,
        OPENEDX_MYSQL_USERNAME=database,
        MYSQL_USE_SSL=use_ssl,
        EKS_TLS_CHECK_HOSTNAME=True,
    )
    script = tutor_env.read_core_template_file("jobs", "init", "mysql.sh")
    script = script.replace(
        "mysql_connection_max_attempts=10", "mysql_connection_max_attempts=1"
    )
    command = tutor_env.render_str(config, services.task_prelude(script))
    result = subprocess.run(
        ["sh", "-e", "-c", command.replace(services.CA_PATH, str(ca))],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    fail_if_secret_in(server.password, result.stdout + result.stderr, "mysql.sh")
    return result


def test_tutor_mysql_init_over_tls(mariadb_tls: Service, tls_ca: TlsFiles) -> None:
    result = mysql_init(mariadb_tls, tls_ca.ca, True, "openedx_tls")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MySQL is up and running" in result.stdout


def test_tutor_mysql_init_refuses_a_server_another_ca_signed(
    mariadb_tls: Service, other_ca: TlsFiles
) -> None:
    """The client verifies the server: with a bundle that did not sign its
    certificate the init Job fails (a MySQL or MariaDB client on its own encrypts
    when the server offers TLS, but verifies nothing)."""
    other = mysql_init(mariadb_tls, other_ca.ca, True, "openedx_other")
    assert other.returncode != 0
    assert "TLS/SSL error: self-signed certificate" in other.stderr, other.stderr[
        -2000:
    ]
