"""A namespace holding the Secrets of the cookiecutter-openedx-devops Terraform
deploys with the plugin's default settings (issue 11), on the local control plane.

The Secrets are those of ``tests/stack.py``: the stack's exact names and keys, fake
values, a PEM generated for each run. Values are asserted with the helpers that
never print one.
"""

from __future__ import annotations

import json
import shutil
import time
import typing as t
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import stack
from .cluster.conftest import Cluster
from .conftest import (
    Project,
    delete_deployment,
    fail_if_secret_in,
    fail_unless_secret_in,
    put_secret,
    use_cluster,
)
from .rendered import applied_settings

pytestmark = pytest.mark.cluster

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: The marker line of the admin user's init task (templates/eks/tasks/admin-user.sh).
ADMIN_TASK = "tutor-contrib-eks: the staff superuser"


#: Credentials of the stack's Secrets: never in any output or workload spec.
PASSWORDS = (
    ("mysql-root", "MYSQL_ROOT_PASSWORD"),
    ("mysql-openedx", "OPENEDX_MYSQL_PASSWORD"),
    ("aws-ses-config", "SMTP_PASSWORD"),
    ("s3-openedx-storage", "OPENEDX_AWS_SECRET_ACCESS_KEY"),
    ("edx-secret-key", "OPENEDX_SECRET_KEY"),
    ("admin-edx", "ADMIN_PASSWORD"),
)


def create_secrets(cluster: Cluster, namespace: str) -> dict[str, dict[str, str]]:
    """The namespace, and every Secret the stack's Terraform creates there."""
    cluster.kubectl("create", "namespace", namespace)
    secrets = stack.stack_secrets(namespace)
    items = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": data,
        }
        for name, data in secrets.items()
    ]
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
    )
    return secrets


def stack_environment(project: Project, cluster: Cluster, namespace: str) -> None:
    """environments/prod/: the fixture's settings_merge.yml, and its shell config.yml
    written as YAML; Secrets and state read with the plugin's defaults."""
    folder = project.path / "environments" / "prod"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "cookiecutter-env" / "settings_merge.yml", folder)
    (folder / "config.yml").write_text(
        "LMS_HOST: learn.northwind.example\n"
        "CMS_HOST: studio.learn.northwind.example\n"
        "MFE_HOST: apps.learn.northwind.example\n"
        f"K8S_NAMESPACE: {namespace}\n"
        "EKS_ACME_EMAIL: hostmaster@northwind.example\n",
        encoding="utf-8",
    )
    stack_environment_selection(project, cluster, "prod")


def stack_environment_selection(project: Project, cluster: Cluster, name: str) -> None:
    """Select environment ``name``; Secrets and state read with the defaults."""
    project.environ.pop("TUTOR_EKS_SECRETS", None)
    project.environ.pop("TUTOR_EKS_STATE_SECRET", None)
    project.environ["TUTOR_EKS_ENVIRONMENT"] = name
    use_cluster(project, cluster)


def stack_job(project: Project, name: str) -> Project:
    """An empty tutor root with eks and mfe enabled (the stack always installs mfe)."""
    job = project.ci_job(name)
    (job.root / "config.yml").write_text("PLUGINS:\n- eks\n- mfe\n", encoding="utf-8")
    return job


def jwk_n(pem: str) -> str:
    """The modulus of an RSA PEM as Tutor writes it into the signing JWK."""
    from tutor.utils import long_to_base64

    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return long_to_base64(key.private_numbers().public_numbers.n)


def assert_equal_secret(actual: str, expected: str, where: str) -> None:
    if actual != expected:
        pytest.fail(f"{where} is not the Secret's value", pytrace=False)


def test_stack_secrets_deploy_with_the_default_settings(
    project: Project, cluster: Cluster
) -> None:
    namespace = f"northwind-{uuid.uuid4().hex[:6]}-prod"
    secrets = create_secrets(cluster, namespace)
    stack_environment(project, cluster, namespace)
    job = stack_job(project, "run-1")
    try:
        started = time.monotonic()
        result = job.tutor("k8s", "launch", "--non-interactive")
        elapsed = time.monotonic() - started
        output = result.stdout + result.stderr
        assert (
            f"Secrets read from namespace {namespace}: {', '.join(stack.DEFAULT_READ)}; "
            "optional, absent: mongodb, smtp" in output
        )
        for name, key in PASSWORDS:
            fail_if_secret_in(secrets[name][key], output, "the output of launch")

        # Tutor's own services are off, the external ones configured.
        for run in ("RUN_MYSQL", "RUN_MONGODB", "RUN_SMTP", "RUN_REDIS"):
            assert job.value(run) == "false", run
        assert job.value("MYSQL_PORT") == "3306"
        assert job.value("SMTP_PORT") == "587"
        assert job.value("SMTP_USE_TLS") == "true"
        assert job.value("MONGODB_USE_SSL") == "false"

        # edx-secret-key and jwt win over generated values; the PEM arrives exactly.
        secret_key = secrets["edx-secret-key"]["OPENEDX_SECRET_KEY"]
        pem = secrets["jwt"]["private_key"]
        assert_equal_secret(
            job.value("OPENEDX_SECRET_KEY"), secret_key, "printvalue OPENEDX_SECRET_KEY"
        )
        assert_equal_secret(
            job.value("JWT_RSA_PRIVATE_KEY"),
            pem.strip(),
            "printvalue JWT_RSA_PRIVATE_KEY",
        )
        fail_unless_secret_in(
            f'SECRET_KEY: "{secret_key}"',
            job.env_file("apps/openedx/config/lms.env.yml"),
            "lms.env.yml",
        )
        n = jwk_n(pem)
        for service in ("lms", "cms"):
            settings = job.env_file(f"apps/openedx/settings/{service}/production.py")
            fail_unless_secret_in(f'"n": "{n}"', settings, f"{service} production.py")
            # settings_merge.yml, merged into both services' settings
            assert "Northwind Academy" in settings, service
            assert "Courses for Northwind staff and partners" in settings, service
            # mongodb-openedx: empty username and password mean no authentication
            assert '"user": None,' in settings and '"password": None,' in settings
        state = cluster.get_json("secret", "tutor-eks-state", "-n", namespace)
        assert "OPENEDX_SECRET_KEY" not in state["data"], "a Secret's value is not kept"
        assert "JWT_RSA_PRIVATE_KEY" not in state["data"]
        assert "ID" in state["data"]

        # The stack's Redis key prefix separates this environment's keys.
        assert job.value("REDIS_KEY_PREFIX") == "prod"
        lms = applied_settings(job.root / "env", "lms")
        assert lms["BROKER_TRANSPORT_OPTIONS"]["global_keyprefix"] == "prod:"
        assert lms["CACHES"]["default"]["KEY_PREFIX"] == "prod:default"

        # Keys nothing uses are not injected, and listed as unused.
        for key in ("S3_BACKUP_BUCKET", "FORUM_MONGODB_AUTH_MECH"):
            missing = job.tutor("config", "printvalue", key, check=False)
            assert missing.returncode != 0, key
        listing = job.tutor("eks", "secrets").stdout
        rows = {
            line.split()[0]: line
            for line in listing.splitlines()
            if line.startswith("  ")
        }
        for key in (
            "S3_BACKUP_BUCKET",
            "FORUM_MONGODB_USE_SSL",
            "FORUM_MONGODB_AUTH_MECH",
        ):
            assert "unused" in rows[key], key
        assert "jwt/private_key" in rows["JWT_RSA_PRIVATE_KEY"]
        assert "unused" not in rows["S3_STORAGE_BUCKET"]
        assert "unused" not in rows["REDIS_KEY_PREFIX"]
        assert "unused" not in rows["ADMIN_PASSWORD"]

        # The admin user's Job ran last, completed, and holds no value.
        jobs = sorted(
            cluster.get_json("jobs", "-n", namespace)["items"],
            key=lambda j: (j["metadata"]["creationTimestamp"], j["metadata"]["name"]),
        )
        admin = [
            j
            for j in jobs
            if ADMIN_TASK
            in " ".join(
                j["spec"]["template"]["spec"]["containers"][0].get("args") or []
            )
        ]
        assert len(admin) == 1, [j["metadata"]["name"] for j in jobs]
        assert admin[0] is jobs[-1], "the admin user comes after every migration"
        assert admin[0]["status"].get("succeeded") == 1
        container = admin[0]["spec"]["template"]["spec"]["containers"][0]
        script = " ".join(container["args"])
        assert '"${TUTOREKS_ADMIN_PASSWORD}"' in script
        assert "manage.py lms shell" in script
        references = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container["env"]
            if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
        }
        assert references["TUTOREKS_ADMIN_PASSWORD"] == {
            "name": "admin-edx",
            "key": "ADMIN_PASSWORD",
        }
        dumped = cluster.kubectl(
            "get", "jobs,pods,deployments,configmaps", "-n", namespace, "-o", "yaml"
        ).stdout
        for name, key in PASSWORDS:
            fail_if_secret_in(
                secrets[name][key], dumped, f"Jobs, Pods or Deployments ({name}/{key})"
            )
        for line in pem.splitlines()[1:-1]:
            fail_if_secret_in(line, dumped, "Jobs, Pods or Deployments (jwt)")
        print(f"\nlaunch with the stack's Secrets: {elapsed:.1f} s")
    finally:
        delete_deployment(cluster, namespace)


def test_two_stack_environments_keep_their_redis_keys_apart(
    project: Project, cluster: Cluster
) -> None:
    """qa and prod of one stack, each with its Terraform's Secrets in its own
    namespace, saved from empty roots: each writes to the stack's one Redis under
    the prefix its ``redis`` Secret gives (``REDIS_KEY_PREFIX``)."""
    run = uuid.uuid4().hex[:6]
    settings = {}
    try:
        for name in ("qa", "prod"):
            namespace = f"northwind-{run}-{name}"
            create_secrets(cluster, namespace)
            project.write(
                f"environments/{name}/config.yml",
                f"LMS_HOST: {name}.northwind.example\nK8S_NAMESPACE: {namespace}\n",
            )
            stack_environment_selection(project, cluster, name)
            job = stack_job(project, f"{name}-root")
            job.tutor("config", "save")
            settings[name] = applied_settings(job.root / "env", "lms")
        for name in ("qa", "prod"):
            caches = settings[name]["CACHES"].values()
            assert {c["KEY_PREFIX"].split(":")[0] for c in caches} == {name}
            assert settings[name]["BROKER_TRANSPORT_OPTIONS"]["global_keyprefix"] == (
                f"{name}:"
            )
            assert settings[name]["EVENT_BUS_TOPIC_PREFIX"] == name
    finally:
        for name in ("qa", "prod"):
            cluster.kubectl(
                "delete", "namespace", f"northwind-{run}-{name}", "--wait=false",
                check=False,
            )  # fmt: skip


def test_mysql_host_differing_across_secrets_names_both(
    project: Project, cluster: Cluster
) -> None:
    namespace = f"northwind-{uuid.uuid4().hex[:6]}-prod"
    secrets = create_secrets(cluster, namespace)
    stack_environment(project, cluster, namespace)
    job = stack_job(project, "run-1")
    try:
        job.tutor("config", "save")  # equal duplicates are one value
        assert job.value("MYSQL_HOST") == secrets["mysql-root"]["MYSQL_HOST"]
        before = job.fingerprint()
        put_secret(
            cluster,
            namespace,
            "mysql-openedx",
            {"MYSQL_HOST": "other.example.internal"},
        )
        failed = job.tutor("config", "save", check=False)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0
        assert (
            f"Secret {namespace}/mysql-openedx key MYSQL_HOST: MYSQL_HOST differs from "
            f"Secret {namespace}/mysql-root key MYSQL_HOST" in output
        ), output[-2000:]
        assert "other.example.internal" not in output
        assert job.fingerprint() == before, "nothing was written"
    finally:
        delete_deployment(cluster, namespace)


def test_empty_required_key_and_overridden_rename(
    project: Project, cluster: Cluster
) -> None:
    namespace = f"northwind-{uuid.uuid4().hex[:6]}-prod"
    create_secrets(cluster, namespace)
    stack_environment(project, cluster, namespace)
    job = stack_job(project, "run-1")
    try:
        put_secret(cluster, namespace, "edx-secret-key", {"OPENEDX_SECRET_KEY": ""})
        failed = job.tutor("config", "save", check=False)
        assert failed.returncode != 0
        assert (
            f"Secret {namespace}/edx-secret-key key OPENEDX_SECRET_KEY: "
            "OPENEDX_SECRET_KEY is empty" in failed.stdout + failed.stderr
        )
        put_secret(
            cluster, namespace, "edx-secret-key", {"OPENEDX_SECRET_KEY": "k" * 24}
        )
        job.tutor("config", "save")
        # EKS_SECRET_KEYS wins over a built-in rename: the jwt Secret then has no
        # JWT_RSA_PRIVATE_KEY.
        renamed = job.tutor(
            "config",
            "save",
            env={"TUTOR_EKS_SECRET_KEYS": '{"jwt/private_key": "JWT_SPARE_KEY"}'},
            check=False,
        )
        assert renamed.returncode != 0
        assert (
            f"Secret {namespace}/jwt has no key JWT_RSA_PRIVATE_KEY"
            in renamed.stdout + renamed.stderr
        )
    finally:
        delete_deployment(cluster, namespace)


def remove(cluster: Cluster, issuer: str, namespaces: t.Iterable[str]) -> None:
    """What the two-environment tests leave: a shared issuer and the deploys."""
    cluster.kubectl(
        "delete",
        "clusterissuers.cert-manager.io",
        issuer,
        "--ignore-not-found",
        check=False,
    )
    for namespace in namespaces:
        delete_deployment(cluster, namespace)


def start_each(project: Project, names: list[str]) -> dict[str, Project]:
    """Deploy each environment from its own empty root (`config save`, `k8s start`)."""
    jobs = {}
    for name in names:
        jobs[name] = project.ci_job(f"root-{name}")
        jobs[name].environ["TUTOR_EKS_ENVIRONMENT"] = name
        jobs[name].tutor("config", "save")
        jobs[name].tutor("k8s", "start")
    return jobs


def test_delete_of_one_environment_keeps_the_issuer_another_uses(
    project: Project, cluster: Cluster
) -> None:
    """The documented way to share one issuer (docs/edges.md): it is an environment's own k8s/ object
    (here `owner`'s), and every other environment names it in EKS_CLUSTER_ISSUER
    with an empty k8s/issuer.yml. `tutor k8s delete` of another environment leaves
    it; the issuer carries none of the owner's instance labels."""
    suffix = uuid.uuid4().hex[:6]
    issuer = f"shared-{suffix}"
    namespaces = {"owner": f"eks-owner-{suffix}", "user": f"eks-user-{suffix}"}
    project.write(
        "environments/owner/config.yml",
        f"LMS_HOST: lms.owner.example.com\nK8S_NAMESPACE: {namespaces['owner']}\n",
    )
    project.write(
        "environments/owner/k8s/shared-issuer.yml",
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\n"
        f"metadata:\n  name: {issuer}\nspec:\n  selfSigned: {{}}\n",
    )
    project.write(
        "environments/user/config.yml",
        f"LMS_HOST: lms.user.example.com\nK8S_NAMESPACE: {namespaces['user']}\n"
        f"EKS_CLUSTER_ISSUER: {issuer}\n",
    )
    project.write(
        "environments/user/k8s/issuer.yml",
        f"# The ClusterIssuer {issuer} is shared: environments/owner/ creates it.\n",
    )
    use_cluster(project, cluster)
    try:
        jobs = start_each(project, list(namespaces))
        live = cluster.get_json("clusterissuers.cert-manager.io", issuer)
        labels = live["metadata"].get("labels") or {}
        assert "app.kubernetes.io/instance" not in labels
        assert "app.kubernetes.io/managed-by" not in labels
        assert "namespace" not in live["metadata"]
        ingress = cluster.get_json("ingress", "openedx", "-n", namespaces["user"])
        assert (
            ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
            == issuer
        )
        assert not cluster.kubectl(
            "get",
            "clusterissuers.cert-manager.io",
            f"{namespaces['user']}-acme",
            "--ignore-not-found",
            "-o",
            "name",
        ).stdout.strip(), "the user environment renders no issuer of its own"

        jobs["user"].tutor("k8s", "delete", "--yes")
        cluster.get_json("clusterissuers.cert-manager.io", issuer)  # still there
        cluster.get_json(
            "clusterissuers.cert-manager.io", f"{namespaces['owner']}-acme"
        )
    finally:
        remove(cluster, issuer, namespaces.values())


def test_delete_keeps_a_cluster_issuer_every_environment_declares(
    project: Project, cluster: Cluster
) -> None:
    """The stack's way: every environment's k8s/cluster-issuer.yml holds the same
    ClusterIssuer `letsencrypt`. `tutor k8s delete` of one leaves it for the others,
    and env/ is as it was afterwards."""
    suffix = uuid.uuid4().hex[:6]
    issuer = f"letsencrypt-{suffix}"
    namespaces = {"qa": f"eks-qa-{suffix}", "prod": f"eks-prod-{suffix}"}
    for name, namespace in namespaces.items():
        project.write(
            f"environments/{name}/config.yml",
            f"LMS_HOST: lms.{name}.example.com\nK8S_NAMESPACE: {namespace}\n"
            f"EKS_CLUSTER_ISSUER: {issuer}\n",
        )
        project.write(
            f"environments/{name}/k8s/issuer.yml",
            "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\n"
            f"metadata:\n  name: {issuer}\nspec:\n  selfSigned: {{}}\n",
        )
    use_cluster(project, cluster)
    try:
        jobs = start_each(project, list(namespaces))
        before = jobs["qa"].fingerprint()
        deleted = jobs["qa"].tutor("k8s", "delete", "--yes")
        assert f"ClusterIssuer {issuer}" in deleted.stdout
        cluster.get_json("clusterissuers.cert-manager.io", issuer)  # still there
        assert jobs["qa"].fingerprint() == before, "env/ is put back"
    finally:
        remove(cluster, issuer, namespaces.values())
