"""``tutor eks envs``: list the environments and validate each."""

from __future__ import annotations

import typing as t

import click
from tutor import fmt

from .. import environment, tutor_compat
from ..config import context, resolve
from ..exceptions import EksError
from ..render import settings


@click.command(
    name="envs",
    help="List the environments and validate each (config, settings, manifests)",
)
@click.pass_obj
def command(obj: t.Any) -> None:
    root = obj.root
    selection = context.for_root(root).selection()
    names = environment.list_names(selection.root)
    if not names:
        raise EksError(
            f"No environment found in {environment.display_path(selection.root)}: an "
            f"environment is a folder holding a {environment.CONFIG_FILE}."
        )
    broken = 0
    for name in names:
        marker = "*" if name == selection.name else " "
        try:
            summary = validate(root, environment.Selection(name, selection.root))
        except EksError as e:
            broken += 1
            fmt.echo(f"{marker} {name:<20} BROKEN  {e}")
            continue
        fmt.echo(f"{marker} {name:<20} ok      {summary}")
    if not selection.name:
        fmt.echo(
            "No environment selected: set TUTOR_EKS_ENVIRONMENT=<name> or run "
            "`tutor config save --set EKS_ENVIRONMENT=<name>`."
        )
    if broken:
        raise EksError(f"{broken} of {len(names)} environments are broken.")


def validate(root: str, selection: environment.Selection) -> str:
    """Load and render one environment without reading the cluster; its summary.
    The command's context resolves ``selection`` instead of the selected one
    while this runs."""
    ctx = context.for_root(root)
    tutor_compat.set_command_value(context.OVERRIDE, selection)
    try:
        config = tutor_compat.load_full(root)
        resolution = resolve.for_context(ctx)
        if resolution is None:
            raise EksError("the environment was not selected")
        tutor_compat.render_template(config, "eks/k8s/manifests.yml")
        for patch_name, code in settings.production_patches(resolution.environment):
            compile(code, patch_name, "exec")
    except Exception as e:
        if isinstance(e, EksError):
            raise
        raise EksError(f"{type(e).__name__}: {e}") from e
    finally:
        tutor_compat.set_command_value(context.OVERRIDE, None)
    return summary(config, resolution.environment)


def summary(config: dict[str, t.Any], env: environment.Environment) -> str:
    parts = [
        f"namespace {config['K8S_NAMESPACE']}",
        f"edge {config['EKS_EDGE']}",
        f"LMS {config['LMS_HOST']}",
    ]
    if env.settings:
        parts.append(
            "settings_merge: "
            + ", ".join(d.rsplit("/", 1)[-1] for d, _ in env.settings.values())
        )
    if env.manifests:
        parts.append("k8s: " + ", ".join(m.path.name for m in env.manifests.values()))
    return "; ".join(parts)
