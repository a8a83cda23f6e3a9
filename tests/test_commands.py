"""`tutor eks envs`, `tutor eks rbac` and `tutor k8s quickstart`, without a cluster."""

from __future__ import annotations

import typing as t

import pytest
import yaml

from .conftest import Project


def test_envs_lists_and_validates_every_environment(project: Project) -> None:
    project.write(
        "environments/prod/config.yml",
        "LMS_HOST: lms.example.com\nK8S_NAMESPACE: openedx-prod\n",
    )
    project.write("environments/prod/settings_merge.json", '{"FEATURES": {"A": true}}')
    project.write("environments/qa/config.yml", "LMS_HOST: qa.example.com\n")
    project.write(
        "environments/qa/k8s/extra.yml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ NOPE }}\n",
    )
    project.write("environments/broken/config.yml", "LMS_HOST: [\n")
    project.write("environments/not-an-env/README.md", "no config.yml here\n")
    result = project.tutor(
        "eks", "envs", env={"TUTOR_EKS_ENVIRONMENT": "prod"}, check=False
    )
    lines = {
        line.split()[0] if not line.startswith("*") else line.split()[1]: line
        for line in result.stdout.splitlines()
        if line.strip()
    }
    assert result.returncode == 1
    assert set(lines) == {"broken", "dev", "prod", "qa"}
    assert lines["prod"].startswith("*"), "the selected environment is marked"
    assert (
        "ok" in lines["prod"]
        and "settings_merge: settings_merge.json" in lines["prod"]
        and "namespace openedx-prod" in lines["prod"]
    )
    assert "ok" in lines["dev"]
    assert (
        "BROKEN" in lines["broken"]
        and "environments/broken/config.yml:2:1: invalid YAML" in lines["broken"]
    )
    assert (
        "BROKEN" in lines["qa"]
        and "environments/qa/k8s/extra.yml:4: cannot be rendered: 'NOPE' is undefined"
        in lines["qa"]
    )
    assert "2 of 4 environments are broken" in result.stderr
    assert not (project.root / "env").exists(), "envs writes nothing"


def test_envs_all_good_exits_zero(project: Project) -> None:
    project.copy_examples()
    result = project.tutor("eks", "envs")
    assert "No environment selected" in result.stdout


def rbac(
    project: Project, *args: str, env: dict[str, str] | None = None
) -> list[dict[str, t.Any]]:
    output = project.tutor(
        "eks", "rbac", *args, env={"TUTOR_EKS_ENVIRONMENT": "dev", **(env or {})}
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def test_rbac_is_least_privilege(project: Project) -> None:
    del project.environ["TUTOR_EKS_SECRETS"]
    del project.environ["TUTOR_EKS_STATE_SECRET"]
    docs = rbac(project)
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ]
    role = docs[1]
    assert role["metadata"]["namespace"] == "openedx-dev"
    secret_rules = [r for r in role["rules"] if "secrets" in r["resources"]]
    generated = ["openedx-config", "openedx-settings-cms", "openedx-settings-lms"]
    listed = [
        "admin-edx",
        "aws-ses-config",
        "edx-secret-key",
        "jwt",
        "mongodb",
        "mongodb-openedx",
        "mysql-openedx",
        "mysql-root",
        "redis",
        "s3-openedx-storage",
        "smtp",
    ]
    assert secret_rules == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": sorted(listed + generated),
            "verbs": ["get"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": generated,
            "verbs": ["patch", "update"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["tutor-eks-state"],
            "verbs": ["get", "update"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ], "get, patch and update by name only; never list or watch"
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    deletable = {
        (group, resource)
        for rule in role["rules"]
        if "delete" in rule["verbs"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    # Pruning deletes the kinds Tutor and the plugin render (never Secrets, volumes
    # only when asked), and the other edges' kinds (get and delete only: what an
    # earlier deploy on another EKS_EDGE applied); a Job that cannot start is deleted.
    former = {
        ("gateway.networking.k8s.io", "gateways"),
        ("gateway.networking.k8s.io", "httproutes"),
        ("cert-manager.io", "issuers"),
    }
    for rule in role["rules"]:
        if {(rule["apiGroups"][0], r) for r in rule["resources"]} <= former:
            assert rule["verbs"] == ["get", "delete"], rule
    assert deletable - former == {
        ("", "configmaps"),
        ("", "services"),
        ("apps", "deployments"),
        ("batch", "jobs"),
        ("networking.k8s.io", "ingresses"),
        ("cert-manager.io", "certificates"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("policy", "poddisruptionbudgets"),
    }
    listable = {
        resource
        for rule in role["rules"]
        if "list" in rule["verbs"]
        for resource in rule["resources"]
    }
    # The rollout wait, the Job wait and `tutor eks status` (never Secrets).
    assert listable == {
        "deployments",
        "replicasets",
        "pods",
        "events",
        "jobs",
        "ingresses",
        "certificates",
        "horizontalpodautoscalers",
        "poddisruptionbudgets",
    }
    cluster_rules = docs[3]["rules"]
    cluster_resources = {res for rule in cluster_rules for res in rule["resources"]}
    assert cluster_resources == {
        "namespaces",
        "ingressclasses",
        "customresourcedefinitions",
        "clusterissuers",
    }
    for rule in cluster_rules:
        if rule["verbs"] != ["create"]:
            assert rule.get("resourceNames"), (
                f"cluster-scoped {rule['resources']} must name its objects"
            )
    assert docs[2]["subjects"] == [
        {"kind": "ServiceAccount", "name": "tutor-deployer", "namespace": "openedx-dev"}
    ]


def test_rbac_prune_settings_change_the_delete_verbs(project: Project) -> None:
    def deletable(env: dict[str, str]) -> set[str]:
        role = rbac(project, env=env)[1]
        return {
            resource
            for rule in role["rules"]
            if "delete" in rule["verbs"]
            for resource in rule["resources"]
        }

    assert "persistentvolumeclaims" in deletable({"TUTOR_EKS_PRUNE_VOLUMES": "true"})
    assert deletable({"TUTOR_EKS_PRUNE": "false"}) == {"jobs"}


def test_rbac_with_namespaced_issuer_needs_no_issuer_rights_on_the_cluster(
    project: Project,
) -> None:
    docs = rbac(
        project,
        "--group",
        "ci-deployers",
        "--namespace",
        "other",
        env={"TUTOR_EKS_ISSUER_KIND": "Issuer"},
    )
    assert [d["kind"] for d in docs] == [
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ]
    assert docs[0]["metadata"]["namespace"] == "other"
    cluster_resources = {res for rule in docs[2]["rules"] for res in rule["resources"]}
    assert "clusterissuers" not in cluster_resources
    assert any("issuers" in rule["resources"] for rule in docs[0]["rules"])
    issuers = next(r for r in docs[0]["rules"] if r["resources"] == ["issuers"])
    assert issuers["verbs"] == ["get", "create", "patch", "delete"]
    assert docs[1]["subjects"] == [
        {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Group",
            "name": "ci-deployers",
        }
    ]


def test_quickstart_is_launch_with_a_note(project: Project) -> None:
    help_text = project.tutor("k8s", "quickstart", "--help").stdout
    assert "--non-interactive" in help_text
    result = project.tutor(
        "k8s",
        "quickstart",
        "--non-interactive",
        env={"TUTOR_EKS_ENVIRONMENT": "nope"},
        check=False,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "`tutor k8s quickstart` is now `tutor k8s launch`" in output
    assert "Unknown environment 'nope'" in output, (
        "the same launch, with the same checks"
    )


def test_commands_explain_when_no_environment(project: Project) -> None:
    for command in (
        ("eks", "secrets"),
        ("eks", "check"),
        ("eks", "rbac"),
        ("eks", "diff"),
        ("eks", "status"),
    ):
        result = project.tutor(*command, check=False)
        assert result.returncode == 1
        assert (
            "No environment selected: set TUTOR_EKS_ENVIRONMENT=<name>" in result.stderr
        )


def verbs_by_resource(rules: list[dict[str, t.Any]]) -> dict[str, list[str]]:
    return {
        res: r["verbs"] for r in rules for res in r["resources"] if res != "secrets"
    }


@pytest.mark.parametrize(
    ("edge", "applied", "cluster_names"),
    [
        (
            {"TUTOR_EKS_EDGE": "alb"},
            {"ingresses"},
            {"ingressclasses": ["alb"]},
        ),
        (
            {"TUTOR_EKS_EDGE": "gateway", "TUTOR_EKS_GATEWAY_CLASS": "eg"},
            {"gateways", "httproutes", "certificates"},
            {
                "gatewayclasses": ["eg"],
                "clusterissuers": ["openedx-dev-acme"],
                "customresourcedefinitions": [
                    "certificates.cert-manager.io",
                    "clusterissuers.cert-manager.io",
                    "issuers.cert-manager.io",
                    "gateways.gateway.networking.k8s.io",
                    "httproutes.gateway.networking.k8s.io",
                ],
            },
        ),
        (
            {"TUTOR_EKS_EDGE": "gateway", "TUTOR_EKS_GATEWAY": "infra/shared"},
            {"httproutes"},
            {
                "gateways": ["shared"],
                "customresourcedefinitions": [
                    "gateways.gateway.networking.k8s.io",
                    "httproutes.gateway.networking.k8s.io",
                ],
            },
        ),
        ({"TUTOR_EKS_EDGE": "caddy"}, set(), {}),
    ],
    ids=["alb", "gateway", "shared-gateway", "caddy"],
)
def test_rbac_follows_the_edge(
    project: Project,
    edge: dict[str, str],
    applied: set[str],
    cluster_names: dict[str, list[str]],
) -> None:
    """Each edge's identity may apply and list its own objects, only get and delete
    (prune) the other edges' kinds, and read by name the cluster-scoped objects
    `tutor eks check` looks at."""
    docs = rbac(project, env=edge)
    role, cluster_role = docs[1], docs[3]
    verbs = verbs_by_resource(role["rules"])
    edge_kinds = {"ingresses", "gateways", "httproutes", "certificates", "issuers"}
    for kind in edge_kinds:
        expected = ["get", "create", "patch", "list", "delete"]
        assert verbs[kind] == (expected if kind in applied else ["get", "delete"])
    named = {
        res: rule["resourceNames"]
        for rule in cluster_role["rules"]
        if rule.get("resourceNames")
        for res in rule["resources"]
        if res != "namespaces"
    }
    assert named == cluster_names
    creatable = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert ("clusterissuers" in creatable) is ("clusterissuers" in cluster_names)
