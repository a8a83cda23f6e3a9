"""Real backing services on 127.0.0.1 for the tests: MariaDB and Redis from Debian
packages (installed by .ci/run), and moto's S3 server. Each runs on a free port with
its own data in a temporary folder, and stops at the end of the session.

The TLS variants (``redis_tls``, ``mariadb_tls``) present a server certificate of a
test CA (``tls_ca``) made with the ``openssl`` command line; ``other_ca`` is an
unrelated CA, to show verification failing."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
import typing as t
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int,
    process: subprocess.Popen[bytes],
    what: str,
    timeout: float = 60,
    log: Path | None = None,
) -> None:
    """Wait until ``process`` accepts TCP connections on ``port``; if it exits
    first, the error holds the end of its ``log``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            raise RuntimeError(f"{what} exited with {process.returncode}\n{tail}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Service:
    host: str
    port: int
    username: str
    #: Not in the repr: a failing test's report shows its fixtures.
    password: str = field(repr=False)


def require(binary: str) -> str:
    path = shutil.which(binary) or next(
        (
            str(p)
            for p in (Path("/usr/sbin") / binary, Path("/usr/bin") / binary)
            if p.exists()
        ),
        None,
    )
    if path is None:
        pytest.fail(
            f"{binary} is not installed (apt-get install mariadb-server redis-server; .ci/run does it)"
        )
    return path


@contextmanager
def running_mariadb(base: Path, options: Sequence[str] = ()) -> Iterator[Service]:
    """A MariaDB server with its data under ``base`` and a random root password;
    root may connect over TCP from 127.0.0.1. ``options``: more mariadbd options."""
    mariadbd = require("mariadbd")
    install = require("mariadb-install-db")
    client = require("mariadb")
    datadir, socket_path = base / "data", base / "mysqld.sock"
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--user=root",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    port, log = free_port(), base / "error.log"
    process = subprocess.Popen(
        [
            mariadbd,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={socket_path}",
            f"--pid-file={base / 'mysqld.pid'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--user=root",
            "--innodb-buffer-pool-size=32M",
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        wait_for_port(port, process, "mariadbd", log=log)
        password = secrets.token_hex(12)
        # Over the socket, which require_secure_transport counts as secure.
        sql = (
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';"
            f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}';"
            "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';"
        )
        subprocess.run(
            [client, "--no-defaults", f"--socket={socket_path}", "-u", "root"],
            input=sql.encode(),
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield Service("127.0.0.1", port, "root", password)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A MariaDB server with a root password, reachable over TCP on 127.0.0.1."""
    with running_mariadb(tmp_path_factory.mktemp("mariadb")) as service:
        yield service


@pytest.fixture(scope="session")
def mariadb_tls(
    tmp_path_factory: pytest.TempPathFactory, tls_ca: TlsFiles
) -> Iterator[Service]:
    """A MariaDB server that refuses plain connections (require_secure_transport)
    and presents ``tls_ca``'s server certificate; root password as ``mariadb``."""
    options = [
        f"--ssl-ca={tls_ca.ca}",
        f"--ssl-cert={tls_ca.cert}",
        f"--ssl-key={tls_ca.key}",
        "--require-secure-transport=ON",
    ]
    with running_mariadb(tmp_path_factory.mktemp("mariadb-tls"), options) as service:
        yield service


def redis_config(base: Path, password: str, listen: str) -> Path:
    """A redis.conf for a server with its files under ``base``, listening as
    ``listen`` says (``port N`` lines or TLS ones), that requires ``password``."""
    config = base / "redis.conf"
    config.write_text(
        f"{listen}\nbind 127.0.0.1\nrequirepass {password}\n"
        f'save ""\nappendonly no\ndir {base}\n',
        encoding="utf-8",
    )
    return config


@contextmanager
def running_redis(config: Path, port: int) -> Iterator[None]:
    log = config.parent / "redis.log"
    process = subprocess.Popen(
        [require("redis-server"), str(config)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process, "redis-server", log=log)
        yield
    finally:
        stop(process)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A Redis server that requires a password, on 127.0.0.1."""
    base = tmp_path_factory.mktemp("redis")
    port, password = free_port(), secrets.token_hex(12)
    with running_redis(redis_config(base, password, f"port {port}"), port):
        yield Service("127.0.0.1", port, "default", password)


@pytest.fixture(scope="session")
def redis_tls(
    tmp_path_factory: pytest.TempPathFactory, tls_ca: TlsFiles
) -> Iterator[Service]:
    """A Redis server on a TLS port only (``tls_ca``'s server certificate, no
    client certificates) that requires an AUTH token and no user name, as
    ElastiCache with in-transit encryption and an AUTH token does."""
    base = tmp_path_factory.mktemp("redis-tls")
    port, token = free_port(), secrets.token_hex(16)
    listen = (
        f"port 0\ntls-port {port}\ntls-cert-file {tls_ca.cert}\n"
        f"tls-key-file {tls_ca.key}\ntls-ca-cert-file {tls_ca.ca}\n"
        "tls-auth-clients no"
    )
    # A redis-server built without TLS exits on the tls-* lines (wait_for_port
    # then shows its log: "not supported").
    with running_redis(redis_config(base, token, listen), port):
        yield Service("127.0.0.1", port, "", token)


# --- a test CA -----------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A CA's certificate (``ca``), and a server certificate it signed with its
    key, for 127.0.0.1 and localhost (PEM files)."""

    ca: Path
    cert: Path
    key: Path


OPENSSL_CONFIG = """\
[req]
distinguished_name = name
prompt = no
[name]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def openssl(folder: Path, arguments: str) -> None:
    """Run ``openssl`` in ``folder`` (``arguments``: split on spaces)."""
    subprocess.run(
        [require("openssl"), *arguments.split()],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=60,
    )


def make_tls_files(folder: Path, name: str) -> TlsFiles:
    """A CA called ``name`` (no spaces) and a server certificate it signed, in
    ``folder`` (P-256 keys: quick to make; valid two days)."""
    (folder / "openssl.cnf").write_text(OPENSSL_CONFIG, encoding="utf-8")
    new = "-config openssl.cnf -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc"
    openssl(
        folder,
        f"req -x509 {new} -days 2 -extensions ca -subj /CN={name}"
        " -keyout ca.key -out ca.pem",
    )
    openssl(
        folder,
        f"req -new {new} -subj /CN=localhost -keyout server.key -out server.csr",
    )
    openssl(
        folder,
        "x509 -req -in server.csr -days 2 -CA ca.pem -CAkey ca.key"
        f" -set_serial 0x{secrets.token_hex(8)} -extfile openssl.cnf"
        " -extensions server -out server.pem",
    )
    return TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The test CA the TLS servers' certificates come from."""
    return make_tls_files(tmp_path_factory.mktemp("tls-ca"), "tutor-eks-test-CA")


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA unrelated to ``tls_ca``: its ``ca`` does not verify the servers."""
    return make_tls_files(tmp_path_factory.mktemp("other-ca"), "unrelated-test-CA")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1: the endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "moto S3 server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def s3_client(endpoint: str) -> t.Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
