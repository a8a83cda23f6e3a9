"""``tutor eks check``: the preflight a deploy job runs before migrations."""

from __future__ import annotations

import json
import typing as t

import click

from ..config import context
from ..deploy import preflight
from ..exceptions import EksError
from .common import load, selected_name

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution


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
            client = context.for_root(root).kube()
        except EksError as e:
            results.append(preflight.Result("kubernetes", False, str(e)))
        else:
            # The preflight uses the exact values, not their template escapes.
            exact = {**config, **resolution.raw_values()}
            bundle = resolution.ca_bundle
            checks = preflight.checks_for(
                exact, client, bundle.path if bundle is not None else None
            )
            results += preflight.run(checks, hidden_values(config, resolution))
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


def hidden_values(config: dict[str, t.Any], resolution: Resolution) -> list[str]:
    """The values scrubbed from the checks' details: every one from a Secret or the
    state, except the words of boolean settings ("REDIS_USE_SSL is false" stays
    readable), unless another key holds the same word."""
    provided = resolution.secrets.values if resolution.secrets else {}
    kept = resolution.state.values if resolution.state else {}
    words = {v for k, v in provided.items() if isinstance(config.get(k), bool)}
    others = {
        v
        for k, v in [*provided.items(), *kept.items()]
        if not isinstance(config.get(k), bool)
    }
    return [v for v in resolution.sensitive_values() if v not in words - others]


def print_table(results: list[preflight.Result]) -> None:
    width = max(len(r.name) for r in results)
    for r in results:
        status = (
            click.style("ok  ", fg="green") if r.ok else click.style("FAIL", fg="red")
        )
        click.echo(f"{status}  {r.name.ljust(width)}  {r.detail}")
