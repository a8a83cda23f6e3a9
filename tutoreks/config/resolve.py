"""Step 2: which value wins. The configuration layers, lowest first (documented
for users in docs/environments.md, "Configuration precedence"):

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
need it; the command's context (``config/context.py``) keeps it, since Tutor
loads the configuration several times per command.
"""

from __future__ import annotations

import os
import typing as t
from dataclasses import dataclass, field

import click
from tutor import fmt, serialize

from .. import defaults, environment, tutor_compat
from ..environment import CaBundle, Environment
from ..exceptions import EksError, kind_of
from . import context, masking, secrets, state, values
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
        keys: dict[str, tuple[str, str]] = {}
        if self.state is not None:
            for key in self.state.provided(self.sources):
                keys[key] = (self.state.name, key)
        if self.secrets is not None:
            for key, origin in self.secrets.origins.items():
                if self.sources.get(key, "").startswith(secrets.SOURCE_PREFIX):
                    keys[key] = origin
        return keys

    def raw_values(self) -> dict[str, str]:
        """Tutor key -> the exact text its Secret (or the state) holds, for every
        key of :meth:`secret_keys` (the configuration holds them escaped for
        Tutor's templates)."""
        raw: dict[str, str] = {}
        for key in self.secret_keys():
            if self.state is not None and state.is_source(self.sources[key]):
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
    resolution = for_context(context.current())
    if resolution is None:
        return items
    return items + list(resolution.values.items())


def is_active(root: str) -> bool:
    """Whether an environment is selected for this root (cheap: every `tutor`
    command asks; the root's config.yml is parsed only when it names one)."""
    ctx = context.for_root(root)
    return ctx.may_select() and bool(ctx.selection().name)


def for_root(root: str) -> Resolution | None:
    """The resolution of the selected environment for ``root``, or None when the
    plugin is inert."""
    return for_context(context.for_root(root))


def for_context(ctx: context.Context) -> Resolution | None:
    """The resolution of ``ctx``'s environment, made again only when one of its
    inputs changed (the root's config.yml, the environment's files)."""
    if not ctx.may_select():
        return None
    selection = ctx.selection()
    path = tutor_compat.command_path()
    if not selection.name or not path:
        return None  # no command yet: Tutor is enabling plugins (PROJECT_ROOT_READY)
    online = path[:1] not in OFFLINE_COMMANDS and path[:2] not in OFFLINE_COMMANDS
    stamp = environment.fingerprint(selection.root, selection.name)
    key = (selection, online, ctx.override is not None, ctx.root_text(), stamp)
    if key not in ctx.resolutions:
        loaded = environment.load(selection.root, selection.name)
        resolution = resolve(ctx, loaded, online=online)
        if ctx.override is not None:  # what TUTOR_EKS_ENVIRONMENT would select
            resolution.values["EKS_ENVIRONMENT"] = selection.name
            resolution.sources["EKS_ENVIRONMENT"] = "tutor eks envs"
        ctx.resolutions[key] = resolution
    return ctx.resolutions[key]


def resolve(
    ctx: context.Context, env: Environment, *, online: bool = True
) -> Resolution:
    """Layers 3 to 6 for ``env``; reads the cluster when ``online``: the Secrets
    and the state at once."""
    layers = Layers(ctx, env)
    resolution = Resolution(env, {}, {}, online=online)
    resolution.state_secret = layers.state_secret()
    resolution.ca_bundle = layers.ca_bundle()
    layers.add_environment(resolution)
    if not online:
        layers.add_variables(resolution)
        return resolution
    resolution.k8s_namespace = layers.namespace()
    import concurrent.futures  # with logging: not for commands that read nothing

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        kept = None
        if resolution.state_secret:
            ctx.kube()  # made once, before two threads ask for it
            kept = pool.submit(
                state.read,
                ctx,
                resolution.k8s_namespace,
                resolution.state_secret,
                env.name,
            )
        layers.add_secrets(resolution)
        layers.add_variables(resolution)
        if kept is not None:
            layers.add_state(resolution, kept.result())
    return resolution


def env_value(key: str) -> tuple[bool, t.Any]:
    """``TUTOR_<KEY>``, parsed as Tutor parses it."""
    name = ENV_PREFIX + key
    if name in os.environ:
        return True, tutor_compat.parse_env_value(os.environ[name])
    return False, None


# --- the layers --------------------------------------------------------------------------


class Layers:
    """Builds one :class:`Resolution`, a layer at a time."""

    def __init__(self, ctx: context.Context, env: Environment) -> None:
        self.ctx = ctx
        self.environment = env
        self.root_config = ctx.root_config()
        self.config_display = f"{env.display}/{environment.CONFIG_FILE}"

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
        return self.ctx.tutor_defaults().get(key), "Tutor's defaults"

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value, source = self.effective(key)
        if value not in allowed:
            raise EksError(
                f"{source}: {key} is not one of {', '.join(allowed)}"
                + ("." if isinstance(value, str) else f": it is {kind_of(value)}.")
            )
        return str(value)

    # layer 4
    def add_environment(self, resolution: Resolution) -> None:
        """The environment's config.yml, and what its edge mode implies."""
        resolution.values.update(self.environment.config)
        for key in self.environment.config:
            resolution.sources[key] = self.config_display
        edge = self.choice("EKS_EDGE", defaults.EDGES)
        self.choice("EKS_ISSUER_KIND", defaults.ISSUER_KINDS)
        wants_proxy = edge == "caddy"
        explicit = self.environment.config.get("ENABLE_WEB_PROXY", wants_proxy)
        if explicit is not wants_proxy:
            raise EksError(
                f"{self.config_display}: ENABLE_WEB_PROXY: "
                f"{serialize.str_format(explicit)} contradicts EKS_EDGE "
                f"{edge!r}; remove ENABLE_WEB_PROXY, the edge mode sets it."
            )
        for key, value in (("ENABLE_WEB_PROXY", wants_proxy), ("ENABLE_HTTPS", True)):
            if key not in resolution.values:
                resolution.values[key] = value
                resolution.sources[key] = f"EKS_EDGE {edge!r}"

    # layer 5
    def add_secrets(self, resolution: Resolution) -> None:
        specs = secrets.parse_specs(*self.effective("EKS_SECRETS"))
        renames = secrets.parse_renames(*self.effective("EKS_SECRET_KEYS"))
        if not specs:
            return
        namespace = self.namespace()
        provided = read_secrets(self.ctx, namespace, specs, renames)
        resolution.secrets = provided
        tutor_defaults = self.ctx.tutor_defaults()
        known = self.known_keys(tutor_defaults)
        for key, text in provided.values.items():
            if key in known:  # else `tutor eks secrets` lists it as unused
                self.add_secret_value(resolution, key, text, tutor_defaults.get(key))
        if resolution.conflicts:
            fmt.echo_alert(
                f"Set both in {self.config_display} and in a Secret (the Secret wins): "
                f"{', '.join(sorted(resolution.conflicts))}"
            )

    def add_secret_value(
        self, resolution: Resolution, key: str, text: str, default: t.Any
    ) -> None:
        provided = t.cast(SecretValues, resolution.secrets)
        where = provided.where(key)
        values.check_value(key, text, where)
        value = values.typed(key, text, default, where)
        if key in self.environment.config:
            resolution.conflicts.append(key)
        resolution.values[key] = values.template_value(key, value)
        resolution.sources[key] = (
            f"{secrets.SOURCE_PREFIX}{provided.namespace}/{provided.origin(key)}"
        )
        switch = secrets.ENDPOINT_SWITCHES.get(key)
        if switch:
            resolution.values[switch] = False
            resolution.sources[switch] = (
                f"{key} from Secret {provided.namespace}/{provided.origins[key][0]}"
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
        name, source = self.effective("EKS_STATE_SECRET")
        if name in ("", None):
            return ""
        if not isinstance(name, str) or not secrets.NAME_PATTERN.match(name):
            raise EksError(f"{source}: EKS_STATE_SECRET must be a Secret name.")
        return name

    def ca_bundle(self) -> CaBundle | None:
        """EKS_CA_BUNDLE, or the environment folder's ca-bundle.pem, loaded."""
        return environment.load_ca_bundle(
            self.environment, *self.effective("EKS_CA_BUNDLE")
        )

    # layer 3
    def add_state(self, resolution: Resolution, kept: State) -> None:
        """Generated values kept in the cluster, for the keys no higher layer sets."""
        masking.mask(self.ctx.masked, kept.values.values())
        unknown = state.check(
            kept, tutor_compat.unique_keys(), self.ctx.tutor_defaults()
        )
        if unknown:
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


def read_secrets(
    ctx: context.Context,
    namespace: str,
    specs: list[SecretSpec],
    renames: dict[tuple[str, str], str],
) -> SecretValues:
    """Read the Secrets once per command; mask, then report them."""
    key = (namespace, tuple(specs), tuple(sorted(renames.items())))
    if key in ctx.secrets:
        return ctx.secrets[key]
    found = secrets.fetch(ctx.kube(), namespace, specs, renames)
    masking.mask(ctx.masked, found.values.values())
    ctx.secrets[key] = found
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
