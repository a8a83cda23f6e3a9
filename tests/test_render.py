"""Real Tutor renders; `kubectl kustomize` builds; every object validates."""

from __future__ import annotations

import subprocess
import sys
import typing as t

import pytest

from .conftest import REPO, Project, find, validate

# `kubectl kustomize` builds what `tutor k8s start` applies.
pytestmark = pytest.mark.kubectl

Schemas = dict[tuple[str, str], dict[str, t.Any]]
SELECTOR_EXCLUDED = ("job", "namespace")


def applied_by_start(objects: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """What `tutor k8s start` applies: --selector 'app.kubernetes.io/component notin (job,namespace)'."""
    return [
        o
        for o in objects
        if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
        not in SELECTOR_EXCLUDED
    ]


def build(
    project: Project, environment: str = "dev", env: dict[str, str] | None = None
) -> list[dict[str, t.Any]]:
    project.save(environment, env=env)
    return project.kustomize()


def test_ingress_edge_objects(project: Project, crd_schemas: Schemas) -> None:
    objects = build(project)
    for obj in objects:
        validate(obj, crd_schemas)
    started = applied_by_start(objects)
    ingress = find(started, "Ingress", "openedx")
    issuer = find(started, "ClusterIssuer", "openedx-dev-acme")
    certificate = find(started, "Certificate", "openedx-tls")

    hosts = [
        "lms.dev.example.com",
        "studio.dev.example.com",
        "meilisearch.lms.dev.example.com",
    ]
    assert ingress["metadata"]["namespace"] == "openedx-dev"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == hosts
    for rule in ingress["spec"]["rules"]:
        backend = rule["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "caddy", "port": {"number": 80}}
    assert ingress["spec"]["tls"] == [{"hosts": hosts, "secretName": "openedx-tls"}]
    assert (
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
        == "openedx-dev-acme"
    )
    controller_specific = [
        a
        for a in ingress["metadata"]["annotations"]
        if "nginx" in a or "traefik" in a or "alb." in a
    ]
    assert controller_specific == []

    assert "namespace" not in issuer["metadata"], (
        "a cluster-scoped object must carry no namespace"
    )
    acme = issuer["spec"]["acme"]
    assert acme["email"] == "ops@example.com"
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["solvers"] == [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]

    assert certificate["metadata"]["namespace"] == "openedx-dev"
    assert certificate["spec"]["dnsNames"] == hosts
    assert certificate["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": "openedx-dev-acme",
    }

    caddy = find(started, "Service", "caddy")
    assert caddy["spec"]["type"] == "ClusterIP"
    assert caddy["spec"]["ports"][0]["port"] == 80


def test_issuer_kind_issuer_is_namespaced(
    project: Project, crd_schemas: Schemas
) -> None:
    objects = build(project, env={"TUTOR_EKS_ISSUER_KIND": "Issuer"})
    for obj in objects:
        validate(obj, crd_schemas)
    assert not [o for o in objects if o["kind"] == "ClusterIssuer"]
    issuer = find(objects, "Issuer", "openedx-dev-acme")
    assert issuer["metadata"]["namespace"] == "openedx-dev"
    ingress = find(objects, "Ingress", "openedx")
    assert ingress["metadata"]["annotations"] == {
        "app.kubernetes.io/version": ingress["metadata"]["annotations"][
            "app.kubernetes.io/version"
        ],
        "cert-manager.io/issuer": "openedx-dev-acme",
    }
    assert find(objects, "Certificate")["spec"]["issuerRef"]["kind"] == "Issuer"


def test_issuer_names_differ_between_environments(project: Project) -> None:
    project.write(
        "environments/prod/config.yml",
        "LMS_HOST: lms.example.com\nK8S_NAMESPACE: openedx-prod\n",
    )
    dev = find(build(project, "dev"), "ClusterIssuer")["metadata"]["name"]
    prod = find(build(project, "prod"), "ClusterIssuer")["metadata"]["name"]
    assert dev != prod


@pytest.mark.parametrize("ingress_class", ["traefik", "alb"])
def test_any_ingress_class(project: Project, ingress_class: str) -> None:
    objects = build(project, env={"TUTOR_EKS_INGRESS_CLASS": ingress_class})
    assert find(objects, "Ingress")["spec"]["ingressClassName"] == ingress_class
    solver = find(objects, "ClusterIssuer")["spec"]["acme"]["solvers"][0]
    assert solver["http01"]["ingress"]["ingressClassName"] == ingress_class


def test_caddy_edge_has_clb_compatible_service_and_no_ingress(
    project: Project, crd_schemas: Schemas
) -> None:
    objects = build(project, env={"TUTOR_EKS_EDGE": "caddy"})
    for obj in objects:
        validate(obj, crd_schemas)
    assert not [
        o for o in objects if o["kind"] in ("Ingress", "ClusterIssuer", "Certificate")
    ]
    caddy = find(objects, "Service", "caddy")
    assert caddy["spec"]["type"] == "LoadBalancer"
    assert {p["protocol"] for p in caddy["spec"]["ports"]} == {"TCP"}, (
        "a Classic Load Balancer refuses mixed protocols"
    )
    assert sorted(p["port"] for p in caddy["spec"]["ports"]) == [80, 443]
    annotations = caddy["metadata"]["annotations"]
    assert (
        annotations["service.beta.kubernetes.io/aws-load-balancer-backend-protocol"]
        == "tcp"
    )


def test_caddy_edge_annotations_setting(project: Project) -> None:
    project.write(
        "environments/dev/config.yml",
        "LMS_HOST: lms.example.com\nEKS_EDGE: caddy\nEKS_LOAD_BALANCER_ANNOTATIONS:\n  example.com/a: 'b'\n",
    )
    caddy = find(build(project), "Service", "caddy")
    assert caddy["metadata"]["annotations"]["example.com/a"] == "b"
    assert (
        "service.beta.kubernetes.io/aws-load-balancer-backend-protocol"
        not in caddy["metadata"]["annotations"]
    )


def test_http_only_ingress_has_no_tls(project: Project, crd_schemas: Schemas) -> None:
    objects = build(project, env={"TUTOR_ENABLE_HTTPS": "false"})
    ingress = find(objects, "Ingress")
    assert "tls" not in ingress["spec"]
    assert not [o for o in objects if o["kind"] in ("ClusterIssuer", "Certificate")]


def test_mfe_host_when_mfe_enabled(project: Project) -> None:
    pytest.importorskip("tutormfe")
    project.tutor("plugins", "enable", "mfe")
    hosts = [r["host"] for r in find(build(project), "Ingress")["spec"]["rules"]]
    assert "apps.lms.dev.example.com" in hosts


def test_no_meilisearch_host_when_external(project: Project) -> None:
    objects = build(
        project,
        env={
            "TUTOR_RUN_MEILISEARCH": "false",
            "TUTOR_MEILISEARCH_URL": "https://search.example.com",
        },
    )
    hosts = [r["host"] for r in find(objects, "Ingress")["spec"]["rules"]]
    assert hosts == ["lms.dev.example.com", "studio.dev.example.com"]


def test_environment_manifests_replace_and_add(
    project: Project, crd_schemas: Schemas
) -> None:
    project.write(
        "environments/dev/k8s/ingress.yml",
        """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: custom
spec:
  ingressClassName: {{ EKS_INGRESS_CLASS }}
  defaultBackend:
    service:
      name: caddy
      port:
        number: 80
""",
    )
    project.write(
        "environments/dev/k8s/limits.yaml",
        """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: extra-{{ K8S_NAMESPACE }}
data:
  host: "{{ LMS_HOST }}"
""",
    )
    objects = build(project)
    for obj in objects:
        validate(obj, crd_schemas)
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    assert [i["metadata"]["name"] for i in ingresses] == ["custom"], (
        "a same-named file replaces the default"
    )
    configmap = find(objects, "ConfigMap", "extra-openedx-dev")
    assert configmap["data"] == {"host": "lms.dev.example.com"}
    assert configmap["metadata"]["namespace"] == "openedx-dev"
    # The other defaults stay.
    find(objects, "ClusterIssuer")
    find(objects, "Certificate")


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_worked_examples_render_and_validate(
    tmp_path: t.Any, environment: str, crd_schemas: Schemas
) -> None:
    project = Project(tmp_path)
    project.copy_examples()
    objects = build(project, environment)
    for obj in objects:
        validate(obj, crd_schemas)
    issuer = find(objects, "ClusterIssuer")
    staging = "acme-staging" in issuer["spec"]["acme"]["server"]
    assert staging is (environment == "dev")


def test_import_does_not_load_kubernetes_client() -> None:
    code = "import sys, tutoreks.plugin; print([m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'urllib3', 'yaml_schema')])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert out.strip() == "[]"
