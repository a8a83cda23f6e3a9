"""``tutor eks adopt``: keep the ID and generated values of a namespace deployed
before tutor-contrib-eks kept its state (plain Tutor, cookiecutter-openedx-devops,
an earlier version of this plugin)."""

from __future__ import annotations

import typing as t

import click
from tutor import fmt

from .. import tutor_compat
from ..config import context as command_context
from ..config import instances, state
from ..deploy import adopt
from ..exceptions import EksError
from .common import load


@click.command(
    name="adopt",
    help="Keep the ID and generated values of the Tutor instance running in the namespace",
)
@click.pass_obj
def command(obj: t.Any) -> None:
    _config, resolution = load(obj.root)
    kept = resolution.state
    if kept is None:
        raise EksError("tutor eks adopt needs the cluster: no state was read.")
    namespace = resolution.namespace
    ctx = command_context.for_root(obj.root)
    client = ctx.kube()
    live = instances.live_instances(client, namespace)
    if not live:
        raise EksError(
            f"Namespace {namespace} runs no Tutor Deployment: nothing to adopt; "
            "the first deploy will keep its own generated values."
        )
    if len(live) > 1:
        raise EksError(
            f"Namespace {namespace} runs several Tutor instances "
            f"({', '.join(sorted(live))}): remove all but one first."
        )
    instance = next(iter(live))
    if kept.values.get("ID") not in (None, instance):
        raise EksError(
            f"The state {kept.display} holds another ID than the instance running in "
            f"{namespace} ({instance!r}); delete the state Secret first if the running "
            "instance is the one to keep."
        )
    recovery = adopt.recover(client, namespace, instance)
    missing = {
        k: v
        for k, v in recovery.values.items()
        if k not in kept.values and not state.provided_elsewhere(k, resolution.sources)
    }
    stored = state.store(client, kept, missing)
    stale = adopt.credential_configmaps(client, namespace, instance)
    if stale:
        stored = adopt.record_for_prune(client, stored, stale)
    ctx.forget()
    report(stored, recovery, resolution)
    if stale:
        fmt.echo_info(
            "The next deploy removes the ConfigMaps that hold credentials in plain "
            f"Tutor (they become Secrets): {', '.join(stale)}"
        )


def report(stored: state.State, recovery: adopt.Recovery, resolution: t.Any) -> None:
    fmt.echo_info(
        f"Adopted the instance {recovery.values['ID']!r} into {stored.display}:"
    )
    for key in sorted(recovery.origins):
        fmt.echo(f"  {key:<28} from {recovery.origins[key]}")
    provided = set(resolution.values) - set(stored.provided(resolution.sources))
    lost = [
        key
        for key in tutor_compat.unique_keys()
        if key not in stored.values and key not in provided
    ]
    if lost:
        fmt.echo_alert(
            "Not recoverable from the live objects (the next deploy generates new "
            f"values): {', '.join(lost)}"
        )
