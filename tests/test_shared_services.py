"""Environments that share a stack's Redis stay apart, and managed services are
reached over TLS: what `tutor config save` renders into the LMS and CMS settings,
the CA bundle's ConfigMap and mounts, and each bad input."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
from kombu.utils.url import url_to_parts
from redis.connection import parse_url as redis_parse_url

from tutoreks.config.state import DEPLOYED_AT_ANNOTATION, REDIS_PREFIX_ANNOTATION
from tutoreks.render import services

from .conftest import Project
from .rendered import applied_settings
from .services import make_tls_files

#: An AUTH token with characters a URL cannot hold as they are. TUTOR_ variables
#: reach Tutor's templates unescaped (no quote or backslash here); values from
#: Secrets are escaped for them (tests/test_secret_values.py).
TOKEN = "to:k@n/with%all#the?chars [] 'and' $ & ~"
SERVICES = ("lms", "cms")


def parse_url(url: str) -> dict[str, t.Any]:
    """What redis-py (django-redis, the event bus) makes of a URL."""
    return dict(redis_parse_url(url))  # type: ignore[no-untyped-call]


def make_ca(directory: Path) -> Path:
    """A throwaway CA certificate (PEM), made with the openssl command line."""
    directory.mkdir(parents=True, exist_ok=True)
    return make_tls_files(directory, "tutor-contrib-eks-test-CA").ca


def environment(project: Project, name: str, extra: str = "") -> None:
    project.write(
        f"environments/{name}/config.yml",
        f"LMS_HOST: lms.{name}.example.com\nK8S_NAMESPACE: openedx-{name}\n"
        "REDIS_HOST: redis.stack.example.com\n" + extra,
    )


def saved(project: Project, name: str) -> dict[str, dict[str, t.Any]]:
    """One `tutor config save`: the LMS and the CMS settings it renders."""
    project.save(name)
    return {
        service: applied_settings(project.root / "env", service) for service in SERVICES
    }


def failed_save(project: Project) -> str:
    """A `tutor config save` of qa that must fail: its output. config.yml and env/
    are as they were."""
    before = project.fingerprint()
    result = project.tutor(
        "config", "save", env={"TUTOR_EKS_ENVIRONMENT": "qa"}, check=False
    )
    assert result.returncode != 0
    assert project.fingerprint() == before
    return result.stdout + result.stderr


def redis_caches(settings: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    caches = [c for c in settings["CACHES"].values() if "redis" in c["BACKEND"]]
    assert len(caches) >= 7  # Tutor's seven, sessions among them ("default")
    return caches


# --- one Redis namespace per environment -------------------------------------------


def test_two_environments_on_one_redis_write_under_their_own_prefix(
    project: Project,
) -> None:
    environment(project, "qa")
    environment(project, "prod")
    found: dict[str, set[str]] = {"qa": set(), "prod": set()}
    for name in ("qa", "prod"):
        prefix = f"openedx-{name}:"
        for settings in saved(project, name).values():
            for cache in redis_caches(settings):
                assert cache["KEY_PREFIX"].startswith(prefix), cache
                assert cache["LOCATION"] == "redis://redis.stack.example.com:6379/1"
                found[name].add(cache["KEY_PREFIX"])
            assert settings["BROKER_URL"] == "redis://redis.stack.example.com:6379/0"
            assert settings["BROKER_TRANSPORT_OPTIONS"] == {
                "fanout_patterns": True,
                "fanout_prefix": True,
                "global_keyprefix": prefix,
            }
            assert settings["EVENT_BUS_TOPIC_PREFIX"] == f"openedx-{name}"
            assert (
                settings["EVENT_BUS_REDIS_CONNECTION_URL"]
                == "redis://redis.stack.example.com:6379/"
            )
    assert not found["qa"] & found["prod"]


def test_the_environment_chooses_its_prefix(project: Project) -> None:
    environment(project, "qa", "REDIS_KEY_PREFIX: courses-qa\n")
    settings = saved(project, "qa")["cms"]
    assert {c["KEY_PREFIX"].split(":")[0] for c in redis_caches(settings)} == {
        "courses-qa"
    }
    assert settings["BROKER_TRANSPORT_OPTIONS"]["global_keyprefix"] == "courses-qa:"
    assert settings["EVENT_BUS_TOPIC_PREFIX"] == "courses-qa"


@pytest.mark.parametrize("bad", ["has space", "a:b", "-dash", "x" * 64, "ns/qa"])
def test_a_bad_prefix_is_refused_and_nothing_is_written(
    project: Project, bad: str
) -> None:
    environment(project, "qa")
    project.save("qa")
    environment(project, "qa", f"REDIS_KEY_PREFIX: '{bad}'\n")
    assert "REDIS_KEY_PREFIX: a Redis key prefix holds 1 to 63 letters" in (
        failed_save(project)
    )


# --- Redis over TLS with an AUTH token ---------------------------------------------------


def test_redis_tls_with_an_auth_token_everywhere(project: Project) -> None:
    environment(project, "qa", "REDIS_USE_SSL: true\n")
    make_ca(project.path / "ca").rename(project.path / "environments/qa/ca-bundle.pem")
    project.environ["TUTOR_REDIS_PASSWORD"] = TOKEN
    both = saved(project, "qa")
    assert both["lms"]["CACHES"] == both["cms"]["CACHES"]
    settings = both["lms"]
    for cache in redis_caches(settings):
        location = parse_url(cache["LOCATION"])
        assert cache["LOCATION"].startswith("rediss://")
        assert location["password"] == TOKEN and "username" not in location
        assert cache["OPTIONS"]["CONNECTION_POOL_KWARGS"] == {
            "ssl_cert_reqs": __import__("ssl").CERT_REQUIRED,
            "ssl_check_hostname": True,
            "ssl_ca_certs": services.CA_PATH,
        }
    transport, host, port, user, password, vhost, _ = url_to_parts(
        settings["BROKER_URL"]
    )
    assert (transport, host, port, password, vhost) == (
        "rediss",
        "redis.stack.example.com",
        6379,
        TOKEN,
        "0",
    )
    assert not user
    assert settings["BROKER_USE_SSL"]["ssl_ca_certs"] == services.CA_PATH
    bus = parse_url(settings["EVENT_BUS_REDIS_CONNECTION_URL"])
    assert bus["password"] == TOKEN
    assert bus["ssl_ca_certs"] == services.CA_PATH
    assert bus["ssl_cert_reqs"] == "required" and bus["ssl_check_hostname"] is True


def test_redis_acl_user_and_no_ca_bundle(project: Project) -> None:
    """A user name makes it an ACL user; without a bundle the system's CAs verify."""
    environment(project, "qa", "REDIS_USE_SSL: true\nEKS_TLS_CHECK_HOSTNAME: false\n")
    project.environ.update(TUTOR_REDIS_USERNAME="open@edx", TUTOR_REDIS_PASSWORD=TOKEN)
    settings = saved(project, "qa")["lms"]
    location = parse_url(redis_caches(settings)[0]["LOCATION"])
    assert (location["username"], location["password"]) == ("open@edx", TOKEN)
    assert settings["BROKER_USE_SSL"] == {
        "ssl_cert_reqs": __import__("ssl").CERT_REQUIRED,
        "ssl_check_hostname": False,
    }
    assert "ssl_ca_certs" not in parse_url(settings["EVENT_BUS_REDIS_CONNECTION_URL"])


# --- MySQL and MongoDB over TLS ------------------------------------------------------------


@pytest.mark.parametrize("check_hostname", [True, False])
def test_mysql_tls_verifies_with_the_bundle(
    project: Project, check_hostname: bool
) -> None:
    environment(
        project,
        "qa",
        f"MYSQL_USE_SSL: true\nEKS_TLS_CHECK_HOSTNAME: {str(check_hostname).lower()}\n",
    )
    make_ca(project.path / "ca").rename(project.path / "environments/qa/ca-bundle.pem")
    for settings in saved(project, "qa").values():
        options = settings["DATABASES"]["default"]["OPTIONS"]
        assert options["ssl"] == {"ca": services.CA_PATH}
        assert options["ssl_mode"] == (
            "VERIFY_IDENTITY" if check_hostname else "VERIFY_CA"
        )
        assert options["init_command"]  # Tutor's own options are kept


def test_mysql_tls_without_a_bundle_is_refused(project: Project) -> None:
    environment(project, "qa")
    project.save("qa")
    environment(project, "qa", "MYSQL_USE_SSL: true\n")
    assert "MYSQL_USE_SSL is true but the environment has no CA bundle" in (
        failed_save(project)
    )


def test_documentdb(project: Project) -> None:
    environment(project, "qa", "MONGODB_USE_SSL: true\nMONGODB_RETRY_WRITES: false\n")
    make_ca(project.path / "ca").rename(project.path / "environments/qa/ca-bundle.pem")
    settings = saved(project, "qa")["lms"]
    for config in (
        settings["mongodb_parameters"],
        settings["MODULESTORE"]["default"]["OPTIONS"]["stores"][0]["DOC_STORE_CONFIG"],
    ):
        assert config["ssl"] is True
        assert config["tlsCAFile"] == services.CA_PATH
        assert config["retryWrites"] is False


def test_nothing_changes_for_mongodb_and_mysql_by_default(project: Project) -> None:
    environment(project, "qa")
    settings = saved(project, "qa")["lms"]
    assert "ssl" not in settings["DATABASES"]["default"]["OPTIONS"]
    assert not {"tlsCAFile", "retryWrites"} & set(settings["mongodb_parameters"])
    assert "openedx-ca-bundle" not in project.env_file("plugins/eks/k8s/manifests.yml")


# --- the CA bundle ----------------------------------------------------------------------


def test_the_bundle_ships_as_a_configmap(project: Project) -> None:
    environment(project, "qa")
    ca = make_ca(project.path / "ca")
    project.write("environments/qa/ca-bundle.pem", ca.read_text(encoding="utf-8"))
    project.save("qa")
    manifests = project.env_file("plugins/eks/k8s/manifests.yml")
    assert "name: openedx-ca-bundle" in manifests
    assert "BEGIN CERTIFICATE" in manifests


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not a certificate\n", "holds no PEM certificate"),
        (
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "is not a valid PEM CA bundle",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n",
            "holds a private key",
        ),
    ],
)
def test_a_bad_bundle_names_the_file(
    project: Project, content: str, message: str
) -> None:
    environment(project, "qa")
    project.write("environments/qa/ca-bundle.pem", content)
    assert f"environments/qa/ca-bundle.pem: {message}" in failed_save(project)


def test_eks_ca_bundle_names_a_missing_file(project: Project) -> None:
    environment(project, "qa", "EKS_CA_BUNDLE: certs/rds.pem\n")
    assert (
        "environments/qa/config.yml: EKS_CA_BUNDLE names "
        "environments/qa/certs/rds.pem, which is not a file."
    ) in failed_save(project)


def test_eks_ca_bundle_names_another_file(project: Project) -> None:
    environment(project, "qa", "EKS_CA_BUNDLE: ../../certs/rds.pem\n")
    ca = make_ca(project.path / "certs")
    ca.rename(project.path / "certs/rds.pem")
    project.save("qa")
    assert "name: openedx-ca-bundle" in project.env_file(
        "plugins/eks/k8s/manifests.yml"
    )


# --- a changed prefix is said once -------------------------------------------------------


def test_a_changed_prefix_is_said() -> None:
    deployed = {DEPLOYED_AT_ANNOTATION: "2026-12-01T00:00:00Z"}
    assert services.prefix_change({}, "qa") is None  # first deploy
    assert (
        services.prefix_change({**deployed, REDIS_PREFIX_ANNOTATION: "qa"}, "qa")
        is None
    )
    upgrade = services.prefix_change(deployed, "openedx-qa")
    assert upgrade and "now start with 'openedx-qa:' (before: no prefix" in upgrade
    changed = services.prefix_change({**deployed, REDIS_PREFIX_ANNOTATION: "qa"}, "q2")
    assert changed and "(before: 'qa:')" in changed and "drain" in changed
