"""The ``cluster`` session fixture: a real Kubernetes control plane on 127.0.0.1.

The control plane is the one of ``cluster/up.sh`` (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler built from Go modules, plus kwok for one
fake node whose pods run and whose Job pods succeed, all run by kwokctl's binary
runtime; images tagged ``-crashloop``, ``-pullfail`` or ``-unready`` fail, see
``cluster/kwok-stages.yaml``). See ``cluster/up.sh``.

Lifecycle (the choice made here):

* If the control plane of this checkout already answers ``/readyz`` when the
  session starts (``make cluster-up`` was run), it is used and left running.
  ``cluster/up.sh`` is still run once: it is idempotent and repairs a component
  that died (a second or two when everything is healthy).
* Otherwise the fixture runs ``bash cluster/up.sh`` (the very first run on a
  machine builds the binaries, see ``cluster/build.sh``) and runs
  ``bash cluster/down.sh`` at the end of the session, so a test run leaves no
  process behind. Set ``TUTOR_EKS_KEEP_CLUSTER=1`` to keep it running anyway.

Everything listens on 127.0.0.1 only, on ports of this checkout's own (see
``cluster/up.sh``); ``Cluster.server`` is the apiserver URL, from
``.cluster/kubeconfig``.

Using it from other test directories: this conftest only serves ``tests/cluster/``.
Elsewhere, import the fixture into a conftest above those tests, e.g.
``tests/conftest.py``::

    from tests.cluster.conftest import Cluster, cluster  # noqa: F401

(``tests/`` and ``tests/cluster/`` are packages). Do not name this module in
``pytest_plugins``: pytest also loads it as a conftest and refuses to register
it twice. Imported several times, the fixture still makes
one control plane per session (see ``_session``). Tests needing it should carry
``pytest.mark.cluster``.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPTS = REPO_ROOT / "cluster"
STATE_DIR = REPO_ROOT / ".cluster"

#: Kubernetes version pinned in cluster/lib.sh (read from there, not repeated).
KUBE_VERSION: str = re.search(  # type: ignore[union-attr]
    r'^KUBE_VERSION="(v[0-9.]+)"', (CLUSTER_SCRIPTS / "lib.sh").read_text(), re.M
).group(1)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ClusterError(RuntimeError):
    """A control-plane script or kubectl call failed; the message has its output."""


def _run_script(script: str, *args: str, timeout: float | None) -> str:
    proc = subprocess.run(
        ["bash", str(CLUSTER_SCRIPTS / script), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise ClusterError(
            f"bash cluster/{script} {' '.join(args)} exited {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
        )
    return proc.stderr


def server_url() -> str:
    """The apiserver URL of this checkout's cluster (always https://127.0.0.1:PORT),
    from ``.cluster/kubeconfig``; empty before the first ``cluster/up.sh``."""
    kubeconfig = STATE_DIR / "kubeconfig"
    if kubeconfig.is_file():
        found = re.search(
            r"^\s*server: (https://127\.0\.0\.1:[0-9]+)$", kubeconfig.read_text(), re.M
        )
        if found:
            return found.group(1)
    return ""


def apiserver_ready(timeout: float = 2.0) -> bool:
    """True if this checkout's kube-apiserver answers /readyz (admin client cert)."""
    pki = STATE_DIR / "pki"
    ca, crt, key = pki / "ca.crt", pki / "admin.crt", pki / "admin.key"
    if not (server_url() and ca.is_file() and crt.is_file() and key.is_file()):
        return False
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(crt), str(key))
    try:
        url = f"{server_url()}/readyz"  # https://127.0.0.1:PORT only
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as r:  # noqa: S310
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@dataclass(frozen=True)
class Cluster:
    """Handle on the running control plane; every path is absolute."""

    kubeconfig: Path
    """Admin kubeconfig (client certificate in ``system:masters``, data embedded)."""
    bin_dir: Path
    """``.cluster/bin``: kubectl, kube-apiserver, ..., etcd, kwok, kwokctl."""
    server: str
    """``https://127.0.0.1:PORT``: each checkout's cluster has its own ports."""
    crds_dir: Path
    """cert-manager's ``deploy/crds`` (plain CRD YAML files)."""
    ca_file: Path
    """The cluster CA certificate (PEM): ``.cluster/pki/ca.crt``, kwokctl's CA."""
    version: str
    """The pinned Kubernetes version, e.g. ``v1.35.4``."""
    work_dir: Path
    """Scratch directory of this session (service-account kubeconfigs)."""

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """``os.environ`` with KUBECONFIG and PATH set for this cluster.

        ``kubectl`` (and ``tutor k8s ...``, which calls kubectl and the Python
        client) then use this cluster; pass ``kubeconfig`` to act as another
        identity, e.g. one from :meth:`service_account_kubeconfig`.
        """
        env = dict(os.environ)
        env["KUBECONFIG"] = str(kubeconfig or self.kubeconfig)
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])
        return env

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl ARGS`` against the cluster (admin unless ``kubeconfig``).

        With ``check`` a non-zero exit raises :class:`ClusterError` carrying
        kubectl's stderr; without it the caller inspects ``returncode``.
        """
        proc = subprocess.run(
            [str(self.kubectl_path), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(kubeconfig),
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ClusterError(
                f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def get_json(self, *args: str) -> Any:
        """``kubectl get ARGS -o json``, parsed."""
        import json

        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, duration: str = "2h"
    ) -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name``.

        Creates the namespace and the ServiceAccount if missing (no Role is
        bound: grant rights separately), asks the TokenRequest API for a token
        (``kubectl create token``) and writes a kubeconfig with that bearer
        token and the cluster CA.
        """
        for value in (namespace, name):
            if not _NAME.match(value):
                raise ValueError(f"not a Kubernetes name: {value!r}")
        for kind, obj_ns in (("namespace", None), ("serviceaccount", namespace)):
            obj = name if kind == "serviceaccount" else namespace
            ns_args = ["--namespace", obj_ns] if obj_ns else []
            manifest = self.kubectl(
                "create", kind, obj, *ns_args, "--dry-run=client", "-o", "yaml"
            ).stdout
            self.kubectl("apply", "-f", "-", input=manifest)
        token = self.kubectl(
            "create", "token", name, "--namespace", namespace, f"--duration={duration}"
        ).stdout.strip()
        if not token:
            raise ClusterError(f"empty token for serviceaccount {namespace}/{name}")
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        path = self.work_dir / f"sa-{namespace}-{name}.kubeconfig"
        path.write_text(
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- name: tutor-eks-local\n"
            "  cluster:\n"
            f"    server: {self.server}\n"
            f"    certificate-authority-data: {ca_data}\n"
            "users:\n"
            f"- name: {namespace}-{name}\n"
            "  user:\n"
            f"    token: {token}\n"
            "contexts:\n"
            "- name: tutor-eks-local\n"
            "  context:\n"
            "    cluster: tutor-eks-local\n"
            f"    user: {namespace}-{name}\n"
            f"    namespace: {namespace}\n"
            "current-context: tutor-eks-local\n"
        )
        path.chmod(0o600)
        return path

    def stop_apiserver(self) -> None:
        """Stop the kube-apiserver only (etcd and the rest keep running)."""
        _run_script("apiserver.sh", "stop", timeout=60)

    def start_apiserver(self) -> None:
        """Start the kube-apiserver again; returns once /readyz answers 200.

        The controller-manager, scheduler and kwok are restarted with it (see
        ``cluster/apiserver.sh``), so Deployments, Jobs and new namespaces work
        at once afterwards.
        """
        _run_script("apiserver.sh", "start", timeout=180)
        if not apiserver_ready():
            raise ClusterError("kube-apiserver started but /readyz does not answer")

    def apiserver_ready(self) -> bool:
        return apiserver_ready()


# One control plane per test session, even when this fixture is imported into
# several conftest files (each import is a separate fixture definition).
_session: dict[str, Any] = {"users": 0, "handle": None, "stop_at_end": False}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The local control plane, started by ``cluster/up.sh`` if not running."""
    if _session["handle"] is None:
        if shutil.which("bash") is None:
            pytest.fail("cluster fixture: bash is needed to run cluster/up.sh")
        was_running = apiserver_ready()
        try:
            # A cold machine builds the binaries first (tens of minutes, see
            # cluster/build.sh); a warm start takes seconds.
            _run_script("up.sh", timeout=None)
        except ClusterError as exc:
            pytest.fail(f"cluster fixture: {exc}", pytrace=False)
        _session["stop_at_end"] = (
            not was_running and os.environ.get("TUTOR_EKS_KEEP_CLUSTER") != "1"
        )
        _session["handle"] = Cluster(
            kubeconfig=STATE_DIR / "kubeconfig",
            bin_dir=STATE_DIR / "bin",
            server=server_url(),
            crds_dir=(STATE_DIR / "crds").resolve(),
            ca_file=STATE_DIR / "pki" / "ca.crt",
            version=KUBE_VERSION,
            work_dir=tmp_path_factory.mktemp("cluster"),
        )
    handle: Cluster = _session["handle"]
    _session["users"] += 1
    try:
        yield handle
    finally:
        _session["users"] -= 1
        if _session["users"] == 0:
            _session["handle"] = None
            if _session["stop_at_end"]:
                _run_script("down.sh", timeout=120)
