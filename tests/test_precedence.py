"""Environment selection and the configuration precedence (docs/environments.md,
"Configuration precedence"; ``tutoreks/config/resolve.py``), layer by layer.

The state Secret (layer 3) and the Kubernetes Secrets (layer 5) are tested with
the control plane in test_state.py and test_secrets.py.
"""

from __future__ import annotations

import pytest

from .conftest import Project


def set_root_config(project: Project, text: str) -> None:
    project.write("tutor-root/config.yml", "PLUGINS:\n- eks\n" + text)


def test_inert_without_environment(project: Project) -> None:
    """EKS_ENVIRONMENT empty: the plugin changes nothing Tutor renders."""
    project.tutor("config", "save")
    assert project.value("LMS_HOST") == "local.openedx.io"
    assert project.value("ENABLE_WEB_PROXY") == "true"
    assert "plugins/eks" not in project.env_file("kustomization.yml")
    assert "tutor-contrib-eks" not in project.env_file(
        "apps/openedx/settings/lms/production.py"
    )


def test_select_with_tutor_variable(project: Project) -> None:
    project.save("dev")
    assert (
        project.value("LMS_HOST", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
        == "lms.dev.example.com"
    )
    # Without the variable, and nothing saved: inert again.
    assert project.value("LMS_HOST") == "local.openedx.io"
    assert "EKS_ENVIRONMENT" not in project.config()


def test_select_with_set_is_saved(project: Project) -> None:
    project.tutor("config", "save", "--set", "EKS_ENVIRONMENT=dev")
    assert project.config()["EKS_ENVIRONMENT"] == "dev"
    assert project.value("LMS_HOST") == "lms.dev.example.com"
    assert "lms.dev.example.com" in project.env_file("apps/openedx/config/lms.env.yml")


def test_environments_root_setting(project: Project) -> None:
    project.write("elsewhere/qa/config.yml", "LMS_HOST: qa.example.com\n")
    env = {
        "TUTOR_EKS_ENVIRONMENTS_ROOT": str(project.path / "elsewhere"),
        "TUTOR_EKS_ENVIRONMENT": "qa",
    }
    project.tutor("config", "save", env=env)
    assert project.value("LMS_HOST", env=env) == "qa.example.com"
    # Relative to the working directory, from the root's config.yml.
    set_root_config(project, "EKS_ENVIRONMENTS_ROOT: elsewhere\nEKS_ENVIRONMENT: qa\n")
    assert project.value("LMS_HOST") == "qa.example.com"


def test_layer1_defaults(project: Project) -> None:
    project.save()
    assert (
        project.value("EKS_INGRESS_CLASS", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
        == "nginx"
    )
    assert (
        project.value("CADDY_HTTP_PORT", env={"TUTOR_EKS_ENVIRONMENT": "dev"}) == "80"
    )
    assert (
        project.value("EKS_CLUSTER_ISSUER", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
        == "openedx-dev-acme"
    )


def test_layer2_root_config_beats_defaults(project: Project) -> None:
    set_root_config(
        project,
        "EKS_ENVIRONMENT: dev\nEKS_INGRESS_CLASS: traefik\nPLATFORM_NAME: Root\n",
    )
    project.tutor("config", "save")
    assert project.value("EKS_INGRESS_CLASS") == "traefik"
    assert project.value("PLATFORM_NAME") == "Root"


def test_layer4_environment_beats_root_config(project: Project) -> None:
    set_root_config(
        project,
        "EKS_ENVIRONMENT: dev\nLMS_HOST: root.example.com\nPLATFORM_NAME: Root\n",
    )
    project.tutor("config", "save")
    assert project.value("LMS_HOST") == "lms.dev.example.com"
    assert project.value("PLATFORM_NAME") == "Root", (
        "keys the environment does not set stay"
    )
    # The environment's values are not written into the root's config.yml.
    assert project.config()["LMS_HOST"] == "root.example.com"
    assert "K8S_NAMESPACE" not in project.config()


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("LMS_HOST", "env.example.com", "env.example.com"),
        ("ENABLE_HTTPS", "false", "false"),
    ],
)
def test_layer6_tutor_variables_beat_everything(
    project: Project, key: str, value: str, expected: str
) -> None:
    set_root_config(project, f"EKS_ENVIRONMENT: dev\n{key}: fromroot\n")
    env = {f"TUTOR_{key}": value}
    project.tutor("config", "save", env=env)
    assert project.value(key, env=env) == expected
    assert project.config()[key] == "fromroot", (
        "a TUTOR_ variable for an environment key is never saved"
    )


def test_environment_values_are_rendered_by_tutor(project: Project) -> None:
    project.write(
        "environments/dev/config.yml",
        "LMS_HOST: lms.example.com\nCMS_HOST: 'studio.{{ LMS_HOST }}'\n",
    )
    project.save()
    assert (
        project.value("CMS_HOST", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
        == "studio.lms.example.com"
    )


def test_switching_environment_leaves_nothing_behind(project: Project) -> None:
    project.write("environments/prod/config.yml", "LMS_HOST: lms.example.com\n")
    project.write(
        "environments/dev/config.yml",
        "LMS_HOST: lms.dev.example.com\nPLATFORM_NAME: Dev only\n",
    )
    project.tutor("config", "save", "--set", "EKS_ENVIRONMENT=dev")
    project.tutor("config", "save", "--set", "EKS_ENVIRONMENT=prod")
    assert project.value("LMS_HOST") == "lms.example.com"
    assert project.value("PLATFORM_NAME") != "Dev only"


def test_set_of_an_environment_key_warns(project: Project) -> None:
    result = project.tutor(
        "config",
        "save",
        "--set",
        "LMS_HOST=other.example.com",
        env={"TUTOR_EKS_ENVIRONMENT": "dev"},
    )
    assert "takes precedence" in result.stdout + result.stderr
    assert project.config()["LMS_HOST"] == "other.example.com"
    assert (
        project.value("LMS_HOST", env={"TUTOR_EKS_ENVIRONMENT": "dev"})
        == "lms.dev.example.com"
    )


def test_edge_ingress_sets_proxy_and_https(project: Project) -> None:
    project.save()
    env = {"TUTOR_EKS_ENVIRONMENT": "dev"}
    assert project.value("ENABLE_WEB_PROXY", env=env) == "false"
    assert project.value("ENABLE_HTTPS", env=env) == "true"


def test_edge_caddy_keeps_web_proxy(project: Project) -> None:
    env = {"TUTOR_EKS_ENVIRONMENT": "dev", "TUTOR_EKS_EDGE": "caddy"}
    project.tutor("config", "save", env=env)
    assert project.value("ENABLE_WEB_PROXY", env=env) == "true"
    assert project.value("ENABLE_HTTPS", env=env) == "true"
