"""A drop-in for cookiecutter-openedx-devops environments (issue 11), without a
cluster: their files, the hosts of every enabled plugin, manifests beside the
defaults. Real Tutor renders into temporary roots; ``kubectl kustomize`` builds."""

from __future__ import annotations

import re
import shutil
import textwrap
import typing as t
from pathlib import Path

import pytest
import yaml

from tutoreks import defaults, environment
from tutoreks.config import secrets, values
from tutoreks.exceptions import EksError
from tutoreks.render import manifests

from . import stack
from .conftest import REPO, Project, find

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def failed(project: Project, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a tutor command that must fail and leave config.yml and env/ as they were."""
    before = project.fingerprint()
    result = project.tutor(*args, env=env, check=False)
    assert result.returncode != 0, result.stdout + result.stderr
    assert project.fingerprint() == before, "nothing is written"
    return result.stdout + result.stderr


def copy_fixture(project: Project, fixture: str, name: str = "dev") -> Path:
    folder = project.path / "environments" / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(FIXTURES / fixture, folder)
    return folder


# --- their files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "line", "yaml_form", "renamed"),
    [
        (
            "cookiecutter-env",
            1,
            "`LMS_HOST: <its value>`",
            "LMS_HOSTNAME is LMS_HOST in Tutor",
        ),
        (
            "cookiecutter-env-legacy",
            17,
            "`LMS_HOST: <its value>`",
            "LMS_HOSTNAME is LMS_HOST in Tutor",
        ),
    ],
)
def test_shell_config_is_refused_with_its_yaml_form(
    project: Project, fixture: str, line: int, yaml_form: str, renamed: str
) -> None:
    project.save()  # a first root to keep intact
    copy_fixture(project, fixture)
    output = failed(project, "config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
    assert (
        "environments/dev/config.yml: is written as shell KEY=value lines (the format "
        "of older cookiecutter-openedx-devops environments); a config.yml is YAML."
    ) in output
    assert (
        f"Line {line}, LMS_HOSTNAME=..., is {yaml_form} in YAML ({renamed})" in output
    )
    envs = project.tutor("eks", "envs", check=False)
    assert envs.returncode == 1
    assert "dev" in envs.stdout and "BROKEN" in envs.stdout
    assert yaml_form in envs.stdout


def test_shell_config_hint_names_plugin_keys() -> None:
    hint = environment.shell_format_hint(
        "DOCKER_IMAGE_MFE=registry.example/mfe:latest\n", "x/config.yml"
    )
    assert "`MFE_DOCKER_IMAGE: <its value>`" in hint
    assert "registry.example" not in hint
    assert environment.shell_format_hint("LMS_HOST: a.example.com\n", "x") == ""
    assert environment.shell_format_hint("# only a comment\n", "x") == ""
    for key, tutor_key in stack.LEGACY_CONFIG_KEYS.items():
        assert environment.LEGACY_KEYS.get(key, key) == tutor_key


def test_settings_merge_yml_of_their_environment_reaches_both_services(
    project: Project,
) -> None:
    folder = copy_fixture(project, "cookiecutter-env")
    (folder / "config.yml").write_text(
        "LMS_HOST: learn.northwind.example\nK8S_NAMESPACE: northwind-prod\n",
        encoding="utf-8",
    )
    (folder / "k8s" / "cluster-issuer.yml").unlink()
    project.save()
    for service in ("lms", "cms"):
        settings = project.env_file(f"apps/openedx/settings/{service}/production.py")
        assert "Northwind Academy" in settings, service
        assert "northwind-language" in settings, service
    envs = project.tutor("eks", "envs").stdout
    assert "settings_merge: settings_merge.yml" in envs


@pytest.mark.parametrize(
    "files",
    [
        ("settings_merge.json", "settings_merge.yml"),
        ("settings_merge.json", "settings_merge.lms.yml"),
        ("settings_merge.yaml", "settings_merge.cms.json"),
    ],
)
def test_both_settings_formats_is_an_error_naming_both(
    project: Project, files: tuple[str, str]
) -> None:
    project.save()
    for name in files:
        text = (
            '{"PLATFORM_NAME": "x"}' if name.endswith(".json") else "PLATFORM_NAME: x\n"
        )
        project.write(f"environments/dev/{name}", text)
    output = failed(project, "config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
    for name in files:
        assert f"environments/dev/{name}" in output
    assert "settings_merge files in one format, JSON or YAML" in output


def test_yaml_error_names_file_line_and_column(project: Project) -> None:
    project.save()
    project.write(
        "environments/dev/settings_merge.yml",
        "PLATFORM_NAME: Northwind\nFEATURES:\n  ENABLE_X: true\n ENABLE_Y: false\n",
    )
    output = failed(project, "config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
    assert re.search(
        r"environments/dev/settings_merge\.yml:4:2: invalid YAML", output
    ), output[-1500:]


# --- hosts --------------------------------------------------------------------------


def build(
    project: Project, env: dict[str, str] | None = None
) -> list[dict[str, t.Any]]:
    project.save(env=env)
    return project.kustomize()


def ingress_hosts(objects: list[dict[str, t.Any]]) -> list[str]:
    return [r["host"] for r in find(objects, "Ingress")["spec"]["rules"]]


@pytest.mark.subprocess  # TUTOR_PLUGINS_ROOT is read once per process
def test_every_enabled_plugins_public_host_reaches_ingress_and_certificate(
    project: Project,
) -> None:
    """A plugin's APP_PUBLIC_HOSTS item (a template) becomes an Ingress rule and a
    Certificate name; EKS_EXTRA_HOSTS come after."""
    plugins_root = project.path / "plugins"
    plugins_root.mkdir()
    (plugins_root / "forumhost.py").write_text(
        textwrap.dedent(
            """\
            from tutor import hooks

            hooks.Filters.CONFIG_DEFAULTS.add_item(("FORUMHOST_HOST", "forum.{{ LMS_HOST }}"))
            hooks.Filters.APP_PUBLIC_HOSTS.add_item("{{ FORUMHOST_HOST }}")
            """
        ),
        encoding="utf-8",
    )
    project.environ["TUTOR_PLUGINS_ROOT"] = str(plugins_root)
    project.tutor("plugins", "enable", "forumhost")
    config = project.path / "environments/dev/config.yml"
    config.write_text(
        config.read_text() + "EKS_EXTRA_HOSTS: [extra.dev.example.com]\n",
        encoding="utf-8",
    )
    objects = build(project)
    hosts = ingress_hosts(objects)
    assert hosts[:2] == ["lms.dev.example.com", "studio.dev.example.com"]
    assert "forum.lms.dev.example.com" in hosts
    assert hosts[-1] == "extra.dev.example.com"
    assert len(hosts) == len(set(hosts))
    assert find(objects, "Certificate")["spec"]["dnsNames"] == hosts


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "EKS_EXTRA_HOSTS: extra.dev.example.com",
            "environments/dev/config.yml: EKS_EXTRA_HOSTS is a string; it must be a "
            "list of host names",
        ),
        (
            "EKS_EXTRA_HOSTS: [Not_A_Host]",
            "environments/dev/config.yml: EKS_EXTRA_HOSTS has 'Not_A_Host', which is "
            "not a host name",
        ),
        (
            "EKS_EXTRA_HOSTS: {a: b}",
            "environments/dev/config.yml: EKS_EXTRA_HOSTS must be a list of host names, "
            "not a dict",
        ),
    ],
)
def test_extra_hosts_must_be_a_list_of_host_names(
    project: Project, setting: str, message: str
) -> None:
    project.save()
    config = project.path / "environments/dev/config.yml"
    config.write_text(config.read_text() + setting + "\n", encoding="utf-8")
    output = failed(project, "config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
    assert message in output, output[-1500:]


def test_extra_hosts_string_from_a_variable_is_an_error(project: Project) -> None:
    project.save()
    output = failed(
        project,
        "config",
        "save",
        env={"TUTOR_EKS_ENVIRONMENT": "dev", "TUTOR_EKS_EXTRA_HOSTS": "a.example.com"},
    )
    assert "TUTOR_EKS_EXTRA_HOSTS: EKS_EXTRA_HOSTS is a string" in output


def test_host_of_and_wildcards() -> None:
    assert manifests.host_of("https://search.example.com/x") == "search.example.com"
    assert manifests.host_of("apps.example.com:1996/learning") == "apps.example.com"
    assert manifests.matches("*.example.com", "lms.example.com")
    assert not manifests.matches("*.example.com", "example.com")
    assert not manifests.matches("*.example.com", "a.lms.example.com")


# --- manifests beside the defaults ----------------------------------------------------


def test_their_issuer_and_certificate_beside_the_defaults_are_warned_about(
    project: Project,
) -> None:
    folder = copy_fixture(project, "cookiecutter-env")
    (folder / "config.yml").write_text(
        "LMS_HOST: learn.northwind.example\nCMS_HOST: studio.learn.northwind.example\n"
        "K8S_NAMESPACE: northwind-prod\n",
        encoding="utf-8",
    )
    project.write(
        "environments/dev/k8s/their-ingress.yml",
        textwrap.dedent(
            """\
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata:
              name: openedx-lms
            spec:
              rules:
                - host: learn.northwind.example
                  http:
                    paths:
                      - path: /
                        pathType: Prefix
                        backend: {service: {name: lms, port: {number: 8000}}}
            """
        ),
    )
    result = project.tutor("config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
    output = result.stdout + result.stderr
    issuer = (
        "environments/dev/k8s/cluster-issuer.yml: ClusterIssuer 'letsencrypt' is added "
        "beside the default issuer (tutoreks/templates/eks/k8s/defaults/issuer.yml: "
        "ClusterIssuer 'northwind-prod-acme')"
    )
    certificate = (
        "environments/dev/k8s/cluster-issuer.yml: Certificate 'le-crt' covers "
        "studio.learn.northwind.example, meilisearch.learn.northwind.example, which "
        "the default Certificate (tutoreks/templates/eks/k8s/defaults/certificate.yml) "
        "already covers"
    )
    ingress = (
        "environments/dev/k8s/their-ingress.yml: Ingress 'openedx-lms' covers "
        "learn.northwind.example, which the default Ingress "
        "(tutoreks/templates/eks/k8s/defaults/ingress.yml) already covers"
    )
    for message in (issuer, certificate, ingress):
        assert output.count(message) == 1, message
    assert "name the file k8s/issuer.yml" in output
    assert "Name the file k8s/certificate.yml" in output
    assert "Name the file k8s/ingress.yml" in output
    assert "'letsencrypt' is cluster-scoped" in output
    envs = project.tutor("eks", "envs")
    assert issuer in envs.stdout + envs.stderr
    assert ingress in envs.stdout + envs.stderr


def test_a_file_named_like_the_default_replaces_it_without_warning(
    project: Project,
) -> None:
    project.write(
        "environments/dev/k8s/issuer.yml",
        "# The shared ClusterIssuer letsencrypt is created outside the environments.\n",
    )
    config = project.path / "environments/dev/config.yml"
    config.write_text(
        config.read_text() + "EKS_CLUSTER_ISSUER: letsencrypt\n", encoding="utf-8"
    )
    result = project.tutor("config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
    assert "beside the default" not in result.stdout + result.stderr
    objects = project.kustomize()
    assert not [o for o in objects if o["kind"] == "ClusterIssuer"]
    ingress = find(objects, "Ingress")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == (
        "letsencrypt"
    )
    assert find(objects, "Certificate")["spec"]["issuerRef"]["name"] == "letsencrypt"


def test_cluster_scoped_objects_of_k8s_carry_no_instance_labels(
    project: Project,
) -> None:
    project.write(
        "environments/dev/k8s/shared.yml",
        textwrap.dedent(
            """\
            apiVersion: cert-manager.io/v1
            kind: ClusterIssuer
            metadata:
              name: letsencrypt
              namespace: openedx-dev
            spec:
              selfSigned: {}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRole
            metadata:
              name: openedx-reader
            rules: []
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: openedx-extra
            data: {}
            """
        ),
    )
    objects = build(project)
    instance = "app.kubernetes.io/instance"
    for kind, name in (
        ("ClusterIssuer", "letsencrypt"),
        ("ClusterRole", "openedx-reader"),
    ):
        obj = find(objects, kind, name)
        labels = obj["metadata"].get("labels") or {}
        assert instance not in labels and "app.kubernetes.io/managed-by" not in labels
        assert labels.get("app.kubernetes.io/part-of") == "openedx"
        assert "namespace" not in obj["metadata"]
    own = find(objects, "ClusterIssuer", "openedx-dev-acme")
    assert own["metadata"]["labels"][instance].startswith("openedx-")
    assert "namespace" not in own["metadata"]
    namespaced = find(objects, "ConfigMap", "openedx-extra")
    assert namespaced["metadata"]["labels"][instance].startswith("openedx-")


def test_the_kustomization_patch_targets_every_cluster_scoped_kind() -> None:
    text = (REPO / "tutoreks" / "patches" / "kustomization").read_text(encoding="utf-8")
    found = re.search(r"kind: (ClusterIssuer\|[A-Za-z|]+)", text)
    assert found is not None
    assert tuple(found.group(1).split("|")) == manifests.CLUSTER_SCOPED_KINDS


# --- the Secret contract ---------------------------------------------------------------


def test_default_secrets_are_the_plugins_and_the_stacks() -> None:
    names = [secrets.SecretSpec.parse(s) for s in defaults.CONFIG_DEFAULTS["SECRETS"]]
    assert [(s.name, s.optional) for s in names[:2]] == [
        ("mysql-root", False),
        ("mysql-openedx", False),
    ]
    assert all(s.optional for s in names[2:])
    read = {s.name for s in names}
    assert read <= set(secrets.REQUIRED_KEYS)
    stack_read = read & set(stack.SECRET_BUILDERS)
    assert stack_read == set(stack.DEFAULT_READ)
    assert secrets.parse_renames({}, "x") == {
        tuple(source.split("/")): target
        for source, target in stack.TUTOR_RENAMES.items()
    }
    page = (REPO / "docs" / "secrets.md").read_text(encoding="utf-8")
    contract = page.split("# The Secret contract", 1)[1].split("\n## ", 1)[0]
    for name in read:
        assert f"| `{name}`" in contract, name


def test_only_the_jwt_key_may_span_lines() -> None:
    pem = stack.rsa_private_key_pem()
    values.check_value("JWT_RSA_PRIVATE_KEY", pem, "Secret ns/jwt key private_key")
    for key, value in (
        ("OPENEDX_SECRET_KEY", "abc\ndef"),
        ("JWT_RSA_PRIVATE_KEY", pem.replace("\n", "\r\n")),
        ("JWT_RSA_PRIVATE_KEY", pem + "\t"),
    ):
        with pytest.raises(EksError, match="newline, control or non-printable"):
            values.check_value(key, value, "Secret ns/x key k")


def test_stack_fixture_manifest_is_yaml() -> None:
    text = (FIXTURES / "cookiecutter-env/k8s/cluster-issuer.yml").read_text()
    assert [d["kind"] for d in yaml.safe_load_all(text) if d] == [
        "ClusterIssuer",
        "Certificate",
    ]


def test_delete_leaves_out_cluster_scoped_objects_of_k8s_files() -> None:
    """What `tutor k8s delete` sees: the environment's own cluster-scoped objects
    (an issuer other environments may share) are left out; the plugin's issuer,
    unique to the environment, and every namespaced object stay."""
    from tutoreks.render import manifests

    text = (
        "# Source: tutoreks/templates/eks/k8s/defaults/issuer.yml\n"
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: ns-acme\n"
        "---\n# Source: environments/dev/k8s/cluster-issuer.yml\n"
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: letsencrypt\n"
        "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: wildcard\n"
    )
    kept, shared = manifests.without_shared_cluster_objects(text)
    names = [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(kept) if d]
    assert names == [("ClusterIssuer", "ns-acme"), ("Certificate", "wildcard")]
    assert shared == [
        "ClusterIssuer letsencrypt (environments/dev/k8s/cluster-issuer.yml)"
    ]
