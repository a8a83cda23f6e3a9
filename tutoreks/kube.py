"""A small Kubernetes API client: kubeconfig or in-cluster credentials, GET only.

Why not the ``kubernetes`` package: importing it costs 200-400 ms, more than the
whole ``tutor config save`` it would serve, and every ``tutor`` command runs the
plugin's config hook. This module needs only the standard library and PyYAML
(already loaded by Tutor), and is imported only when Secrets are read.

Supported, as kubectl does: ``KUBECONFIG`` (several files, first one wins per
entry), ``~/.kube/config``, the current context or a named one, CA file or data,
``insecure-skip-tls-verify``, client certificates (file or data), bearer tokens
(inline or ``tokenFile``), exec credential plugins (``aws eks get-token``,
``client.authentication.k8s.io/v1`` and ``v1beta1``), and the in-cluster
ServiceAccount. Requests have connect and read timeouts and a bounded retry with
backoff for connection errors and 5xx answers.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass, field

import yaml

from .exceptions import EksError

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 8.0
ATTEMPTS = 3
BACKOFF = 0.25


class ApiError(EksError):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass
class Credentials:
    server: str
    source: str  # where these came from, for messages: "kubeconfig X, context Y"
    user: str  # kubeconfig user name or "serviceaccount", for messages
    ca_file: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None
    exec_config: dict[str, t.Any] | None = None
    _exec_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _exec_result: dict[str, t.Any] | None = field(default=None, repr=False)


def _read_yaml(path: str) -> dict[str, t.Any]:
    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise EksError(
            f"kubeconfig {path}{where}: invalid YAML: {getattr(e, 'problem', e)}"
        ) from e
    except OSError as e:
        raise EksError(f"kubeconfig {path}: cannot be read: {e.strerror}") from e
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise EksError(
            f"kubeconfig {path}: is not a kubeconfig (a mapping with clusters, users, contexts)"
        )
    return content


def kubeconfig_paths() -> list[str]:
    env = os.environ.get("KUBECONFIG")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    default = os.path.expanduser("~/.kube/config")
    return [default] if os.path.exists(default) else []


def load_credentials(context: str | None = None) -> Credentials:
    """Credentials as kubectl would use them: kubeconfig first, else in-cluster."""
    paths = [p for p in kubeconfig_paths() if os.path.exists(p)]
    if not paths and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_credentials()
    if not paths:
        wanted = os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise EksError(
            f"No Kubernetes credentials: no kubeconfig at {wanted} and not running in a "
            "cluster. In CI, write the kubeconfig first (e.g. `aws eks update-kubeconfig`)."
        )
    return kubeconfig_credentials(paths, context)


def in_cluster_credentials() -> Credentials:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    return Credentials(
        server=f"https://{host}:{port}",
        source="in-cluster ServiceAccount",
        user="serviceaccount",
        ca_file=os.path.join(IN_CLUSTER_DIR, "ca.crt"),
        token_file=os.path.join(IN_CLUSTER_DIR, "token"),
    )


def _named(
    config: dict[str, t.Any], kind: str, path: str
) -> dict[str, dict[str, t.Any]]:
    entries = config.get(kind) or []
    if not isinstance(entries, list):
        raise EksError(f"kubeconfig {path}: {kind} must be a list")
    result = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            result[entry["name"]] = entry.get(kind[:-1]) or {}
    return result


def kubeconfig_credentials(paths: list[str], context: str | None) -> Credentials:
    clusters: dict[str, tuple[str, dict[str, t.Any]]] = {}
    users: dict[str, tuple[str, dict[str, t.Any]]] = {}
    contexts: dict[str, tuple[str, dict[str, t.Any]]] = {}
    current = None
    for path in paths:
        config = _read_yaml(path)
        for store, kind in (
            (clusters, "clusters"),
            (users, "users"),
            (contexts, "contexts"),
        ):
            for entry_name, entry in _named(config, kind, path).items():
                store.setdefault(entry_name, (path, entry))
        if current is None and config.get("current-context"):
            current = str(config["current-context"])
    shown = os.pathsep.join(paths)
    name: str | None = context or current
    if not name:
        raise EksError(f"kubeconfig {shown}: no current-context is set")
    if name not in contexts:
        raise EksError(f"kubeconfig {shown}: context {name!r} does not exist")
    ctx = contexts[name][1]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if cluster_name not in clusters:
        raise EksError(
            f"kubeconfig {shown}: cluster {cluster_name!r} of context {name!r} does not exist"
        )
    cluster_path, cluster = clusters[cluster_name]
    user_path, user = users.get(user_name, ("", {})) if user_name else ("", {})
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise EksError(
            f"kubeconfig {cluster_path}: cluster {cluster_name!r} has no https:// server"
        )

    def rel(base: str, value: t.Any) -> str | None:
        if not value:
            return None
        return os.path.join(os.path.dirname(base), os.path.expanduser(str(value)))

    def data(value: t.Any, what: str) -> bytes | None:
        if not value:
            return None
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as e:
            raise EksError(f"kubeconfig {shown}: {what} is not base64") from e

    if user.get("auth-provider"):
        raise EksError(
            f"kubeconfig {user_path}: user {user_name!r} uses a legacy auth-provider; "
            "use an exec credential plugin (e.g. `aws eks get-token`) instead"
        )
    return Credentials(
        server=server.rstrip("/"),
        source=f"kubeconfig {shown}, context {name!r}",
        user=str(user_name or "(none)"),
        ca_file=rel(cluster_path, cluster.get("certificate-authority")),
        ca_data=data(
            cluster.get("certificate-authority-data"), "certificate-authority-data"
        ),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=rel(user_path, user.get("client-certificate")),
        key_file=rel(user_path, user.get("client-key")),
        cert_data=data(user.get("client-certificate-data"), "client-certificate-data"),
        key_data=data(user.get("client-key-data"), "client-key-data"),
        token=user.get("token"),
        token_file=rel(user_path, user.get("tokenFile")),
        exec_config=user.get("exec"),
    )


def run_exec_plugin(creds: Credentials) -> dict[str, t.Any]:
    """Run an exec credential plugin once per process; its ExecCredential status."""
    with creds._exec_lock:
        if creds._exec_result is not None:
            expiry = creds._exec_result.get("expirationTimestamp")
            if not expiry or expiry > time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30)
            ):
                return creds._exec_result
        spec = creds.exec_config or {}
        command = spec.get("command")
        if not command:
            raise EksError(
                f"{creds.source}: user {creds.user!r} has an exec section without a command"
            )
        env = dict(os.environ)
        for item in spec.get("env") or []:
            env[str(item["name"])] = str(item["value"])
        api_version = spec.get("apiVersion", "client.authentication.k8s.io/v1")
        env["KUBERNETES_EXEC_INFO"] = json.dumps(
            {
                "apiVersion": api_version,
                "kind": "ExecCredential",
                "spec": {"interactive": False},
            }
        )
        try:
            result = subprocess.run(
                [str(command), *[str(a) for a in spec.get("args") or []]],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError as e:
            hint = (
                f" ({spec['installHint'].strip()})" if spec.get("installHint") else ""
            )
            raise EksError(
                f"{creds.source}: exec credential plugin {command!r} not found{hint}"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise EksError(
                f"{creds.source}: exec credential plugin {command!r} timed out after 60 s"
            ) from e
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise EksError(
                f"{creds.source}: exec credential plugin {command!r} failed: {last}"
            )
        try:
            status = json.loads(result.stdout)["status"]
        except (ValueError, KeyError, TypeError) as e:
            raise EksError(
                f"{creds.source}: exec credential plugin {command!r} printed no ExecCredential"
            ) from e
        creds._exec_result = status
        return t.cast(dict[str, t.Any], status)


class Client:
    """GET requests to one API server, safe to share between threads."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> Client:
        return cls(load_credentials())

    def ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                self._context = self._make_context()
            return self._context

    def _make_context(self) -> ssl.SSLContext:
        creds = self.creds
        context = ssl.create_default_context(
            cafile=creds.ca_file,
            cadata=creds.ca_data.decode("ascii", "replace") if creds.ca_data else None,
        )
        if creds.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        cert_data, key_data = creds.cert_data, creds.key_data
        if creds.exec_config:
            status = run_exec_plugin(creds)
            if status.get("clientCertificateData"):
                cert_data = status["clientCertificateData"].encode()
                key_data = status.get("clientKeyData", "").encode()
        if creds.cert_file or cert_data:
            with tempfile.TemporaryDirectory(prefix="tutoreks-") as tmp:
                cert_file, key_file = creds.cert_file, creds.key_file
                if cert_data:
                    cert_file = os.path.join(tmp, "cert.pem")
                    _write_private(cert_file, cert_data)
                if key_data:
                    key_file = os.path.join(tmp, "key.pem")
                    _write_private(key_file, key_data)
                try:
                    context.load_cert_chain(str(cert_file), key_file)
                except (ssl.SSLError, OSError) as e:
                    raise EksError(
                        f"{creds.source}: the client certificate of user {creds.user!r} cannot be loaded: {e}"
                    ) from e
        return context

    def bearer_token(self) -> str | None:
        creds = self.creds
        if creds.exec_config:
            token = run_exec_plugin(creds).get("token")
            if token:
                return str(token)
        if creds.token:
            return str(creds.token)
        if creds.token_file:
            try:
                with open(creds.token_file, encoding="utf-8") as f:
                    return f.read().strip()
            except OSError as e:
                raise EksError(
                    f"{creds.source}: token file {creds.token_file} cannot be read: {e.strerror}"
                ) from e
        return None

    def get(self, path: str) -> dict[str, t.Any]:
        """GET ``path``; JSON answer. Retries connection errors and 5xx, then raises."""
        url = urllib.parse.urlsplit(self.creds.server)
        base = url.path.rstrip("/")
        last_error = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            try:
                status, reason, body = self._request(url, base + path)
            except (OSError, http.client.HTTPException) as e:
                last_error = _describe(e)
                if isinstance(e, ssl.SSLCertVerificationError):
                    break
                continue
            if status >= 500:
                last_error = f"HTTP {status} {reason}"
                continue
            payload = _json(body)
            if status >= 400:
                message = payload.get("message") if isinstance(payload, dict) else None
                raise ApiError(
                    status,
                    str(payload.get("reason", reason))
                    if isinstance(payload, dict)
                    else reason,
                    str(message or f"HTTP {status} {reason}"),
                )
            if not isinstance(payload, dict):
                raise EksError(
                    f"Kubernetes API server {self.creds.server} answered {path} with no JSON object"
                )
            return payload
        raise EksError(
            f"Cannot reach the Kubernetes API server {self.creds.server} ({self.creds.source}): "
            f"{last_error} (after {ATTEMPTS} attempts)"
        )

    def _request(
        self, url: urllib.parse.SplitResult, path: str
    ) -> tuple[int, str, bytes]:
        host = url.hostname or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        connection: http.client.HTTPConnection
        if url.scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=CONNECT_TIMEOUT, context=self.ssl_context()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT)
        headers = {"Accept": "application/json", "User-Agent": "tutor-contrib-eks"}
        token = self.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            connection.connect()
            if connection.sock is not None:
                connection.sock.settimeout(READ_TIMEOUT)
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, response.reason, response.read()
        finally:
            connection.close()


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _json(body: bytes) -> t.Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _describe(error: BaseException) -> str:
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({error.verify_message})"
    return str(error) or type(error).__name__
