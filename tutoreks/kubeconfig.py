"""The kubeconfig kubectl would use, read onto the client's ``Configuration``.

``KUBECONFIG``'s files (or ``~/.kube/config``) are merged as kubectl merges them:
the first file that names a cluster, user or context wins, and the first
``current-context`` set. The current context's cluster (``server``,
``certificate-authority[-data]``, ``insecure-skip-tls-verify``,
``tls-server-name``, ``proxy-url``) and user (``token``, ``tokenFile``,
``client-certificate[-data]``, ``client-key[-data]``, ``exec``) are set on the
configuration object given; relative paths are relative to the file that names
them. An ``exec`` credential plugin is returned to the caller, which runs it with
the client's own ``ExecProvider``. This replaces the client's ``kube_config``
module, whose import costs more than the rest of the client used here.

Every problem is a :class:`KubeconfigError` naming the file and the entry, never
a value from it.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import os
import shutil
import tempfile
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

import yaml

from .exceptions import EksError

DEFAULT = "~/.kube/config"
KINDS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


class KubeconfigError(EksError):
    pass


@dataclass
class Entry:
    """A named cluster, user or context and the file that defines it."""

    kind: str
    name: str
    body: dict[str, t.Any]
    path: str

    def where(self) -> str:
        return f"kubeconfig {self.path}: {self.kind} {self.name!r}"

    def file(self, key: str) -> str:
        """The path ``key`` names, relative to this entry's file."""
        value = os.path.expanduser(str(self.body[key]))
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), value)


@dataclass
class Target:
    """What :func:`load` found: where the credentials come from, for messages,
    and the exec credential plugin to run (None without one)."""

    source: str
    exec_config: dict[str, t.Any] | None = None
    cluster: dict[str, t.Any] | None = None
    cwd: str = ""


def paths() -> list[str]:
    """The kubeconfig files that exist: ``KUBECONFIG``'s, else ``~/.kube/config``."""
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [p for p in listed or [os.path.expanduser(DEFAULT)] if os.path.exists(p)]


def load(configuration: t.Any, files: list[str]) -> Target:
    """Set the current context's cluster and user on ``configuration``."""
    shown = os.pathsep.join(files)
    merged, current = _merge(files)
    if not current:
        raise KubeconfigError(f"kubeconfig {shown}: no current-context is set.")
    context = _find(merged, "context", str(current), shown)
    cluster = _find(merged, "cluster", str(context.body.get("cluster", "")), shown)
    user = _find(merged, "user", str(context.body.get("user", "")), shown)
    _set_cluster(configuration, cluster)
    exec_config = _set_user(configuration, user)
    return Target(
        f"kubeconfig {shown}, context {context.name!r}",
        exec_config,
        cluster.body if exec_config and exec_config.get("provideClusterInfo") else None,
        os.path.dirname(os.path.abspath(user.path)),
    )


def _merge(files: list[str]) -> tuple[dict[str, dict[str, Entry]], t.Any]:
    merged: dict[str, dict[str, Entry]] = {kind: {} for _, kind in KINDS}
    current = None
    for path in files:
        document = _read(path)
        current = current or document.get("current-context")
        for plural, kind in KINDS:
            for index, item in enumerate(document.get(plural) or []):
                entry = _entry(path, plural, kind, index, item)
                merged[kind].setdefault(entry.name, entry)
    return merged, current


def _read(path: str) -> dict[str, t.Any]:
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise KubeconfigError(
            f"kubeconfig {path}{where}: invalid YAML: {problem}"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise KubeconfigError(f"kubeconfig {path}: cannot be read: {e}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise KubeconfigError(f"kubeconfig {path}: not a mapping.")
    return document


def _entry(path: str, plural: str, kind: str, index: int, item: t.Any) -> Entry:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise KubeconfigError(f"kubeconfig {path}: {plural}[{index}] has no name.")
    body = item.get(kind)
    if not isinstance(body, dict):
        raise KubeconfigError(
            f"kubeconfig {path}: {kind} {item['name']!r} has no {kind!r} mapping "
            f"(`kubectl config view` shows what kubectl reads)."
        )
    return Entry(kind, item["name"], body, path)


def _find(
    merged: dict[str, dict[str, Entry]], kind: str, name: str, shown: str
) -> Entry:
    if name not in merged[kind]:
        raise KubeconfigError(f"kubeconfig {shown}: no {kind} named {name!r}.")
    return merged[kind][name]


def _set_cluster(configuration: t.Any, cluster: Entry) -> None:
    body = cluster.body
    server = str(body.get("server") or "")
    try:
        parts = urlsplit(server)
        valid = parts.scheme in ("https", "http") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        raise KubeconfigError(
            f"{cluster.where()}: server {server!r} is not a valid URL "
            "(https://host:port)."
        )
    configuration.host = server.rstrip("/")
    if "certificate-authority-data" in body:
        configuration.ca_cert_data = _decode(cluster, "certificate-authority-data")
    elif "certificate-authority" in body:
        configuration.ssl_ca_cert = _existing(cluster, "certificate-authority")
    configuration.verify_ssl = not body.get("insecure-skip-tls-verify", False)
    configuration.tls_server_name = body.get("tls-server-name") or None
    if body.get("proxy-url"):
        # As kubectl: the kubeconfig's proxy is used whatever NO_PROXY says.
        configuration.proxy = str(body["proxy-url"])
        configuration.no_proxy = None


def _set_user(configuration: t.Any, user: Entry) -> dict[str, t.Any] | None:
    body = user.body
    if "auth-provider" in body or "username" in body:
        raise KubeconfigError(
            f"{user.where()}: auth-provider and username/password are not "
            "supported; use a token, a client certificate or an exec plugin."
        )
    token = body.get("token")
    if "tokenFile" in body:
        with open(_existing(user, "tokenFile"), encoding="utf-8") as f:
            token = f.read().strip()
    if token:
        configuration.api_key["BearerToken"] = str(token)
        configuration.api_key_prefix["BearerToken"] = "Bearer"
    for key, attribute in (
        ("client-certificate", "cert_file"),
        ("client-key", "key_file"),
    ):
        if f"{key}-data" in body:
            setattr(configuration, attribute, _private_file(user, f"{key}-data"))
        elif key in body:
            setattr(configuration, attribute, _existing(user, key))
    return _exec_config(user)


def _exec_config(user: Entry) -> dict[str, t.Any] | None:
    config = user.body.get("exec")
    if config is None:
        return None
    where = f"{user.where()}: exec"
    if not isinstance(config, dict) or not config.get("command"):
        raise KubeconfigError(f"{where} has no command.")
    for index, item in enumerate(config.get("env") or []):
        if not isinstance(item, dict) or "name" not in item or "value" not in item:
            raise KubeconfigError(f"{where} env[{index}] needs a name and a value.")
    return config


def _decode(entry: Entry, key: str) -> str:
    try:
        return base64.b64decode(str(entry.body[key]), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise KubeconfigError(
            f"{entry.where()}: {key} is not base64 of a PEM file."
        ) from None


def _existing(entry: Entry, key: str) -> str:
    path = entry.file(key)
    if not os.path.isfile(path):
        raise KubeconfigError(f"{entry.where()}: {key} {path} does not exist.")
    return path


def _private_file(entry: Entry, key: str) -> str:
    """``key``'s data in a file only this user reads, removed when the process
    ends (TLS libraries read client certificates from files)."""
    directory = tempfile.mkdtemp(prefix="tutor-eks-kubeconfig-")
    atexit.register(shutil.rmtree, directory, True)
    path = os.path.join(directory, key)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(_decode(entry, key))
    return path
