"""``tutor eks diff``: what ``tutor k8s start`` would change, computed by the API
server (``kubectl diff``, with the selector ``tutor k8s start`` applies with)."""

from __future__ import annotations

import os
import shutil
import subprocess

import click
from tutor import fmt

from .. import tutor_compat
from ..exceptions import EksError
from .common import selected_name


@click.command(
    name="diff",
    help="Show what `tutor k8s start` would change on the cluster (server-side)",
)
@click.pass_context
def command(ctx: click.Context) -> None:
    root = ctx.obj.root
    selected_name(root)
    env_dir = tutor_compat.env_dir(root)
    if not os.path.exists(os.path.join(env_dir, "kustomization.yml")):
        raise EksError(
            f"{env_dir} has no kustomization.yml: run `tutor config save` first."
        )
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise EksError("kubectl is not installed (tutor eks diff runs `kubectl diff`).")
    code = subprocess.call(
        [
            kubectl,
            "diff",
            "--kustomize",
            env_dir,
            "--selector",
            tutor_compat.APPLY_SELECTOR,
        ]
    )
    if code == 0:
        fmt.echo_info("No change: `tutor k8s start` would leave the cluster as it is.")
    elif code == 1:
        fmt.echo_info("`tutor k8s start` would make the changes above.")
    else:
        raise EksError(f"`kubectl diff` failed (exit {code}); see its message above.")
    ctx.exit(code)
