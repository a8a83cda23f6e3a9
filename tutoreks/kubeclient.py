"""The one module that imports the official ``kubernetes`` client (and urllib3).

Only the client modules used are imported: its ``configuration``, ``rest`` and
``exceptions`` modules and, for an exec credential plugin, ``exec_provider``
(``import kubernetes`` would import every API, model and loader of the package:
see :func:`client_modules`).
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import os
import shutil
import sys
import time
import typing as t

from . import kube, kubeconfig


class NoAnswer(Exception):
    """The request got no HTTP answer; the message says why, in one line."""


def send(
    rest: t.Any,
    method: str,
    url: str,
    headers: dict[str, str],
    body: t.Any,
    timeout: tuple[float, float],
) -> t.Any:
    """The client's request; its urllib3 response, unread."""
    import urllib3
    from kubernetes.client import exceptions

    try:
        return rest.request(
            method, url, headers=headers, body=body, _request_timeout=timeout
        ).response
    except (urllib3.exceptions.HTTPError, exceptions.ApiException) as e:
        raise NoAnswer(_reason(e)) from None


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


def connect() -> tuple[t.Any, t.Any, str]:
    """The client's configuration and REST client for the current ``KUBECONFIG``
    (or in-cluster credentials), and where the credentials come from."""
    configuration_module, rest, _exceptions = client_modules()
    configuration = configuration_module.Configuration()
    files = kubeconfig.paths()
    if files:
        try:
            target = kubeconfig.load(configuration, files)
        except kubeconfig.KubeconfigError as e:
            raise kube.KubeError(str(e)) from None
        if target.exec_config is not None:
            _use_exec_plugin(configuration, target)
        source = target.source
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        source = _load_in_cluster(configuration)
    else:
        raise kube.KubeError(
            "No Kubernetes credentials: no kubeconfig at "
            f"{os.environ.get('KUBECONFIG') or kubeconfig.DEFAULT} and not running in "
            "a cluster. In CI, write the kubeconfig first (`aws eks update-kubeconfig`)."
        )
    configuration.retries = _retries()
    return configuration, rest.RESTClientObject(configuration), source


def _retries() -> t.Any:
    """Connection errors, 429 and 5xx, retried with backoff; never a TLS error
    (retrying cannot help) nor a create (it may have been done)."""
    from urllib3.util.retry import Retry

    return Retry(
        total=kube.ATTEMPTS - 1,
        other=0,
        backoff_factor=kube.BACKOFF,
        status_forcelist=kube.RETRIED_STATUSES,
        raise_on_status=False,
    )


def _use_exec_plugin(configuration: t.Any, target: kubeconfig.Target) -> None:
    """The client's ``ExecProvider`` runs the plugin (under coreutils ``timeout``:
    a plugin hanging longer than :data:`kube.EXEC_TIMEOUT` is stopped with its
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
        provider.args[:0] = ["timeout", "--kill-after=2", f"{kube.EXEC_TIMEOUT:g}"]
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
            text = f"did not answer within {kube.EXEC_TIMEOUT:g} s; it was stopped"
        raise kube.KubeError(
            f"{source}: exec credential plugin {command!r} failed: {text}"
        ) from None
    if not isinstance(status, dict) or not status.get("token"):
        raise kube.KubeError(
            f"{source}: exec credential plugin {command!r} returned no token."
        )
    return status


def _expiry(stamp: t.Any) -> float:
    """When a token must be renewed (never, without an expiry)."""
    if not stamp:
        return float("inf")
    when = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return when.timestamp() - kube.EXPIRY_SKEW


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
        raise kube.KubeError(f"in-cluster ServiceAccount credentials: {e}") from None
    return "in-cluster ServiceAccount"


def client_modules() -> tuple[t.Any, t.Any, t.Any]:
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
        raise kube.KubeError(f"The Kubernetes client is not installed ({name}).")
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
