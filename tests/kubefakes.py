"""Real servers on 127.0.0.1 for the tests of ``tutoreks.kube``.

- :class:`Pki`: a CA and server certificates, made with ``cryptography``;
- :class:`FakeApiServer`: a TLS HTTP server that answers ``GET`` of Secrets,
  checks bearer tokens and records each request (path, token, SNI name);
- :class:`RawTLSServer`: a TLS server whose answer the test writes itself
  (one byte every two seconds, 300 MB, garbage);
- :class:`ConnectProxy`: an HTTP ``CONNECT`` proxy that records its tunnels and
  opens them to 127.0.0.1 only;
- :func:`write_kubeconfig`: a kubeconfig for one cluster, user and context.

Every socket listens on and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import select
import socket
import socketserver
import ssl
import threading
import typing as t
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"


# --- certificates -------------------------------------------------------------


class Pki:
    """A CA (``ca_file``, ``ca_pem``) that issues server certificates."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, "tutor-eks test CA")]
        )
        now = datetime.datetime.now(datetime.timezone.utc)
        public = self._key.public_key()
        self._ca = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem = self._ca.public_bytes(serialization.Encoding.PEM)
        self.ca_file = directory / "ca.crt"
        self.ca_file.write_bytes(self.ca_pem)

    @property
    def ca_data(self) -> str:
        """``certificate-authority-data`` for a kubeconfig."""
        return base64.b64encode(self.ca_pem).decode()

    def issue(
        self, name: str, *, dns: Sequence[str] = (), ips: Sequence[str] = ()
    ) -> tuple[Path, Path]:
        """A server certificate for these names only: (certificate, key) files."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self._key.public_key()
                ),
                False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_file = self.directory / f"{name}.crt"
        key_file = self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file

    def server_context(
        self, name: str, *, dns: Sequence[str] = (), ips: Sequence[str] = (LOOPBACK,)
    ) -> ssl.SSLContext:
        cert_file, key_file = self.issue(name, dns=dns, ips=ips)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


# --- a fake API server ----------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request the fake API server received."""

    method: str
    path: str
    token: str
    sni: str | None


_SECRET_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets/([^/?]+)$")


def secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, t.Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _status(code: int, reason: str, message: str) -> dict[str, t.Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


class _TLSHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: FakeApiServer

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        """A client that drops the handshake (it does not trust the certificate)
        is part of some tests: no traceback on stderr."""


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TLSHTTPServer

    def setup(self) -> None:
        with self.server.owner.lock:
            self.server.owner.handshakes += 1
        self.request.settimeout(10)
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: t.Any) -> None:
        pass

    def _answer(self, code: int, body: dict[str, t.Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        owner = self.server.owner
        authorization = self.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            token = ""
        sni = getattr(self.request, "tutor_eks_sni", None)
        with owner.lock:
            owner.seen.append(Seen("GET", self.path, token, sni))
        if not owner.accept(token):
            self._answer(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        found = _SECRET_PATH.match(self.path.split("?", 1)[0])
        obj = owner.secrets.get(found.groups()) if found else None  # type: ignore[arg-type]
        if obj is None:
            what = found.group(2) if found else self.path
            self._answer(404, _status(404, "NotFound", f'secrets "{what}" not found'))
            return
        self._answer(200, obj)


def _remember_sni(sock: t.Any, name: str | None, _context: ssl.SSLContext) -> None:
    sock.tutor_eks_sni = name


class FakeApiServer:
    """A TLS API server on 127.0.0.1 serving ``secrets`` to accepted tokens.

    ``accept(token)`` decides whether a bearer token is valid (401 otherwise);
    ``seen`` lists every request with its token and the SNI name the client
    sent. The certificate is issued by ``pki`` for ``dns``/``ips`` only.
    """

    def __init__(
        self,
        pki: Pki,
        *,
        dns: Sequence[str] = (),
        ips: Sequence[str] = (LOOPBACK,),
        accept: Callable[[str], bool] | None = None,
        secrets: Sequence[dict[str, t.Any]] = (),
    ) -> None:
        context = pki.server_context("apiserver", dns=dns, ips=ips)
        context.sni_callback = _remember_sni
        self.accept: Callable[[str], bool] = accept or (lambda _token: True)
        self.secrets = {
            (s["metadata"]["namespace"], s["metadata"]["name"]): s for s in secrets
        }
        self.seen: list[Seen] = []
        #: TLS handshakes begun (connections), successful or not.
        self.handshakes = 0
        self.lock = threading.Lock()
        self._httpd = _TLSHTTPServer((LOOPBACK, 0), _ApiHandler)
        self._httpd.owner = self
        self._httpd.socket = context.wrap_socket(
            self._httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self._httpd.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def tokens(self) -> list[str]:
        with self.lock:
            return [s.token for s in self.seen]

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


# --- a TLS server whose answer the test writes ------------------------------------


class _QuietTCPServer(socketserver.ThreadingTCPServer):
    """A threaded TCP server that never blocks the test on close and reports
    nothing of a client that goes away."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        pass


class _RawServer(_QuietTCPServer):
    owner: RawTLSServer


class _RawHandler(socketserver.BaseRequestHandler):
    server: _RawServer

    def handle(self) -> None:
        owner = self.server.owner
        sock = owner.context.wrap_socket(self.request, server_side=True)
        sock.settimeout(10)
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                return
            request += chunk
        owner.connections.append(request.split(b"\r\n", 1)[0].decode())
        owner.serve(sock, owner.stop)


class RawTLSServer:
    """A TLS server on 127.0.0.1: after reading a request's headers it calls
    ``serve(socket, stop)``, which writes whatever answer the test wants and
    should return once ``stop`` is set. ``connections`` lists request lines."""

    def __init__(
        self, pki: Pki, serve: Callable[[ssl.SSLSocket, threading.Event], None]
    ) -> None:
        self.context = pki.server_context("raw")
        self.serve = serve
        self.stop = threading.Event()
        self.connections: list[str] = []
        self._server = _RawServer((LOOPBACK, 0), _RawHandler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self._server.server_address[1]}"

    def __enter__(self) -> RawTLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# --- a CONNECT proxy ----------------------------------------------------------------


class _ProxyServer(_QuietTCPServer):
    owner: ConnectProxy


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        owner = self.server.owner
        line = self.rfile.readline(8192).decode("latin-1").strip()
        while self.rfile.readline(8192).strip():
            pass  # headers
        method, _, rest = line.partition(" ")
        target = rest.split(" ", 1)[0]
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host != LOOPBACK or not port.isdigit():
            # Only tunnels to 127.0.0.1: this proxy never reaches anything else.
            with owner.lock:
                owner.refused.append(line)
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with owner.lock:
            owner.tunnels.append(target)
        try:
            upstream = socket.create_connection((LOOPBACK, int(port)), timeout=5)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        _pump(self.connection, upstream, owner.stop)


def _pump(a: socket.socket, b: socket.socket, stop: threading.Event) -> None:
    with b:
        sockets = [a, b]
        while not stop.is_set():
            readable, _, _ = select.select(sockets, [], [], 0.2)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 (``url``); ``tunnels`` lists the
    ``host:port`` of every tunnel it opened, ``refused`` what it refused."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.refused: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._server = _ProxyServer((LOOPBACK, 0), _ProxyHandler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# --- kubeconfig -------------------------------------------------------------------


def write_kubeconfig(
    path: Path,
    server: str,
    *,
    user: dict[str, t.Any] | str,
    ca_data: str | None = None,
    cluster: dict[str, t.Any] | None = None,
    context: dict[str, t.Any] | str | None = None,
) -> Path:
    """A kubeconfig with one cluster ``test``, one user ``test``, one context
    ``test`` (current). ``cluster`` adds keys to the cluster entry (``proxy-url``,
    ``tls-server-name``, ...); ``user`` and ``context`` are written as given."""
    entry: dict[str, t.Any] = {"server": server}
    if ca_data is not None:
        entry["certificate-authority-data"] = ca_data
    entry.update(cluster or {})
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": entry}],
        "users": [{"name": "test", "user": user}],
        "contexts": [
            {
                "name": "test",
                "context": context
                if context is not None
                else {"cluster": "test", "user": "test", "namespace": "default"},
            }
        ],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path
