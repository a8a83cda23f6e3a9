"""``tutor eks secrets``: which Tutor key comes from which Secret, and which from
the state; never a value."""

from __future__ import annotations

import typing as t

import click
from tutor import fmt

from .. import tutor_compat
from ..config.resolve import Resolution
from .common import load, table


@click.command(
    name="secrets",
    help="Which Tutor key comes from which Secret and key, or from the state (never a value)",
)
@click.pass_obj
def command(context: t.Any) -> None:
    config, resolution = load(context.root)
    name = resolution.environment.name
    fmt.echo(f"Environment {name}, namespace {resolution.namespace}:")
    rows = [("TUTOR KEY", "FROM", "LENGTH", "NOTE"), *secret_rows(config, resolution)]
    rows += state_rows(resolution)
    for key, source in sorted(resolution.sources.items()):
        if key.startswith("RUN_") and " from Secret " in source:
            rows.append((key, "-", "-", f"false: {source}"))
    for line in table(rows):
        fmt.echo(line)
    provided = resolution.secrets
    if provided is None:
        fmt.echo("EKS_SECRETS is empty: no Secret is read.")
        return
    fmt.echo(f"Secrets read: {', '.join(provided.found) or 'none'}")
    if provided.missing_optional:
        fmt.echo(f"Optional Secrets absent: {', '.join(provided.missing_optional)}")


def secret_rows(
    config: dict[str, t.Any], resolution: Resolution
) -> list[tuple[str, ...]]:
    provided = resolution.secrets
    if provided is None:
        return []
    known = set(tutor_compat.load_defaults()) | set(tutor_compat.unique_keys())
    rows: list[tuple[str, ...]] = []
    for key in sorted(provided.values):
        note = []
        if key not in known and key not in config:
            note.append("unused: no enabled plugin or Tutor knows this key")
        if key in resolution.conflicts:
            note.append(
                f"also in {resolution.environment.display}/config.yml (the Secret wins)"
            )
        if resolution.sources.get(key, "").startswith("TUTOR_"):
            note.append(f"overridden by {resolution.sources[key]}")
        rows.append(
            (
                key,
                f"Secret {provided.origin(key)}",
                str(len(provided.values[key])),
                "; ".join(note),
            )
        )
    return rows


def state_rows(resolution: Resolution) -> list[tuple[str, ...]]:
    state = resolution.state
    if state is None:
        return []
    used = set(state.provided(resolution))
    return [
        (
            key,
            f"state {state.name}",
            str(len(state.values[key])),
            "" if key in used else f"not used: {resolution.sources.get(key, '?')} wins",
        )
        for key in sorted(state.values)
    ]
