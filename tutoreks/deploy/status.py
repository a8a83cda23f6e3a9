"""``tutor eks status``: what is deployed for the selected environment, and whether it
works. Read from the cluster with the adapter only, never a value from a Secret:

- the last successful deploy (state Secret annotations): Tutor release, plugin
  version, when;
- each Deployment of the instance: ready/desired, and why when it has not rolled
  out (the same explanation as a failed rollout);
- the last Job of each init task Tutor ran (``<service>-job-<timestamp>``; Tutor
  deletes them an hour after they finish);
- in ``ingress`` edge mode, each Ingress of the instance: its hosts and load
  balancer address; with HTTPS, each Certificate: Ready, and its expiry;
- in ``caddy`` edge mode, caddy's LoadBalancer Service and its hostname.

Something is *not ready* (exit 1) when: no deploy is recorded, a Deployment has not
rolled out, an init Job failed or still runs, an Ingress or caddy's Service has no
load balancer address, a Certificate is not Ready or has expired.
"""

from __future__ import annotations

import datetime
import re
import typing as t
from dataclasses import dataclass, field

from .. import tutor_compat
from . import pods, rollout

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution
    from ..kube import Kube

JOB_NAME = re.compile(r"^(?P<task>.+-job)-(?P<stamp>\d{14})$")


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


def cleaned(item: Item, scrub: pods.Scrubber) -> Item:
    """An item whose every string (they come from cluster objects) is stripped of
    control characters and shortened; its free text (status, detail) is also
    scrubbed of values. Names, hosts and addresses are shown as they are."""

    def clean(value: t.Any) -> t.Any:
        if isinstance(value, str):  # names, hosts, addresses
            return pods.shown(value)
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        return value

    return Item(
        pods.shown(item.kind, pods.REASON_LIMIT),
        pods.shown(item.name),
        item.ok,
        scrub(item.status),
        scrub(item.detail),
        clean(item.data),
    )


def collect(kube: Kube, config: dict[str, t.Any], resolution: Resolution) -> Report:
    from ..config import state as state_module
    from ..kube import KubeError

    namespace = resolution.namespace or str(config["K8S_NAMESPACE"])
    scrub = pods.Scrubber(resolution.sensitive_values())
    items: list[Item] = []
    last: dict[str, str] | None = None
    state = resolution.state
    if state is not None:
        current = state_module.fetch(
            kube, state.namespace, state.name, state.environment
        )
        annotations = current.annotations
        if annotations.get(state_module.DEPLOYED_AT_ANNOTATION):
            last = {
                "tutor_version": annotations.get(
                    state_module.TUTOR_VERSION_ANNOTATION, ""
                ),
                "plugin_version": annotations.get(
                    state_module.PLUGIN_VERSION_ANNOTATION, ""
                ),
                "deployed_at": annotations[state_module.DEPLOYED_AT_ANNOTATION],
            }
            items.append(
                Item(
                    "Deploy",
                    "last",
                    True,
                    last["deployed_at"],
                    f"Tutor {last['tutor_version']}, tutor-contrib-eks "
                    f"{last['plugin_version']}",
                    dict(last),
                )
            )
        else:
            items.append(
                Item(
                    "Deploy",
                    "last",
                    False,
                    "none",
                    f"no successful deploy recorded in {current.display}",
                )
            )
    instance_id = str(config["ID"])
    sections: list[tuple[str, t.Callable[[], list[Item]]]] = [
        ("Deployment", lambda: deployment_items(kube, namespace, instance_id, scrub)),
        ("Job", lambda: job_items(kube, namespace, instance_id, scrub)),
    ]
    sections += [
        (
            "HorizontalPodAutoscaler",
            lambda: autoscaler_items(kube, namespace, instance_id),
        ),
        ("PodDisruptionBudget", lambda: budget_items(kube, namespace, instance_id)),
    ]
    if config.get("EKS_EDGE") == "ingress":
        sections.append(
            ("Ingress", lambda: ingress_items(kube, namespace, instance_id))
        )
        if config.get("ENABLE_HTTPS"):
            sections.append(
                (
                    "Certificate",
                    lambda: certificate_items(kube, namespace, instance_id, scrub),
                )
            )
    else:
        sections.append(("Service", lambda: [caddy_item(kube, namespace, instance_id)]))
    for kind, section in sections:
        try:
            items += section()
        except KubeError as e:
            # e.g. no `list` on Ingresses: a Role applied before this plugin version.
            items.append(Item(kind, "-", False, "cannot read", str(e)))
    clean = [cleaned(item, scrub) for item in items]
    return Report(resolution.environment.name, namespace, last, clean)


def deployment_items(
    kube: Kube, namespace: str, instance_id: str, scrub: pods.Scrubber
) -> list[Item]:
    found = rollout.deployments(kube, namespace, instance_id)
    if not found:
        return [
            Item(
                "Deployment",
                "-",
                False,
                "none",
                f"no Deployment of this instance in namespace {namespace}",
            )
        ]
    items = []
    for deployment in found:
        state = rollout.progress(deployment)
        data: dict[str, t.Any] = {
            "ready": state.ready,
            "desired": state.desired,
            "rolled_out": state.done,
        }
        if state.done:
            items.append(Item("Deployment", state.name, True, state.ratio, "", data))
            continue
        explanation = rollout.explain(kube, deployment, scrub)
        data.update(explanation.as_dict())
        items.append(
            Item(
                "Deployment",
                state.name,
                False,
                explanation.status,
                explanation.detail,
                data,
            )
        )
    return items


def job_items(
    kube: Kube, namespace: str, instance_id: str, scrub: pods.Scrubber
) -> list[Item]:
    from ..kube import JOBS, PODS

    selector = (
        tutor_compat.instance_selector(instance_id) + ",app.kubernetes.io/component=job"
    )
    latest: dict[str, dict[str, t.Any]] = {}
    for job in kube.list(JOBS, namespace, selector):
        name = str((job.get("metadata") or {}).get("name") or "")
        match = JOB_NAME.match(name)
        if match is None:
            continue
        task = match.group("task")
        if task not in latest or name > latest[task]["metadata"]["name"]:
            latest[task] = job
    items = []
    for task in sorted(latest):
        job = latest[task]
        name = job["metadata"]["name"]
        status = job.get("status") or {}
        data = {"task": task}
        if pods.condition(job, "Complete") == "True":
            items.append(
                Item(
                    "Job",
                    name,
                    True,
                    "Complete",
                    f"finished {status.get('completionTime', '?')}",
                    data,
                )
            )
            continue
        failed = pods.condition_of(job, "Failed")
        diagnoses = [
            d
            for d in (
                pods.diagnose(p, scrub)
                for p in kube.list(PODS, namespace, f"job-name={name}")
            )
            if d is not None
        ]
        detail = "; ".join(d.line() for d in diagnoses[:1])
        if failed.get("status") == "True":
            reason = str(failed.get("reason") or "Failed")
            items.append(
                Item(
                    "Job",
                    name,
                    False,
                    "Failed",
                    f"{reason}" + (f"; {detail}" if detail else ""),
                    {**data, "reason": reason},
                )
            )
        else:
            items.append(
                Item("Job", name, False, "Running", detail or "still running", data)
            )
    return items


def _addresses(obj: dict[str, t.Any]) -> list[str]:
    found = []
    for entry in ((obj.get("status") or {}).get("loadBalancer") or {}).get(
        "ingress"
    ) or []:
        if isinstance(entry, dict):
            address = entry.get("hostname") or entry.get("ip")
            if address:
                found.append(str(address))
    return found


def autoscaler_items(kube: Kube, namespace: str, instance_id: str) -> list[Item]:
    """Each autoscaler (EKS_WORKLOADS): replicas now, wanted, and its bounds; not
    ready when it cannot scale (no metrics API, no request to compare with)."""
    from ..kube import AUTOSCALERS

    selector = tutor_compat.instance_selector(instance_id)
    return [
        autoscaler_item(hpa)
        for hpa in sorted(
            kube.list(AUTOSCALERS, namespace, selector),
            key=lambda h: str(h["metadata"].get("name")),
        )
    ]


def autoscaler_item(hpa: dict[str, t.Any]) -> Item:
    spec, state = hpa.get("spec") or {}, hpa.get("status") or {}
    data = {
        "current": state.get("currentReplicas", 0),
        "desired": state.get("desiredReplicas", 0),
        "min": spec.get("minReplicas", 1),
        "max": spec.get("maxReplicas", 0),
    }
    failing = [
        c
        for c in state.get("conditions") or []
        if isinstance(c, dict)
        and c.get("type") in ("AbleToScale", "ScalingActive")
        and c.get("status") == "False"
    ]
    detail = "; ".join(
        f"{c.get('reason', '')}: {c.get('message', '')}" for c in failing
    )
    return Item(
        "HorizontalPodAutoscaler",
        str(hpa["metadata"].get("name")),
        not failing,
        f"{data['current']} -> {data['desired']} ({data['min']}-{data['max']})",
        detail,
        data,
    )


def budget_items(kube: Kube, namespace: str, instance_id: str) -> list[Item]:
    """Each disruption budget: how many pods a node drain may evict now."""
    from ..kube import DISRUPTION_BUDGETS

    selector = tutor_compat.instance_selector(instance_id)
    items = []
    for pdb in sorted(
        kube.list(DISRUPTION_BUDGETS, namespace, selector),
        key=lambda p: str(p["metadata"].get("name")),
    ):
        allowed = int((pdb.get("status") or {}).get("disruptionsAllowed") or 0)
        items.append(
            Item(
                "PodDisruptionBudget",
                str(pdb["metadata"].get("name")),
                allowed >= 1,
                f"{allowed} disruptions allowed",
                "" if allowed else "a node drain waits until more pods are ready",
                {"disruptions_allowed": allowed},
            )
        )
    return items


def ingress_items(kube: Kube, namespace: str, instance_id: str) -> list[Item]:
    from ..kube import INGRESSES

    found = kube.list(INGRESSES, namespace, tutor_compat.instance_selector(instance_id))
    if not found:
        return [Item("Ingress", "-", False, "none", "no Ingress of this instance")]
    items = []
    for ingress in sorted(found, key=lambda i: str(i["metadata"].get("name"))):
        hosts = [
            str(rule.get("host"))
            for rule in (ingress.get("spec") or {}).get("rules") or []
            if isinstance(rule, dict) and rule.get("host")
        ]
        addresses = _addresses(ingress)
        klass = (ingress.get("spec") or {}).get("ingressClassName") or "?"
        items.append(
            Item(
                "Ingress",
                str(ingress["metadata"]["name"]),
                bool(addresses),
                ", ".join(addresses) or "no address",
                ("hosts: " + ", ".join(hosts))
                + (
                    ""
                    if addresses
                    else f"; no load balancer address yet: is the {klass} ingress "
                    "controller running?"
                ),
                {"hosts": hosts, "addresses": addresses},
            )
        )
    return items


def certificate_items(
    kube: Kube, namespace: str, instance_id: str, scrub: pods.Scrubber
) -> list[Item]:
    from ..kube import CERTIFICATES, KubeError

    try:
        found = kube.list(
            CERTIFICATES, namespace, tutor_compat.instance_selector(instance_id)
        )
    except KubeError as e:
        if e.status != 404:
            raise
        return [
            Item(
                "Certificate",
                "-",
                False,
                "no API",
                "cert-manager's Certificate API is not installed on the cluster",
            )
        ]
    if not found:
        return [
            Item("Certificate", "-", False, "none", "no Certificate of this instance")
        ]
    items = []
    now = datetime.datetime.now(datetime.timezone.utc)
    for certificate in sorted(found, key=lambda c: str(c["metadata"].get("name"))):
        ready = pods.condition_of(certificate, "Ready")
        expiry = str((certificate.get("status") or {}).get("notAfter") or "")
        expires = _parse_time(expiry)
        ok = ready.get("status") == "True" and (expires is None or expires > now)
        if expires is not None:
            days = (expires - now).days
            when = (
                f"expires {expiry} (in {days} days)"
                if expires > now
                else f"EXPIRED {expiry}"
            )
        else:
            when = "no expiry yet"
        message = scrub(str(ready.get("message") or ""))
        detail = (
            when if ok else f"{ready.get('reason') or 'not issued'}: {message}; {when}"
        )
        items.append(
            Item(
                "Certificate",
                str(certificate["metadata"]["name"]),
                ok,
                "Ready" if ready.get("status") == "True" else "not ready",
                detail,
                {"expires": expiry or None},
            )
        )
    return items


def caddy_item(kube: Kube, namespace: str, instance_id: str) -> Item:
    from ..kube import SERVICES

    service = kube.get(SERVICES, "caddy", namespace)
    label = tutor_compat.instance_label_value(instance_id)
    if (
        service is None
        or (service["metadata"].get("labels") or {}).get(tutor_compat.INSTANCE_LABEL)
        != label
    ):
        return Item(
            "Service", "caddy", False, "none", "no caddy Service of this instance"
        )
    kind = (service.get("spec") or {}).get("type")
    addresses = _addresses(service)
    if kind != "LoadBalancer":
        return Item(
            "Service",
            "caddy",
            False,
            str(kind),
            "EKS_EDGE caddy expects a LoadBalancer",
        )
    return Item(
        "Service",
        "caddy",
        bool(addresses),
        ", ".join(addresses) or "no address",
        "" if addresses else "the load balancer has no hostname yet",
        {"addresses": addresses},
    )


def _parse_time(text: str) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# --- output ---------------------------------------------------------------------------


def table_rows(report: Report) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("", "KIND", "NAME", "STATUS", "DETAIL")]
    for item in report.items:
        rows.append(
            (
                "ok" if item.ok else "FAIL",
                item.kind,
                item.name,
                item.status,
                item.detail,
            )
        )
    return rows


#: Markdown's punctuation that could start a link, an image, emphasis or code.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]()!|~#])")


def markdown_cell(text: str) -> str:
    """Text as one cell of a Markdown table that shows it and nothing else: no
    line break, HTML escaped, Markdown's punctuation escaped (no link, image or
    emphasis), pipes escaped."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def markdown(report: Report) -> str:
    cell = markdown_cell

    verdict = "all ready" if report.ok else "**not ready**"
    lines = [
        f"### tutor eks status: {cell(report.environment)} "
        f"(namespace {cell(report.namespace)}): {verdict}",
        "",
        "| | kind | name | status | detail |",
        "|---|---|---|---|---|",
    ]
    for item in report.items:
        mark = "✅" if item.ok else "❌"
        lines.append(
            f"| {mark} | {cell(item.kind)} | {cell(item.name)} | {cell(item.status)} "
            f"| {cell(item.detail)} |"
        )
    return "\n".join(lines) + "\n"
