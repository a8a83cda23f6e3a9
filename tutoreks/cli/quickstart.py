"""``tutor k8s quickstart``: what CI scripts for older Tutor call. Tutor 22 named it
``launch``; this alias takes the same options and runs it after a one-line note."""

from __future__ import annotations

import typing as t

import click
from tutor import fmt

from .. import tutor_compat


def install() -> None:
    group = tutor_compat.k8s_group()
    if "quickstart" in group.commands:
        return
    launch = tutor_compat.k8s_command("launch")

    @click.pass_context
    def run(ctx: click.Context, /, **options: t.Any) -> None:
        fmt.echo_alert(
            "`tutor k8s quickstart` is now `tutor k8s launch`: running `tutor k8s launch`."
        )
        ctx.invoke(launch, **options)

    group.add_command(
        click.Command(
            name="quickstart",
            params=list(launch.params),
            callback=run,
            help="Alias of `tutor k8s launch` (its name before Tutor 18)",
        )
    )
