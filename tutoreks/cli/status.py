"""``tutor eks status``: what is deployed for the selected environment, and whether
it works (``deploy/status.py``). A table, ``--json`` for machines, ``--markdown
FILE`` for a CI job summary; exit 1 when something is not ready."""

from __future__ import annotations

import json

import click

from ..config import context
from ..deploy import status
from .common import load, table


@click.command(
    name="status",
    help="What is deployed and whether it works: rollouts, Jobs, Ingress, Certificate, load balancer",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON")
@click.option(
    "--markdown",
    "markdown_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Also append the status as a Markdown table to FILE, e.g. "
    '"$GITHUB_STEP_SUMMARY" ("-": print it instead of the table)',
)
@click.pass_context
def command(ctx: click.Context, as_json: bool, markdown_file: str | None) -> None:
    config, resolution = load(ctx.obj.root)
    client = context.for_root(ctx.obj.root).kube()
    report = status.collect(client, config, resolution)
    if markdown_file and markdown_file != "-":
        with open(markdown_file, "a", encoding="utf-8") as f:
            f.write(status.markdown(report))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    elif markdown_file == "-":
        click.echo(status.markdown(report), nl=False)
    else:
        click.echo(
            f"Environment {report.environment}, namespace {report.namespace}: "
            + ("all ready" if report.ok else "NOT READY")
        )
        for line in table(status.table_rows(report)):
            click.echo(line)
    if not report.ok:
        ctx.exit(1)
