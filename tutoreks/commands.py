"""``tutor eks ...``: the operator's commands. Cheap to import (click only)."""

from __future__ import annotations

import click
from tutor import fmt

from . import environments, precedence
from .exceptions import EksError


@click.group(
    name="eks", help="Deploy Open edX environments to Kubernetes (AWS EKS first)"
)
def eks() -> None:
    pass


@eks.command(name="envs", help="List the environments and validate their files")
@click.pass_obj
def envs(context: object) -> None:
    root = precedence.tutor_root()
    root_config = precedence.read_root_config(root)
    selected, envs_root = precedence.selected_environment(root_config)
    names = environments.list_names(envs_root)
    if not names:
        raise EksError(
            environments.unknown_environment_message(envs_root, selected or "<none>")
        )
    broken = 0
    for name in names:
        marker = "*" if name == selected else " "
        try:
            environments.load(envs_root, name)
        except EksError as e:
            broken += 1
            fmt.echo(f"{marker} {name}: BROKEN: {e}")
        else:
            fmt.echo(f"{marker} {name}: ok")
    if not selected:
        fmt.echo(
            "No environment selected: set TUTOR_EKS_ENVIRONMENT=<name> or run "
            "`tutor config save --set EKS_ENVIRONMENT=<name>`."
        )
    if broken:
        raise EksError(f"{broken} of {len(names)} environments are broken.")
