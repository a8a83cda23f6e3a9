"""Layer 3 of the configuration: the values Tutor generated on an environment's
first deploy, kept in a Secret of its namespace (the *state*).

A CI job starts from an empty tutor root, where Tutor would generate new values
for every unique key (``ID``, which is in every Deployment's label selector,
``OPENEDX_SECRET_KEY``, ``JWT_RSA_PRIVATE_KEY``, passwords ...). The first deploy
stores them in the state Secret; every later one, from any root, reads them back.
The unique keys are Tutor's at run time (core's and every enabled plugin's
``CONFIG_UNIQUE``), so a plugin enabled later gets its keys kept too. A value the
operator provides (environment, Secret, ``TUTOR_<KEY>``) wins and is never copied
into the state.

Creating is create-or-read: two first deploys racing end with the values of the
one the API server accepted first, used by both. Adding keys is a PUT with the
read ``resourceVersion``, retried on conflict: never last-writer-wins.

The state also records the Tutor release and plugin version of the last
successful deploy, so that ``tutor k8s launch`` from an empty root runs Tutor's
upgrade steps when the release changed.
"""

from __future__ import annotations

import base64
import os
import re
import time
import typing as t
from dataclasses import dataclass, field

from .. import tutor_compat
from ..__about__ import __version__
from ..exceptions import EksError
from ..kube import SECRETS, Kube, KubeError
from . import masking, values
from .secrets import decode

if t.TYPE_CHECKING:
    from .context import Context

ANNOTATION = "tutor-contrib-eks/"
ENVIRONMENT_ANNOTATION = ANNOTATION + "environment"
TUTOR_VERSION_ANNOTATION = ANNOTATION + "tutor-version"
PLUGIN_VERSION_ANNOTATION = ANNOTATION + "plugin-version"
DEPLOYED_AT_ANNOTATION = ANNOTATION + "deployed-at"
#: The Redis key prefix of the last successful deploy (render/services.py).
REDIS_PREFIX_ANNOTATION = ANNOTATION + "redis-key-prefix"
LABELS = {
    "app.kubernetes.io/managed-by": "tutor-contrib-eks",
    "app.kubernetes.io/component": "state",
}
ATTEMPTS = 5
#: How a resolution's ``sources`` name a value that comes from the state.
SOURCE_PREFIX = "state Secret "


def is_source(source: str) -> bool:
    """Whether a resolution's source of a value is the state."""
    return source.startswith(SOURCE_PREFIX)


@dataclass
class State:
    """The state Secret of one environment, as read."""

    namespace: str
    name: str
    environment: str
    values: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    resource_version: str | None = None

    @property
    def exists(self) -> bool:
        return self.resource_version is not None

    @property
    def display(self) -> str:
        return f"Secret {self.namespace}/{self.name}"

    @property
    def last_tutor_version(self) -> str | None:
        return self.annotations.get(TUTOR_VERSION_ANNOTATION) or None

    def provided(self, sources: dict[str, str]) -> list[str]:
        """The keys whose value reaches Tutor from this state (``sources``: where
        each value of a resolution came from)."""
        return [key for key in self.values if is_source(sources.get(key, ""))]


# --- reading ---------------------------------------------------------------------------


def read(ctx: Context, namespace: str, name: str, environment: str) -> State:
    """The state Secret, read once per command until it is written (an empty
    state if it is absent). Its values are masked by whoever uses them."""
    key = (namespace, name)
    if key not in ctx.states:
        ctx.states[key] = fetch(ctx.kube(), namespace, name, environment)
    return ctx.states[key]


def fetch(kube: Kube, namespace: str, name: str, environment: str) -> State:
    where = f"state Secret {namespace}/{name}"
    try:
        secret = kube.get(SECRETS, name, namespace)
    except KubeError as e:
        raise EksError(f"Cannot read the {where}: {e}") from e
    if secret is None:
        return State(namespace, name, environment)
    return parse(secret, namespace, name, environment)


def parse(
    secret: dict[str, t.Any], namespace: str, name: str, environment: str
) -> State:
    """A state Secret as read from the API; refuses one that is not this
    environment's or that cannot be decoded, naming it and the key."""
    where = f"state Secret {namespace}/{name}"
    metadata = secret.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    owner = annotations.get(ENVIRONMENT_ANNOTATION)
    if owner != environment:
        raise EksError(
            f"The {where} belongs to environment {owner!r}, not {environment!r}: two "
            "environments share a namespace and a state Secret. Give this one its own "
            "K8S_NAMESPACE, or its own EKS_STATE_SECRET."
            if owner
            else f"The {where} was not written by tutor-contrib-eks (no "
            f"{ENVIRONMENT_ANNOTATION} annotation): choose another EKS_STATE_SECRET."
        )
    data = secret.get("data") or {}
    if not isinstance(data, dict):
        raise EksError(f"The {where} is corrupt: its data is not a mapping.")
    values = {
        str(key): decode(encoded, f"{where} key {key}")
        for key, encoded in sorted(data.items())
    }
    return State(
        namespace,
        name,
        environment,
        values=values,
        annotations={str(k): str(v) for k, v in annotations.items()},
        resource_version=str(metadata.get("resourceVersion") or "") or None,
    )


# --- what the state may hold ----------------------------------------------------------

#: ``ID`` is in every label selector: a label value.
_ID = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_RELEASE = re.compile(r"^(\d{1,4})\.(\d{1,4})\.(\d{1,4})$")
MAX_VALUE = 16 * 1024


def check(
    state: State, unique_keys: t.Collection[str], other_settings: t.Collection[str]
) -> list[str]:
    """The state supplies Tutor's generated settings and nothing else. A key that
    is another setting (``other_settings``: Tutor's and the plugins' defaults; or
    one that steers the deploy), a value no generated setting can have, or a
    recorded Tutor release this plugin cannot have written is refused, naming the
    Secret and the key or annotation, never the value. The keys no loaded plugin
    knows (a disabled plugin's) are returned: they are not read."""
    unknown = []
    for key, value in state.values.items():
        where = f"The {state.display} key {key}"
        if (
            key not in unique_keys
            and key not in other_settings
            and not values.is_steering(key)
        ):
            unknown.append(key)
            continue
        if key not in unique_keys:
            raise EksError(
                f"{where} is not one of the settings Tutor generates (the unique "
                "settings of Tutor and of the enabled plugins): the state never "
                f"supplies other settings. Remove the key (kubectl -n {state.namespace} "
                f"edit secret {state.name}); nothing was written or applied."
            )
        check_value(key, value, where)
    check_release(state)
    return unknown


def check_release(state: State) -> None:
    """The recorded release decides which of Tutor's upgrade steps ``launch`` runs
    (they delete Deployments): only this release or one major release before it."""
    version = state.annotations.get(TUTOR_VERSION_ANNOTATION)
    if version is None:
        return
    current = _release(tutor_compat.tutor_version())
    recorded = _release(version)
    if (
        recorded is None
        or current is None
        or not (current[0] - 1 <= recorded[0] and recorded <= current)
    ):
        raise EksError(
            f"The {state.display} annotation {TUTOR_VERSION_ANNOTATION} is not a Tutor "
            f"release from {current[0] - 1 if current else '?'}.0.0 up to the installed "
            f"{tutor_compat.tutor_version()}: Tutor's upgrade steps from it cannot be "
            "run. Remove the annotation (kubectl -n "
            f"{state.namespace} annotate secret {state.name} {TUTOR_VERSION_ANNOTATION}-) "
            "after checking what runs in the namespace; nothing was written or applied."
        )


def _release(version: str) -> tuple[int, int, int] | None:
    found = _RELEASE.match(version)
    if found is None:
        return None
    return (int(found[1]), int(found[2]), int(found[3]))


def check_value(key: str, value: str, where: str) -> None:
    if key == "ID":
        if not _ID.match(value):
            raise EksError(
                f"{where}: an ID is a label value (letters, digits, '-', '_', '.', "
                "at most 63), as Tutor generates it."
            )
    elif key in values.PEM_KEYS:
        values.check_pem(value, where)
        values.check_rsa_key(value, where)
    elif len(value) > MAX_VALUE or not all(map(values.printable, value)):
        raise EksError(
            f"{where}: the value is longer than 16 KiB or holds a newline, control "
            "or non-printable character, which no generated setting has."
        )


# --- writing ---------------------------------------------------------------------------


def generated_keys(sources: dict[str, str], config: dict[str, t.Any]) -> dict[str, str]:
    """The unique keys whose value Tutor generated in ``config``: no higher layer
    provides them (environment, Secrets, TUTOR_ variables; ``sources`` says where
    each value of the plugin's layers came from)."""
    found = {}
    for key in tutor_compat.unique_keys():
        if key not in config or provided_elsewhere(key, sources):
            continue
        value = config[key]
        found[key] = value if isinstance(value, str) else str(value)
    return found


def provided_elsewhere(key: str, sources: dict[str, str]) -> bool:
    """Whether a higher layer (environment, Secret, TUTOR_ variable) provides
    ``key``: such a value is never copied into the state."""
    source = sources.get(key, "")
    return f"TUTOR_{key}" in os.environ or bool(source and not is_source(source))


def keep_generated(
    ctx: Context,
    state: State,
    sources: dict[str, str],
    config: dict[str, t.Any],
    check_new_id: t.Callable[[str], None],
) -> list[str]:
    """Before config.yml is written: store Tutor's generated values in the state,
    or use those another deploy stored first (``config`` gets the state's values).
    ``check_new_id`` runs before an ``ID`` is stored. The keys the state holds."""
    generated = generated_keys(sources, config)
    missing = {k: v for k, v in generated.items() if k not in state.values}
    if not missing:
        return list(state.values)
    if "ID" in missing:
        check_new_id(missing["ID"])
    stored = store(ctx.kube(), state, missing)
    masking.mask(ctx.masked, stored.values.values())
    for key in generated:
        if key in stored.values:
            config[key] = stored.values[key]
    ctx.forget()
    return list(stored.values)


def store(kube: Kube, state: State, missing: dict[str, str]) -> State:
    """Add ``missing`` to the state Secret without overwriting a value another
    deploy stored; the state as the API server has it afterwards."""

    def body(current: State) -> dict[str, t.Any] | None:
        left = {k: v for k, v in missing.items() if k not in current.values}
        return manifest(current, {**left, **current.values}) if left else None

    def failure(current: State, error: Exception) -> str:
        verb = "update" if current.exists else "create"
        return (
            f"Cannot {verb} the state {current.display}, which keeps Tutor's "
            f"generated values: {error}"
        )

    stored, done = _write(kube, state, body, failure)
    if not done:
        raise EksError(
            f"The state {state.display} kept changing while this deploy wrote it "
            f"({ATTEMPTS} attempts): is another deploy of this environment running?"
        )
    return stored


def _write(
    kube: Kube,
    state: State,
    body: t.Callable[[State], dict[str, t.Any] | None],
    failure: t.Callable[[State, Exception], str],
) -> tuple[State, bool]:
    """Create or PUT (with the read ``resourceVersion``) what ``body(current)``
    returns, reading the state again and retrying on a conflict, never
    last-writer-wins. ``body`` returns None when nothing is left to write. The
    state afterwards, and False when it kept changing for :data:`ATTEMPTS` tries."""
    current = state
    for _attempt in range(ATTEMPTS):
        wanted = body(current)
        if wanted is None:
            return current, True
        try:
            if current.exists:
                answer = kube.replace(SECRETS, current.namespace, current.name, wanted)
            else:
                answer = kube.create(SECRETS, current.namespace, wanted)
        except KubeError as e:
            if e.status != 409:
                raise EksError(failure(current, e)) from e
            current = fetch(kube, current.namespace, current.name, current.environment)
            continue
        return parse(answer, current.namespace, current.name, current.environment), True
    return current, False


def manifest(
    state: State, values: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, t.Any]:
    """The Secret object of ``state`` holding ``values``."""
    metadata: dict[str, t.Any] = {
        "name": state.name,
        "namespace": state.namespace,
        "labels": dict(LABELS),
        "annotations": {
            **state.annotations,
            ENVIRONMENT_ANNOTATION: state.environment,
            **(annotations or {}),
        },
    }
    if state.resource_version:
        metadata["resourceVersion"] = state.resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {
            key: base64.b64encode(value.encode("utf-8")).decode("ascii")
            for key, value in sorted(values.items())
        },
    }


def record_deploy(
    kube: Kube, state: State, annotations: dict[str, str] | None = None
) -> State:
    """After a successful deploy: the Tutor release and plugin version it used (and
    ``annotations``, e.g. the inventory of what it applied)."""
    stamp = {
        TUTOR_VERSION_ANNOTATION: tutor_compat.tutor_version(),
        PLUGIN_VERSION_ANNOTATION: __version__,
        DEPLOYED_AT_ANNOTATION: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(annotations or {}),
    }
    return annotate(
        kube, state, stamp, "The deploy succeeded, but recording it in the state"
    )


def annotate(
    kube: Kube,
    state: State,
    annotations: dict[str, str],
    what: str = "Writing the state",
) -> State:
    """Set ``annotations`` on the state Secret (re-read, then a PUT with its
    ``resourceVersion``, retried on conflict); its values are left as they are."""

    def body(current: State) -> dict[str, t.Any] | None:
        if not current.exists or all(
            current.annotations.get(k) == v for k, v in annotations.items()
        ):
            return None
        return manifest(current, current.values, annotations)

    current = fetch(kube, state.namespace, state.name, state.environment)
    annotated, _done = _write(
        kube, current, body, lambda cur, error: f"{what} {cur.display} failed: {error}"
    )
    return annotated
