"""``tutor eks check``: the preflight a deploy job runs before migrations."""

from __future__ import annotations

import json

import click

from ..deploy import preflight
from ..exceptions import EksError
from .common import load, selected_name


@click.command(
    name="check",
    help="Preflight before migrations: Secrets, databases, S3, cert-manager, ingress",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of {name, ok, detail}"
)
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    root = ctx.obj.root
    selected_name(root)
    try:
        config, resolution = load(root)
    except EksError as e:
        results = [preflight.Result("secrets", False, str(e))]
    else:
        results = preflight.secrets_result(resolution)
        try:
            from .. import kube

            client = kube.client()
        except EksError as e:
            results.append(preflight.Result("kubernetes", False, str(e)))
        else:
            # The preflight uses the exact values, not their template escapes.
            exact = {**config, **resolution.raw_values()}
            results += preflight.run(
                preflight.checks_for(exact, client), resolution.sensitive_values()
            )
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print_table(results)
    failed = [r.name for r in results if not r.ok]
    if failed:
        if not as_json:
            click.echo(
                f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}",
                err=True,
            )
        ctx.exit(1)


def print_table(results: list[preflight.Result]) -> None:
    width = max(len(r.name) for r in results)
    for r in results:
        status = (
            click.style("ok  ", fg="green") if r.ok else click.style("FAIL", fg="red")
        )
        click.echo(f"{status}  {r.name.ljust(width)}  {r.detail}")
