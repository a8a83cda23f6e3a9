"""What several ``tutor eks`` commands share: the selected environment and its
configuration."""

from __future__ import annotations

import typing as t

from .. import tutor_compat
from ..config import context, resolve
from ..exceptions import EksError

NO_SELECTION = (
    "No environment selected: set TUTOR_EKS_ENVIRONMENT=<name>, or run "
    "`tutor config save --set EKS_ENVIRONMENT=<name>`. `tutor eks envs` lists them."
)


def selected_name(root: str) -> str:
    """The selected environment's name, or an error that explains how to select one."""
    name = str(context.for_root(root).selection().name)
    if not name:
        raise EksError(NO_SELECTION)
    return name


def load(root: str) -> tuple[dict[str, t.Any], resolve.Resolution]:
    """The full configuration of the selected environment, and its resolution."""
    selected_name(root)
    config = tutor_compat.load_full(root)
    resolution = resolve.for_root(root)
    if resolution is None:
        raise EksError(NO_SELECTION)
    return config, resolution


def table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    """Rows aligned in columns (the last one is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        indent
        + "  ".join(
            cell.ljust(widths[i]) if i < len(widths) else cell
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
