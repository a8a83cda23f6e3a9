"""Which value wins: the configuration layers of DESIGN.md, lowest first.

1. Tutor's and the plugin's defaults (CONFIG_DEFAULTS)
2. the tutor root's ``config.yml``
3. ``environments/<env>/config.yml`` (plus the values the edge mode implies)
4. values read from Kubernetes Secrets
5. ``TUTOR_<KEY>`` environment variables

Tutor's ``CONFIG_USER`` filter is the only hook whose values beat the root's
config.yml, so layers 3 to 5 are returned from it. Tutor also writes whatever
``CONFIG_USER`` returns into config.yml on ``config save`` and ``k8s launch``: the
save guard below takes those values back out before the file is written, so that
config.yml holds only what the user put there (and never a Secret value), and it
puts config.yml and env/ back as they were when a save fails.
"""

from __future__ import annotations

import os
import time
import typing as t

import click
from tutor import config as tutor_config
from tutor import fmt, serialize

from . import defaults
from .exceptions import EksError

# Everything else is imported where it is used: with no environment selected the
# plugin's config hook must cost next to nothing (every `tutor` command runs it).
if t.TYPE_CHECKING:
    from pathlib import Path

    from . import secrets
    from .environments import Environment

ENV_PREFIX = "TUTOR_"
#: When the plugin was loaded: files of env/ newer than this were written by this process.
STARTED = time.time()


class Resolution:
    """The outcome of one config load with an environment selected."""

    def __init__(
        self,
        environment: Environment,
        values: dict[str, t.Any],
        sources: dict[str, str],
        conflicts: list[str] | None = None,
        secrets: secrets.SecretValues | None = None,
    ) -> None:
        self.environment = environment
        #: Values returned to Tutor through CONFIG_USER (layers 3 to 5).
        self.values = values
        #: Where each of those values came from, for messages (never the value).
        self.sources = sources
        #: Keys set both by the environment's config.yml and by a Secret.
        self.conflicts = conflicts or []
        #: What the Secrets provided (None when none were read).
        self.secrets = secrets


class _State:
    """Per-process state: Tutor loads the config several times per command."""

    def __init__(self) -> None:
        self.current: Resolution | None = None
        self.cache: dict[tuple[t.Any, ...], Resolution] = {}
        self.root_config_cache: dict[str, tuple[tuple[int, int], dict[str, t.Any]]] = {}
        self.injected: set[str] = set()
        self.secrets: dict[tuple[t.Any, ...], secrets.SecretValues] = {}
        self.snapshot: _Snapshot | None = None
        self.env_saved = False
        #: Commands that need no Secret values (rbac, envs) set this.
        self.skip_secrets = False


STATE = _State()


def current() -> Resolution | None:
    """The environment of the last config load, or None when the plugin is inert."""
    return STATE.current


# --- the tutor root -------------------------------------------------------


def tutor_root() -> str:
    """The tutor root of the running command (``--root`` / ``TUTOR_ROOT``)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        root = ctx.params.get("root")
        if isinstance(root, str):
            return root
        ctx = ctx.parent
    if os.environ.get("TUTOR_ROOT"):
        return os.path.abspath(os.environ["TUTOR_ROOT"])
    import appdirs

    return str(appdirs.user_data_dir(appname="tutor"))


def read_root_config(root: str) -> dict[str, t.Any]:
    """The raw (unrendered) content of ``<root>/config.yml``, cached by mtime."""
    path = tutor_config.config_path(root)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return {}
    key = (stat.st_mtime_ns, stat.st_size)
    cached = STATE.root_config_cache.get(path)
    if cached and cached[0] == key:
        return cached[1]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    content: dict[str, t.Any] = {}
    # Fast path: a config without any EKS_ key needs no YAML parse here.
    if "EKS_" in text:
        loaded = serialize.load(text)
        content = loaded if isinstance(loaded, dict) else {}
    STATE.root_config_cache[path] = (key, content)
    return content


def env_value(key: str) -> tuple[bool, t.Any]:
    """``TUTOR_<KEY>``, parsed as Tutor parses it."""
    name = ENV_PREFIX + key
    if name in os.environ:
        return True, serialize.parse(os.environ[name])
    return False, None


# --- CONFIG_USER --------------------------------------------------------


def config_user(items: list[tuple[str, t.Any]]) -> list[tuple[str, t.Any]]:
    """The CONFIG_USER callback: add layers 3 to 5 when an environment is selected."""
    root = tutor_root()
    resolution = resolve(root)
    STATE.current = resolution
    if resolution is None:
        return items
    STATE.injected.update(resolution.values)
    return items + list(resolution.values.items())


def selected_environment(root_config: dict[str, t.Any]) -> tuple[str, Path]:
    """EKS_ENVIRONMENT and the resolved EKS_ENVIRONMENTS_ROOT: env var > root config > default."""
    from pathlib import Path

    values = []
    for key in ("ENVIRONMENT", "ENVIRONMENTS_ROOT"):
        name = f"EKS_{key}"
        found, value = env_value(name)
        if not found:
            value = root_config.get(name, defaults.CONFIG_DEFAULTS[key])
        values.append("" if value is None else str(value))
    # EKS_ENVIRONMENTS_ROOT is absolute, or relative to the working directory.
    root = Path(os.path.expanduser(values[1]))
    return values[0], root if root.is_absolute() else Path(os.getcwd()) / root


def resolve(root: str) -> Resolution | None:
    root_config = read_root_config(root)
    name, envs_root = selected_environment(root_config)
    if not name:
        return None
    cache_key = (
        name,
        str(envs_root),
        repr(sorted(root_config.items())),
        tuple(
            sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX))
        ),
    )
    cached = STATE.cache.get(cache_key)
    if cached is not None:
        return cached
    from . import environments

    environment = environments.load(envs_root, name)
    resolution = build(environment, root_config)
    STATE.cache[cache_key] = resolution
    return resolution


def build(environment: Environment, root_config: dict[str, t.Any]) -> Resolution:
    from . import environments, secrets

    config_display = f"{environment.display}/{environments.CONFIG_FILE}"
    values: dict[str, t.Any] = dict(environment.config)
    sources = {key: config_display for key in values}

    def effective(key: str, default: t.Any = None) -> tuple[t.Any, str]:
        """A key's value before Tutor renders it: TUTOR_ variable, environment,
        root config.yml, default. ``key`` without ``EKS_`` is a plugin key."""
        name = key if default is not None else f"EKS_{key}"
        found, value = env_value(name)
        if found:
            return value, ENV_PREFIX + name
        if name in environment.config:
            return environment.config[name], config_display
        if name in root_config:
            return root_config[name], "the tutor root's config.yml"
        if default is not None:
            return default, "Tutor's defaults"
        return defaults.CONFIG_DEFAULTS[key], "the plugin's defaults"

    edge, edge_source = effective("EDGE")
    if edge not in defaults.EDGES:
        raise EksError(
            f"{edge_source}: EKS_EDGE is {edge!r}; it must be one of "
            f"{', '.join(defaults.EDGES)}."
        )
    kind, kind_source = effective("ISSUER_KIND")
    if kind not in defaults.ISSUER_KINDS:
        raise EksError(
            f"{kind_source}: EKS_ISSUER_KIND is {kind!r}; it must be one of "
            f"{', '.join(defaults.ISSUER_KINDS)}."
        )
    # The edge mode decides who faces the internet.
    wants_proxy = edge == "caddy"
    explicit_proxy = environment.config.get("ENABLE_WEB_PROXY", wants_proxy)
    if explicit_proxy is not wants_proxy:
        raise EksError(
            f"{config_display}: ENABLE_WEB_PROXY: {serialize.str_format(explicit_proxy)} "
            f"contradicts EKS_EDGE {edge!r} (from {edge_source}); remove ENABLE_WEB_PROXY, "
            "the edge mode sets it."
        )
    for key, value in (("ENABLE_WEB_PROXY", wants_proxy), ("ENABLE_HTTPS", True)):
        if key not in values:
            values[key] = value
            sources[key] = f"EKS_EDGE {edge!r}"

    # Layer 4: Kubernetes Secrets.
    conflicts: list[str] = []
    specs_setting, specs_source = effective("SECRETS")
    specs = secrets.parse_specs(specs_setting, specs_source)
    renames_setting, renames_source = effective("SECRET_KEYS")
    renames = secrets.parse_renames(renames_setting, renames_source)
    provided = None
    if specs and not STATE.skip_secrets:
        namespace, namespace_source = effective("K8S_NAMESPACE", "openedx")
        if not isinstance(namespace, str) or "{" in namespace or not namespace:
            raise EksError(
                f"{namespace_source}: K8S_NAMESPACE must be a plain namespace name when Secrets are read."
            )
        provided = read_secrets(namespace, specs, renames)
        tutor_defaults: dict[str, t.Any] | None = None
        for key, text in provided.values.items():
            where = provided.where(key)
            secrets.check_value(key, text, where)
            if tutor_defaults is None:
                tutor_defaults = tutor_config.load_defaults()
            value = secrets.typed(key, text, tutor_defaults.get(key), where)
            if key in environment.config:
                conflicts.append(key)
            values[key] = (
                secrets.jinja_literal(value) if isinstance(value, str) else value
            )
            sources[key] = f"Secret {namespace}/{provided.origin(key)}"
            switch = secrets.ENDPOINT_SWITCHES.get(key)
            if switch:
                values[switch] = False
                sources[switch] = (
                    f"{key} from Secret {namespace}/{provided.origins[key][0]}"
                )
        if conflicts:
            fmt.echo_alert(
                f"Set both in {config_display} and in a Secret (the Secret wins): {', '.join(sorted(conflicts))}"
            )

    # Layer 5: TUTOR_<KEY> beats everything the plugin provides.
    for key in list(values):
        found, value = env_value(key)
        if found:
            values[key] = value
            sources[key] = ENV_PREFIX + key
    return Resolution(
        environment=environment,
        values=values,
        sources=sources,
        conflicts=conflicts,
        secrets=provided,
    )


def read_secrets(
    namespace: str, specs: list[secrets.SecretSpec], renames: dict[tuple[str, str], str]
) -> secrets.SecretValues:
    """Read the Secrets once per process; mask and report them."""
    from . import secrets

    key = (
        namespace,
        tuple(specs),
        tuple(sorted(renames.items())),
        os.environ.get("KUBECONFIG", ""),
    )
    cached = STATE.secrets.get(key)
    if cached is not None:
        return cached
    from . import kube

    found = secrets.fetch(kube.Client.from_environment(), namespace, specs, renames)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        secrets.mask_for_github(found.values.values())
    STATE.secrets[key] = found
    absent = (
        f"; optional, absent: {', '.join(found.missing_optional)}"
        if found.missing_optional
        else ""
    )
    click.echo(
        f"eks: Secrets read from namespace {namespace}: {', '.join(found.found) or 'none'}{absent}",
        err=True,
    )
    return found


# --- the save guard -------------------------------------------------------


class _Snapshot:
    def __init__(
        self,
        root: str,
        config_bytes: bytes | None,
        env_existed: bool,
        backup: str | None,
    ) -> None:
        self.root = root
        self.config_bytes = config_bytes
        self.env_existed = env_existed
        self.backup = backup


def install_save_guard() -> None:
    """Wrap ``tutor.config.save_config_file`` (called by ``config save``,
    ``k8s launch``, ``plugins enable`` ...) with :func:`guarded_save`."""
    original = tutor_config.save_config_file
    if getattr(original, "_tutoreks_guard", False):
        return

    def save_config_file(root: str, config: dict[str, t.Any]) -> None:
        guarded_save(original, root, config)

    save_config_file._tutoreks_guard = True  # type: ignore[attr-defined]
    tutor_config.save_config_file = save_config_file


def guarded_save(
    original: t.Callable[[str, dict[str, t.Any]], None],
    root: str,
    config: dict[str, t.Any],
) -> None:
    take_snapshot(root)
    strip_injected(root, config)
    original(root, config)


def user_set_keys() -> set[str]:
    """Keys the running ``tutor config save`` sets explicitly (--set, --unset ...)."""
    ctx = click.get_current_context(silent=True)
    keys: set[str] = set()
    if ctx is None:
        return keys
    for param in ("set_vars", "append_vars", "remove_vars"):
        for item in ctx.params.get(param) or ():
            keys.add(item[0])
    keys.update(ctx.params.get("unset_vars") or ())
    return keys


def strip_injected(root: str, config: dict[str, t.Any]) -> None:
    """Put back the root's own value of every key the plugin injected."""
    if not STATE.injected:
        return
    previous = (
        tutor_config.get_yaml_file(tutor_config.config_path(root))
        if os.path.exists(tutor_config.config_path(root))
        else {}
    )
    explicit = user_set_keys()
    resolution = STATE.current
    for key in STATE.injected:
        if key in explicit:
            if resolution is not None and key in resolution.values:
                fmt.echo_alert(
                    f"{key} is saved in the tutor root's config.yml, but "
                    f"{resolution.sources.get(key, 'the environment')} takes precedence over it."
                )
            continue
        if key in previous:
            config[key] = previous[key]
        else:
            config.pop(key, None)


def take_snapshot(root: str) -> None:
    """Keep config.yml and env/ so that a failed save can put them back."""
    import shutil
    import tempfile
    from pathlib import Path

    if STATE.snapshot is not None:
        return
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return
    path = tutor_config.config_path(root)
    config_bytes = Path(path).read_bytes() if os.path.exists(path) else None
    env_dir = os.path.join(root, "env")
    backup = None
    if os.path.isdir(env_dir):
        backup = tempfile.mkdtemp(prefix=".eks-env-backup-", dir=root)
        shutil.copytree(env_dir, os.path.join(backup, "env"), symlinks=True)
    STATE.snapshot = _Snapshot(root, config_bytes, os.path.isdir(env_dir), backup)
    STATE.env_saved = False
    ctx.find_root().call_on_close(finish_snapshot)


def mark_env_saved(_root_env: str, _config: dict[str, t.Any]) -> None:
    """ENV_SAVED: config.yml and env/ were both written completely."""
    STATE.env_saved = True


def failing() -> bool:
    """Whether the command is ending with an error (called while click closes it)."""
    import sys

    error = sys.exc_info()[1]
    if error is None:
        return False
    if isinstance(error, click.exceptions.Exit):
        return error.exit_code != 0
    if isinstance(error, SystemExit):
        return error.code not in (0, None)
    return True


def finish_snapshot() -> None:
    """When the command ends: put config.yml and env/ back if it failed before env/
    was completely written (a command that saves config.yml alone, such as
    ``tutor plugins index add``, and succeeds, keeps what it wrote)."""
    import shutil

    snapshot = STATE.snapshot
    STATE.snapshot = None
    if snapshot is None:
        return
    try:
        if failing() and not STATE.env_saved:
            restore(snapshot)
    finally:
        if snapshot.backup:
            shutil.rmtree(snapshot.backup, ignore_errors=True)


def restore(snapshot: _Snapshot) -> None:
    import shutil
    from pathlib import Path

    path = tutor_config.config_path(snapshot.root)
    if snapshot.config_bytes is None:
        if os.path.exists(path):
            os.remove(path)
    else:
        tmp = path + ".eks-restore"
        Path(tmp).write_bytes(snapshot.config_bytes)
        os.replace(tmp, path)
    env_dir = os.path.join(snapshot.root, "env")
    if os.path.isdir(env_dir):
        shutil.rmtree(env_dir)
    if snapshot.backup:
        os.replace(os.path.join(snapshot.backup, "env"), env_dir)
    fmt.echo_alert(
        f"The save failed: {path} and {env_dir} are back to what they were before this command."
    )
