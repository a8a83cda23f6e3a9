"""Step 5: the command line. ``tutor eks ...`` (one module per command) and the
``tutor k8s quickstart`` alias (``quickstart.py``).

The ``eks`` group is loaded when ``tutor eks ...`` runs (``plugin.py`` registers
a lazy group): every ``tutor`` command imports the plugin.
"""

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
