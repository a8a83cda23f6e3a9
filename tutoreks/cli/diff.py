"""``tutor eks diff``: what ``tutor k8s start`` would change, computed by the API
server (``kubectl diff``, with the selector ``tutor k8s start`` applies with), and
what the deploy would prune (``deploy/prune.py``)."""

from __future__ import annotations

import os
import shutil
import subprocess

import click
from tutor import fmt

from .. import tutor_compat
from ..config import context
from ..deploy import prune
from ..exceptions import EksError
from ..render import record
from .common import load


@click.command(
    name="diff",
    help="Show what `tutor k8s start` would change on the cluster (server-side), and what it would prune",
)
@click.pass_context
def command(ctx: click.Context) -> None:
    root = ctx.obj.root
    config, resolution = load(root)
    record.check(root, resolution, config)
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
    if code not in (0, 1):
        raise EksError(f"`kubectl diff` failed (exit {code}); see its message above.")
    if prune_candidates(root):
        code = 1
    if code == 0:
        fmt.echo_info("No change: `tutor k8s start` would leave the cluster as it is.")
    else:
        fmt.echo_info("`tutor k8s start` would make the changes above.")
    ctx.exit(code)


def prune_candidates(root: str) -> bool:
    """Print what the next deploy would prune; True when it would delete something."""
    config, resolution = load(root)
    if resolution.state is None or not config.get("EKS_PRUNE"):
        return False
    kube = context.for_root(root).kube()
    plan = prune.plan(kube, root, config, resolution.state)
    outcome = prune.prune(kube, plan, dry_run=True)
    prune.report(outcome, plan.namespace, dry_run=True)
    return bool(outcome.pruned)
