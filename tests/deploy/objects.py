"""The API objects of tests/deploy/fixtures/, as the API server returned them
(read from the local control plane, ``managedFields`` left out): one object, or
the items of a list."""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"

Obj = dict[str, t.Any]


def one(name: str) -> Obj:
    """The object of ``fixtures/<name>.json`` (a fresh copy, free to change)."""
    loaded = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return copy.deepcopy(loaded)


def items(name: str) -> list[Obj]:
    """The items of the list in ``fixtures/<name>.json``."""
    found = one(name)["items"]
    assert isinstance(found, list)
    return found


def named(found: list[Obj], prefix: str) -> Obj:
    """The object among ``found`` whose name starts with ``prefix``."""
    matches = [o for o in found if o["metadata"]["name"].startswith(prefix)]
    assert len(matches) == 1, [o["metadata"]["name"] for o in found]
    return matches[0]
