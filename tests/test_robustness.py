"""Robustness of the save without a cluster: concurrent saves, SIGTERM, enabling
the plugin in CI, Tutor's own config round trip, and an inert plugin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
import yaml

from .conftest import TUTOR, Project

SLOW_PLUGIN = """
import os
import time
from tutor import hooks

hooks.Filters.ENV_PATCHES.add_item(("openedx-lms-common-settings", "{{ slow_down() }}"))


def slow_down():
    # The render has begun (config.yml is written): say so, then wait to be stopped.
    started = os.environ.get("SLOW_PLUGIN_STARTED")
    if started:
        open(started, "w").close()
        time.sleep(60)
    return ""


hooks.Filters.ENV_TEMPLATE_VARIABLES.add_item(("slow_down", slow_down))
"""


def start(project: Project, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TUTOR, *args],
        cwd=project.path,
        env={**project.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, run: subprocess.Popen[str]) -> None:
    """Until ``path`` exists; the run must not end first."""
    deadline = time.monotonic() + 120
    while not path.exists():
        assert run.poll() is None, run.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_two_saves_in_one_root_at_once_both_succeed(project: Project) -> None:
    project.save()
    runs = [
        start(project, "config", "save", TUTOR_EKS_ENVIRONMENT="dev") for _ in range(2)
    ]
    for run in runs:
        _out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err[-2000:]
    config = project.config()
    assert "eks" in config["PLUGINS"] and "LMS_HOST" not in config
    assert not list(project.root.glob(".eks-env-backup-*"))
    assert "lms.dev.example.com" in project.env_file("apps/openedx/config/lms.env.yml")


@pytest.mark.subprocess  # TUTOR_PLUGINS_ROOT is read once per process
def test_sigterm_during_a_save_restores_and_cleans_up(project: Project) -> None:
    plugins = project.path / "plugins"
    plugins.mkdir()
    (plugins / "slow.py").write_text(SLOW_PLUGIN, encoding="utf-8")
    project.environ["TUTOR_PLUGINS_ROOT"] = str(plugins)
    project.save()
    project.tutor("plugins", "enable", "slow")  # config.yml only: env/ is not rendered
    before = project.fingerprint()
    project.write("environments/dev/config.yml", "LMS_HOST: changed.example.com\n")
    started = project.path / "render-started"
    run = start(
        project,
        "config",
        "save",
        TUTOR_EKS_ENVIRONMENT="dev",
        SLOW_PLUGIN_STARTED=str(started),
    )
    try:
        wait_for(started, run)  # config.yml is written; env/ is being rendered
        run.send_signal(signal.SIGTERM)
        _out, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode != 0
    assert "back to what they were" in err
    assert project.fingerprint() == before, "config.yml and env/ are as before"
    assert not list(project.root.glob(".eks-env-backup-*")), "no backup left behind"


def enable_in_ci(project: Project, root_config: str) -> dict[str, t.Any]:
    """`tutor plugins enable eks` in a root holding ``root_config``, an environment
    selected and the cluster out of reach: the root's config.yml after it."""
    (project.root / "config.yml").write_text(root_config, encoding="utf-8")
    del project.environ["TUTOR_EKS_SECRETS"]
    result = project.tutor(
        "plugins",
        "enable",
        "eks",
        env={
            "TUTOR_EKS_ENVIRONMENT": "dev",
            "KUBECONFIG": str(project.path / "nowhere.kubeconfig"),
        },
    )
    config = project.config()
    assert "eks" in config["PLUGINS"], result.stdout + result.stderr
    return config


def test_enabling_the_plugin_in_ci_reads_no_secret(project: Project) -> None:
    """The plugin is enabled although the cluster cannot be reached (enabling
    never reads it)."""
    enable_in_ci(project, "{}\n")


def test_enabling_the_plugin_in_ci_writes_no_generated_value(project: Project) -> None:
    """An empty root in a CI job: `tutor plugins enable eks` makes Tutor generate
    its unique values (ID, keys, passwords). With a state Secret they belong in the
    cluster, written by the first deploy: config.yml holds none of them."""
    from tutoreks import tutor_compat

    del project.environ["TUTOR_EKS_STATE_SECRET"]
    config = enable_in_ci(project, "PLUGINS: []\n")
    assert not set(config) & set(tutor_compat.unique_keys()), sorted(config)


def test_saving_twice_returns_the_same_config(tmp_path: Path) -> None:
    """Tutor's own `test_update_twice_should_return_same_config`, with the plugin's
    save guard installed: the caller's config dict is not changed."""
    code = f"""
import copy, sys
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
from tutor import config as tutor_config
import tutoreks.plugin
root = {str(tmp_path)!r}
config = tutor_config.load_minimal(root)
kept = copy.deepcopy(config)
tutor_config.save_config_file(root, config)
tutor_config.save_config_file(root, config)
assert config == kept, "the config dict changed"
assert tutor_config.load_minimal(root)["ID"] == kept["ID"]
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_inert_plugin_renders_exactly_what_tutor_renders(project: Project) -> None:
    """Enabled without an environment, the plugin changes nothing in env/ but
    its own env/plugins/eks/."""
    project.tutor("config", "save")
    plain = project.ci_job("plain-root")
    config = yaml.safe_load((project.root / "config.yml").read_text(encoding="utf-8"))
    config["PLUGINS"] = []
    (plain.root / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    plain.tutor("config", "save")

    def files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root / "env")): p.read_bytes()
            for p in sorted((root / "env").rglob("*"))
            if p.is_file() and "plugins/eks" not in str(p)
        }

    with_plugin, without = files(project.root), files(plain.root)
    assert with_plugin.keys() == without.keys()
    differing = [name for name in with_plugin if with_plugin[name] != without[name]]
    assert differing == []


def test_an_inert_plugin_leaves_a_failed_save_as_tutor_does(project: Project) -> None:
    """With no environment selected, a save keeps no snapshot to put back: when
    rendering env/ fails after config.yml was written, config.yml holds the new
    value, as with plain Tutor."""
    script = """
import sys
import click
from tutor import config as tutor_config
import tutoreks.plugin  # noqa: F401  (installs the save guard)
from tutoreks import guard

root = sys.argv[1]
with click.Context(click.Command("save")):
    config = tutor_config.load_minimal(root)
    config["PLATFORM_NAME"] = "Saved anyway"
    tutor_config.save_config_file(root, config)
    assert not guard.snapshots(), guard.snapshots()
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(project.root)],
        env=project.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert project.config()["PLATFORM_NAME"] == "Saved anyway"


def test_patches_list_works_with_the_plugin_enabled(project: Project) -> None:
    """Tutor's `config patches list` renders every template it walks: the plugin's
    task scripts (read as files, not env templates) are not among them."""
    result = project.tutor("config", "patches", "list")
    assert "kustomization-resources" in result.stdout


def test_a_killed_saves_backup_is_removed_by_the_next_save(project: Project) -> None:
    """A save killed with SIGKILL cannot clean up: its backup of env/ (rendered
    credentials) is removed by the next save of the root."""
    project.write("environments/dev/config.yml", "LMS_HOST: lms.example.com\n")
    stale = project.root / ".eks-env-backup-killed" / "env"
    stale.mkdir(parents=True)
    (stale / "lms.env.yml").write_text(
        "PASSWORD: from-a-killed-save\n", encoding="utf-8"
    )
    project.save("dev")
    assert not [p.name for p in project.root.iterdir() if p.name.startswith(".eks-env")]


@pytest.mark.kubectl
def test_a_cancelled_deploy_stops_its_kubectl(project: Project, tmp_path: Path) -> None:
    """SIGTERM to `tutor k8s start` while `kubectl` waits for an API server that
    never answers (on 127.0.0.1): kubectl is stopped too, and tutor ends 143."""
    import socket

    from tutoreks import signals

    from .kubefakes import write_kubeconfig

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nothing answers
    port = silent.getsockname()[1]
    try:
        project.write("environments/dev/config.yml", "LMS_HOST: lms.example.com\n")
        project.save("dev")
        kubeconfig = write_kubeconfig(
            tmp_path / "silent.kubeconfig",
            f"http://127.0.0.1:{port}",
            user={"token": "t"},
        )
        tutor = subprocess.Popen(
            [TUTOR, "k8s", "start"],
            cwd=project.path,
            env={
                **project.environ,
                "TUTOR_EKS_ENVIRONMENT": "dev",
                "KUBECONFIG": str(kubeconfig),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        children: list[int] = []
        while not children and time.monotonic() < deadline:
            time.sleep(0.2)
            children = signals.child_pids(tutor.pid)
        assert children, "tutor started no kubectl"
        tutor.send_signal(signal.SIGTERM)
        assert tutor.wait(timeout=30) == 128 + signal.SIGTERM
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}"), f"kubectl {pid} still runs"
    finally:
        silent.close()
