"""The save guard, in-process with real Tutor functions: a command that saves the
root's config.yml keeps it when it succeeds, and puts it back when it fails before
env/ is written."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from tutor import config as tutor_config

from tutoreks import guard as eks_guard


@click.command()
@click.option("--root", required=True)
@click.option("--fail", is_flag=True)
def saves_config(root: str, fail: bool) -> None:
    tutor_config.save_config_file(
        root, {"PLUGIN_INDEXES": ["https://example.com/index"]}
    )
    if fail:
        raise RuntimeError("the command failed after saving config.yml")


#: As under `tutor`: the plugin knows the running command by its path.
cli = click.Group("tutor", commands=[saves_config])


@pytest.fixture(autouse=True)
def guard() -> None:
    eks_guard.install()


def test_success_without_env_save_keeps_config(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("PLUGINS: []\n", encoding="utf-8")
    saves_config.main(["--root", str(tmp_path)], standalone_mode=False)
    assert "https://example.com/index" in (tmp_path / "config.yml").read_text(
        encoding="utf-8"
    )
    assert not list(tmp_path.glob(".eks-env-backup-*")), "the backup is removed"


def test_failure_before_env_saved_restores_config_and_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an environment selected (inert, the plugin leaves Tutor's behaviour
    alone: tests/test_robustness.py)."""
    environments = tmp_path / "environments"
    (environments / "dev").mkdir(parents=True)
    (environments / "dev" / "config.yml").write_text("LMS_HOST: a.example\n")
    for name, value in (
        ("TUTOR_EKS_ENVIRONMENT", "dev"),
        ("TUTOR_EKS_ENVIRONMENTS_ROOT", str(environments)),
        ("TUTOR_EKS_SECRETS", "[]"),
        ("TUTOR_EKS_STATE_SECRET", ""),
    ):
        monkeypatch.setenv(name, value)
    (tmp_path / "config.yml").write_text("PLUGINS: []\n", encoding="utf-8")
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "kustomization.yml").write_text("before\n", encoding="utf-8")
    monkeypatch.setenv("TUTOR_ROOT", str(tmp_path))
    with pytest.raises(RuntimeError):
        cli.main(
            ["saves-config", "--root", str(tmp_path), "--fail"], standalone_mode=False
        )
    assert (tmp_path / "config.yml").read_text(encoding="utf-8") == "PLUGINS: []\n"
    assert (tmp_path / "env" / "kustomization.yml").read_text(
        encoding="utf-8"
    ) == "before\n"
    assert not list(tmp_path.glob(".eks-env-backup-*"))
