"""Tutor plugin ``eks``: registers the plugin's hooks, and nothing else.

Every `tutor` command imports this module and runs the config hooks, so both are
cheap: no I/O at import, and this module is the one place where the rest of the
package is imported late: by the hook callbacks, once an environment may be
selected (:func:`_selected`; inert commands import nothing more). The pipeline,
one package or module per step: ``environment`` (select and load), ``config``
(resolve the layers), ``render`` (settings, manifests, kustomize, task scripts),
``guard`` (the save), ``deploy`` and ``cli``.
"""

from __future__ import annotations

import os
import typing as t

import click
import jinja2
from tutor import hooks

from . import defaults, tutor_compat
from .__about__ import __version__

if t.TYPE_CHECKING:
    from .config.resolve import Resolution

TEMPLATES_ROOT = os.path.join(os.path.dirname(__file__), "templates")
PATCHES_ROOT = os.path.join(os.path.dirname(__file__), "patches")


# --- configuration ------------------------------------------------------------


def _root_text(root: str) -> str:
    """The root's config.yml as text ("" when there is none)."""
    try:
        with open(tutor_compat.config_path(root), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def _selected(root: str, text: str | None = None) -> bool:
    """Whether an environment may be selected: TUTOR_EKS_ENVIRONMENT, or
    EKS_ENVIRONMENT in the root's config.yml (a text search, no parse; ``text``
    when the caller read it already). When not, the plugin is inert: Tutor's
    behaviour, nothing else imported or built.
    (`tutor eks envs` selects each environment in turn: ``config/context.py``.)"""
    if "TUTOR_EKS_ENVIRONMENT" in os.environ:
        return True
    if tutor_compat.command_value("tutoreks.environment") is not None:
        return True
    return "EKS_ENVIRONMENT" in (_root_text(root) if text is None else text)


def _resolution(text: str | None = None) -> Resolution | None:
    """The running command's resolution, None when inert."""
    root = tutor_compat.current_root()
    if not _selected(root, text):
        return None
    from .config import resolve

    return resolve.for_root(root)


@hooks.Filters.CONFIG_USER.add()
def _config_user(items: list[tuple[str, t.Any]]) -> list[tuple[str, t.Any]]:
    text = _root_text(tutor_compat.current_root())  # read once per config load
    resolution = _resolution(text)
    provided = resolution.values if resolution else {}
    return items + list(provided.items()) + _instead_of_stand_ins(text, provided)


def _instead_of_stand_ins(
    text: str, provided: t.Mapping[str, t.Any]
) -> list[tuple[str, t.Any]]:
    """A stand-in of config.yml (``guard.py``, ``text`` is the root's config.yml)
    that nothing replaces in this command (no environment selected, no state read)
    becomes Tutor's own default again: a new value is generated, as without the
    plugin."""
    if defaults.STAND_IN not in text:
        return []
    templates = tutor_compat.unique_templates()
    root_config = tutor_compat.read_root_config_text(text)
    return [
        (key, templates[key])
        for key, value in root_config.items()
        if value == defaults.STAND_IN and key in templates and key not in provided
    ]


@hooks.Actions.PLUGIN_UNLOADED.add(priority=hooks.priorities.HIGH - 1)
def _disabled(plugin: str, root: str, config: dict[str, t.Any]) -> None:
    """``tutor plugins disable eks``: Tutor then writes config.yml as plain Tutor
    reads it, without the plugin's values or stand-ins (before the hooks go)."""
    if plugin == "eks" and _selected(root):
        from . import guard

        guard.without_the_plugin(root, config)


@hooks.Actions.ENV_SAVED.add()
def _env_saved(root_env: str, config: dict[str, t.Any]) -> None:
    """env/ was written completely: the save guard keeps it; its record says for
    what (an inert render removes an old record)."""
    from .render import record

    resolution = _resolution()
    if resolution is not None:
        from . import guard

        guard.mark_env_saved(root_env, config)
    record.write(root_env, resolution, config)


def _save_config_file(root: str, config: dict[str, t.Any]) -> None:
    """Every write of config.yml: the save guard's, or Tutor's own when inert."""
    if not _selected(root):
        tutor_compat.write_config_atomically(root, config)
        return
    from . import guard

    guard.guarded_save(root, config)


tutor_compat.replace_save_config_file(_save_config_file)
tutor_compat.parse_core_config_once()


@hooks.Filters.CONFIG_DEFAULTS.add()
def _defaults(items: list[tuple[str, t.Any]]) -> list[tuple[str, t.Any]]:
    root = tutor_compat.current_root()
    active = False
    if _selected(root):
        from .config import resolve

        active = resolve.is_active(root)
    return items + defaults.config_defaults(active=active)


# --- rendering ----------------------------------------------------------------

hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(TEMPLATES_ROOT)
# Task scripts (read as files by render/admin.py) and the RBAC template (cli/rbac.py)
# are never rendered as part of env/
# (`tutor config patches list` renders every template it walks).
hooks.Filters.ENV_PATTERNS_IGNORE.add_items([r"eks/tasks/", r"eks/rbac/"])
hooks.Filters.ENV_TEMPLATE_TARGETS.add_items(
    [
        ("eks/k8s/manifests.yml", "plugins"),
        ("eks/k8s/caddy-service.yml", "plugins"),
    ]
)


@jinja2.pass_context
def _eks_manifests(context: jinja2.runtime.Context) -> str:
    resolution = _resolution()
    if resolution is None:
        return ""
    from .render import manifests

    return manifests.render_all(context, resolution)


@jinja2.pass_context
def _eks_hosts(context: jinja2.runtime.Context) -> list[str]:
    resolution = _resolution()
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
    resolution = _resolution()
    if resolution is None:
        return ""
    from .render import kustomize

    return kustomize.kustomize_patches(context, resolution)


@jinja2.pass_context
def _eks_service_settings(context: jinja2.runtime.Context) -> str:
    resolution = _resolution()
    if resolution is None:
        return ""
    from .render import services

    return services.settings_patch(context.get_all(), resolution)


@hooks.Filters.ENV_TEMPLATE_FILTERS.add(priority=hooks.priorities.LOW)
def _filters(items: list[tuple[str, t.Any]]) -> list[tuple[str, t.Any]]:
    return tutor_compat.with_rsa_import_once(items)


hooks.Filters.ENV_TEMPLATE_VARIABLES.add_items(
    [
        ("eks_manifests", _eks_manifests),
        ("eks_service_settings", _eks_service_settings),
        ("eks_hosts", _eks_hosts),
        ("eks_kustomize_patches", _eks_kustomize_patches),
    ]
)


@hooks.lru_cache
def _file_patches() -> tuple[tuple[str, str], ...]:
    """The files of ``patches/``, each named after its patch point."""
    patches = []
    for name in sorted(os.listdir(PATCHES_ROOT)):
        with open(os.path.join(PATCHES_ROOT, name), encoding="utf-8") as f:
            patches.append((name, f.read()))
    return tuple(patches)


@hooks.Filters.ENV_PATCHES.add()
def _patches(patches: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return patches + list(_file_patches()) if _resolution() else patches


# After every plugin's patches, theirs at LOW priority included: an environment's
# settings_merge is the last word in production.py.
SETTINGS_MERGE_PRIORITY = hooks.priorities.LOW * 2


@hooks.Filters.ENV_PATCHES.add(priority=SETTINGS_MERGE_PRIORITY)
def _settings_merge(patches: list[tuple[str, str]]) -> list[tuple[str, str]]:
    resolution = _resolution()
    if resolution is None:
        return patches
    from .render import settings

    return patches + list(settings.production_patches(resolution.environment))


def _task_script(_service: str, script: str) -> str:
    resolution = _resolution()
    if resolution is None:
        return script
    from .render import services, tasks

    return services.task_prelude(tasks.rewrite(script, resolution))


tutor_compat.wrap_task_scripts(_task_script)


@hooks.Filters.CLI_DO_INIT_TASKS.add(priority=hooks.priorities.LOW)
def _init_tasks(tasks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The admin user from Secrets, after every migration (low priority)."""
    resolution = _resolution()
    if resolution is None:
        return tasks
    from .render import admin

    return tasks + admin.init_tasks(resolution)


# --- deploy and command line ----------------------------------------------------------


def _deploy_step(name: str) -> t.Callable[[str], bool | None]:
    """``deploy/lifecycle.<name>(root)`` around a ``tutor k8s`` command, when an
    environment may be selected (inert, Tutor's own command runs untouched)."""

    def step(root: str) -> bool | None:
        if not _selected(root):
            return None
        from .deploy import lifecycle

        result: bool | None = getattr(lifecycle, name)(root)
        return result

    return step


tutor_compat.wrap_k8s_command("delete", before=_deploy_step("before_delete"))
tutor_compat.wrap_k8s_command("launch", before=_deploy_step("before_launch"))
tutor_compat.wrap_k8s_command(
    "start", before=_deploy_step("before_start"), after=_deploy_step("after_start")
)
tutor_compat.wrap_k8s_command("init", before=_deploy_step("before_init"))


def _job_polled(config: dict[str, t.Any], job_name: str) -> None:
    """Tutor's task runner polls ``job_name``: report it when it failed."""
    if config.get("EKS_ENVIRONMENT"):
        from .deploy import jobs

        jobs.check(config, job_name)


tutor_compat.wrap_job_wait(_job_polled)


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
