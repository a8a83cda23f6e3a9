"""The stand-in of a slow generated value in config.yml (``guard.py``): the JWT
key the cluster provides is written as :data:`~tutoreks.defaults.STAND_IN`, so
that Tutor's first load of config.yml, before any plugin is loaded, generates no
RSA key. Where nothing replaces it, it is never used as a value: Tutor's own
default is (a new key, as without the plugin). The cluster's side, the stand-in
written and the state's key used, is in ``tests/test_state.py``."""

from __future__ import annotations

import pytest

from tutoreks import defaults

from .conftest import Project

PEM = "-----BEGIN RSA PRIVATE KEY-----"


def with_stand_in(project: Project, extra: str = "") -> None:
    (project.root / "config.yml").write_text(
        f"PLUGINS:\n- eks\n{extra}JWT_RSA_PRIVATE_KEY: '{defaults.STAND_IN}'\n",
        encoding="utf-8",
    )


def test_no_environment_selected_means_tutors_own_key(project: Project) -> None:
    with_stand_in(project)
    assert project.value("JWT_RSA_PRIVATE_KEY").startswith(PEM)


def test_no_state_read_means_tutors_own_key_saved(project: Project) -> None:
    """TUTOR_EKS_STATE_SECRET is empty in these tests: Tutor's generated key is
    kept in config.yml, as without a state."""
    with_stand_in(project)
    project.save()
    saved = project.config()["JWT_RSA_PRIVATE_KEY"]
    assert saved.startswith(PEM)
    assert project.value(
        "JWT_RSA_PRIVATE_KEY", env={"TUTOR_EKS_ENVIRONMENT": "dev"}
    ) == (saved.strip())
    assert defaults.STAND_IN not in project.env_file("apps/openedx/config/lms.env.yml")


@pytest.mark.subprocess
def test_disabling_the_plugin_removes_its_stand_ins(project: Project) -> None:
    with_stand_in(project, "EKS_ENVIRONMENT: dev\n")
    project.tutor("plugins", "disable", "eks")
    assert project.config()["PLUGINS"] == []
    assert defaults.STAND_IN not in (project.root / "config.yml").read_text()
    assert project.value("JWT_RSA_PRIVATE_KEY").startswith(PEM)
