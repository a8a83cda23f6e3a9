"""What a deploy prunes (``tutoreks/deploy/prune.py``), from the render, the
inventory recorded in the state Secret and the live objects as the API server
returns them: never a Secret the operator manages, never another environment's
object, a volume only when asked."""

from __future__ import annotations

from tutoreks.deploy import prune
from tutoreks.resources import Resource

from .objects import Obj, items, one

SERVED = {
    ("apps/v1", "Deployment"): Resource("apps", "v1", "deployments", "Deployment"),
    ("v1", "Service"): Resource("", "v1", "services", "Service"),
    ("v1", "ConfigMap"): Resource("", "v1", "configmaps", "ConfigMap"),
    ("v1", "Secret"): Resource("", "v1", "secrets", "Secret"),
    ("v1", "PersistentVolumeClaim"): Resource(
        "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"
    ),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): Resource(
        "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"
    ),
    ("cert-manager.io/v1", "ClusterIssuer"): Resource(
        "cert-manager.io", "v1", "clusterissuers", "ClusterIssuer", namespaced=False
    ),
}


def served(api_version: str, kind: str) -> Resource | None:
    return SERVED.get((api_version, kind))


def ref(text: str) -> prune.Ref:
    found = prune.Ref.parse(text)
    assert found is not None
    return found


def the_plan(prune_volumes: bool = False) -> prune.Plan:
    state = one("state-secret-inventory")
    previous, problem = prune.read_inventory(
        state["metadata"]["annotations"][prune.INVENTORY_ANNOTATION]
    )
    assert not problem
    config = {"EKS_SECRETS": ["openedx-smtp", "openedx-mysql?"], "EKS_TLS_SECRET": ""}
    return prune.Plan(
        namespace="openedx-fixtures",
        instance_id="fx",
        applied=prune.applied_refs(items("rendered-fx"), served),
        previous=previous,
        protected_secrets=prune.protected_secrets(config, state["metadata"]["name"]),
        prune_volumes=prune_volumes,
    )


LIVE = {
    "v1/ConfigMap/openedx-settings-extra": "configmap-this-instance",
    "v1/ConfigMap/notes-settings": "configmap-other-instance",
    "v1/Secret/openedx-smtp": "secret-operator-managed",
    "v1/PersistentVolumeClaim/meilisearch": "pvc-meilisearch",
    "v1/Service/notes": "service-notes",
}


def live() -> dict[prune.Ref, Obj]:
    return {ref(text): one(fixture) for text, fixture in LIVE.items()}


def by_text(pairs: list[tuple[prune.Ref, str]]) -> dict[str, str]:
    return {r.text: why for r, why in pairs}


def test_the_applied_set_is_the_renders_namespaced_objects() -> None:
    assert [r.text for r in the_plan().applied] == [
        "apps/v1/Deployment/cms",
        "apps/v1/Deployment/lms",
        "autoscaling/v2/HorizontalPodAutoscaler/lms",
        "v1/ConfigMap/openedx-config",
        "v1/PersistentVolumeClaim/mysql",
        "v1/Service/lms",
    ]


def test_candidates_are_what_earlier_deploys_applied_and_the_render_lost() -> None:
    plan = the_plan()
    assert sorted(r.text for r in plan.removed) == sorted(
        [
            *LIVE,
            "v1/ConfigMap/forum-settings",
            "monitoring.coreos.com/v1/ServiceMonitor/lms",
        ]
    )
    assert [r.text for r in plan.added] == [
        "autoscaling/v2/HorizontalPodAutoscaler/lms"
    ]


def test_only_this_environments_objects_are_pruned() -> None:
    outcome = prune.decide(the_plan(), served, live())
    assert sorted(r.text for r in outcome.pruned) == [
        "v1/ConfigMap/openedx-settings-extra",
        "v1/Service/notes",
    ]
    released = by_text(outcome.released)
    assert released["v1/ConfigMap/notes-settings"] == (
        "it now belongs to instance openedx-qa"
    )


def test_a_secret_the_operator_manages_is_never_pruned() -> None:
    outcome = prune.decide(the_plan(), served, live())
    assert by_text(outcome.released)["v1/Secret/openedx-smtp"] == (
        "a Secret the operator manages"
    )
    assert "v1/Secret/openedx-smtp" not in [r.text for r in outcome.pruned]


def test_the_state_and_tls_secrets_are_protected_too() -> None:
    protected = prune.protected_secrets(
        {"EKS_SECRETS": ["mysql-root?"], "EKS_TLS_SECRET": "openedx-tls"}, "state-fx"
    )
    assert protected >= {"state-fx", "openedx-tls", "mysql-root"}


def test_volumes_are_kept_unless_asked_and_then_pruned() -> None:
    kept = prune.decide(the_plan(), served, live())
    assert by_text(kept.kept) == {
        "v1/PersistentVolumeClaim/meilisearch": "EKS_PRUNE_VOLUMES is false: its data stays"
    }
    pruned = prune.decide(the_plan(prune_volumes=True), served, live())
    assert "v1/PersistentVolumeClaim/meilisearch" in [r.text for r in pruned.pruned]


def test_a_kind_no_longer_served_is_released_and_a_gone_object_forgotten() -> None:
    outcome = prune.decide(the_plan(), served, live())
    released = by_text(outcome.released)
    assert released["monitoring.coreos.com/v1/ServiceMonitor/lms"] == (
        "the API server does not serve monitoring.coreos.com/v1 ServiceMonitor"
    )
    everything = [
        *outcome.pruned,
        *(r for r, _ in outcome.kept),
        *(r for r, _ in outcome.released),
    ]
    assert ref("v1/ConfigMap/forum-settings") not in everything


def test_an_object_a_controller_owns_is_left_alone() -> None:
    objects = live()
    service = objects[ref("v1/Service/notes")]
    service["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Notes", "name": "notes", "controller": True}
    ]
    outcome = prune.decide(the_plan(), served, objects)
    assert by_text(outcome.released)["v1/Service/notes"] == (
        "it is controlled by Notes notes"
    )


def test_a_job_is_never_pruned() -> None:
    objects = live()
    objects[ref("v1/Service/notes")]["metadata"]["labels"][prune.COMPONENT_LABEL] = (
        "job"
    )
    outcome = prune.decide(the_plan(), served, objects)
    assert (
        "`tutor k8s start` does not apply"
        in by_text(outcome.released)["v1/Service/notes"]
    )


def test_the_new_inventory_keeps_what_was_not_pruned_this_time() -> None:
    plan = the_plan()
    outcome = prune.decide(plan, served, live())
    inventory = [r.text for r in outcome.inventory(plan)]
    assert "v1/PersistentVolumeClaim/meilisearch" in inventory
    assert "v1/ConfigMap/openedx-settings-extra" not in inventory
    assert "v1/ConfigMap/notes-settings" not in inventory
