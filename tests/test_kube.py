"""``tutoreks.kube``, the adapter over the official client, called in-process
against real servers on 127.0.0.1 (see ``tests/kubefakes.py``) and, for the
tests marked ``cluster``, the local control plane.

What the adapter adds to the client, as a user would notice it: the kubeconfig
is read as kubectl reads it (``proxy-url`` whatever ``NO_PROXY`` says,
``tls-server-name``, exec credential plugins whose token is renewed once for
concurrent reads, in-cluster credentials); a hanging plugin, a slow, huge,
garbage or absent server and a malformed kubeconfig are each a clear
:class:`~tutoreks.kube.KubeError` within a bound, naming the server or the file
and never a credential; only the client modules used are imported. The client's
own features (``HTTPS_PROXY``/``NO_PROXY``, TLS) are the client's to test.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import typing as t
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.conftest import Cluster
from tests.kubefakes import (
    LOOPBACK,
    ConnectProxy,
    FakeApiServer,
    Pki,
    RawTLSServer,
    secret,
    write_kubeconfig,
)
from tutoreks import kube
from tutoreks.kube import SECRETS, KubeError

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "openedx-dev"
TOKEN = "planted-token-3b1f"  # a credential: never in a message
MYSQL_ROOT = secret(NAMESPACE, "mysql-root", {"MYSQL_ROOT_PASSWORD": "pw$1"})
PROXY_VARIABLES = [
    f"{name}_proxy".upper() if upper else f"{name}_proxy"
    for name in ("https", "http", "all", "no")
    for upper in (False, True)
]


@pytest.fixture(autouse=True)
def fresh_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No proxy variable, no in-cluster variable, no ~/.kube/config, and a new
    client per test (the adapter caches one per process and KUBECONFIG)."""
    for name in [
        *PROXY_VARIABLES,
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    Client.made = None
    yield
    Client.made = None


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


def use_kubeconfig(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(path))


def token_kubeconfig(
    tmp_path: Path,
    server: str,
    pki: Pki,
    *,
    cluster: dict[str, t.Any] | None = None,
) -> Path:
    return write_kubeconfig(
        tmp_path / "kubeconfig",
        server,
        ca_data=pki.ca_data,
        user={"token": TOKEN},
        cluster=cluster,
    )


class Client:
    """One client per test, made on first use (a command's context does the same)."""

    made: kube.Kube | None = None
    lock = threading.Lock()


def client() -> kube.Kube:
    with Client.lock:
        if Client.made is None:
            Client.made = kube.new_client()
        return Client.made


def read_mysql_root() -> dict[str, t.Any] | None:
    return client().get(SECRETS, "mysql-root", NAMESPACE)


def decoded(obj: dict[str, t.Any] | None) -> dict[str, str]:
    assert obj is not None
    return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}


def raises_kube_error(call: t.Callable[[], object]) -> tuple[KubeError, float]:
    """The KubeError ``call`` raises and how long it took; never a credential."""
    start = time.monotonic()
    with pytest.raises(KubeError) as caught:
        call()
    elapsed = time.monotonic() - start
    assert TOKEN not in str(caught.value)
    return caught.value, elapsed


# --- 1, 2: proxies ----------------------------------------------------------------


def test_proxy_url_goes_through_the_connect_proxy(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``proxy-url`` in the cluster entry: the Secret is read through a tunnel of
    the proxy, not directly."""
    with (
        FakeApiServer(pki, secrets=[MYSQL_ROOT], accept=TOKEN.__eq__) as server,
        ConnectProxy() as proxy,
    ):
        path = token_kubeconfig(
            tmp_path, server.url, pki, cluster={"proxy-url": proxy.url}
        )
        use_kubeconfig(monkeypatch, path)
        assert decoded(read_mysql_root()) == {"MYSQL_ROOT_PASSWORD": "pw$1"}
        assert proxy.tunnels == [f"{LOOPBACK}:{server.port}"]
        assert server.tokens() == [TOKEN]


def test_proxy_url_applies_even_to_hosts_in_no_proxy(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As with kubectl (client-go uses ``proxy-url`` whatever ``NO_PROXY`` says):
    a runner's ``NO_PROXY`` does not turn off the kubeconfig's explicit proxy."""
    with (
        FakeApiServer(pki, secrets=[MYSQL_ROOT]) as server,
        ConnectProxy() as proxy,
    ):
        path = token_kubeconfig(
            tmp_path, server.url, pki, cluster={"proxy-url": proxy.url}
        )
        use_kubeconfig(monkeypatch, path)
        monkeypatch.setenv("NO_PROXY", f"localhost,{LOOPBACK}")
        assert decoded(read_mysql_root())
        assert proxy.tunnels == [f"{LOOPBACK}:{server.port}"]


@pytest.mark.cluster
@pytest.mark.parametrize("how", ["proxy-url", "HTTPS_PROXY"])
def test_proxy_to_the_control_plane(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The real API server (admin client certificate) through the CONNECT proxy."""
    manifest = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "tutor-eks-proxy-test"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "via-proxy", "namespace": "tutor-eks-proxy-test"},
                "stringData": {"REDIS_HOST": "redis.example"},
            },
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    config = yaml.safe_load(cluster.kubeconfig.read_text(encoding="utf-8"))
    with ConnectProxy() as proxy:
        if how == "proxy-url":
            for entry in config["clusters"]:
                entry["cluster"]["proxy-url"] = proxy.url
        else:
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        use_kubeconfig(monkeypatch, path)
        obj = client().get(SECRETS, "via-proxy", "tutor-eks-proxy-test")
        assert decoded(obj) == {"REDIS_HOST": "redis.example"}
        port = cluster.server.rsplit(":", 1)[1]
        assert proxy.tunnels == [f"{LOOPBACK}:{port}"]


# --- 3: tls-server-name ---------------------------------------------------------


def test_tls_server_name_verifies_a_certificate_for_another_name(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API server's certificate names ``kubernetes.internal`` only; with
    ``tls-server-name`` the client sends that name (SNI) and verifies it."""
    with FakeApiServer(
        pki, dns=["kubernetes.internal"], ips=[], secrets=[MYSQL_ROOT]
    ) as server:
        path = token_kubeconfig(
            tmp_path,
            server.url,
            pki,
            cluster={"tls-server-name": "kubernetes.internal"},
        )
        use_kubeconfig(monkeypatch, path)
        assert decoded(read_mysql_root())
        assert [s.sni for s in server.seen] == ["kubernetes.internal"]


@pytest.mark.parametrize("case", ["name-mismatch", "unknown-ca"])
def test_a_certificate_that_does_not_verify_is_a_tls_error(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Without ``tls-server-name`` the server above fails verification (its
    certificate does not name 127.0.0.1), as does a server whose CA is not the
    kubeconfig's: one attempt (retrying cannot help), at once, a one-line message
    naming the server, TLS and the reason."""
    if case == "name-mismatch":
        served_by, dns, ips = pki, ["kubernetes.internal"], []
        reason = "IP address mismatch, certificate is not valid for '127.0.0.1'"
    else:
        served_by, dns, ips = Pki(tmp_path / "other-ca"), [], [LOOPBACK]
        reason = "unable to get local issuer certificate"
    with FakeApiServer(served_by, dns=dns, ips=ips, secrets=[MYSQL_ROOT]) as server:
        use_kubeconfig(monkeypatch, token_kubeconfig(tmp_path, server.url, pki))
        client()  # credentials loaded: only the request is timed
        error, elapsed = raises_kube_error(read_mysql_root)
        assert server.handshakes == 1
    message = str(error)
    assert message.startswith(
        f"Cannot reach the Kubernetes API server {server.url} "
    ), message
    assert (
        "for Secret openedx-dev/mysql-root: TLS: certificate verify failed: "
        f"{reason}" in message
    ), message
    assert message.endswith(f"{reason}.") or message.endswith(f"{reason}..")
    assert "\n" not in message
    assert elapsed < 0.5


# --- 4: exec credential plugins whose token expires -------------------------------

# The official client refreshes a token five minutes before its
# ``expirationTimestamp`` (kube_config.EXPIRY_SKEW_PREVENTION_DELAY): a first
# token valid for 300 + LIFETIME seconds is, for the client, valid LIFETIME
# seconds (less the timestamp's truncation to the second). The fake API server
# refuses it after LIFETIME seconds too.
LIFETIME = 4.0

PLUGIN = """\
#!{python}
import datetime, json, pathlib, time
runs = pathlib.Path({runs!r})
issued = time.time()
with runs.open("a") as f:
    f.write(f"{{issued}}\\n")
number = len(runs.read_text().splitlines())
time.sleep(0.3)  # aws eks get-token takes about a second
lifetime = 300 + {lifetime} if number == 1 else 3600
expiry = datetime.datetime.fromtimestamp(issued + lifetime, datetime.timezone.utc)
print(json.dumps({{
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {{
        "token": f"exec-token-{{number}}",
        "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }},
}}))
"""


def write_plugin(path: Path, source: str) -> Path:
    path.write_text(source, encoding="utf-8")
    path.chmod(0o755)
    return path


def exec_kubeconfig(tmp_path: Path, server: str, pki: Pki, command: Path) -> Path:
    return write_kubeconfig(
        tmp_path / "kubeconfig",
        server,
        ca_data=pki.ca_data,
        user={
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": str(command),
                "interactiveMode": "Never",
            }
        },
    )


class ExpiringPlugin:
    """The plugin of :data:`PLUGIN` (each run appends its issue time to ``runs``)
    and the fake server's view of its tokens: ``exec-token-1`` is valid for
    LIFETIME seconds after it was issued, any later one for an hour."""

    def __init__(self, tmp_path: Path) -> None:
        self.runs_file = tmp_path / "runs"
        self.command = write_plugin(
            tmp_path / "get-token",
            PLUGIN.format(
                python=sys.executable, runs=str(self.runs_file), lifetime=LIFETIME
            ),
        )

    def runs(self) -> int:
        if not self.runs_file.exists():
            return 0
        return len(self.runs_file.read_text().splitlines())

    def expires(self) -> float:
        return float(self.runs_file.read_text().split()[0]) + LIFETIME

    def wait_until_expired(self) -> None:
        time.sleep(max(0.0, self.expires() - time.time()) + 0.2)

    def __call__(self, token: str) -> bool:
        if token == "exec-token-1":
            return time.time() < self.expires()
        return token.startswith("exec-token-")


def test_exec_plugin_token_is_refreshed_when_it_expires(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = ExpiringPlugin(tmp_path)
    with FakeApiServer(pki, secrets=[MYSQL_ROOT], accept=plugin) as server:
        config = exec_kubeconfig(tmp_path, server.url, pki, plugin.command)
        use_kubeconfig(monkeypatch, config)
        assert decoded(read_mysql_root())
        assert decoded(read_mysql_root())
        assert plugin.runs() == 1  # still valid: not run again
        plugin.wait_until_expired()
        assert decoded(read_mysql_root())  # the old token would be a 401
        assert plugin.runs() == 2
        assert server.tokens() == ["exec-token-1"] * 2 + ["exec-token-2"]


def test_exec_plugin_runs_once_for_concurrent_reads(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight reads at once (as the Secrets are read) from a process that has no
    client yet run the plugin once; after the token expires, eight reads at once
    run it once more."""
    plugin = ExpiringPlugin(tmp_path)

    def eight_reads() -> None:
        barrier = threading.Barrier(8)

        def read(_: int) -> dict[str, str]:
            barrier.wait(5)
            return decoded(read_mysql_root())

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(read, range(8)))
        assert results == [{"MYSQL_ROOT_PASSWORD": "pw$1"}] * 8

    with FakeApiServer(pki, secrets=[MYSQL_ROOT], accept=plugin) as server:
        config = exec_kubeconfig(tmp_path, server.url, pki, plugin.command)
        use_kubeconfig(monkeypatch, config)
        eight_reads()
        assert plugin.runs() == 1
        plugin.wait_until_expired()
        eight_reads()
        assert plugin.runs() == 2
        assert sorted(server.tokens()) == ["exec-token-1"] * 8 + ["exec-token-2"] * 8


# --- 5: an exec plugin that hangs --------------------------------------------------

HANGING_PLUGIN = """\
#!{python}
import os, pathlib, subprocess, time
child = subprocess.Popen(["sleep", "300"])
pathlib.Path({pids!r}).write_text(f"{{os.getpid()}} {{child.pid}}")
time.sleep(300)
"""


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie, waiting to be reaped by init, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_hanging_exec_plugin_is_stopped_with_its_children(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kube, "EXEC_TIMEOUT", 1.0)
    pids = tmp_path / "pids"
    plugin = write_plugin(
        tmp_path / "get-token-hangs",
        HANGING_PLUGIN.format(python=sys.executable, pids=str(pids)),
    )
    with FakeApiServer(pki, secrets=[MYSQL_ROOT]) as server:
        use_kubeconfig(monkeypatch, exec_kubeconfig(tmp_path, server.url, pki, plugin))
        error, elapsed = raises_kube_error(read_mysql_root)
        assert server.seen == []  # no request without credentials
    message = str(error)
    assert str(plugin) in message and "1 s" in message, message
    assert elapsed < 1.0 + 2.5
    plugin_pid, child_pid = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 2
    while (alive(plugin_pid) or alive(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(plugin_pid), "the plugin still runs"
    assert not alive(child_pid), "the plugin's child still runs"


def test_failing_exec_plugin_is_an_error_naming_it(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin that exits 255 (``aws`` without credentials): its message, and no
    request is sent without credentials."""
    plugin = write_plugin(
        tmp_path / "aws",
        "#!/bin/sh\necho 'Unable to locate credentials.' >&2\nexit 255\n",
    )
    with FakeApiServer(pki, secrets=[MYSQL_ROOT]) as server:
        use_kubeconfig(monkeypatch, exec_kubeconfig(tmp_path, server.url, pki, plugin))
        error, _elapsed = raises_kube_error(read_mysql_root)
        assert server.seen == []
    message = str(error)
    assert f"exec credential plugin {str(plugin)!r} failed" in message, message
    assert "Unable to locate credentials." in message


# --- 6: in-cluster credentials ----------------------------------------------------

IN_CLUSTER = """\
import json, os, pathlib, sys
directory = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")
if os.environ.get("TUTOR_EKS_TEST_SA_DIR"):
    # fallback without a mount namespace: the client's two path constants
    from kubernetes.config import incluster_config
    directory = pathlib.Path(os.environ["TUTOR_EKS_TEST_SA_DIR"])
    incluster_config.SERVICE_TOKEN_FILENAME = str(directory / "token")
    incluster_config.SERVICE_CERT_FILENAME = str(directory / "ca.crt")
directory.mkdir(parents=True)
(directory / "token").write_text(os.environ.pop("TEST_TOKEN"))
(directory / "ca.crt").write_text(os.environ.pop("TEST_CA"))
from tutoreks import kube
client = kube.new_client()
obj = client.get(kube.SECRETS, sys.argv[1], sys.argv[2])
print(json.dumps({"source": client.source, "server": client.server, "secret": obj}))
"""

UNSHARE = ["unshare", "--mount", "--map-root-user"]


def mount_namespace_works() -> str:
    """'' when ``unshare --mount --map-root-user`` can mount a tmpfs here, else
    the command and its error."""
    if shutil.which("unshare") is None:
        return "unshare: command not found"
    probe = [*UNSHARE, "sh", "-c", "mount -t tmpfs tmpfs /var/run"]
    result = subprocess.run(probe, capture_output=True, text=True, check=False)
    if result.returncode:
        return f"{' '.join(probe)}: exit {result.returncode}: {result.stderr.strip()}"
    return ""


def run_in_cluster(
    tmp_path: Path, host: str, port: str, token: str, ca_pem: str, name: str, ns: str
) -> dict[str, t.Any]:
    """Run the adapter in a process that sees no kubeconfig and the in-cluster
    variables and files. The files go to /var/run/secrets/kubernetes.io/serviceaccount
    on a tmpfs mounted in a private mount namespace: nothing changes on this
    machine. Where unshare is refused, the fallback of :data:`IN_CLUSTER`."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", *PROXY_VARIABLES)
    }
    env.update(
        HOME=str(tmp_path / "home"),
        KUBERNETES_SERVICE_HOST=host,
        KUBERNETES_SERVICE_PORT=port,
        TEST_TOKEN=token,
        TEST_CA=ca_pem,
        PYTHONPATH=str(REPO),
    )
    python = [sys.executable, "-c", IN_CLUSTER, name, ns]
    refused = mount_namespace_works()
    if refused:
        env["TUTOR_EKS_TEST_SA_DIR"] = str(tmp_path / "serviceaccount")
        command = python
    else:
        mount = 'mount -t tmpfs -o size=1m tmpfs /var/run && exec "$@"'
        command = [*UNSHARE, "sh", "-c", mount, "sh", *python]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, t.Any] = json.loads(result.stdout)
    answer["refused"] = refused
    return answer


def test_in_cluster_credentials(tmp_path: Path, pki: Pki) -> None:
    """No kubeconfig, ``KUBERNETES_SERVICE_HOST``/``PORT`` set: the official client
    reads the ServiceAccount token and CA from
    ``/var/run/secrets/kubernetes.io/serviceaccount/`` (a tmpfs in a private mount
    namespace, made with ``unshare --mount --map-root-user``; only if that is
    refused, the two path constants of ``kubernetes.config.incluster_config``
    are pointed at a temporary directory instead)."""
    sa_token = "sa-token-for-in-cluster"
    before = os.path.exists("/var/run/secrets/kubernetes.io")
    with FakeApiServer(pki, secrets=[MYSQL_ROOT], accept=sa_token.__eq__) as server:
        answer = run_in_cluster(
            tmp_path,
            LOOPBACK,
            str(server.port),
            sa_token,
            pki.ca_pem.decode(),
            "mysql-root",
            NAMESPACE,
        )
        assert server.tokens() == [sa_token]
    if answer["refused"]:
        warnings.warn(
            f"in-cluster test without a mount namespace ({answer['refused']})",
            stacklevel=1,
        )
    assert answer["source"] == "in-cluster ServiceAccount"
    assert answer["server"] == server.url
    assert decoded(answer["secret"]) == {"MYSQL_ROOT_PASSWORD": "pw$1"}
    assert os.path.exists("/var/run/secrets/kubernetes.io") == before


@pytest.mark.cluster
def test_in_cluster_credentials_on_the_control_plane(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The same with a real ServiceAccount token, allowed to get one Secret."""
    ns = "kube-in-cluster-test"
    sa_config = cluster.service_account_kubeconfig(ns, "deployer")
    token = yaml.safe_load(sa_config.read_text())["users"][0]["user"]["token"]
    rbac = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "redis", "namespace": ns},
                "stringData": {"REDIS_HOST": "redis.example"},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-redis", "namespace": ns},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["secrets"],
                        "resourceNames": ["redis"],
                        "verbs": ["get"],
                    }
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "read-redis", "namespace": ns},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-redis",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "deployer", "namespace": ns}
                ],
            },
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(rbac))
    host, port = cluster.server.removeprefix("https://").rsplit(":", 1)
    answer = run_in_cluster(
        tmp_path, host, port, token, cluster.ca_file.read_text(), "redis", ns
    )
    assert answer["source"] == "in-cluster ServiceAccount"
    assert decoded(answer["secret"]) == {"REDIS_HOST": "redis.example"}


# --- 7: bounded waits -------------------------------------------------------------


def drip(what: str) -> t.Callable[[ssl.SSLSocket, threading.Event], None]:
    """An answer written one byte every two seconds: from its status line on
    (``headers``), or after complete headers (``body``)."""

    def serve(sock: ssl.SSLSocket, stop: threading.Event) -> None:
        body = json.dumps(MYSQL_ROOT).encode()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        if what == "body":
            sock.sendall(head)
            rest = body
        else:
            rest = head + body
        for i in range(len(rest)):
            if stop.wait(0 if i == 0 else 2.0):
                return
            sock.sendall(rest[i : i + 1])

    return serve


@pytest.mark.parametrize("what", ["headers", "body"])
def test_an_answer_dripping_one_byte_every_two_seconds_is_bounded(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    monkeypatch.setattr(kube, "REQUEST_DEADLINE", 3.0)
    with RawTLSServer(pki, drip(what)) as server:
        use_kubeconfig(monkeypatch, token_kubeconfig(tmp_path, server.url, pki))
        client()
        error, elapsed = raises_kube_error(read_mysql_root)
    message = str(error)
    assert server.url in message and "Secret openedx-dev/mysql-root" in message
    assert "3 s" in message, message
    assert elapsed < 3.0 + 1.0, f"{elapsed:.1f} s"


def test_many_secrets_read_over_a_few_connections_in_order(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 Secrets, four requests in flight: four TLS handshakes, one GET per
    name, the answers in the order asked, None for the ones that do not exist."""
    names = [f"s-{i:02d}" for i in range(40)]
    present = [secret(NAMESPACE, n, {"V": n}) for n in names if not n.endswith("7")]
    with FakeApiServer(pki, secrets=present) as server:
        use_kubeconfig(monkeypatch, token_kubeconfig(tmp_path, server.url, pki))
        answers = client().get_each(SECRETS, names, NAMESPACE, connections=4)
    assert [a and decoded(a)["V"] for a in answers] == [
        None if n.endswith("7") else n for n in names
    ]
    assert server.handshakes == 4
    assert sorted(s.path.rsplit("/", 1)[1] for s in server.seen) == names


def test_many_secrets_from_a_dripping_server_are_bounded_by_one_deadline(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight Secrets over two connections, every answer dripping: one deadline
    for all of them (not one per request), the error names the first one asked."""
    monkeypatch.setattr(kube, "REQUEST_DEADLINE", 3.0)
    names = [f"s-{i}" for i in range(8)]
    with RawTLSServer(pki, drip("headers")) as server:
        use_kubeconfig(monkeypatch, token_kubeconfig(tmp_path, server.url, pki))
        client()
        error, elapsed = raises_kube_error(
            lambda: client().get_each(SECRETS, names, NAMESPACE, connections=2)
        )
        assert len(server.connections) == 2  # the others were never sent
    assert "Secret openedx-dev/s-0" in str(error) and "3 s" in str(error), error
    assert elapsed < 3.0 + 1.0, f"{elapsed:.1f} s"


HUGE = 300 * 1024 * 1024


def test_a_300_mb_answer_is_refused_at_max_body(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused once MAX_BODY is read: the rest is neither read nor kept (the
    server could send far less than 300 MB; Python's peak allocations stay
    within a few MAX_BODY, the process's peak RSS grows by less than 100 MB)."""
    sent = [0]

    def serve(sock: ssl.SSLSocket, stop: threading.Event) -> None:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {HUGE}\r\n\r\n".encode()
        )
        chunk = b'{"data": "' + b"A" * (1024 * 1024 - 10)
        sock.settimeout(3)
        while sent[0] < HUGE and not stop.is_set():
            sock.sendall(chunk)
            sent[0] += len(chunk)

    with RawTLSServer(pki, serve) as server:
        use_kubeconfig(monkeypatch, token_kubeconfig(tmp_path, server.url, pki))
        client()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        try:
            error, elapsed = raises_kube_error(read_mysql_root)
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        rss_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        assert len(server.connections) == 1  # not retried
    message = str(error)
    assert server.url in message and "larger than 8 MiB" in message, message
    assert peak < 3 * kube.MAX_BODY, f"peak {peak / 2**20:.0f} MiB"
    assert rss_growth_kib < 100 * 1024
    assert sent[0] < 100 * 1024 * 1024
    assert elapsed < 10


@pytest.mark.parametrize(
    ("answer", "expected", "attempts"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\n"
            b"<html>login</html>",
            "answered Secret openedx-dev/mysql-root with something that is not a "
            "JSON object",
            1,
        ),
        (
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            "for Secret openedx-dev/mysql-root: ('Connection aborted.', BadStatusLine(",
            kube.ATTEMPTS,
        ),
    ],
    ids=["html", "not-http"],
)
def test_a_garbage_answer_is_a_clear_error(
    tmp_path: Path,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    answer: bytes,
    expected: str,
    attempts: int,
) -> None:
    """An HTML page (a captive portal, a load balancer's login page) is refused at
    once; an answer that is not HTTP is retried like a broken connection."""

    def serve(sock: ssl.SSLSocket, stop: threading.Event) -> None:
        sock.sendall(answer)

    with RawTLSServer(pki, serve) as server:
        use_kubeconfig(monkeypatch, token_kubeconfig(tmp_path, server.url, pki))
        error, elapsed = raises_kube_error(read_mysql_root)
        assert len(server.connections) == attempts
    message = str(error)
    assert server.url in message and expected in message, message
    assert "Traceback" not in message
    assert elapsed < 5


def test_connection_refused_is_a_clear_error_after_the_retries(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as reserved:
        reserved.bind((LOOPBACK, 0))  # bound, not listening: connection refused
        url = f"https://{LOOPBACK}:{reserved.getsockname()[1]}"
        use_kubeconfig(monkeypatch, token_kubeconfig(tmp_path, url, pki))
        error, elapsed = raises_kube_error(read_mysql_root)
    message = str(error)
    assert message == (
        f"Cannot reach the Kubernetes API server {url} (kubeconfig "
        f"{tmp_path / 'kubeconfig'}, context 'test') for Secret openedx-dev/mysql-root: "
        f"connection refused (after {kube.ATTEMPTS} attempts at most, within 30 s)."
    )
    assert elapsed < 5


# --- 8: malformed kubeconfigs ------------------------------------------------------


MALFORMED = "has no 'user' mapping"


def malformed(
    tmp_path: Path, case: str, server: str, pki: Pki
) -> tuple[Path, list[str]]:
    """A kubeconfig broken in one way, and what its error must say."""
    path = tmp_path / "kubeconfig"
    token_user = {"token": TOKEN}
    if case == "exec-env-without-value":
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": "aws",
                "args": ["eks", "get-token", "--cluster-name", "prod"],
                "env": [
                    {"name": "AWS_SECRET_ACCESS_KEY", "value": TOKEN},
                    {"name": "AWS_PROFILE"},
                ],
            }
        }
        write_kubeconfig(path, server, ca_data=pki.ca_data, user=user)
        return path, ["user 'test': exec env[1] needs a name and a value"]
    if case == "user-is-a-string":
        write_kubeconfig(path, server, ca_data=pki.ca_data, user=TOKEN)
        return path, [MALFORMED, "kubectl config view"]
    if case == "token-beside-user":
        write_kubeconfig(path, server, ca_data=pki.ca_data, user=token_user)
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        config["users"] = [{"name": "test", "token": TOKEN}]  # "user:" forgotten
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path, [MALFORMED]
    if case == "context-is-a-string":
        write_kubeconfig(
            path, server, ca_data=pki.ca_data, user=token_user, context="test"
        )
        return path, ["context 'test' has no 'context' mapping", "kubectl config view"]
    if case == "non-numeric-port":
        bad = f"https://{LOOPBACK}:64four3"
        write_kubeconfig(path, bad, ca_data=pki.ca_data, user=token_user)
        return path, [f"cluster 'test': server {bad!r} is not a valid URL"]
    if case == "missing-ca-file":
        ca = tmp_path / "certs" / "absent-ca.crt"
        write_kubeconfig(
            path, server, user=token_user, cluster={"certificate-authority": str(ca)}
        )
        return path, [f"cluster 'test': certificate-authority {ca} does not exist"]
    assert case == "invalid-yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: v1
            clusters:
            - name: test
              cluster:
                server: {server}
                 certificate-authority-data: {pki.ca_data}
            """
        ),
        encoding="utf-8",
    )
    return path, [f"{path}:6:32: invalid YAML"]


@pytest.mark.parametrize(
    "case",
    [
        "exec-env-without-value",
        "user-is-a-string",
        "token-beside-user",
        "context-is-a-string",
        "non-numeric-port",
        "missing-ca-file",
        "invalid-yaml",
    ],
)
def test_a_malformed_kubeconfig_is_a_clear_error(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    with FakeApiServer(pki, secrets=[MYSQL_ROOT], accept=TOKEN.__eq__) as server:
        path, expected = malformed(tmp_path, case, server.url, pki)
        use_kubeconfig(monkeypatch, path)
        error, elapsed = raises_kube_error(read_mysql_root)
        assert server.seen == []  # refused before any request
    message = str(error)
    assert str(path) in message, message
    assert all(part in message for part in expected), message
    assert "Traceback" not in message
    assert elapsed < 2


# --- 9: only the client modules used are imported ---------------------------------

IMPORTS = """\
import json, sys
from tutoreks import kube
client = kube.new_client()
used = sorted(m for m in sys.modules if m.startswith("kubernetes"))
from kubernetes import client as tutors_client, config  # what Tutor's k8s commands do
print(json.dumps({"used": used, "api": tutors_client.BatchV1Api.__name__,
                  "loader": callable(config.load_kube_config)}))
"""


def test_only_the_client_modules_used_are_imported(tmp_path: Path, pki: Pki) -> None:
    """A client is made without the package's __init__ (every API and model);
    Tutor's own `from kubernetes import client, config` still gets all of it."""
    path = token_kubeconfig(tmp_path, f"https://{LOOPBACK}:1", pki)
    env = {**os.environ, "KUBECONFIG": str(path), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert not [m for m in answer["used"] if ".api." in m or ".models" in m]
    assert "kubernetes.config.kube_config" not in answer["used"]
    assert answer["api"] == "BatchV1Api" and answer["loader"] is True


def test_discovery_of_a_group_not_served_is_empty_and_asked_once(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group version the API server does not serve (the Gateway API without its
    CRDs) is no kind at all, not an error; a command asks about it once."""
    with FakeApiServer(pki) as server:
        use_kubeconfig(monkeypatch, token_kubeconfig(tmp_path, server.url, pki))
        for _ in range(3):
            assert client().api_resources("gateway.networking.k8s.io/v1") == ()
        asked = [s.path for s in server.seen]
    assert asked == ["/apis/gateway.networking.k8s.io/v1"], asked


def test_no_names_is_no_request_and_no_wait(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeApiServer(pki) as server:
        use_kubeconfig(monkeypatch, token_kubeconfig(tmp_path, server.url, pki))
        start = time.monotonic()
        assert client().get_each(SECRETS, [], NAMESPACE, connections=4) == []
        assert time.monotonic() - start < 1.0
    assert server.seen == []
