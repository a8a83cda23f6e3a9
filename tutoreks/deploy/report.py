"""The rows of ``tutor eks status``: one per object, ready or not, and why."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field


@dataclass
class Item:
    """One row: a Deployment, a Job, an Ingress, a Certificate, a Service."""

    kind: str
    name: str
    ok: bool
    status: str
    detail: str = ""
    data: dict[str, t.Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            **self.data,
        }


@dataclass
class Report:
    environment: str
    namespace: str
    last_deploy: dict[str, str] | None
    items: list[Item]

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.items)

    def as_dict(self) -> dict[str, t.Any]:
        return {
            "environment": self.environment,
            "namespace": self.namespace,
            "ok": self.ok,
            "last_deploy": self.last_deploy,
            "items": [item.as_dict() for item in self.items],
        }
