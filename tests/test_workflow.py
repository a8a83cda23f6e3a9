"""The deploy workflow: actionlint clean, and it matches the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from tutoreks import environment as environments

from .conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"
ACTIONLINT = "github.com/rhysd/actionlint/cmd/actionlint"
ACTIONLINT_VERSION = "v1.7.12"


@pytest.fixture(scope="module")
def actionlint() -> str:
    """actionlint from the Go module proxy, cached outside the checkout."""
    cache = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "tutor-contrib-eks"
        / f"actionlint-{ACTIONLINT_VERSION}"
    )
    binary = cache / "actionlint"
    if not binary.exists():
        go = shutil.which("go") or "/usr/local/go/bin/go"
        subprocess.run(
            [go, "install", f"{ACTIONLINT}@{ACTIONLINT_VERSION}"],
            env={**os.environ, "GOBIN": str(cache)},
            check=True,
            timeout=900,
        )
    return str(binary)


def load() -> dict[t.Any, t.Any]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict)
    return workflow


def test_actionlint(actionlint: str) -> None:
    result = subprocess.run(
        [actionlint, str(WORKFLOW)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_environment_choices_are_the_environment_folders() -> None:
    # PyYAML reads the `on:` key as True.
    inputs = load()[True]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["type"] == "choice"
    assert inputs["environment"]["options"] == environments.list_names(
        REPO / "environments"
    )


def test_oidc_one_run_per_environment_and_no_static_keys() -> None:
    workflow = load()
    assert workflow["permissions"]["id-token"] == "write"
    assert "inputs.environment" in workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is False
    text = WORKFLOW.read_text(encoding="utf-8")
    for forbidden in (
        "aws-access-key-id",
        "aws-secret-access-key",
        "AWS_SECRET_ACCESS_KEY",
        "secrets.",
    ):
        assert forbidden not in text
    runs = "\n".join(
        step.get("run", "") for step in workflow["jobs"]["deploy"]["steps"]
    )
    for command in (
        "tutor plugins enable eks",
        "tutor eks check",
        "tutor k8s launch --non-interactive",
        "aws eks update-kubeconfig",
    ):
        assert command in runs
