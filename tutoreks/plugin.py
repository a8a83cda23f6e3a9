"""Tutor plugin ``eks``: registers the plugin's hooks, and nothing else.

Importing this module is cheap and does no I/O: every `tutor` command imports it.
"""

from __future__ import annotations

import functools
import os

from tutor import hooks

from . import commands, credentials, defaults, manifests, precedence, settings
from .__about__ import __version__

TEMPLATES_ROOT = os.path.join(os.path.dirname(__file__), "templates")
PATCHES_ROOT = os.path.join(os.path.dirname(__file__), "patches")

hooks.Filters.CONFIG_DEFAULTS.add_items(defaults.prefixed_defaults())
hooks.Filters.CONFIG_USER.add()(precedence.config_user)
hooks.Actions.ENV_SAVED.add()(precedence.mark_env_saved)
precedence.install_save_guard()

hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(TEMPLATES_ROOT)
hooks.Filters.ENV_TEMPLATE_TARGETS.add_items(
    [
        ("eks/k8s/manifests.yml", "plugins"),
        ("eks/k8s/caddy-service.yml", "plugins"),
    ]
)
hooks.Filters.ENV_TEMPLATE_VARIABLES.add_items(
    [
        ("eks_manifests", manifests.eks_manifests),
        ("eks_hosts", manifests.eks_hosts),
        ("eks_kustomize_patches", credentials.eks_kustomize_patches),
    ]
)
# Last, after every plugin added its init tasks.
hooks.Filters.CLI_DO_INIT_TASKS.add(priority=hooks.priorities.LOW)(
    credentials.init_tasks
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
        patches += settings.production_patches(resolution.environment)
    return patches


hooks.Filters.CLI_COMMANDS.add_item(commands.eks)
commands.install_quickstart_alias()


__all__ = ["__version__"]
