"""Every use of Tutor internals, in one place.

Tutor's documented plugin API is its hooks (``tutor.hooks``) and templates. The
plugin also needs a few things Tutor does not offer as API: the write of
``config.yml``, the running command's root and options, the label selector of
``tutor k8s start`` and the names it was given, the names of the ConfigMaps Tutor
generates, its unique (generated) settings, the loaded plugins, the context of
the public hosts, its ``rsa_import_key`` filter, the task runner of ``tutor k8s
do`` (its scripts and its wait for a Job) and the ``k8s`` command group. Each is
reached through a function here, and each has a test in
``tests/test_tutor_compat.py`` that fails when a Tutor release changes it.
"""

from __future__ import annotations

import functools
import os
import time
import typing as t

import click

#: The selector ``tutor k8s start`` applies the rendered kustomization with.
APPLY_SELECTOR = "app.kubernetes.io/component notin (job,namespace)"
#: The components that selector leaves out.
APPLY_EXCLUDED_COMPONENTS = ("job", "namespace")
#: The label Tutor's kustomization puts on every object and selector, from ``ID``.
INSTANCE_LABEL = "app.kubernetes.io/instance"
#: Tutor's configMapGenerator entries that hold credentials -> their template folder.
CREDENTIAL_CONFIGMAPS = {
    "openedx-config": "apps/openedx/config",
    "openedx-settings-lms": "apps/openedx/settings/lms",
    "openedx-settings-cms": "apps/openedx/settings/cms",
}
#: Tutor's rendered templates of the Deployments and Jobs.
WORKLOAD_TEMPLATES = ("k8s/deployments.yml", "k8s/jobs.yml")
#: Keys of Tutor's base.yml that are settings, not generated values.
BASE_SETTINGS = ("PLUGINS", "PLUGIN_INDEXES")
#: The parameters of ``tutor config save`` that set keys explicitly.
SAVE_KEY_PARAMS = ("set_vars", "append_vars", "remove_vars")
SAVE_UNSET_PARAM = "unset_vars"

SaveConfigFile = t.Callable[[str, dict[str, t.Any]], None]
#: When the plugin was loaded (with this module): files of env/ newer than this
#: were written by this process.
LOADED_AT = time.time()


def _wrap(owner: t.Any, attribute: str, make: t.Callable[[t.Any], t.Any]) -> None:
    """Replace ``owner.<attribute>`` with ``make(original)``, once per process.
    The replacement keeps ``_tutoreks_original`` (tests reach Tutor's own)."""
    original = getattr(owner, attribute)
    if original is None or getattr(original, "_tutoreks_wrapped", False):
        return
    replacement = make(original)
    replacement._tutoreks_wrapped = True
    replacement._tutoreks_original = original
    setattr(owner, attribute, replacement)


def instance_label_value(instance_id: str) -> str:
    """The value of :data:`INSTANCE_LABEL` for a Tutor ``ID``."""
    return f"openedx-{instance_id}"


def instance_selector(instance_id: str) -> str:
    """The label selector of every object of the Tutor instance ``instance_id``."""
    return f"{INSTANCE_LABEL}={instance_label_value(instance_id)}"


# --- the running command -------------------------------------------------------


def current_root() -> str:
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


def explicitly_set_keys() -> set[str]:
    """Keys the running ``tutor config save`` sets by name (--set, --unset ...)."""
    ctx = click.get_current_context(silent=True)
    keys: set[str] = set()
    if ctx is None:
        return keys
    for param in SAVE_KEY_PARAMS:
        for item in ctx.params.get(param) or ():
            keys.add(item[0])
    keys.update(ctx.params.get(SAVE_UNSET_PARAM) or ())
    return keys


def explicitly_set_values() -> dict[str, t.Any]:
    """``--set KEY=VALUE`` of the running ``tutor config save``, before Tutor
    renders them."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return {}
    return {item[0]: item[1] for item in ctx.params.get(SAVE_KEY_PARAMS[0]) or ()}


def on_command_end(callback: t.Callable[[], None]) -> bool:
    """Run ``callback`` when the running click command ends; False outside one."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    ctx.find_root().call_on_close(callback)
    return True


def command_state(key: str, make: t.Callable[[], t.Any]) -> t.Any:
    """What the running command keeps under ``key`` (``make()`` the first time),
    for as long as it runs; ``make()`` each time outside a command."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return make()
    meta = ctx.find_root().meta
    if key not in meta:
        meta[key] = make()
    return meta[key]


def command_value(key: str) -> t.Any:
    """What the running command keeps under ``key`` (None outside a command)."""
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.find_root().meta.get(key)


def set_command_value(key: str, value: t.Any) -> None:
    """Keep ``value`` under ``key`` while the running command runs."""
    click.get_current_context().find_root().meta[key] = value


def command_path() -> tuple[str, ...]:
    """The running command's names, e.g. ("k8s", "launch")."""
    ctx = click.get_current_context(silent=True)
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        if ctx.info_name:
            names.append(ctx.info_name)
        ctx = ctx.parent
    return tuple(reversed(names))


# --- config.yml ----------------------------------------------------------------


def config_path(root: str) -> str:
    from tutor import config as tutor_config

    return tutor_config.config_path(root)


def read_root_config_text(text: str) -> t.Any:
    """Parse config.yml text as Tutor does."""
    from tutor import serialize

    return serialize.load(text)


def parse_env_value(text: str) -> t.Any:
    """A ``TUTOR_<KEY>`` value parsed as Tutor parses it."""
    from tutor import serialize

    return serialize.parse(text)


def replace_save_config_file(save: SaveConfigFile) -> None:
    """Make ``save(root, config)`` do every write of config.yml.

    Tutor has no hook around that write (``config save``, ``k8s launch``,
    ``plugins enable`` ... call ``tutor.config.save_config_file``)."""
    from tutor import config as tutor_config

    def make(_original: SaveConfigFile) -> SaveConfigFile:
        def save_config_file(root: str, config: dict[str, t.Any]) -> None:
            save(root, config)

        return save_config_file

    _wrap(tutor_config, "save_config_file", make)


def parse_core_config_once() -> None:
    """Tutor parses its ``base.yml`` and ``defaults.yml`` again at every config load
    (several per command, 5-10 ms of YAML each): parsed once per process, and each
    caller gets its own copy (Tutor adds to what it gets)."""
    import copy

    from tutor import config as tutor_config

    def make(original: t.Callable[[str], t.Any]) -> t.Callable[[str], t.Any]:
        parsed: dict[str, t.Any] = {}

        def get_template(filename: str) -> t.Any:
            if filename not in parsed:
                parsed[filename] = original(filename)
            return copy.deepcopy(parsed[filename])

        return get_template

    _wrap(tutor_config, "get_template", make)


def write_config_atomically(root: str, config: dict[str, t.Any]) -> None:
    """What ``tutor.config.save_config_file`` does, through a temporary file and a
    rename: a command reading config.yml at the same time sees the old file or the
    new one, never a half-written one."""
    import tempfile

    from tutor import fmt, serialize

    path = config_path(root)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.yml.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            serialize.dump(config, f)
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fmt.echo_info(f"Configuration saved to {path}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_defaults() -> dict[str, t.Any]:
    """Tutor's and the loaded plugins' defaults, unrendered (a command's context
    keeps them: ``config/context.py``)."""
    from tutor import config as tutor_config

    return tutor_config.load_defaults()


def load_full(root: str) -> dict[str, t.Any]:
    from tutor import config as tutor_config

    return tutor_config.load_full(root)


def unique_templates() -> dict[str, t.Any]:
    """The generated settings, unrendered: Tutor's base.yml and every plugin's
    CONFIG_UNIQUE (``{{ 2048|rsa_private_key }}``, ``{{ 24|random_string }}``)."""
    from tutor import config as tutor_config
    from tutor import hooks

    base = tutor_config.get_template("base.yml")
    templates = {k: v for k, v in base.items() if k not in BASE_SETTINGS}
    for key, value in hooks.Filters.CONFIG_UNIQUE.iterate():
        templates.setdefault(key, value)
    return templates


def unique_keys() -> list[str]:
    """The generated settings: Tutor's base.yml and every plugin's CONFIG_UNIQUE."""
    return list(unique_templates())


#: Tutor's template filters that take a noticeable time to generate a value.
SLOW_GENERATORS = ("rsa_private_key",)


def slow_unique_keys() -> list[str]:
    """The generated settings made with a slow filter (Tutor's JWT key)."""
    return [
        key
        for key, value in unique_templates().items()
        if isinstance(value, str) and any(f in value for f in SLOW_GENERATORS)
    ]


# --- public hosts -------------------------------------------------------------------

#: The context ``APP_PUBLIC_HOSTS`` is iterated with for a production platform:
#: Tutor has "local" and "dev" (hosts with ports); Kubernetes serves the same
#: hosts as "local".
PUBLIC_HOSTS_CONTEXT: t.Literal["local"] = "local"


def public_host_templates() -> list[str]:
    """The public hosts of Tutor and every loaded plugin (``APP_PUBLIC_HOSTS``),
    as templates: Tutor renders each with the configuration (``{{ LMS_HOST }}``)."""
    from tutor import hooks
    from tutor import plugins as _plugins  # noqa: F401 - registers core's hosts

    return [
        str(host)
        for host in hooks.Filters.APP_PUBLIC_HOSTS.iterate(PUBLIC_HOSTS_CONTEXT)
    ]


# --- env/ -----------------------------------------------------------------------


def env_dir(root: str) -> str:
    from tutor import env as tutor_env

    return tutor_env.pathjoin(root)


def env_version(root: str) -> str | None:
    """The Tutor version env/ was last rendered with (``env/version``)."""
    from tutor import env as tutor_env

    return tutor_env.current_version(root)


def write_env_version(root: str, version: str) -> None:
    from tutor import env as tutor_env

    path = tutor_env.pathjoin(root, tutor_env.VERSION_FILENAME)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(version)


def is_rsa_private_key(pem: str) -> bool:
    """Whether Tutor's ``rsa_import_key`` (which renders the JWT signing keys)
    reads ``pem`` as an RSA private key."""
    try:
        return bool(rsa_import_key(pem).has_private())
    except (ValueError, IndexError, TypeError):
        return False


@functools.lru_cache(maxsize=4)
def rsa_import_key(pem: str) -> t.Any:
    """Tutor's ``rsa_import_key``, once per key and process. Tutor's settings
    templates import the JWT signing key in each file they render (four per
    save) and each import tests the key's primes again (20-30 ms); the key
    object is only read. A key that cannot be read raises each time."""
    from tutor import utils

    return utils.rsa_import_key(pem)


def with_rsa_import_once(
    filters: list[tuple[str, t.Any]],
) -> list[tuple[str, t.Any]]:
    """Tutor's template filters, ``rsa_import_key`` replaced by :func:`rsa_import_key`."""
    return [
        (name, rsa_import_key if name == "rsa_import_key" else function)
        for name, function in filters
    ]


def tutor_version() -> str:
    from tutor.__about__ import __version__

    return __version__


def render_template(config: dict[str, t.Any], name: str) -> str:
    from tutor import env as tutor_env

    return str(tutor_env.Renderer(config).render_template(name))


# --- commands ---------------------------------------------------------------------


def k8s_group() -> click.Group:
    from tutor.commands import k8s as tutor_k8s

    return tutor_k8s.k8s


def k8s_command(name: str) -> click.Command:
    return t.cast(click.Command, getattr(_k8s_module(), name))


def _k8s_module() -> t.Any:
    from tutor.commands import k8s as tutor_k8s

    return tutor_k8s


def wrap_task_scripts(rewrite: t.Callable[[str, str], str]) -> None:
    """Pass every script a ``tutor k8s do`` task runs through ``rewrite(service,
    script)`` before Tutor renders it (init tasks whatever ``--limit`` says,
    ``sqlshell``, ``createuser``, the MySQL maintenance tasks ...)."""

    def make(original: t.Any) -> t.Any:
        def run_task_from_str(self: t.Any, service: str, command: str) -> None:
            original(self, service, rewrite(service, command))

        return run_task_from_str

    _wrap(_k8s_module().K8sTaskRunner, "run_task_from_str", make)


def k8s_start_names() -> tuple[str, ...]:
    """The names the running ``tutor k8s start`` applies (``tutor k8s start lms``
    applies only ``app.kubernetes.io/name=lms``); empty when it applies everything
    (``start`` with no name, or ``launch``, which invokes it without one)."""
    ctx = click.get_current_context(silent=True)
    names = ctx.params.get("names") if ctx is not None else None
    return tuple(name for name in names or () if name != "all")


#: The field selector Tutor's task runner polls the Job it started with.
JOB_POLL_SELECTOR = "metadata.name="

JobCheck = t.Callable[[dict[str, t.Any], str], None]


def wrap_job_wait(check: JobCheck) -> None:
    """Call ``check(config, job_name)`` each time Tutor's task runner polls the Job
    it started (``K8sTaskRunner.run_task`` lists it by name every 5 s until it
    succeeded, or failed with no pod active), before Tutor looks at the answer: an
    exception raised by ``check`` ends the wait and the command. While a task
    runs, the ``BatchV1Api`` of Tutor's ``K8sClients`` is wrapped."""
    module = _k8s_module()

    def make(original_run: t.Any) -> t.Any:
        def run_task(self: t.Any, service: str, command: str) -> int:
            clients = module.K8sClients.instance()
            api = clients.batch_api
            clients._batch_api = _PolledBatchApi(api, check, self.config)
            try:
                return int(original_run(self, service, command))
            finally:
                clients._batch_api = api

        return run_task

    _wrap(module.K8sTaskRunner, "run_task", make)


class _PolledBatchApi:
    """Tutor's ``BatchV1Api``, with :func:`wrap_job_wait`'s check on each poll."""

    def __init__(self, api: t.Any, check: JobCheck, config: dict[str, t.Any]) -> None:
        self._api = api
        self._check = check
        self._config = config

    def list_namespaced_job(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        selector = str(kwargs.get("field_selector") or "")
        if selector.startswith(JOB_POLL_SELECTOR):
            self._check(self._config, selector[len(JOB_POLL_SELECTOR) :])
        return self._api.list_namespaced_job(*args, **kwargs)

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._api, name)


def wrap_k8s_command(
    name: str,
    before: t.Callable[[str], bool | None] | None = None,
    after: t.Callable[[str], object] | None = None,
) -> None:
    """Run ``before(root)`` / ``after(root)`` around ``tutor k8s <name>`` (also when
    another command invokes it: ``launch`` invokes ``start`` and ``init``); when
    ``before`` returns False, the command itself (and ``after``) is skipped."""

    def make(original: t.Any) -> t.Any:
        def callback(*args: t.Any, **kwargs: t.Any) -> t.Any:
            root = current_root()
            if before is not None and before(root) is False:
                return None
            result = original(*args, **kwargs)
            if after is not None:
                after(root)
            return result

        return callback

    _wrap(k8s_command(name), "callback", make)
