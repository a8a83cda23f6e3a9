"""Tutor plugin ``eks``: registers the plugin's hooks, and nothing else.

Every `tutor` command imports this module and runs the config hook, so both are
cheap: no I/O at import, and the modules that do the work are imported by the hook
callbacks that need them, once an environment is selected.
"""

from __future__ import annotations

import functools
import os
import typing as t

import click
import jinja2
from tutor import hooks

from . import aliases, defaults, precedence
from .__about__ import __version__

TEMPLATES_ROOT = os.path.join(os.path.dirname(__file__), "templates")
PATCHES_ROOT = os.path.join(os.path.dirname(__file__), "patches")


# --- configuration ------------------------------------------------------------

hooks.Filters.CONFIG_USER.add()(precedence.config_user)
hooks.Actions.ENV_SAVED.add()(precedence.mark_env_saved)
precedence.install_save_guard()


@hooks.Filters.CONFIG_DEFAULTS.add()
def _defaults(items: list[tuple[str, t.Any]]) -> list[tuple[str, t.Any]]:
    # CONFIG_USER ran first in this load: it knows whether an environment is selected.
    return items + defaults.prefixed_defaults(active=precedence.current() is not None)


# --- rendering ----------------------------------------------------------------

hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(TEMPLATES_ROOT)
hooks.Filters.ENV_TEMPLATE_TARGETS.add_items(
    [
        ("eks/k8s/manifests.yml", "plugins"),
        ("eks/k8s/caddy-service.yml", "plugins"),
    ]
)


@jinja2.pass_context
def _eks_manifests(context: jinja2.runtime.Context) -> str:
    from . import manifests

    return manifests.render_all(context)


@jinja2.pass_context
def _eks_hosts(context: jinja2.runtime.Context) -> list[str]:
    from . import manifests

    return manifests.public_hosts(context.get_all())


@jinja2.pass_context
def _eks_kustomize_patches(context: jinja2.runtime.Context) -> str:
    from . import credentials

    return credentials.kustomize_patches(context)


hooks.Filters.ENV_TEMPLATE_VARIABLES.add_items(
    [
        ("eks_manifests", _eks_manifests),
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
    patches = patches + list(_file_patches())
    resolution = precedence.current()
    if resolution is not None:
        from . import settings

        patches += settings.production_patches(resolution.environment)
    return patches


# Last, after every plugin added its init tasks.
@hooks.Filters.CLI_DO_INIT_TASKS.add(priority=hooks.priorities.LOW)
def _init_tasks(tasks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if precedence.current() is None:
        return tasks
    from . import credentials

    return credentials.init_tasks(tasks)


# --- command line -------------------------------------------------------------


class _LazyGroup(click.Group):
    """``tutor eks``: its commands are imported when ``tutor eks ...`` runs."""

    def _group(self) -> click.Group:
        from .commands import eks

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
aliases.install_quickstart_alias()


__all__ = ["__version__"]
