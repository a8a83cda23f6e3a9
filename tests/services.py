"""Real backing services on 127.0.0.1 for the tests: MariaDB and Redis from Debian
packages (installed by .ci/run), and moto's S3 server. Each runs on a free port with
its own data in a temporary folder, and stops at the end of the session."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
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
    password: str


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


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A MariaDB server with a root password, reachable over TCP on 127.0.0.1."""
    mariadbd = require("mariadbd")
    install = require("mariadb-install-db")
    client = require("mariadb")
    base = tmp_path_factory.mktemp("mariadb")
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
    port = free_port()
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
        ],
        stdout=subprocess.DEVNULL,
        stderr=(base / "error.log").open("wb"),
    )
    try:
        wait_for_port(port, process, "mariadbd")
        password = secrets.token_hex(12)
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
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A Redis server that requires a password, on 127.0.0.1."""
    binary = require("redis-server")
    base = tmp_path_factory.mktemp("redis")
    port, password = free_port(), secrets.token_hex(12)
    config = base / "redis.conf"
    config.write_text(
        f'port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave ""\nappendonly no\ndir {base}\n',
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [binary, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, process, "redis-server")
        yield Service("127.0.0.1", port, "default", password)
    finally:
        stop(process)


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
