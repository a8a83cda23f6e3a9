"""``tutor k8s quickstart``: what CI scripts for older Tutor call. Tutor 22 named it
``launch``; this alias takes the same options and runs it after a one-line note."""

from __future__ import annotations

import typing as t

import click
from tutor import fmt


def install_quickstart_alias() -> None:
    from tutor.commands import k8s as tutor_k8s

    if "quickstart" in tutor_k8s.k8s.commands:
        return
    launch = tutor_k8s.launch

    @click.pass_context
    def run(ctx: click.Context, /, **options: t.Any) -> None:
        fmt.echo_alert(
            "`tutor k8s quickstart` is now `tutor k8s launch`: running `tutor k8s launch`."
        )
        ctx.invoke(launch, **options)

    tutor_k8s.k8s.add_command(
        click.Command(
            name="quickstart",
            params=list(launch.params),
            callback=run,
            help="Alias of `tutor k8s launch` (its name before Tutor 18)",
        )
    )
