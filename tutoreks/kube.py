"""A thin adapter over the official ``kubernetes`` client.

The client does the work: its ``Configuration`` (credentials, ``HTTPS_PROXY``/
``NO_PROXY``, TLS, ``retries``: connection errors, 429 and 5xx are retried by
urllib3 with backoff), its REST client (connection pool, proxies) and its exec
credential provider; ``kubeconfig.py`` reads the kubeconfig onto the
configuration. This module adds what a CI job needs on top, and nothing else:

- one client per command (``config/context.py`` holds it), so an exec credential
  plugin (``aws eks get-token``) runs once, and again only when its token expires;
- every request bounded in total (not only per read) and in size;
- errors that name the server, the verb, the resource and the namespace, never a
  value (:class:`KubeError`).

Only the client's modules used are imported, when the first client is made:
``import kubernetes`` would import every API, model and loader of the package.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import os
import shutil
import sys
import threading
import time
import typing as t

from . import kubeconfig
from .exceptions import EksError
from .resources import *  # noqa: F403 - the resource table, as before
from .resources import WORDS, GroupVersion, Resource, describe

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 8.0
#: A whole request, retries included, ends within this many seconds.
REQUEST_DEADLINE = 30.0
ATTEMPTS = 3
BACKOFF = 0.25
#: Larger answers are refused (a Secret is at most 1 MiB).
MAX_BODY = 8 * 1024 * 1024
EXEC_TIMEOUT = 30.0
#: An exec token is renewed this long before it expires (as the client does).
EXPIRY_SKEW = 300.0
CHUNK = 65536
RETRIED_STATUSES = (429, 500, 502, 503, 504)


class KubeError(EksError):
    """A request failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Kube:
    """Requests to one API server with the credentials kubectl would use."""

    def __init__(self, configuration: t.Any, rest: t.Any, source: str) -> None:
        self.configuration = configuration
        self.rest = rest
        self.server = str(configuration.host)
        #: "kubeconfig PATH, context NAME" or "in-cluster ServiceAccount".
        self.source = source
        #: Credentials are refreshed by one request at a time.
        self.auth_lock = threading.Lock()

    def get(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        deadline: float | None = None,
    ) -> dict[str, t.Any] | None:
        """The object, or None when it does not exist. ``deadline`` (a
        ``time.monotonic()`` value) bounds several requests together."""
        try:
            return self.request("GET", resource, namespace, name, deadline=deadline)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def list(
        self,
        resource: Resource,
        namespace: str | None,
        selector: str = "",
        fields: str = "",
    ) -> list[dict[str, t.Any]]:
        query = {"labelSelector": selector, "fieldSelector": fields}
        answer = self.request("LIST", resource, namespace, None, query=query)
        return [item for item in answer.get("items") or [] if isinstance(item, dict)]

    def create(
        self, resource: Resource, namespace: str | None, body: dict[str, t.Any]
    ) -> dict[str, t.Any]:
        return self.request("POST", resource, namespace, None, body=body)

    def replace(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        body: dict[str, t.Any],
    ) -> dict[str, t.Any]:
        """PUT: with ``metadata.resourceVersion`` set, a concurrent change is a 409."""
        return self.request("PUT", resource, namespace, name, body=body)

    def delete(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
    ) -> None:
        """Delete, with its dependents in the background (a Job's pods too); with
        ``uid``, only that very object (a 409 if the name now holds another one)."""
        body: dict[str, t.Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        body["propagationPolicy"] = "Background"
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", resource, namespace, name, body=body)
        except KubeError as e:
            if e.status != 404:
                raise

    def api_resources(self, api_version: str) -> tuple[Resource, ...]:
        """The kinds an API group version serves (discovery; no subresources)."""
        group, _, version = api_version.rpartition("/")
        document = GroupVersion(group, version, "", "APIResourceList")
        answer = self.request("GET", document, None, None)
        return tuple(
            Resource(
                group,
                version,
                str(i["name"]),
                str(i["kind"]),
                bool(i.get("namespaced")),
            )
            for i in answer.get("resources") or []
            if isinstance(i, dict) and "/" not in str(i.get("name", "/"))
        )

    def request(
        self,
        verb: str,
        resource: Resource,
        namespace: str | None,
        name: str | None,
        *,
        body: dict[str, t.Any] | None = None,
        query: dict[str, str] | None = None,
        deadline: float | None = None,
    ) -> dict[str, t.Any]:
        """One request, retried by the client, ended at :data:`REQUEST_DEADLINE`
        (or ``deadline``). ``verb`` is the RBAC verb (LIST is a GET)."""
        what = describe(verb, resource, namespace, name)
        url = self.server + resource.path(namespace, name)
        params = "&".join(f"{k}={_quote(v)}" for k, v in (query or {}).items() if v)
        url += f"?{params}" if params else ""
        end = deadline or time.monotonic() + REQUEST_DEADLINE
        try:
            status, reason, payload = _within(
                end,
                lambda: self._exchange(
                    "GET" if verb == "LIST" else verb, url, body, end
                ),
            )
        except _Unreachable as e:
            raise KubeError(
                f"Cannot reach the Kubernetes API server {self.server} ({self.source}) "
                f"for {what}: {e}."
            ) from None
        if status >= 400:
            raise self._refusal(
                status, reason, payload, verb, resource, namespace, what
            )
        if not isinstance(payload, dict):
            raise KubeError(
                f"The Kubernetes API server {self.server} answered {what} with "
                "something that is not a JSON object."
            )
        return payload

    def _exchange(
        self, method: str, url: str, body: t.Any, deadline: float
    ) -> tuple[int, str, t.Any]:
        import urllib3
        from kubernetes.client import exceptions

        headers = {"Accept": "application/json", "User-Agent": "tutor-contrib-eks"}
        headers.update(self._credentials())
        if body is not None:
            headers["Content-Type"] = "application/json"
        remaining = max(0.5, deadline - time.monotonic())
        timeout = (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))
        try:
            response = self.rest.request(
                method, url, headers=headers, body=body, _request_timeout=timeout
            ).response
        except (urllib3.exceptions.HTTPError, exceptions.ApiException) as e:
            reason = _reason(e)
            if not reason.startswith("TLS"):  # retrying cannot help TLS: not retried
                reason += f" (after {ATTEMPTS} attempts at most, within {REQUEST_DEADLINE:g} s)"
            raise _Unreachable(reason) from None
        try:
            data = _read_body(response, deadline)
        finally:
            response.release_conn()
        try:
            payload = json.loads(data) if data else None
        except ValueError:
            payload = None
        return int(response.status), str(response.reason or ""), payload

    def _credentials(self) -> dict[str, str]:
        """The authorization header, the exec plugin run first when its token
        expired (one thread at a time)."""
        with self.auth_lock:
            settings = self.configuration.auth_settings().values()
        return {s["key"]: s["value"] for s in settings if s.get("value")}

    def _refusal(
        self,
        status: int,
        reason: str,
        payload: t.Any,
        verb: str,
        resource: Resource,
        namespace: str | None,
        what: str,
    ) -> KubeError:
        message = ""
        if isinstance(payload, dict):
            message = str(payload.get("message") or "")
            reason = str(payload.get("reason") or reason)
        detail = message or reason
        if status == 401:
            text = (
                f"The Kubernetes API server {self.server} refused the credentials of "
                f"{self.source} ({what}): {detail}"
            )
        elif status == 403:
            text = (
                f"Not allowed to {WORDS.get(verb, verb.lower())} {what} (verb "
                f"{verb.lower()}, resource {resource.display()}"
                f"{', namespace ' + namespace if namespace else ''}) on {self.server}: "
                f"{detail}. Grant it with the Role of `tutor eks rbac`."
            )
        else:
            text = f"{what} failed on {self.server}: HTTP {status} {detail}"
        return KubeError(text, status, reason)


class _Unreachable(Exception):
    pass


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _within(deadline: float, call: t.Callable[[], t.Any]) -> t.Any:
    """``call()``, or :class:`_Unreachable` at ``deadline``. The client's timeouts
    are per read: a server sending one byte every few seconds would hold the call
    for ever. On timeout the call's (daemon) thread is left to end on its own."""
    outcome: list[tuple[bool, t.Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as e:  # re-raised in the caller's thread
            outcome.append((False, e))

    worker = threading.Thread(target=run, name="tutor-eks-kube", daemon=True)
    worker.start()
    worker.join(max(0.5, deadline - time.monotonic()))
    if not outcome:
        raise _Unreachable(f"no complete answer within {REQUEST_DEADLINE:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _read_body(response: t.Any, deadline: float) -> bytes:
    """The answer's body, read before ``deadline`` and at most :data:`MAX_BODY`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read1(CHUNK):
        size += len(chunk)
        if size > MAX_BODY:
            raise _Unreachable(f"the answer is larger than {MAX_BODY // 2**20} MiB")
        if time.monotonic() > deadline:
            raise _Unreachable(f"the answer did not end within {REQUEST_DEADLINE:g} s")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(error: BaseException) -> str:
    """One line saying why no answer came: the innermost reason urllib3 gives."""
    while not isinstance(getattr(error, "reason", ""), (str, type(None))):
        error = getattr(error, "reason")  # noqa: B009  # MaxRetryError -> NewConnectionError, SSLError ...
    text = str(getattr(error, "reason", None) or error)
    if "[SSL" in text or "certificate verify failed" in text.lower():
        found = text[text.find("]") + 1 :].split(" (_ssl.c")[0].strip()
        return f"TLS: {found}"
    if "refused" in text.lower():
        return "connection refused"
    return "timed out" if "timed out" in text.lower() else text.splitlines()[-1]


# --- the client --------------------------------------------------------------------


def new_client() -> Kube:
    """A client for the current ``KUBECONFIG`` (or in-cluster credentials); the
    command's context keeps it (``config/context.py``)."""
    configuration_module, rest, _exceptions = _client_modules()
    configuration = configuration_module.Configuration()
    files = kubeconfig.paths()
    if files:
        try:
            target = kubeconfig.load(configuration, files)
        except kubeconfig.KubeconfigError as e:
            raise KubeError(str(e)) from None
        if target.exec_config is not None:
            _use_exec_plugin(configuration, target)
        source = target.source
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        source = _load_in_cluster(configuration)
    else:
        raise KubeError(
            "No Kubernetes credentials: no kubeconfig at "
            f"{os.environ.get('KUBECONFIG') or kubeconfig.DEFAULT} and not running in "
            "a cluster. In CI, write the kubeconfig first (`aws eks update-kubeconfig`)."
        )
    configuration.retries = _retries()
    return Kube(configuration, rest.RESTClientObject(configuration), source)


def _retries() -> t.Any:
    """Connection errors, 429 and 5xx, retried with backoff; never a TLS error
    (retrying cannot help) nor a create (it may have been done)."""
    from urllib3.util.retry import Retry

    return Retry(
        total=ATTEMPTS - 1,
        other=0,
        backoff_factor=BACKOFF,
        status_forcelist=RETRIED_STATUSES,
        raise_on_status=False,
    )


def _use_exec_plugin(configuration: t.Any, target: kubeconfig.Target) -> None:
    """The client's ``ExecProvider`` runs the plugin (under coreutils ``timeout``:
    a plugin hanging longer than :data:`EXEC_TIMEOUT` is stopped with its
    children); its token is renewed before it expires."""
    from kubernetes.config import exec_provider

    class Node(dict[str, t.Any]):  # what ExecProvider expects
        value = target.cluster

        def safe_get(self, key: str) -> t.Any:
            return self.get(key)

    provider = exec_provider.ExecProvider(
        Node(target.exec_config or {}), target.cwd, Node()
    )
    command = str(provider.args[0])
    if shutil.which("timeout"):
        provider.args[:0] = ["timeout", "--kill-after=2", f"{EXEC_TIMEOUT:g}"]
    expiry = [0.0]
    configuration.api_key["BearerToken"] = ""  # auth_settings() asks the hook then

    def refresh(configuration: t.Any) -> None:
        if configuration.api_key.get("BearerToken") and time.time() < expiry[0]:
            return
        status = _run_plugin(provider, command, target.source)
        configuration.api_key["BearerToken"] = str(status["token"])
        configuration.api_key_prefix["BearerToken"] = "Bearer"
        expiry[0] = _expiry(status.get("expirationTimestamp"))

    configuration.refresh_api_key_hook = refresh


def _run_plugin(provider: t.Any, command: str, source: str) -> dict[str, t.Any]:
    try:
        status = provider.run()
    except Exception as e:
        text = str(e)
        if "returned 124" in text:
            text = f"did not answer within {EXEC_TIMEOUT:g} s; it was stopped"
        raise KubeError(
            f"{source}: exec credential plugin {command!r} failed: {text}"
        ) from None
    if not isinstance(status, dict) or not status.get("token"):
        raise KubeError(
            f"{source}: exec credential plugin {command!r} returned no token."
        )
    return status


def _expiry(stamp: t.Any) -> float:
    """When a token must be renewed (never, without an expiry)."""
    if not stamp:
        return float("inf")
    when = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return when.timestamp() - EXPIRY_SKEW


def _load_in_cluster(configuration: t.Any) -> str:
    """The ServiceAccount's token and CA, with the client's own loader."""
    client = sys.modules["kubernetes.client"]
    setattr(client, "Configuration", type(configuration))  # noqa: B010 - what incluster_config imports
    from kubernetes.config import incluster_config

    try:
        incluster_config.InClusterConfigLoader(
            token_filename=incluster_config.SERVICE_TOKEN_FILENAME,
            cert_filename=incluster_config.SERVICE_CERT_FILENAME,
        ).load_and_set(configuration)
    except Exception as e:
        raise KubeError(f"in-cluster ServiceAccount credentials: {e}") from None
    return "in-cluster ServiceAccount"


def _client_modules() -> tuple[t.Any, t.Any, t.Any]:
    """The client's ``configuration``, ``rest`` and ``exceptions`` modules. The
    packages above them are registered first as modules that run their own
    ``__init__`` on first use of anything else (Tutor's ``tutor k8s`` uses
    ``kubernetes.client`` whole): their ``__init__`` imports every API and model."""
    if "kubernetes.client.rest" not in sys.modules:
        for name in (
            "kubernetes",
            "kubernetes.client",
            "kubernetes.config",
            "kubernetes.utils",
        ):
            if name not in sys.modules:
                _lazy_package(name)
    return tuple(  # type: ignore[return-value]
        importlib.import_module(f"kubernetes.client.{name}")
        for name in ("configuration", "rest", "exceptions")
    )


def _lazy_package(name: str) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise KubeError(f"The Kubernetes client is not installed ({name}).")
    module = importlib.util.module_from_spec(spec)

    def complete(attribute: str) -> t.Any:
        del module.__dict__["__getattr__"]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return getattr(module, attribute)

    setattr(module, "__getattr__", complete)  # noqa: B010
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
