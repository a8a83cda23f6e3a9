"""Shared fixtures: a deployment repository and a tutor root, driven by the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import typing as t
import uuid
from pathlib import Path

import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TUTOR = str(Path(sys.executable).parent / "tutor")
CERT_MANAGER_MODULE = "github.com/cert-manager/cert-manager"
CERT_MANAGER_VERSION = "v1.21.2"

DEV_CONFIG = """\
LMS_HOST: lms.dev.example.com
CMS_HOST: studio.dev.example.com
K8S_NAMESPACE: openedx-dev
EKS_ACME_EMAIL: ops@example.com
"""


def clean_environ() -> dict[str, str]:
    """os.environ without anything that would change what Tutor does."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TUTOR_") and k not in ("GITHUB_ACTIONS", "KUBECONFIG")
    }


_CORE_READY: list[bool] = []


def invoke_in_process(
    args: t.Sequence[str], environ: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run the tutor CLI in this process, as Tutor's own CLI tests do, with exactly
    ``environ`` and ``cwd``; TutorError is reported as ``tutor`` reports it."""
    import traceback

    from click.testing import CliRunner
    from tutor import exceptions, hooks
    from tutor.commands.cli import cli

    if not _CORE_READY:
        hooks.Actions.CORE_READY.do()
        _CORE_READY.append(True)
    cli.IS_ROOT_READY = False
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in environ}
    overrides.update(environ)
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(
            cli, list(args), env=overrides, catch_exceptions=True
        )
    finally:
        os.chdir(previous)
        unload_plugins_but_eks()
    stderr = result.stderr
    code = result.exit_code
    error = result.exception
    if isinstance(error, exceptions.TutorError):
        stderr += f"Error: {error.args[0]}\n"
        code = 1
    elif error is not None and not isinstance(error, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
        code = code or 1
    return subprocess.CompletedProcess(list(args), code, result.stdout, stderr)


def unload_plugins_but_eks() -> None:
    """Each in-process run starts, as a new `tutor` process does, with only its
    root's plugins: one enabled by an earlier run (mfe) is unloaded, its hooks
    cleared and its module forgotten so that enabling it again imports it again.
    (Not through PLUGIN_UNLOADED: Tutor's callbacks would delete its env/ files.)"""
    from importlib.metadata import entry_points

    from tutor import plugins

    others = [name for name in plugins.iter_loaded() if name != "eks"]
    if not others:
        return
    modules = {e.name: e.value for e in entry_points(group="tutor.plugin.v1")}
    for name in others:
        plugins.unload(name)
        sys.modules.pop(modules.get(name, ""), None)


class Project:
    """A deployment repository (``environments/``) and a tutor root with ``eks`` enabled.

    Unit tests run the tutor CLI in-process (``in_process``); tests of the other
    tiers run it as a subprocess, as a CI job does."""

    in_process = False

    def __init__(self, path: Path, root_name: str = "tutor-root") -> None:
        self.path = path
        self.root = path / root_name
        self.root.mkdir(parents=True)
        (self.root / "config.yml").write_text("PLUGINS:\n- eks\n", encoding="utf-8")
        self.environ = clean_environ()
        self.environ["TUTOR_ROOT"] = str(self.root)
        # No Kubernetes Secrets and no state Secret unless a test asks for them
        # (test_secrets.py, test_state.py): nothing reads the cluster.
        self.environ["TUTOR_EKS_SECRETS"] = "[]"
        self.environ["TUTOR_EKS_STATE_SECRET"] = ""

    def ci_job(self, name: str) -> Project:
        """The same deployment repository with a new, empty tutor root where only
        `tutor plugins enable eks` ran: what each run of a CI job starts from."""
        job = Project(self.path, root_name=name)
        job.environ = {**self.environ, "TUTOR_ROOT": str(job.root)}
        job.in_process = self.in_process
        return job

    def write(self, relative: str, text: str) -> Path:
        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def copy_examples(self) -> None:
        shutil.copytree(
            REPO / "environments", self.path / "environments", dirs_exist_ok=True
        )

    def tutor(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        environ = dict(self.environ)
        environ.update(env or {})
        if self.in_process:
            result = invoke_in_process(args, environ, self.path)
            if check and result.returncode != 0:
                raise AssertionError(
                    f"tutor {' '.join(args)} exited {result.returncode}\n"
                    f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
                )
            return result
        result = subprocess.run(
            [TUTOR, *args],
            cwd=self.path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"tutor {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def save(
        self, environment: str = "dev", *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.tutor(
            "config",
            "save",
            *args,
            env={"TUTOR_EKS_ENVIRONMENT": environment, **(env or {})},
        )

    def value(self, key: str, env: dict[str, str] | None = None) -> str:
        return self.tutor("config", "printvalue", key, env=env).stdout.strip()

    def config(self) -> dict[str, t.Any]:
        loaded = yaml.safe_load((self.root / "config.yml").read_text(encoding="utf-8"))
        assert isinstance(loaded, dict)
        return loaded

    def env_file(self, relative: str) -> str:
        return (self.root / "env" / relative).read_text(encoding="utf-8")

    def fingerprint(self) -> dict[str, str]:
        """sha256 of config.yml and of every file under env/: equal means untouched."""
        result = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                result[str(path.relative_to(self.root))] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
        return result

    def kustomize(self) -> list[dict[str, t.Any]]:
        """``kubectl kustomize env/``: what ``tutor k8s start`` would apply."""
        result = subprocess.run(
            ["kubectl", "kustomize", str(self.root / "env")],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


#: Fixtures that put a test in another tier than the unit tier.
TIER_FIXTURES = {
    "cluster": "cluster",
    "mariadb": "services",
    "redis_server": "services",
    "redis_tls": "services",
    "mariadb_tls": "services",
    "s3_server": "services",
    "crd_schemas": "kubectl",
    "actionlint": "kubectl",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the tier its fixtures need."""
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            if fixture in TIER_FIXTURES:
                item.add_marker(TIER_FIXTURES[fixture])


def is_unit(request: pytest.FixtureRequest) -> bool:
    return not any(
        request.node.get_closest_marker(marker)
        for marker in ("cluster", "services", "kubectl", "subprocess")
    )


class _FastRsa:
    """``Crypto.PublicKey.RSA`` as ``tutor.utils`` sees it, whose ``generate`` makes
    the key with OpenSSL (``cryptography``): the same random 2048-bit key, exported
    in the same PKCS#1 PEM, in 0.05 s instead of pycryptodome's 0.7 s (its
    constant-time integers). Tutor generates ``JWT_RSA_PRIVATE_KEY`` in every new
    root; unit tests make hundreds of them."""

    class _Key:
        def __init__(self, pem: bytes) -> None:
            self.pem = pem

        def export_key(self) -> bytes:
            return self.pem

    def __init__(self, real: t.Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self.real, name)

    def generate(self, bits: int) -> _FastRsa._Key:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        pem = (
            rsa.generate_private_key(public_exponent=65537, key_size=bits)
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            .rstrip(b"\n")
        )
        return self._Key(pem)


@pytest.fixture(scope="session", autouse=True)
def fast_rsa_keys() -> t.Iterator[None]:
    """Tutor's ``rsa_private_key`` filter, in this process, backed by OpenSSL
    (:class:`_FastRsa`). Tutor run as a subprocess keeps its own."""
    from tutor import utils

    real = utils.RSA
    utils.RSA = _FastRsa(real)  # type: ignore[assignment]
    yield
    utils.RSA = real


#: Filters that return a new value at each call: Jinja folds a call on a constant
#: (``{{ 24|random_string }}``) into the compiled code, so a template using one
#: is compiled again each time, as Tutor does, and each root gets its own value.
GENERATORS = re.compile(r"\|\s*(random|random_string|rsa_private_key|uuid|encrypt)\b")


def _signature(environment: jinja2.Environment) -> tuple[t.Any, ...]:
    """What, beside the source, decides the code Jinja compiles: the filters and
    tests it knows and what each is passed (Tutor's environments differ only there)."""
    return tuple(
        tuple(sorted((n, getattr(f, "jinja_pass_arg", None)) for n, f in items))
        for items in (environment.filters.items(), environment.tests.items())
    )


@pytest.fixture(scope="session", autouse=True)
def compiled_templates() -> t.Iterator[None]:
    """Tutor's Jinja environments, in this process, share compiled code: each of
    Tutor's template files and each template string (config values, patches) is
    compiled once per test process instead of once per renderer. Tutor run as a
    subprocess compiles its own."""
    from tutor import env

    code: dict[tuple[t.Any, ...], t.Any] = {}
    real: t.Any = env.JinjaEnvironment.compile

    def compile(
        self: env.JinjaEnvironment,
        source: t.Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> t.Any:
        if not isinstance(source, str) or GENERATORS.search(source):
            return real(self, source, name, filename, raw, defer_init)
        key = (source, name, filename, raw, defer_init, _signature(self))
        if key not in code:
            code[key] = real(self, source, name, filename, raw, defer_init)
        return code[key]

    env.JinjaEnvironment.compile = compile  # type: ignore[assignment,method-assign]
    yield
    env.JinjaEnvironment.compile = real  # type: ignore[method-assign]


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Project:
    project = Project(tmp_path)
    project.in_process = is_unit(request)
    project.write("environments/dev/config.yml", DEV_CONFIG)
    return project


def find(
    objects: list[dict[str, t.Any]], kind: str, name: str | None = None
) -> dict[str, t.Any]:
    matches = [
        o
        for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


# --- schemas ------------------------------------------------------------------


def _strict(schema: t.Any) -> t.Any:
    """Make an openAPIV3Schema refuse unknown fields, as the API server's strict
    field validation (kubectl's default) does."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.fixture(scope="session")
def crd_schemas() -> dict[tuple[str, str], dict[str, t.Any]]:
    """cert-manager's CRDs from its Go module: (apiVersion, kind) -> openAPIV3Schema."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    result = subprocess.run(
        [
            go,
            "mod",
            "download",
            "-json",
            f"{CERT_MANAGER_MODULE}@{CERT_MANAGER_VERSION}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        cwd="/",
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    crds_dir = Path(json.loads(result.stdout)["Dir"]) / "deploy" / "crds"
    schemas = {}
    for path in sorted(crds_dir.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = schema
    assert ("cert-manager.io/v1", "ClusterIssuer") in schemas
    return schemas


KUBERNETES_VERSION = "1.35.0"


def validate(
    obj: dict[str, t.Any], crd_schemas: dict[tuple[str, str], dict[str, t.Any]]
) -> None:
    """Validate against Kubernetes' own schemas, or the CRD's openAPIV3Schema."""
    import jsonschema
    import kubernetes_validate

    key = (obj["apiVersion"], obj["kind"])
    if key in crd_schemas:
        jsonschema.validate(obj, crd_schemas[key])
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


# The control plane's session fixture (tests/cluster/conftest.py), for the
# cluster tests in this directory.
from tests.cluster.conftest import Cluster, cluster  # noqa: E402, F401
from tests.services import (  # noqa: E402, F401
    mariadb,
    mariadb_tls,
    other_ca,
    redis_server,
    redis_tls,
    s3_server,
    tls_ca,
)


def use_cluster(
    project: Project, control_plane: Cluster, kubeconfig: Path | None = None
) -> None:
    """Point the project's tutor runs at the control plane (admin unless kubeconfig)."""
    env = control_plane.env(kubeconfig)
    project.environ["KUBECONFIG"] = env["KUBECONFIG"]
    project.environ["PATH"] = env["PATH"]


def fail_if_secret_in(value: str, text: str, where: str) -> None:
    """Assert a Secret value is absent without ever printing it (the failure names
    the line number and the YAML key before it, not the value)."""
    if value in text:
        lines = text.splitlines()
        line = next(i for i, line in enumerate(lines) if value in line)
        context = lines[line].split(":", 1)[0].strip() if ":" in lines[line] else "?"
        pytest.fail(
            f"a Secret value appears in {where}, line {line + 1} (key {context!r})",
            pytrace=False,
        )


def fail_unless_secret_in(value: str, text: str, where: str) -> None:
    if value not in text:
        pytest.fail(
            f"the Secret value did not arrive unchanged in {where}", pytrace=False
        )


def put_secret(
    control_plane: Cluster,
    namespace: str,
    name: str,
    data: dict[str, str],
    *,
    replace: bool = False,
) -> None:
    """Apply a Secret from plain values (stringData, through stdin): its keys are
    added or changed, or with ``replace`` the Secret holds exactly these."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }
    if replace:
        control_plane.kubectl(
            "delete", "secret", name, "-n", namespace, "--ignore-not-found"
        )
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def mysql_secrets(
    host: str = "mysql.example.internal", **root: str
) -> dict[str, dict[str, str]]:
    """The operator's MySQL Secrets: `mysql-root` (``root`` adds keys such as
    MYSQL_PORT) and `mysql-openedx`, with random passwords."""
    return {
        "mysql-root": {
            "MYSQL_HOST": host,
            "MYSQL_ROOT_PASSWORD": uuid.uuid4().hex,
            **root,
        },
        "mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": uuid.uuid4().hex},
    }


def deploy_environment(
    project: Project,
    control_plane: Cluster,
    label: str,
    secrets: dict[str, dict[str, str]] | None = None,
    *,
    state: bool = True,
    config: str = "",
) -> str:
    """A new namespace holding the operator's Secrets (MySQL ones by default), and
    the project's `dev` environment deploying to it as in production: Secrets
    (and, with ``state``, the state) read from the cluster. The namespace."""
    namespace = f"eks-{label}-{uuid.uuid4().hex[:6]}"
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: lms.{label}.example.com\nK8S_NAMESPACE: {namespace}\n{config}",
    )
    control_plane.kubectl("create", "namespace", namespace)
    for name, data in (secrets or mysql_secrets()).items():
        put_secret(control_plane, namespace, name, data)
    project.environ.pop("TUTOR_EKS_SECRETS", None)
    if state:
        project.environ.pop("TUTOR_EKS_STATE_SECRET", None)
    project.environ["TUTOR_EKS_ENVIRONMENT"] = "dev"
    use_cluster(project, control_plane)
    return namespace


def assert_start_changes_nothing(project: Project, control_plane: Cluster) -> None:
    """`kubectl diff` of what `tutor k8s start` applies (jobs and namespace excluded) is empty."""
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(project.root / "env")],
        capture_output=True,
        text=True,
        check=True,
        env=control_plane.env(),
    ).stdout
    applied = [
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc
        and (doc["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
        not in ("job", "namespace")
    ]
    diff = control_plane.kubectl(
        "diff", "-f", "-", input=yaml.safe_dump_all(applied), check=False
    )
    assert diff.returncode == 0, (
        f"kubectl diff found changes:\n{diff.stdout[-3000:]}{diff.stderr[-2000:]}"
    )


def delete_deployment(control_plane: Cluster, namespace: str) -> None:
    """Remove what a deploy to ``namespace`` left: its cluster-scoped issuer and RBAC, and the namespace."""
    control_plane.kubectl(
        "delete",
        "clusterissuers.cert-manager.io",
        f"{namespace}-acme",
        "--ignore-not-found",
        check=False,
    )
    control_plane.kubectl(
        "delete",
        "clusterrolebinding,clusterrole",
        f"tutor-eks-deployer-{namespace}",
        "--ignore-not-found",
        check=False,
    )
    control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
