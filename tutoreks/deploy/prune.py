"""Delete what an earlier deploy of the environment applied and the current render
no longer holds (a manifest removed from ``k8s/``, a service switched off).

How it decides, ApplySet-like but with an inventory the plugin keeps itself
(``kubectl apply --prune --applyset`` would need Tutor to run kubectl differently,
and is still alpha in kubectl):

1. After ``tutor k8s start`` applied the render, the *applied set* is what
   ``kubectl kustomize env/`` holds with Tutor's own selector (no Job, no
   Namespace), restricted to namespaced objects: cluster-scoped ones (a ClusterIssuer
   that several environments may share) are never candidates.
2. The previous deploys' applied set is the *inventory*, the annotation
   ``tutor-contrib-eks/applied`` of the environment's state Secret. Before the
   rollout wait, new objects are added to it (so that a deploy that fails still
   remembers what it applied); after a successful rollout the candidates are
   pruned and the inventory becomes the applied set.
3. A candidate is an inventory object missing from the applied set. It is deleted
   only if the live object, read back, still carries this instance's label
   (``app.kubernetes.io/instance=openedx-<ID>``: another environment's object of
   the same name in the same namespace is not), is not a Job or Namespace, is not
   controlled by another object, is not a Secret the operator manages (the
   ``EKS_SECRETS``, the state, the TLS Secret) and is not a PersistentVolumeClaim
   unless ``EKS_PRUNE_VOLUMES`` is true; the delete carries the object's ``uid``
   as a precondition.

Secrets the operator created are never in the inventory (the plugin never applies
them) and carry no instance label. ``EKS_PRUNE: false`` turns this off;
``tutor k8s start NAME`` (a partial apply) never prunes.
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t
from dataclasses import dataclass, field

import yaml
from tutor import fmt

from .. import tutor_compat
from ..config.secrets import parse_specs
from ..config.state import ANNOTATION, annotate, fetch
from ..exceptions import EksError
from ..kube import KubeError
from ..render.manifests import warn

if t.TYPE_CHECKING:
    from ..config.state import State
    from ..kube import Kube, Resource

INVENTORY_ANNOTATION = ANNOTATION + "applied"
_API_VERSION = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?$"
)
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
#: Objects controllers create and own: a deploy never applies or prunes them.
CONTROLLER_KINDS = frozenset(
    {
        "Pod",
        "ReplicaSet",
        "ControllerRevision",
        "Endpoints",
        "EndpointSlice",
        "Event",
        "Lease",
        "Namespace",
    }
)
COMPONENT_LABEL = "app.kubernetes.io/component"
PVC_KIND = "PersistentVolumeClaim"


@dataclass(frozen=True)
class Ref:
    """One applied object: ``apps/v1/Deployment/lms``."""

    api_version: str
    kind: str
    name: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the object whatever version it is served in."""
        return (self.group, self.kind, self.name)

    @property
    def text(self) -> str:
        return f"{self.api_version}/{self.kind}/{self.name}"

    @property
    def display(self) -> str:
        return f"{self.kind} {self.name}"

    @classmethod
    def parse(cls, text: str) -> Ref | None:
        """A reference as the inventory records it, or None when it is not one
        (an API version, a kind, a DNS-1123 name) or names an object a controller
        owns (never the deploy's to delete)."""
        parts = text.rsplit("/", 2)
        if len(parts) != 3:
            return None
        api_version, kind, name = parts
        if (
            not _API_VERSION.match(api_version)
            or not _KIND.match(kind)
            or not _NAME.match(name)
            or len(name) > 253
            or kind in CONTROLLER_KINDS
        ):
            return None
        return cls(api_version, kind, name)


@dataclass
class Plan:
    """What a deploy applied, what earlier ones did, and the candidates."""

    namespace: str
    instance_id: str
    applied: list[Ref]
    previous: list[Ref]
    protected_secrets: set[str]
    prune_volumes: bool

    @property
    def removed(self) -> list[Ref]:
        current = {ref.key for ref in self.applied}
        return [ref for ref in self.previous if ref.key not in current]

    @property
    def added(self) -> list[Ref]:
        known = {ref.key for ref in self.previous}
        return [ref for ref in self.applied if ref.key not in known]


PRUNE, KEEP, RELEASE, GONE = "prune", "keep", "release", "gone"


class Verdict(t.NamedTuple):
    """What to do with one candidate: prune it, keep it in the inventory (and
    retry), release it for good (no longer this environment's), or nothing (gone)."""

    action: str
    why: str = ""


@dataclass
class Outcome:
    """What pruning did (or, dry, would do)."""

    pruned: list[Ref] = field(default_factory=list)
    #: Left in place, with the reason, and kept in the inventory (retried or
    #: reported again on the next deploy).
    kept: list[tuple[Ref, str]] = field(default_factory=list)
    #: Left in place for good: no longer this environment's.
    released: list[tuple[Ref, str]] = field(default_factory=list)

    def add(self, ref: Ref, decided: Verdict) -> None:
        if decided.action == PRUNE:
            self.pruned.append(ref)
        elif decided.action == KEEP:
            self.kept.append((ref, decided.why))
        elif decided.action == RELEASE:
            self.released.append((ref, decided.why))

    def inventory(self, plan: Plan) -> list[Ref]:
        return sorted(
            {*plan.applied, *(ref for ref, _why in self.kept)}, key=lambda r: r.text
        )


# --- the applied set --------------------------------------------------------------------


def rendered(root: str) -> list[dict[str, t.Any]]:
    """What ``tutor k8s start`` applies: ``kubectl kustomize env/`` with its selector."""
    env_dir = tutor_compat.env_dir(root)
    try:
        result = subprocess.run(
            ["kubectl", "kustomize", env_dir],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EksError(f"`kubectl kustomize {env_dir}` failed: {e}") from e
    if result.returncode != 0:
        raise EksError(
            f"`kubectl kustomize {env_dir}` failed (exit {result.returncode}): "
            f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ''}"
        )
    loader: t.Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [
        doc
        for doc in yaml.load_all(result.stdout, Loader=loader)
        if isinstance(doc, dict)
        and ((doc.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL)
        not in tutor_compat.APPLY_EXCLUDED_COMPONENTS
    ]


def resource_of(kube: Kube, api_version: str, kind: str) -> Resource | None:
    """The API resource of a kind; None when the API server does not serve it."""
    for resource in kube.api_resources(api_version):
        if resource.kind == kind:
            return resource
    return None


def applied_refs(
    objects: list[dict[str, t.Any]],
    served: t.Callable[[str, str], Resource | None],
) -> list[Ref]:
    """The namespaced objects among ``objects`` (``served``: the API resource of an
    API version and kind, None when the API server does not serve it)."""
    refs = set()
    for obj in objects:
        api_version = str(obj.get("apiVersion") or "")
        kind = str(obj.get("kind") or "")
        name = str((obj.get("metadata") or {}).get("name") or "")
        if not (api_version and kind and name):
            continue
        resource = served(api_version, kind)
        if resource is not None and resource.namespaced:
            refs.add(Ref(api_version, kind, name))
    return sorted(refs, key=lambda r: r.text)


def recorded(state: State) -> list[Ref]:
    """The inventory kept in the state Secret (empty before the first record);
    entries that are not references are left out, with a warning."""
    refs, problem = read_inventory(state.annotations.get(INVENTORY_ANNOTATION, ""))
    if problem:
        warn(
            f"The {state.display} annotation {INVENTORY_ANNOTATION} {problem}: "
            "those entries are not pruned (this deploy records a new inventory)."
        )
    return refs


def read_inventory(text: str) -> tuple[list[Ref], str]:
    """The references of an inventory annotation, and what was wrong with it."""
    try:
        items = json.loads(text) if text else []
    except ValueError:
        return [], "is not JSON"
    if not isinstance(items, list):
        return [], "is not a list"
    refs = [Ref.parse(item) if isinstance(item, str) else None for item in items]
    bad = sum(ref is None for ref in refs)
    found = [ref for ref in refs if ref is not None]
    if bad:
        return found, (
            f"holds {bad} entries that are not references to objects a deploy "
            "applies (API version/kind/name)"
        )
    return found, ""


def plan(kube: Kube, root: str, config: dict[str, t.Any], state: State) -> Plan:
    current = fetch(kube, state.namespace, state.name, state.environment)
    return Plan(
        namespace=state.namespace,
        instance_id=str(config["ID"]),
        applied=applied_refs(rendered(root), lambda v, k: resource_of(kube, v, k)),
        previous=recorded(current),
        protected_secrets=protected_secrets(config, state.name),
        prune_volumes=bool(config.get("EKS_PRUNE_VOLUMES")),
    )


def protected_secrets(config: dict[str, t.Any], state_name: str) -> set[str]:
    """The Secrets the operator manages: the state, the TLS Secret, EKS_SECRETS."""
    protected = {state_name, str(config.get("EKS_TLS_SECRET") or "")}
    specs = parse_specs(config.get("EKS_SECRETS") or [], "EKS_SECRETS")
    return protected | {spec.name for spec in specs}


def encode(refs: list[Ref]) -> str:
    return json.dumps([ref.text for ref in refs], separators=(",", ":"))


def remember(kube: Kube, state: State, plan: Plan) -> None:
    """Before the rollout wait: add what this deploy applied to the inventory."""
    if not plan.added:
        return
    union = sorted({*plan.previous, *plan.applied}, key=lambda r: r.text)
    annotate(
        kube,
        state,
        {INVENTORY_ANNOTATION: encode(union)},
        "Recording what this deploy applied in the state",
    )


# --- pruning ------------------------------------------------------------------------------


def prune(kube: Kube, plan: Plan, dry_run: bool = False) -> Outcome:
    """Delete (or with ``dry_run`` only decide about) every candidate."""
    outcome = Outcome()
    for ref in plan.removed:
        resource = resource_of(kube, ref.api_version, ref.kind)
        decided = before_reading(ref, resource, plan)
        if decided is None and resource is not None:
            decided = _read_and_judge(kube, resource, ref, plan, dry_run)
        if decided is not None:
            outcome.add(ref, decided)
    return outcome


def _read_and_judge(
    kube: Kube, resource: Resource, ref: Ref, plan: Plan, dry_run: bool
) -> Verdict:
    try:
        live = kube.get(resource, ref.name, plan.namespace)
    except KubeError as e:
        return Verdict(KEEP, str(e))
    decided = judge(ref, live, plan)
    if decided.action != PRUNE or dry_run or live is None:
        return decided
    return _delete(kube, resource, ref, plan, live)


def _delete(
    kube: Kube, resource: Resource, ref: Ref, plan: Plan, live: dict[str, t.Any]
) -> Verdict:
    """Delete the object read back, if it is still the same (its ``uid``)."""
    uid = str((live.get("metadata") or {}).get("uid") or "") or None
    try:
        kube.delete(resource, plan.namespace, ref.name, uid=uid)
    except KubeError as e:
        if e.status == 409:
            return Verdict(RELEASE, "it was replaced while this deploy ran")
        return Verdict(KEEP, str(e))
    return Verdict(PRUNE)


# --- the decisions: pure, over what the API server serves and the live objects ----------


def before_reading(ref: Ref, resource: Resource | None, plan: Plan) -> Verdict | None:
    """What to do with a candidate without reading it (None: read it, then
    :func:`judge`): a kind no longer served, a volume kept."""
    if resource is None or not resource.namespaced:
        why = f"the API server does not serve {ref.api_version} {ref.kind}"
        return Verdict(RELEASE, why)
    if ref.kind == PVC_KIND and not plan.prune_volumes:
        return Verdict(KEEP, "EKS_PRUNE_VOLUMES is false: its data stays")
    return None


def judge(ref: Ref, live: dict[str, t.Any] | None, plan: Plan) -> Verdict:
    """What to do with a candidate, read back (None: already gone)."""
    if live is None:
        return Verdict(GONE)
    label = tutor_compat.instance_label_value(plan.instance_id)
    why = _foreign(live, ref, label, plan)
    return Verdict(RELEASE, why) if why else Verdict(PRUNE)


def decide(
    plan: Plan,
    served: t.Callable[[str, str], Resource | None],
    live: t.Mapping[Ref, dict[str, t.Any]],
) -> Outcome:
    """What pruning would do (a dry run), from what the API server serves and the
    live objects, by reference (a candidate missing from ``live`` is gone)."""
    outcome = Outcome()
    for ref in plan.removed:
        decided = before_reading(ref, served(ref.api_version, ref.kind), plan)
        outcome.add(ref, decided or judge(ref, live.get(ref), plan))
    return outcome


def _foreign(live: dict[str, t.Any], ref: Ref, label: str, plan: Plan) -> str:
    """Why the live object is not this environment's to delete ("" when it is)."""
    metadata = live.get("metadata") or {}
    labels = metadata.get("labels") or {}
    instance = labels.get(tutor_compat.INSTANCE_LABEL)
    if instance != label:
        return (
            f"it now belongs to instance {instance}"
            if instance
            else "it has no instance label"
        )
    if labels.get(COMPONENT_LABEL) in tutor_compat.APPLY_EXCLUDED_COMPONENTS:
        return f"it is a {labels.get(COMPONENT_LABEL)}, which `tutor k8s start` does not apply"
    if ref.kind == "Secret" and ref.name in plan.protected_secrets:
        return "a Secret the operator manages"
    for owner in metadata.get("ownerReferences") or []:
        if owner.get("controller"):
            return f"it is controlled by {owner.get('kind')} {owner.get('name')}"
    return ""


def report(outcome: Outcome, namespace: str, dry_run: bool = False) -> None:
    verb = "Would prune" if dry_run else "Pruned"
    for ref in outcome.pruned:
        fmt.echo_info(
            f"{verb} {ref.display} from namespace {namespace}: an earlier deploy "
            "applied it, this render no longer holds it."
        )
    for ref, why in outcome.kept:
        fmt.echo_alert(f"Not pruned: {ref.display} in namespace {namespace}: {why}")
    for ref, why in outcome.released:
        fmt.echo_info(f"Left alone: {ref.display} in namespace {namespace}: {why}")
