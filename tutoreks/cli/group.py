"""The ``tutor eks`` group: one command per module of this package."""

from __future__ import annotations

import click

from . import adopt, check, diff, envs, rbac, secrets, status


@click.group(
    name="eks", help="Deploy Open edX environments to Kubernetes (AWS EKS first)"
)
def eks() -> None:
    pass


for _module in (envs, secrets, check, diff, rbac, adopt, status):
    eks.add_command(_module.command)
