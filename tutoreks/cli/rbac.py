"""``tutor eks rbac``: the least-privilege Role/ClusterRole of the CI identity."""

from __future__ import annotations

import typing as t

import click

from ..deploy import rbac
from .common import load


@click.command(
    name="rbac",
    help="Print the least-privilege Role/ClusterRole and bindings for the CI identity",
)
@click.option(
    "--service-account",
    "service_account",
    metavar="[NAMESPACE:]NAME",
    help="Bind a ServiceAccount (default: tutor-deployer in K8S_NAMESPACE)",
)
@click.option(
    "--user", "user", metavar="NAME", help="Bind a user, e.g. an EKS access entry's"
)
@click.option(
    "--group", "group", metavar="NAME", help="Bind a group, e.g. an EKS access entry's"
)
@click.option(
    "--namespace",
    "namespace",
    metavar="NAME",
    help="Namespace of the Role (default: the environment's K8S_NAMESPACE)",
)
@click.pass_obj
def command(
    context: t.Any,
    service_account: str | None,
    user: str | None,
    group: str | None,
    namespace: str | None,
) -> None:
    config, _resolution = load(context.root)
    text = rbac.render(
        config, namespace, service_account=service_account, user=user, group=group
    )
    click.echo(text, nl=False)
