"""Requests to the Kubernetes API, over the official ``kubernetes`` client.

The client does the work (``kubeclient.py``, the one module that imports it): its
``Configuration`` (credentials, ``HTTPS_PROXY``/``NO_PROXY``, TLS, ``retries``:
connection errors, 429 and 5xx are retried by urllib3 with backoff), its REST
client (connection pool, proxies) and its exec credential provider;
``kubeconfig.py`` reads the kubeconfig onto the configuration. This module adds
what a CI job needs on top, and nothing else:

- one client per command (``config/context.py`` holds it), so an exec credential
  plugin (``aws eks get-token``) runs once, and again only when its token expires;
- every request bounded in total (not only per read) and in size;
- errors that name the server, the verb, the resource and the namespace, never a
  value (:class:`KubeError`).

Nothing here imports the client: a command that reads no cluster does not.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import typing as t
from dataclasses import dataclass, field

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


#: Objects answered, in the order asked; None where one does not exist.
Answers = list[dict[str, t.Any] | None]


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
        #: Discovery answers by group version: asked once per command.
        self._served: dict[str, tuple[Resource, ...]] = {}

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
        return self.get_each(resource, [name], namespace, deadline=deadline)[0]

    def get_each(
        self,
        resource: Resource,
        names: t.Sequence[str],
        namespace: str | None,
        *,
        connections: int = 1,
        deadline: float | None = None,
    ) -> Answers:
        """Each named object (None where it does not exist), ``connections``
        requests in flight at once, all of them ended by one deadline."""
        calls = [
            _Call("GET", resource, namespace, name, missing=True) for name in names
        ]
        return self._run(calls, deadline, connections)

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
        """The kinds an API group version serves (discovery, once per client; no
        subresources); () when the API server does not serve the group version."""
        if api_version not in self._served:
            self._served[api_version] = self._discover(api_version)
        return self._served[api_version]

    def _discover(self, api_version: str) -> tuple[Resource, ...]:
        group, _, version = api_version.rpartition("/")
        document = GroupVersion(group, version, "", "APIResourceList")
        try:
            answer = self.request("GET", document, None, None)
        except KubeError as e:
            if e.status != 404:
                raise
            return ()
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
        call = _Call(verb, resource, namespace, name, body=body, query=query or {})
        return t.cast(dict[str, t.Any], self._run([call], deadline, 1)[0])

    def _run(
        self, calls: t.Sequence[_Call], deadline: float | None, workers: int
    ) -> Answers:
        """The calls' answers, made by ``workers`` threads (one connection each),
        ended at ``deadline`` or :data:`REQUEST_DEADLINE` from now."""
        end = deadline or time.monotonic() + REQUEST_DEADLINE
        try:
            return _within(
                end,
                [functools.partial(self._answer, call, end) for call in calls],
                workers,
            )
        except _Late as late:
            raise self._unreachable(
                calls[late.index], f"no complete answer within {REQUEST_DEADLINE:g} s"
            ) from None

    def _answer(self, call: _Call, deadline: float) -> dict[str, t.Any] | None:
        url = self.server + call.resource.path(call.namespace, call.name)
        params = "&".join(f"{k}={_quote(v)}" for k, v in call.query.items() if v)
        url += f"?{params}" if params else ""
        method = "GET" if call.verb == "LIST" else call.verb
        try:
            status, reason, payload = self._exchange(method, url, call.body, deadline)
        except _Unreachable as e:
            raise self._unreachable(call, str(e)) from None
        if status == 404 and call.missing:
            return None
        if status >= 400:
            raise self._refusal(status, reason, payload, call)
        if not isinstance(payload, dict):
            raise KubeError(
                f"The Kubernetes API server {self.server} answered {call.what} with "
                "something that is not a JSON object."
            )
        return payload

    def _unreachable(self, call: _Call, why: str) -> KubeError:
        return KubeError(
            f"Cannot reach the Kubernetes API server {self.server} ({self.source}) "
            f"for {call.what}: {why}."
        )

    def _exchange(
        self, method: str, url: str, body: t.Any, deadline: float
    ) -> tuple[int, str, t.Any]:
        headers = {"Accept": "application/json", "User-Agent": "tutor-contrib-eks"}
        headers.update(self._credentials())
        if body is not None:
            headers["Content-Type"] = "application/json"
        remaining = max(0.5, deadline - time.monotonic())
        timeout = (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))
        try:
            response = kubeclient.send(self.rest, method, url, headers, body, timeout)
        except kubeclient.NoAnswer as e:
            reason = str(e)
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
        self, status: int, reason: str, payload: t.Any, call: _Call
    ) -> KubeError:
        message = ""
        if isinstance(payload, dict):
            message = str(payload.get("message") or "")
            reason = str(payload.get("reason") or reason)
        detail = message or reason
        if status == 401:
            text = (
                f"The Kubernetes API server {self.server} refused the credentials of "
                f"{self.source} ({call.what}): {detail}"
            )
        elif status == 403:
            text = (
                f"Not allowed to {WORDS.get(call.verb, call.verb.lower())} {call.what} "
                f"(verb {call.verb.lower()}, resource {call.resource.display()}"
                f"{', namespace ' + call.namespace if call.namespace else ''}) on {self.server}: "
                f"{detail}. Grant it with the Role of `tutor eks rbac`."
            )
        else:
            text = f"{call.what} failed on {self.server}: HTTP {status} {detail}"
        return KubeError(text, status, reason)


class _Unreachable(Exception):
    pass


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


class _Late(Exception):
    """The call at ``index`` had no complete answer by the deadline."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


@dataclass(frozen=True)
class _Call:
    """One request to make: the RBAC verb (LIST is a GET), what and where."""

    verb: str
    resource: Resource
    namespace: str | None
    name: str | None
    body: dict[str, t.Any] | None = None
    query: dict[str, str] = field(default_factory=dict)
    #: A 404 answers None rather than an error.
    missing: bool = False

    @property
    def what(self) -> str:
        return describe(self.verb, self.resource, self.namespace, self.name)


def _within(
    deadline: float, calls: list[t.Callable[[], t.Any]], workers: int
) -> list[t.Any]:
    """Each call's result, the calls made by ``workers`` daemon threads, or
    :class:`_Late` at ``deadline``. The client's timeouts are per read: a server
    sending one byte every few seconds would hold a call for ever. The first
    failure in the calls' order is raised; at the deadline, threads still waiting
    are left to end on their own (they take no further call)."""
    if not calls:
        return []
    outcomes: dict[int, tuple[bool, t.Any]] = {}
    queue = iter(enumerate(calls))
    lock = threading.Lock()
    done = threading.Event()

    def work() -> None:
        while not done.is_set():
            with lock:
                item = next(queue, None)
            if item is None:
                return
            index, call = item
            try:
                outcome = (True, call())
            except BaseException as e:  # re-raised in the caller's thread
                outcome = (False, e)
            with lock:
                outcomes[index] = outcome
                if len(outcomes) == len(calls):
                    done.set()

    for _ in range(max(1, min(workers, len(calls)))):
        threading.Thread(target=work, name="tutor-eks-kube", daemon=True).start()
    done.wait(max(0.5, deadline - time.monotonic()))
    done.set()
    with lock:
        answered = dict(outcomes)
    results = []
    for index in range(len(calls)):
        if index not in answered:
            raise _Late(index)
        ok, value = answered[index]
        if not ok:
            raise value
        results.append(value)
    return results


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


def new_client() -> Kube:
    """A client for the current ``KUBECONFIG`` (or in-cluster credentials); the
    command's context keeps it (``config/context.py``)."""
    configuration, rest, source = kubeclient.connect()
    return Kube(configuration, rest, source)


from . import kubeclient  # noqa: E402 - it uses KubeError and the bounds above
