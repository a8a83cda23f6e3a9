"""``tutor eks status``: what is deployed for the selected environment, and whether it
works. Read from the cluster with the adapter only, never a value from a Secret:

- the last successful deploy (state Secret annotations): Tutor release, plugin
  version, when;
- each Deployment of the instance: ready/desired, and why when it has not rolled
  out (the same explanation as a failed rollout);
- the last Job of each init task Tutor ran (``<service>-job-<timestamp>``; Tutor
  deletes them an hour after they finish);
- the autoscalers and disruption budgets of ``EKS_WORKLOADS``;
- the edge (``deploy/edge.py``): the Ingress, Gateway and HTTPRoutes, or caddy's
  LoadBalancer Service, with their addresses; each Certificate cert-manager
  issues: Ready, and its expiry.

Something is *not ready* (exit 1) when: no deploy is recorded, a Deployment has not
rolled out, an init Job failed or still runs, an Ingress, a Gateway or caddy's
Service has no load balancer address, a Gateway is not programmed, an HTTPRoute is
not accepted, a Certificate is not Ready or has expired.
"""

from __future__ import annotations

import re
import typing as t

from .. import tutor_compat
from ..config import state as state_module
from ..config.masking import REASON_LIMIT, Scrubber, one_line, shown
from ..kube import AUTOSCALERS, DISRUPTION_BUDGETS, JOBS, PODS, KubeError
from . import edge, pods, rollout
from .report import Item, Report

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution
    from ..kube import Kube

JOB_NAME = re.compile(r"^(?P<task>.+-job)-(?P<stamp>\d{14})$")


def cleaned(item: Item, scrub: Scrubber) -> Item:
    """An item whose every string (they come from cluster objects) is stripped of
    control characters and shortened; its free text (status, detail) is also
    scrubbed of values. Names, hosts and addresses are shown as they are."""

    def clean(value: t.Any) -> t.Any:
        if isinstance(value, str):  # names, hosts, addresses
            return shown(value)
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        return value

    return Item(
        shown(item.kind, REASON_LIMIT),
        shown(item.name),
        item.ok,
        scrub(item.status),
        scrub(item.detail),
        clean(item.data),
    )


def collect(kube: Kube, config: dict[str, t.Any], resolution: Resolution) -> Report:
    namespace = resolution.namespace or str(config["K8S_NAMESPACE"])
    scrub = Scrubber(resolution.sensitive_values())
    last, items = _last_deploy(kube, resolution)
    instance_id = str(config["ID"])
    sections: list[tuple[str, t.Callable[[], list[Item]]]] = [
        ("Deployment", lambda: deployment_items(kube, namespace, instance_id, scrub)),
        ("Job", lambda: job_items(kube, namespace, instance_id, scrub)),
        (
            "HorizontalPodAutoscaler",
            lambda: autoscaler_items(kube, namespace, instance_id),
        ),
        ("PodDisruptionBudget", lambda: budget_items(kube, namespace, instance_id)),
        *edge.status_sections(kube, config, namespace, scrub),
    ]
    items += [item for kind, section in sections for item in _read(kind, section)]
    clean = [cleaned(item, scrub) for item in items]
    return Report(resolution.environment.name, namespace, last, clean)


def _read(kind: str, section: t.Callable[[], list[Item]]) -> list[Item]:
    """A section's items, or one that says it could not be read."""
    try:
        return section()
    except KubeError as e:
        # e.g. no `list` on Ingresses: a Role applied before this plugin version.
        return [Item(kind, "-", False, "cannot read", str(e))]


def _last_deploy(
    kube: Kube, resolution: Resolution
) -> tuple[dict[str, str] | None, list[Item]]:
    state = resolution.state
    if state is None:
        return None, []
    current = state_module.fetch(kube, state.namespace, state.name, state.environment)
    last = last_deploy(current.annotations)
    return last, [last_deploy_item(last, current.display)]


def last_deploy(annotations: t.Mapping[str, str]) -> dict[str, str] | None:
    """The last successful deploy, as the state Secret's annotations record it."""
    deployed_at = annotations.get(state_module.DEPLOYED_AT_ANNOTATION)
    if not deployed_at:
        return None
    return {
        "tutor_version": annotations.get(state_module.TUTOR_VERSION_ANNOTATION, ""),
        "plugin_version": annotations.get(state_module.PLUGIN_VERSION_ANNOTATION, ""),
        "deployed_at": deployed_at,
    }


def last_deploy_item(last: dict[str, str] | None, display: str) -> Item:
    if last is None:
        return Item(
            "Deploy",
            "last",
            False,
            "none",
            f"no successful deploy recorded in {display}",
        )
    versions = (
        f"Tutor {last['tutor_version']}, tutor-contrib-eks {last['plugin_version']}"
    )
    return Item("Deploy", "last", True, last["deployed_at"], versions, dict(last))


def deployment_items(
    kube: Kube, namespace: str, instance_id: str, scrub: Scrubber
) -> list[Item]:
    found = rollout.deployments(kube, namespace, instance_id)
    if not found:
        return [no_deployment(namespace)]
    return [
        deployment_item(
            d, None if rollout.progress(d).done else rollout.explain(kube, d, scrub)
        )
        for d in found
    ]


def no_deployment(namespace: str) -> Item:
    return Item(
        "Deployment",
        "-",
        False,
        "none",
        f"no Deployment of this instance in namespace {namespace}",
    )


def deployment_item(
    deployment: dict[str, t.Any], explanation: rollout.Explanation | None
) -> Item:
    """A Deployment: ready/desired, and why it has not rolled out (``explanation``,
    needed only then)."""
    state = rollout.progress(deployment)
    data: dict[str, t.Any] = {
        "ready": state.ready,
        "desired": state.desired,
        "rolled_out": state.done,
    }
    if state.done or explanation is None:
        return Item("Deployment", state.name, state.done, state.ratio, "", data)
    data.update(explanation.as_dict())
    return Item(
        "Deployment", state.name, False, explanation.status, explanation.detail, data
    )


def job_items(
    kube: Kube, namespace: str, instance_id: str, scrub: Scrubber
) -> list[Item]:
    """The last Job of each init task, and its pods when it has not completed."""
    selector = (
        tutor_compat.instance_selector(instance_id) + ",app.kubernetes.io/component=job"
    )
    items = []
    for task, job in sorted(latest_jobs(kube.list(JOBS, namespace, selector)).items()):
        name = job["metadata"]["name"]
        complete = pods.condition(job, "Complete") == "True"
        found = [] if complete else kube.list(PODS, namespace, f"job-name={name}")
        items.append(job_item(task, job, found, scrub))
    return items


def latest_jobs(jobs: list[dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """The last Job of each task (``<service>-job-<timestamp>``), by task."""
    latest: dict[str, dict[str, t.Any]] = {}
    for job in jobs:
        name = str((job.get("metadata") or {}).get("name") or "")
        match = JOB_NAME.match(name)
        if match is None:
            continue
        task = match.group("task")
        if task not in latest or name > latest[task]["metadata"]["name"]:
            latest[task] = job
    return latest


def job_item(
    task: str, job: dict[str, t.Any], found: list[dict[str, t.Any]], scrub: Scrubber
) -> Item:
    """One task's last Job: Complete, Failed (why) or Running (what its pod waits
    for), from the Job and its pods (``found``)."""
    name = str(job["metadata"]["name"])
    data = {"task": task}
    if pods.condition(job, "Complete") == "True":
        finished = (job.get("status") or {}).get("completionTime", "?")
        return Item("Job", name, True, "Complete", f"finished {finished}", data)
    diagnoses = [d for d in (pods.diagnose(p, scrub) for p in found) if d is not None]
    detail = "; ".join(d.line() for d in diagnoses[:1])
    failed = pods.condition_of(job, "Failed")
    if failed.get("status") != "True":
        return Item("Job", name, False, "Running", detail or "still running", data)
    reason = str(failed.get("reason") or "Failed")
    why = reason + (f"; {detail}" if detail else "")
    return Item("Job", name, False, "Failed", why, {**data, "reason": reason})


def autoscaler_items(kube: Kube, namespace: str, instance_id: str) -> list[Item]:
    """Each autoscaler (EKS_WORKLOADS): replicas now, wanted, and its bounds; not
    ready when it cannot scale (no metrics API, no request to compare with)."""
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
    text = (
        one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    )
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
