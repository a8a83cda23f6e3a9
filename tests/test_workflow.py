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
from .conftest import TUTOR as TUTOR_BIN

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


def check_environment(
    requested: str, root: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The workflow's first job, checking ``requested`` in a copy of ``root``."""
    step = next(
        step
        for step in load()["jobs"]["environment"]["steps"]
        if step.get("id") == "check"
    )
    assert step["env"] == {"REQUESTED": "${{ inputs.environment }}"}
    output = tmp_path / "github-output"
    output.write_text("", encoding="utf-8")
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=root,
        env={**os.environ, "REQUESTED": requested, "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_environment_input_is_checked_against_the_folders(tmp_path: Path) -> None:
    # A typed name, checked against the folders: a new folder needs no edit here
    # (GitHub's `choice` options are a static list).
    inputs = load()[True]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["type"] == "string"
    root = tmp_path / "repo"
    shutil.copytree(REPO / "environments", root / "environments")
    (root / "environments" / "qa").mkdir()
    (root / "environments" / "qa" / "config.yml").write_text("LMS_HOST: qa\n")
    (root / "environments" / "notes").mkdir()  # no config.yml: not an environment
    known = environments.list_names(root / "environments")
    assert "qa" in known and "notes" not in known
    for name in known:
        result = check_environment(name, root, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        output = (tmp_path / "github-output").read_text(encoding="utf-8")
        assert output == f"name={name}\n"
    for wrong in ("notes", "staging", "", "../dev", "dev\n::add-mask::x", "dev "):
        result = check_environment(wrong, root, tmp_path)
        assert result.returncode == 1, wrong
        assert (tmp_path / "github-output").read_text(encoding="utf-8") == ""
        assert result.stdout == (
            "::error title=Unknown environment::The environment must be one of the "
            f"folders of environments/ that hold a config.yml: {' '.join(known)}\n"
        ), "the error lists the folders, never repeats the input"
    deploy = load()["jobs"]["deploy"]
    assert deploy["needs"] == "environment"
    assert deploy["environment"] == "${{ needs.environment.outputs.name }}"
    assert (
        deploy["env"]["TUTOR_EKS_ENVIRONMENT"]
        == "${{ needs.environment.outputs.name }}"
    )


def test_a_failed_rollout_fails_the_job_and_the_status_goes_to_the_summary() -> None:
    steps = {step.get("name"): step for step in load()["jobs"]["deploy"]["steps"]}
    deploy = steps["Deploy"]
    assert "continue-on-error" not in deploy and "if" not in deploy
    assert "|| true" not in deploy["run"]
    status = steps["Status"]
    assert status["if"] == "${{ always() && steps.install.outcome == 'success' }}"
    assert 'tutor eks status --markdown "$GITHUB_STEP_SUMMARY"' in status["run"]
    assert steps["Install Tutor and the plugin"]["id"] == "install"


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


def deploy_steps() -> list[tuple[str, str]]:
    """The workflow's deploy steps from `tutor plugins enable eks` on, as
    (name, bash script): what a run does once AWS credentials and the kubeconfig
    are in place. `pip install .` is skipped (the plugin is installed here)."""
    steps = load()["jobs"]["deploy"]["steps"]
    scripts = []
    for step in steps:
        script = step.get("run", "")
        if "tutor" not in script:
            continue
        lines = [line for line in script.splitlines() if "pip install" not in line]
        scripts.append((step["name"], "\n".join(lines)))
    return scripts


@pytest.mark.cluster
def test_the_workflow_deploys_twice_from_empty_roots(
    project: t.Any, cluster: t.Any, mariadb: t.Any, tmp_path: Path
) -> None:

    from .conftest import delete_deployment, deploy_environment, mysql_secrets

    namespace = deploy_environment(
        project,
        cluster,
        "workflow",
        mysql_secrets(
            mariadb.host,
            MYSQL_PORT=str(mariadb.port),
            MYSQL_ROOT_USERNAME=mariadb.username,
            MYSQL_ROOT_PASSWORD=mariadb.password,
        ),
    )
    try:
        generations = []
        for run in (1, 2):
            root = tmp_path / f"runner-{run}" / ".tutor"
            environ = {
                **project.environ,
                "TUTOR_ROOT": str(root),
                "TUTOR_EKS_ENVIRONMENT": "dev",
                "PATH": os.pathsep.join(
                    [str(Path(TUTOR_BIN).parent), project.environ["PATH"]]
                ),
            }
            summary = tmp_path / f"runner-{run}" / "summary.md"
            environ["GITHUB_STEP_SUMMARY"] = str(summary)
            for name, script in deploy_steps():
                script = script.replace("${{ inputs.init }}", "true")
                result = subprocess.run(
                    ["bash", "-e", "-c", script],
                    cwd=project.path,
                    env=environ,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                assert result.returncode == 0, (
                    f"run {run}, step {name!r}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
                )
                assert mariadb.password not in result.stdout + result.stderr
            # The summary: every Deployment ready, and the Ingress and Certificate
            # (kwok plays the ingress controller and cert-manager here).
            table = summary.read_text(encoding="utf-8")
            assert "| ✅ | Deployment | lms | 1/1 ready |" in table
            assert (
                f"| ✅ | Ingress | openedx | openedx.{namespace}.lb.kwok.example |"
                in table
            )
            assert "| ✅ | Certificate | openedx-tls | Ready |" in table
            assert mariadb.password not in table
            generations.append(
                {
                    d["metadata"]["name"]: d["metadata"]["generation"]
                    for d in cluster.get_json("deployments", "-n", namespace)["items"]
                }
            )
        assert generations[0] == generations[1], "the second run rolled nothing"
    finally:
        delete_deployment(cluster, namespace)


def test_actionlint_docs_workflow(actionlint: str) -> None:
    """The workflow that builds and publishes the documentation site."""
    workflow = REPO / ".github" / "workflows" / "docs.yml"
    result = subprocess.run(
        [actionlint, str(workflow)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
