"""Tutor plugin ``eks``: registers the plugin's hooks, and nothing else.

Every `tutor` command imports this module and runs the config hook, so both are
cheap: no I/O at import, and the modules that do the work are imported by the hook
callbacks that need them, once an environment is selected. The pipeline, one
package or module per step: ``environment`` (select and load), ``config``
(resolve the layers), ``render`` (settings, manifests, kustomize, task scripts),
``guard`` (the save), ``deploy`` and ``cli``.
"""

from __future__ import annotations

import functools
import os
import typing as t

import click
import jinja2
from tutor import hooks

from . import defaults, guard, tutor_compat
from .__about__ import __version__
from .config import resolve

TEMPLATES_ROOT = os.path.join(os.path.dirname(__file__), "templates")
PATCHES_ROOT = os.path.join(os.path.dirname(__file__), "patches")


# --- configuration ------------------------------------------------------------

hooks.Filters.CONFIG_USER.add()(resolve.config_user)
hooks.Actions.ENV_SAVED.add()(guard.mark_env_saved)


@hooks.Actions.ENV_SAVED.add()
def _record_render(root_env: str, config: dict[str, t.Any]) -> None:
    resolution = resolve.for_root(tutor_compat.current_root())
    from .render import record

    record.write(root_env, resolution, config)


guard.install()


@hooks.Filters.CONFIG_DEFAULTS.add()
def _defaults(items: list[tuple[str, t.Any]]) -> list[tuple[str, t.Any]]:
    active = resolve.is_active(tutor_compat.current_root())
    return items + defaults.config_defaults(active=active)


# --- rendering ----------------------------------------------------------------

hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(TEMPLATES_ROOT)
# Task scripts are read as files by render/admin.py, never rendered as part of env/
# (`tutor config patches list` renders every template it walks).
hooks.Filters.ENV_PATTERNS_IGNORE.add_item(r"eks/tasks/")
hooks.Filters.ENV_TEMPLATE_TARGETS.add_items(
    [
        ("eks/k8s/manifests.yml", "plugins"),
        ("eks/k8s/caddy-service.yml", "plugins"),
    ]
)


@jinja2.pass_context
def _eks_manifests(context: jinja2.runtime.Context) -> str:
    resolution = resolve.for_root(tutor_compat.current_root())
    if resolution is None:
        return ""
    from .render import manifests

    return manifests.render_all(context, resolution)


@jinja2.pass_context
def _eks_hosts(context: jinja2.runtime.Context) -> list[str]:
    resolution = resolve.for_root(tutor_compat.current_root())
    if resolution is None:
        return []
    from .render import manifests

    return manifests.public_hosts(
        context.get_all(),
        manifests.context_renderer(context),
        manifests.extra_hosts_source(resolution),
    )


@jinja2.pass_context
def _eks_kustomize_patches(context: jinja2.runtime.Context) -> str:
    resolution = resolve.for_root(tutor_compat.current_root())
    if resolution is None:
        return ""
    from .render import kustomize

    return kustomize.kustomize_patches(context, resolution)


@jinja2.pass_context
def _eks_service_settings(context: jinja2.runtime.Context) -> str:
    resolution = resolve.for_root(tutor_compat.current_root())
    if resolution is None:
        return ""
    from .render import services

    return services.settings_patch(context.get_all(), resolution)


hooks.Filters.ENV_TEMPLATE_VARIABLES.add_items(
    [
        ("eks_manifests", _eks_manifests),
        ("eks_service_settings", _eks_service_settings),
        ("eks_hosts", _eks_hosts),
        ("eks_kustomize_patches", _eks_kustomize_patches),
    ]
)


@functools.lru_cache(maxsize=1)
def _file_patches() -> tuple[tuple[str, str], ...]:
    """The files of ``patches/``, each named after its patch point."""
    patches = []
    for name in sorted(os.listdir(PATCHES_ROOT)):
        with open(os.path.join(PATCHES_ROOT, name), encoding="utf-8") as f:
            patches.append((name, f.read()))
    return tuple(patches)


@hooks.Filters.ENV_PATCHES.add()
def _patches(patches: list[tuple[str, str]]) -> list[tuple[str, str]]:
    resolution = resolve.for_root(tutor_compat.current_root())
    if resolution is None:
        return patches
    from .render import settings

    return (
        patches
        + list(_file_patches())
        + list(settings.production_patches(resolution.environment))
    )


def _task_script(_service: str, script: str) -> str:
    resolution = resolve.for_root(tutor_compat.current_root())
    if resolution is None:
        return script
    from .render import services, tasks

    return services.task_prelude(tasks.rewrite(script, resolution))


tutor_compat.wrap_task_scripts(_task_script)


@hooks.Filters.CLI_DO_INIT_TASKS.add(priority=hooks.priorities.LOW)
def _init_tasks(tasks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The admin user from Secrets, after every migration (low priority)."""
    resolution = resolve.for_root(tutor_compat.current_root())
    if resolution is None:
        return tasks
    from .render import admin

    return tasks + admin.init_tasks(resolution)


# --- deploy and command line ----------------------------------------------------------


def _install_deploy_steps() -> None:
    from .deploy import lifecycle

    lifecycle.install()


_install_deploy_steps()


class _LazyGroup(click.Group):
    """``tutor eks``: its commands are imported when ``tutor eks ...`` runs."""

    def _group(self) -> click.Group:
        from .cli.group import eks

        return eks

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._group().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._group().get_command(ctx, cmd_name)


hooks.Filters.CLI_COMMANDS.add_item(
    _LazyGroup(
        name="eks", help="Deploy Open edX environments to Kubernetes (AWS EKS first)"
    )
)


def _install_quickstart() -> None:
    from .cli import quickstart

    quickstart.install()


_install_quickstart()


__all__ = ["__version__"]
