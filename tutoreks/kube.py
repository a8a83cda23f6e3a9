"""A thin adapter over the official ``kubernetes`` client.

The client does the work: kubeconfig (several files in ``KUBECONFIG``, contexts,
``proxy-url``, ``tls-server-name``, client certificates, tokens, exec credential
plugins with ``provideClusterInfo`` and a fresh token when one expires), in-cluster
ServiceAccount credentials, ``HTTPS_PROXY``/``NO_PROXY``, connection reuse. This
module adds what a CI job needs on top, and nothing else:

- one client per process, so an exec credential plugin (``aws eks get-token``)
  runs once, bounded in time, its process group killed when it hangs;
- every request bounded in total (not only per read) and in size, with a few
  retries on connection errors, 429 and 5xx;
- errors that name the server, the verb, the resource and the namespace, never a
  value (:class:`KubeError` and its subclasses).

``kubernetes`` is imported here, when the first request is made, never at plugin
import: every ``tutor`` command imports the plugin.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import threading
import time
import typing as t
from dataclasses import dataclass

from .exceptions import EksError

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 8.0
#: A whole request, retries included, ends within this many seconds.
REQUEST_DEADLINE = 30.0
ATTEMPTS = 3
BACKOFF = 0.25
#: Larger answers are refused (a Secret is at most 1 MiB).
MAX_BODY = 8 * 1024 * 1024
EXEC_TIMEOUT = 30.0
CHUNK = 65536


class KubeError(EksError):
    """A request failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Resource:
    """Where an object lives in the API, for URLs and messages."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        from urllib.parse import quote

        base = (
            f"/api/{self.version}"
            if not self.group
            else f"/apis/{self.group}/{self.version}"
        )
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        return base

    def display(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


SECRETS = Resource("", "v1", "secrets", "Secret")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
SERVICES = Resource("", "v1", "services", "Service")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
JOBS = Resource("batch", "v1", "jobs", "Job")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
AUTOSCALERS = Resource(
    "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"
)
DISRUPTION_BUDGETS = Resource(
    "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"
)
API_SERVICES = Resource(
    "apiregistration.k8s.io", "v1", "apiservices", "APIService", False
)
INGRESS_CLASSES = Resource(
    "networking.k8s.io", "v1", "ingressclasses", "IngressClass", False
)
CRDS = Resource(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    False,
)
CERTIFICATES = Resource("cert-manager.io", "v1", "certificates", "Certificate")


@dataclass(frozen=True)
class _GroupVersion(Resource):
    """The discovery document of one API group version (``/apis/GROUP/VERSION``)."""

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        if not self.group:
            return f"/api/{self.version}"
        return f"/apis/{self.group}/{self.version}"

    def display(self) -> str:
        return f"API {self.group + '/' if self.group else ''}{self.version}"


class Kube:
    """Requests to one API server with the credentials kubectl would use."""

    def __init__(self, api_client: t.Any, server: str, source: str) -> None:
        self.api_client = api_client
        self.server = server
        #: Credentials are refreshed by one request at a time (an exec plugin
        #: whose token expired runs once, not once per concurrent request).
        self.auth_lock = threading.Lock()
        #: "kubeconfig PATH, context NAME" or "in-cluster ServiceAccount".
        self.source = source

    # --- the verbs the plugin uses ------------------------------------------

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
        query = {"labelSelector": selector} if selector else {}
        if fields:
            query["fieldSelector"] = fields
        answer = self.request("LIST", resource, namespace, None, query=query or None)
        items = answer.get("items") or []
        return [item for item in items if isinstance(item, dict)]

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
        body: dict[str, t.Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
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
        answer = self.request(
            "GET", _GroupVersion(group, version, "", "APIResourceList"), None, None
        )
        return tuple(
            Resource(
                group,
                version,
                str(item["name"]),
                str(item["kind"]),
                bool(item.get("namespaced")),
            )
            for item in answer.get("resources") or []
            if isinstance(item, dict) and "/" not in str(item.get("name", "/"))
        )

    # --- one request ----------------------------------------------------------

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
        """Send one request; retries connection errors, 429 and 5xx within
        :data:`REQUEST_DEADLINE` (or ``deadline``). ``verb`` is the RBAC verb
        (LIST is a GET)."""
        what = describe(verb, resource, namespace, name)
        if deadline is None:
            deadline = time.monotonic() + REQUEST_DEADLINE
        last = ""
        tried = 0
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            if time.monotonic() >= deadline:
                break
            tried += 1
            try:
                status, reason, payload = self._send(
                    verb, resource.path(namespace, name), body, query, deadline
                )
            except _Unreachable as e:
                last = str(e)
                if e.final:
                    break
                continue
            if status == 429 or status >= 500:
                last = f"HTTP {status} {reason}"
                continue
            if status >= 400:
                raise self._refusal(
                    status, reason, payload, verb, resource, what, namespace
                )
            if not isinstance(payload, dict):
                raise KubeError(
                    f"The Kubernetes API server {self.server} answered {what} with "
                    "something that is not a JSON object."
                )
            return payload
        raise KubeError(
            f"Cannot reach the Kubernetes API server {self.server} ({self.source}) "
            f"for {what}: {last or 'no answer'} (after {tried} attempt"
            f"{'s' if tried != 1 else ''}, at most {REQUEST_DEADLINE:g} s)."
        )

    def _refusal(
        self,
        status: int,
        reason: str,
        payload: t.Any,
        verb: str,
        resource: Resource,
        what: str,
        namespace: str | None,
    ) -> KubeError:
        message = ""
        if isinstance(payload, dict):
            message = str(payload.get("message") or "")
            reason = str(payload.get("reason") or reason)
        if status == 401:
            text = (
                f"The Kubernetes API server {self.server} refused the credentials of "
                f"{self.source} ({what}): {message or reason}"
            )
        elif status == 403:
            text = (
                f"Not allowed to {_WORDS.get(verb, verb.lower())} {what} (verb "
                f"{verb.lower()}, resource {resource.display()}"
                f"{', namespace ' + namespace if namespace else ''}) on {self.server}: "
                f"{message or reason}. Grant it with the Role of `tutor eks rbac`."
            )
        else:
            text = f"{what} failed on {self.server}: HTTP {status} {message or reason}"
        return KubeError(text, status, reason)

    def _send(
        self,
        verb: str,
        path: str,
        body: dict[str, t.Any] | None,
        query: dict[str, str] | None,
        deadline: float,
    ) -> tuple[int, str, t.Any]:
        import urllib3

        method = "GET" if verb == "LIST" else verb
        headers = {"Accept": "application/json", "User-Agent": "tutor-contrib-eks"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        remaining = max(0.5, deadline - time.monotonic())
        try:
            with self.auth_lock:
                _method, url, header_params, serialized, _post = (
                    self.api_client.param_serialize(
                        method=method,
                        resource_path=path,
                        query_params=list((query or {}).items()),
                        header_params=headers,
                        body=body,
                        auth_settings=["BearerToken"],
                    )
                )

            def exchange() -> tuple[t.Any, bytes]:
                response = self.api_client.call_api(
                    method,
                    url,
                    header_params=header_params,
                    body=serialized,
                    _request_timeout=(
                        min(CONNECT_TIMEOUT, remaining),
                        min(READ_TIMEOUT, remaining),
                    ),
                ).response
                try:
                    return response, _read_body(response, deadline)
                finally:
                    response.release_conn()

            response, data = _within(deadline, exchange)
        except urllib3.exceptions.HTTPError as e:
            raise _Unreachable(_describe(e), final=_is_tls_error(e)) from e
        except _ExecFailed as e:
            raise KubeError(f"{self.source}: {_scrub(str(e))}") from e
        except Exception as e:
            if type(e).__name__ == "ConfigException":
                raise KubeError(f"{self.source}: {_scrub(str(e))}") from e
            if type(e).__name__ == "ApiException" and getattr(e, "status", 0) == 0:
                # The client turns urllib3's SSLError into this ("SSLError\n...").
                raise _Unreachable(_describe(e), final=_is_tls_error(e)) from e
            raise
        try:
            payload = json.loads(data) if data else None
        except ValueError:
            payload = None
        return int(response.status), str(response.reason or ""), payload


class _Unreachable(Exception):
    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


def _within(deadline: float, call: t.Callable[[], t.Any]) -> t.Any:
    """``call()``, or :class:`_Unreachable` at ``deadline``. The client's timeouts
    are per read: a server sending its status line one byte every few seconds
    would hold the call for ever. On timeout the call's (daemon) thread is left
    blocked on its socket until the server stops or a read times out."""
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
        raise _Unreachable(
            f"no complete answer within {REQUEST_DEADLINE:g} s", final=True
        )
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _read_body(response: t.Any, deadline: float) -> bytes:
    """The answer's body, read before ``deadline`` and at most :data:`MAX_BODY`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise _Unreachable(f"the answer did not end within {REQUEST_DEADLINE:g} s")
        chunk = response.read1(CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            raise _Unreachable(
                f"the answer is larger than {MAX_BODY // (1024 * 1024)} MiB", final=True
            )
        chunks.append(chunk)


_WORDS = {
    "GET": "read",
    "LIST": "list",
    "POST": "create",
    "PUT": "update",
    "DELETE": "delete",
}


def describe(
    verb: str, resource: Resource, namespace: str | None, name: str | None
) -> str:
    """``Secret openedx-prod/mysql-root``: the object of a request, for messages."""
    if name is None:
        where = f" in namespace {namespace}" if namespace else ""
        return f"{resource.display()}{where}"
    target = f"{namespace}/{name}" if namespace else name
    return f"{resource.kind} {target}"


def _describe(error: BaseException) -> str:
    text = str(getattr(error, "reason", None) or error)
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return "timed out"
    if "connection refused" in lowered:
        return "connection refused"
    if "[SSL" in text or "certificate verify failed" in lowered:
        # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address
        # mismatch, ... (_ssl.c:1006)", possibly inside urllib3's wrapping
        found = re.search(r"\[SSL[^\]]*\] ?(.*?)(?: \(_ssl\.c:\d+\).*)?$", text, re.M)
        return f"TLS: {found.group(1) if found else text.splitlines()[-1]}"
    return text.splitlines()[-1] if text else type(error).__name__


def _is_tls_error(error: BaseException) -> bool:
    return "certificate" in str(getattr(error, "reason", None) or error).lower()


def _scrub(message: str) -> str:
    """The client names a kubeconfig entry by the ``str()`` of its whole mapping
    (``path/{'name': ..., 'user': {'token': ...}}/user/...``): keep only its place."""
    return re.sub(r"\{.*\}", "{...}", message, flags=re.S)


# --- credentials, once per process ------------------------------------------------


_CLIENT_LOCK = threading.Lock()


def client() -> Kube:
    """The process's client for the current ``KUBECONFIG`` (or in-cluster)."""
    with _CLIENT_LOCK:  # concurrent first calls would each run an exec plugin
        return _client(os.environ.get("KUBECONFIG", ""))


@functools.lru_cache(maxsize=4)
def _client(kubeconfig: str) -> Kube:
    from kubernetes import client as k8s_client

    configuration = k8s_client.Configuration()
    paths = [p for p in kubeconfig.split(os.pathsep) if p] or [
        os.path.expanduser("~/.kube/config")
    ]
    existing = [p for p in paths if os.path.exists(p)]
    if existing:
        source = _load_kubeconfig(configuration, existing)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        source = _load_in_cluster(configuration)
    else:
        raise KubeError(
            f"No Kubernetes credentials: no kubeconfig at {kubeconfig or '~/.kube/config'} "
            "and not running in a cluster. In CI, write the kubeconfig first "
            "(e.g. `aws eks update-kubeconfig`)."
        )
    if getattr(configuration, "_proxy_from_env", True) is False:
        # The kubeconfig's proxy-url: kubectl uses it whatever NO_PROXY says.
        configuration.no_proxy = None
    configuration.retries = False
    return Kube(k8s_client.ApiClient(configuration), configuration.host, source)


def _load_kubeconfig(configuration: t.Any, paths: list[str]) -> str:
    import yaml
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    shown = os.pathsep.join(paths)
    _bound_exec_plugins()
    try:
        _contexts, active = k8s_config.list_kube_config_contexts(config_file=shown)
        k8s_config.load_kube_config(
            config_file=shown, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, _ExecFailed) as e:
        raise KubeError(f"kubeconfig {shown}: {_scrub(str(e))}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise KubeError(
            f"kubeconfig {getattr(mark, 'name', shown)}{where}: invalid YAML: "
            f"{getattr(e, 'problem', None) or type(e).__name__}"
        ) from e
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise KubeError(
            f"kubeconfig {shown}: malformed ({type(e).__name__}: {_scrub(str(e))}); "
            "`kubectl config view` shows what kubectl reads."
        ) from e
    except OSError as e:
        raise KubeError(
            f"kubeconfig {shown}: cannot read {e.filename or 'a file it names'}: "
            f"{e.strerror}"
        ) from e
    name = active.get("name", "?") if isinstance(active, dict) else "?"
    return f"kubeconfig {shown}, context {name!r}"


def _load_in_cluster(configuration: t.Any) -> str:
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except ConfigException as e:
        raise KubeError(f"in-cluster ServiceAccount credentials: {e}") from e
    return "in-cluster ServiceAccount"


class _ExecFailed(BaseException):
    """An exec credential plugin failed, hung or is misconfigured. Not an
    ``Exception``: the client's ``KubeConfigLoader._load_from_exec_plugin`` catches
    every Exception, only logs it and sends the request without credentials."""


def _bound_exec_plugins() -> None:
    """Exec credential plugins run in their own session, bounded by
    :data:`EXEC_TIMEOUT`; on timeout their whole process group is killed.
    (The client's exec provider waits for the plugin without a limit.)
    Their failures reach the caller as :class:`_ExecFailed`."""
    from kubernetes.config import exec_provider, kube_config

    if not isinstance(getattr(exec_provider, "subprocess", None), _BoundedSubprocess):
        setattr(exec_provider, "subprocess", _BoundedSubprocess())  # noqa: B010
    provider = getattr(kube_config, "ExecProvider")  # noqa: B009
    if not getattr(provider, "tutor_eks_reports", False):
        setattr(kube_config, "ExecProvider", _reporting(provider))  # noqa: B010


def _reporting(base: type) -> type:
    """The client's ExecProvider, raising :class:`_ExecFailed` on any failure."""

    class ReportingExecProvider(base):  # type: ignore[misc]
        tutor_eks_reports = True

        def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
            try:
                super().__init__(*args, **kwargs)
            except Exception as e:
                raise _ExecFailed(f"exec credential plugin: {e}") from e

        def run(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
            try:
                return super().run(*args, **kwargs)
            except Exception as e:
                command = self.args[0] if self.args else "?"
                raise _ExecFailed(
                    f"exec credential plugin {command!r} failed: {e}"
                ) from e

    return ReportingExecProvider


class _BoundedPopen(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, args: t.Any, **kwargs: t.Any) -> None:
        kwargs["start_new_session"] = True
        kwargs["stdin"] = subprocess.DEVNULL
        self.command = str(args[0] if isinstance(args, (list, tuple)) else args)
        super().__init__(args, **kwargs)

    def communicate(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return super().communicate(timeout=EXEC_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            super().communicate()
            raise _ExecFailed(
                f"exec credential plugin {self.command!r} did not answer within "
                f"{EXEC_TIMEOUT:g} s; it was stopped"
            ) from e


class _BoundedSubprocess:
    """The ``subprocess`` module as exec_provider sees it, with a bounded Popen."""

    Popen = _BoundedPopen

    def __getattr__(self, name: str) -> t.Any:
        return getattr(subprocess, name)
