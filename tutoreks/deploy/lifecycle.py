"""What a deploy does around Tutor's own ``tutor k8s launch`` and ``start``, when an
environment is selected:

- before ``launch``: the Tutor version of the last successful deploy, from the
  state, becomes ``env/version`` (a CI job's root has none, or the one `tutor
  plugins enable` just wrote), so that Tutor runs its release-upgrade steps when
  the release the cluster runs changed;
- before ``start``: env/ must have been rendered, reading the cluster, for the
  selected environment, namespace and instance, from its current files
  (``render/record.py``);
- before ``start`` applies anything: the namespace must not run another Tutor
  instance (``config/instances.py``), and the deploy settings (``EKS_ROLLOUT_TIMEOUT``,
  ``EKS_JOB_TIMEOUT``) must be valid; a changed Redis key prefix is said
  (``render/services.py``);
- after ``start`` applied the objects: the inventory of what it applied grows
  (``deploy/prune.py``); then the wait for every Deployment of the instance to roll
  out (``deploy/rollout.py``); then, only after a successful rollout, the objects
  earlier deploys applied and this one no longer renders are pruned, and the state
  records the Tutor release, the plugin version, the Redis key prefix and the
  inventory of this deploy.
  ``launch`` invokes ``start`` before ``init``: the rollout is waited for before
  the migrations, as Tutor's own order has it (its ``init`` waits for caddy and the
  databases it runs);
- every init Job Tutor's task runner waits for is watched (``deploy/jobs.py``).
"""

from __future__ import annotations

import os
import typing as t

import click
from tutor import fmt

from .. import signals, tutor_compat
from ..config import context, instances, resolve, state
from ..config.masking import Scrubber
from ..render import manifests, record, services
from . import jobs, prune, rollout, upgrade


def before_launch(root: str) -> None:
    resolution = resolve.for_root(root)
    if resolution is None:
        return
    signals.pass_sigterm_to_children()
    if resolution.state is None:
        return
    last = resolution.state.last_tutor_version
    if last and tutor_compat.env_version(root) != last:
        tutor_compat.write_env_version(root, last)


def before_start(root: str) -> None:
    resolution = resolve.for_root(root)
    if resolution is None:
        return
    signals.pass_sigterm_to_children()
    config = tutor_compat.load_full(root)
    record.check(root, resolution, config)
    jobs.seconds(config, "EKS_ROLLOUT_TIMEOUT")
    jobs.seconds(config, "EKS_JOB_TIMEOUT")
    context.for_root(root).start_config = config
    if resolution.state is not None:
        warn_prefix_change(resolution.state.annotations, config)
        prune.recorded(resolution.state)  # an inventory problem is said before applying
        instance = resolution.state.values.get("ID")
        if instance is not None and "ID" in resolution.state.provided(
            resolution.sources
        ):
            instances.refuse_foreign_instance(
                context.for_root(root).kube(), resolution.namespace, instance
            )
    if tutor_compat.command_path()[:2] == ("k8s", "launch"):
        migrate_first(root, config)


def migrate_first(root: str, config: dict[str, t.Any]) -> None:
    def run_init() -> None:
        click.get_current_context().invoke(tutor_compat.k8s_command("init"), limit=None)

    ctx = context.for_root(root)
    ctx.migrated = upgrade.migrate_first(ctx.kube(), root, config, run_init)


def before_init(root: str) -> bool:
    """``launch``'s own ``init`` is skipped when its migrations ran before ``start``."""
    ctx = context.for_root(root)
    if ctx.migrated:
        ctx.migrated = False
        fmt.echo_info("The migrations already ran before the Deployments switched.")
        return False
    return True


def after_start(root: str) -> None:
    resolution = resolve.for_root(root)
    if resolution is None:
        return
    ctx = context.for_root(root)
    config = ctx.start_config or tutor_compat.load_full(root)
    ctx.start_config = None
    kube = ctx.kube()
    namespace = str(config["K8S_NAMESPACE"])
    plan = None
    if resolution.state is not None and config.get("EKS_PRUNE"):
        if tutor_compat.k8s_start_names():
            fmt.echo_info("`tutor k8s start NAME` applied a part only: nothing pruned.")
        else:
            plan = prune.plan(kube, root, config, resolution.state)
            prune.remember(kube, resolution.state, plan)
    timeout = jobs.seconds(config, "EKS_ROLLOUT_TIMEOUT")
    if timeout:
        scrub = Scrubber(resolution.sensitive_values())
        rollout.wait(kube, namespace, str(config["ID"]), timeout, scrub)
    else:
        fmt.echo_info("EKS_ROLLOUT_TIMEOUT is 0: not waiting for the rollout.")
    annotations: dict[str, str] = {}
    if plan is not None:
        outcome = prune.prune(kube, plan)
        prune.report(outcome, namespace)
        annotations[prune.INVENTORY_ANNOTATION] = prune.encode(outcome.inventory(plan))
    if resolution.state is not None:
        annotations[state.REDIS_PREFIX_ANNOTATION] = str(config["REDIS_KEY_PREFIX"])
        state.record_deploy(kube, resolution.state, annotations)
    ctx.forget()


def warn_prefix_change(annotations: dict[str, str], config: dict[str, t.Any]) -> None:
    message = services.prefix_change(annotations, str(config["REDIS_KEY_PREFIX"]))
    if message:
        fmt.echo_alert(message)


def before_delete(root: str) -> None:
    """``tutor k8s delete`` runs ``kubectl delete -k env``, which deletes every
    object of the kustomization by name, cluster-scoped ones included. The
    cluster-scoped objects of an environment's k8s/ (an issuer other environments
    share) are left out of env/ while the command runs, and put back after."""
    if resolve.for_root(root) is None:
        return
    path = os.path.join(tutor_compat.env_dir(root), *manifests.OUTPUT.split("/"))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return
    kept, shared = manifests.without_shared_cluster_objects(text)
    if not shared:
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(kept)

    def put_back() -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    tutor_compat.on_command_end(put_back)
    fmt.echo_info(
        "Left on the cluster (cluster-scoped, possibly shared with other "
        f"environments): {', '.join(shared)}"
    )
