"""Step 2: which value wins. The configuration layers of DESIGN.md, lowest first:

1. Tutor's and the plugin's defaults (CONFIG_DEFAULTS)
2. the tutor root's ``config.yml``
3. the environment's state Secret: the values Tutor generated on the first
   deploy (``config/state.py``)
4. ``environments/<env>/config.yml`` (plus the values the edge mode implies)
5. values read from the operator's Kubernetes Secrets (``config/secrets.py``)
6. ``TUTOR_<KEY>`` environment variables

Tutor's ``CONFIG_USER`` filter is the only hook whose values beat the root's
config.yml, so layers 3 to 6 are returned from it (:func:`config_user`). The result
of one resolution is a :class:`Resolution`, passed explicitly to the steps that
need it; :func:`for_root` memoises it per process, since Tutor loads the
configuration several times per command.
"""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass, field

from .. import defaults, tutor_compat
from ..exceptions import EksError

if t.TYPE_CHECKING:
    from ..environment import CaBundle, Environment, Selection
    from ..kube import Kube
    from .secrets import SecretSpec, SecretValues
    from .state import State

ENV_PREFIX = "TUTOR_"
#: Commands that need no value from the cluster: enabling a plugin must never
#: depend on reading Secrets.
OFFLINE_COMMANDS = {("eks", "envs"), ("eks", "rbac"), ("plugins",)}


@dataclass
class Resolution:
    """The outcome of resolving an environment's configuration."""

    environment: Environment
    #: Values returned to Tutor through CONFIG_USER (layers 3 to 6).
    values: dict[str, t.Any]
    #: Where each of those values came from, for messages (never the value).
    sources: dict[str, str]
    #: Keys set both by the environment's config.yml and by a Secret.
    conflicts: list[str] = field(default_factory=list)
    #: What the operator's Secrets provided (None when none were read).
    secrets: SecretValues | None = None
    #: The generated values kept in the cluster (None when not read).
    state: State | None = None
    #: Whether this resolution read the cluster.
    online: bool = True
    #: K8S_NAMESPACE as read from the layers (set when the cluster is read).
    k8s_namespace: str = ""
    #: The state Secret's name (EKS_STATE_SECRET); empty when there is no state.
    state_secret: str = ""
    #: CA certificates that verify the managed services (EKS_CA_BUNDLE).
    ca_bundle: CaBundle | None = None

    @property
    def namespace(self) -> str:
        return self.k8s_namespace or str(self.values.get("K8S_NAMESPACE", ""))

    def secret_keys(self) -> dict[str, tuple[str, str]]:
        """Tutor key -> (Secret, data key) of every value that reaches Tutor from a
        Secret, the state's included, so that workloads can reference it."""
        from .secrets import SOURCE_PREFIX

        keys: dict[str, tuple[str, str]] = {}
        if self.state is not None:
            for key in self.state.provided(self.sources):
                keys[key] = (self.state.name, key)
        if self.secrets is not None:
            for key, origin in self.secrets.origins.items():
                if self.sources.get(key, "").startswith(SOURCE_PREFIX):
                    keys[key] = origin
        return keys

    def raw_values(self) -> dict[str, str]:
        """Tutor key -> the exact text its Secret (or the state) holds, for every
        key of :meth:`secret_keys` (the configuration holds them escaped for
        Tutor's templates)."""
        from . import state as state_module

        raw: dict[str, str] = {}
        for key in self.secret_keys():
            if self.state is not None and state_module.is_source(self.sources[key]):
                raw[key] = self.state.values[key]
            elif self.secrets is not None:
                raw[key] = self.secrets.values[key]
        return raw

    def sensitive_values(self) -> list[str]:
        """Every value from a Secret or the state, for masking and scrubbing."""
        found = list(self.secrets.values.values()) if self.secrets else []
        if self.state is not None:
            found += list(self.state.values.values())
        return found


# --- entry points ------------------------------------------------------------------


def config_user(items: list[tuple[str, t.Any]]) -> list[tuple[str, t.Any]]:
    """The CONFIG_USER callback: add layers 3 to 6 when an environment is selected."""
    resolution = for_root(tutor_compat.current_root())
    if resolution is None:
        return items
    return items + list(resolution.values.items())


def is_active(root: str) -> bool:
    """Whether an environment is selected for this root (cheap: every `tutor`
    command asks; the root's config.yml is parsed only when it names one)."""
    if not may_select(root):
        return False
    from ..environment import select

    return bool(select(read_root_config(root)).name)


def may_select(root: str) -> bool:
    """False when no environment can be selected: no TUTOR_EKS_ENVIRONMENT and no
    EKS_ENVIRONMENT in the root's config.yml (a text search, no YAML parse)."""
    if "TUTOR_EKS_ENVIRONMENT" in os.environ:
        return True
    return "EKS_ENVIRONMENT" in _root_file(root).text


_resolutions: dict[tuple[t.Any, ...], Resolution] = {}


def for_root(root: str) -> Resolution | None:
    """The resolution of the selected environment for ``root``, or None when the
    plugin is inert. Memoised on everything it reads, so a change of any input
    (a file, a variable) is seen and an unchanged one costs nothing."""
    if not may_select(root):
        return None
    from .. import environment as env_module

    root_config = read_root_config(root)
    selection = env_module.select(root_config)
    if not selection.name:
        return None
    path = tutor_compat.command_path()
    if not path:
        return None  # no command yet: Tutor is enabling plugins (PROJECT_ROOT_READY)
    online = path[:1] not in OFFLINE_COMMANDS and path[:2] not in OFFLINE_COMMANDS
    stamp = env_module.fingerprint(selection.root, selection.name)
    key = (
        root,
        selection,
        online,
        # which keys a Secret may set depends on the plugins loaded
        tutor_compat.loaded_plugins(),
        repr(sorted(root_config.items())),
        tuple(
            sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX))
        ),
        stamp,
    )
    cached = _resolutions.get(key)
    if cached is None:
        environment = load_environment(selection, stamp)
        cached = resolve(environment, root_config, online=online)
        _resolutions[key] = cached
    return cached


def forget() -> None:
    """Drop memoised resolutions (the state Secret was just created or changed)."""
    _resolutions.clear()


def resolve(
    environment: Environment, root_config: dict[str, t.Any], *, online: bool = True
) -> Resolution:
    """Layers 3 to 6 for ``environment``; reads the cluster when ``online``."""
    layers = Layers(environment, root_config)
    resolution = Resolution(environment, {}, {}, online=online)
    resolution.state_secret = layers.state_secret()
    resolution.ca_bundle = layers.ca_bundle()
    layers.add_environment(resolution)
    if online:
        resolution.k8s_namespace = layers.namespace()
        layers.add_secrets(resolution)
    layers.add_variables(resolution)
    if online:
        layers.add_state(resolution)
    return resolution


_environments: dict[tuple[t.Any, ...], Environment] = {}


def load_environment(selection: Selection, stamp: t.Hashable) -> Environment:
    """``environments/<env>/``, loaded once per process while its files stay the
    same (``stamp``: their fingerprint)."""
    from ..environment import load

    key = (selection, stamp)
    if key not in _environments:
        _environments[key] = load(selection.root, selection.name)
    return _environments[key]


# --- the root's config.yml -------------------------------------------------------------


@dataclass
class _RootFile:
    """The tutor root's config.yml as last read: its text, parsed on demand."""

    stamp: tuple[int, int]
    text: str
    content: dict[str, t.Any] | None = None


_root_files: dict[str, _RootFile] = {}


def _root_file(root: str) -> _RootFile:
    """``<root>/config.yml``, read again only when its mtime or size changed: every
    hook of every `tutor` command asks for it."""
    path = tutor_compat.config_path(root)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return _RootFile((0, -1), "", {})
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _root_files.get(path)
    if cached is None or cached.stamp != stamp:
        with open(path, encoding="utf-8") as f:
            cached = _RootFile(stamp, f.read())
        _root_files[path] = cached
    return cached


def read_root_config(root: str) -> dict[str, t.Any]:
    """The raw (unrendered) content of ``<root>/config.yml``."""
    file = _root_file(root)
    if file.content is None:
        loaded = tutor_compat.read_root_config_text(file.text)
        file.content = loaded if isinstance(loaded, dict) else {}
    return file.content


def env_value(key: str) -> tuple[bool, t.Any]:
    """``TUTOR_<KEY>``, parsed as Tutor parses it."""
    name = ENV_PREFIX + key
    if name in os.environ:
        return True, tutor_compat.parse_env_value(os.environ[name])
    return False, None


# --- the layers --------------------------------------------------------------------------


class Layers:
    """Builds one :class:`Resolution`, a layer at a time."""

    def __init__(self, environment: Environment, root_config: dict[str, t.Any]) -> None:
        from ..environment import CONFIG_FILE

        self.environment = environment
        self.root_config = root_config
        self.config_display = f"{environment.display}/{CONFIG_FILE}"

    def effective(self, key: str) -> tuple[t.Any, str]:
        """A key's value before Tutor renders it, and where it comes from:
        TUTOR_ variable, environment, root config.yml, then defaults (the plugin's
        for EKS_ keys, Tutor's otherwise)."""
        found, value = env_value(key)
        if found:
            return value, ENV_PREFIX + key
        if key in self.environment.config:
            return self.environment.config[key], self.config_display
        if key in self.root_config:
            return self.root_config[key], "the tutor root's config.yml"
        if key.startswith("EKS_"):
            return defaults.CONFIG_DEFAULTS[key[4:]], "the plugin's defaults"
        return tutor_compat.load_defaults().get(key), "Tutor's defaults"

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value, source = self.effective(key)
        if value not in allowed:
            raise EksError(
                f"{source}: {key} is {_shape(value)}; it must be one of "
                f"{', '.join(allowed)}."
            )
        return str(value)

    # layer 4
    def add_environment(self, resolution: Resolution) -> None:
        """The environment's config.yml, and what its edge mode implies."""
        from tutor import serialize

        resolution.values.update(self.environment.config)
        for key in self.environment.config:
            resolution.sources[key] = self.config_display
        edge = self.choice("EKS_EDGE", defaults.EDGES)
        self.choice("EKS_ISSUER_KIND", defaults.ISSUER_KINDS)
        wants_proxy = edge == "caddy"
        explicit = self.environment.config.get("ENABLE_WEB_PROXY", wants_proxy)
        if explicit is not wants_proxy:
            raise EksError(
                f"{self.config_display}: ENABLE_WEB_PROXY: {serialize.str_format(explicit)} "
                f"contradicts EKS_EDGE {edge!r}; remove ENABLE_WEB_PROXY, the edge mode sets it."
            )
        for key, value in (("ENABLE_WEB_PROXY", wants_proxy), ("ENABLE_HTTPS", True)):
            if key not in resolution.values:
                resolution.values[key] = value
                resolution.sources[key] = f"EKS_EDGE {edge!r}"

    # layer 5
    def add_secrets(self, resolution: Resolution) -> None:
        from . import secrets, values

        specs = secrets.parse_specs(*self.effective("EKS_SECRETS"))
        renames = secrets.parse_renames(*self.effective("EKS_SECRET_KEYS"))
        if not specs:
            return
        namespace = self.namespace()
        provided = read_secrets(namespace, specs, renames)
        resolution.secrets = provided
        tutor_defaults = tutor_compat.load_defaults()
        known = self.known_keys(tutor_defaults)
        for key, text in provided.values.items():
            if key not in known:
                continue  # `tutor eks secrets` lists it as unused
            where = provided.where(key)
            values.check_value(key, text, where)
            value = values.typed(key, text, tutor_defaults.get(key), where)
            if key in self.environment.config:
                resolution.conflicts.append(key)
            resolution.values[key] = values.template_value(key, value)
            resolution.sources[key] = (
                f"{secrets.SOURCE_PREFIX}{namespace}/{provided.origin(key)}"
            )
            switch = secrets.ENDPOINT_SWITCHES.get(key)
            if switch:
                resolution.values[switch] = False
                resolution.sources[switch] = (
                    f"{key} from Secret {namespace}/{provided.origins[key][0]}"
                )
        if resolution.conflicts:
            from tutor import fmt

            fmt.echo_alert(
                f"Set both in {self.config_display} and in a Secret (the Secret wins): "
                f"{', '.join(sorted(resolution.conflicts))}"
            )

    def known_keys(self, tutor_defaults: dict[str, t.Any]) -> set[str]:
        """Keys a value from a Secret may set: Tutor's and every loaded plugin's
        defaults and unique keys, the plugin's own Secret settings, and what the
        root's or the environment's config.yml sets. Any other key of a Secret
        reaches no template: it is not injected."""
        return (
            set(tutor_defaults)
            | set(tutor_compat.unique_keys())
            | set(defaults.SECRET_SETTINGS)
            | set(self.root_config)
            | set(self.environment.config)
        )

    # layer 6
    def add_variables(self, resolution: Resolution) -> None:
        """TUTOR_<KEY> beats everything the plugin provides."""
        for key in list(resolution.values):
            found, value = env_value(key)
            if found:
                resolution.values[key] = value
                resolution.sources[key] = ENV_PREFIX + key

    def state_secret(self) -> str:
        """EKS_STATE_SECRET, checked; empty: no state (generated values then stay
        in the root's config.yml)."""
        from . import secrets

        name, source = self.effective("EKS_STATE_SECRET")
        if name in ("", None):
            return ""
        if not isinstance(name, str) or not secrets.NAME_PATTERN.match(name):
            raise EksError(f"{source}: EKS_STATE_SECRET must be a Secret name.")
        return name

    def ca_bundle(self) -> CaBundle | None:
        """EKS_CA_BUNDLE, or the environment folder's ca-bundle.pem, loaded."""
        from ..environment import load_ca_bundle

        return load_ca_bundle(self.environment, *self.effective("EKS_CA_BUNDLE"))

    # layer 3
    def add_state(self, resolution: Resolution) -> None:
        """Generated values kept in the cluster, for the keys no higher layer sets."""
        from . import state, values

        if not resolution.state_secret:
            return
        kept = state.read(
            client(), self.namespace(), resolution.state_secret, self.environment.name
        )
        unknown = state.check(
            kept, tutor_compat.unique_keys(), tutor_compat.load_defaults()
        )
        if unknown:
            from tutor import fmt

            fmt.echo_alert(
                f"Not read from the {kept.display}: {', '.join(sorted(unknown))} "
                "(no enabled plugin generates them)."
            )
        resolution.state = kept
        for key, value in kept.values.items():
            if key in unknown or key in resolution.values or env_value(key)[0]:
                continue
            resolution.values[key] = values.template_value(key, value)
            resolution.sources[key] = (
                f"{state.SOURCE_PREFIX}{kept.namespace}/{kept.name}"
            )

    def namespace(self) -> str:
        namespace, source = self.effective("K8S_NAMESPACE")
        if not isinstance(namespace, str) or "{" in namespace or not namespace:
            raise EksError(
                f"{source}: K8S_NAMESPACE must be a plain namespace name when the "
                "cluster is read."
            )
        return namespace


def _shape(value: t.Any) -> str:
    """How a wrong setting looks, without repeating a long value."""
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)
    return f"a {type(value).__name__}"


def client() -> Kube:
    from .. import kube

    return kube.client()


_secrets: dict[tuple[t.Any, ...], SecretValues] = {}


def read_secrets(
    namespace: str, specs: list[SecretSpec], renames: dict[tuple[str, str], str]
) -> SecretValues:
    """Read the Secrets once per process; mask and report them."""
    import click

    from . import masking, secrets

    key = (
        namespace,
        tuple(specs),
        tuple(sorted(renames.items())),
        os.environ.get("KUBECONFIG", ""),
    )
    cached = _secrets.get(key)
    if cached is not None:
        return cached
    found = secrets.fetch(client(), namespace, specs, renames)
    masking.mask(found.values.values())
    _secrets[key] = found
    absent = (
        f"; optional, absent: {', '.join(found.missing_optional)}"
        if found.missing_optional
        else ""
    )
    click.echo(
        f"eks: Secrets read from namespace {namespace}: "
        f"{', '.join(found.found) or 'none'}{absent}",
        err=True,
    )
    return found
