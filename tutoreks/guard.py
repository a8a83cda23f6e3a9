"""Step 4: guard the save. config.yml keeps only what the user put there, and a
failed command leaves config.yml and env/ as they were.

Tutor writes whatever ``CONFIG_USER`` returns into config.yml on ``config save``
and ``k8s launch``, and has no hook around that write: every write of config.yml
goes through :func:`guarded_save` (``tutor_compat.replace_save_config_file``), which

1. takes a snapshot of config.yml and env/ the first time in a command, so that a
   command failing before env/ is completely written puts both back;
2. keeps the values Tutor generated on an environment's first deploy in the
   cluster's state Secret (``config/state.py``), or takes the ones another deploy
   stored there first;
3. writes config.yml without any value the plugin provided (environment, Secrets,
   state, variables): a key the root already had keeps the root's value; a slow
   generated value (the JWT key) is written as a stand-in (:func:`stand_in_slow_keys`).

The config dict Tutor passes is never changed in place, except for generated
values that another deploy stored first (step 2), which Tutor must use, and when
``tutor plugins disable eks`` runs (:func:`without_the_plugin`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import click
from tutor import fmt

from . import signals, tutor_compat
from .config import context, instances, resolve, state
from .config.values import quoted_string_escape
from .defaults import STAND_IN
from .exceptions import EksError

BACKUP_PREFIX = ".eks-env-backup-"


@dataclass
class Snapshot:
    root: str
    config_bytes: bytes | None
    backup: str | None
    lock: int | None = None
    env_saved: bool = False
    finished: bool = False


#: How long a command waits for another one saving the same root.
LOCK_WAIT = 120.0


def lock_root(root: str) -> int | None:
    """Hold the root (an flock on its directory) until the command ends: two
    commands saving the same root run one after the other."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None  # no root yet: Tutor creates it when it writes config.yml
    deadline = time.monotonic() + LOCK_WAIT
    waited = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise EksError(
                    f"The tutor root {root} is busy: another tutor command has been "
                    f"saving it for more than {LOCK_WAIT:g} s. Nothing was changed."
                ) from None
            if not waited:
                fmt.echo_info(f"Waiting for another tutor command saving {root}...")
                waited = True
            time.sleep(0.2)


def snapshots() -> dict[str, Snapshot]:
    """The snapshots of the running command, by root (it saved config.yml)."""
    found: dict[str, Snapshot] = tutor_compat.command_state("tutoreks.snapshots", dict)
    return found


def install() -> None:
    tutor_compat.replace_save_config_file(guarded_save)


#: The running command disables the plugin (:func:`without_the_plugin`).
DISABLED = "tutoreks.disabled"


def guarded_save(root: str, config: dict[str, t.Any]) -> None:
    resolution = resolve.for_root(root)
    if resolution is None or tutor_compat.command_value(DISABLED):
        # Inert: Tutor's own behaviour (its file, written atomically), no snapshot.
        tutor_compat.write_config_atomically(root, config)
        return
    take_snapshot(root)
    kept: list[str] = []
    if resolution.online:
        kept = keep_generated(context.for_root(root), resolution, config)
    # Tutor's own function truncates config.yml before writing it: a concurrent
    # reader could see it empty. The same content, written atomically.
    tutor_compat.write_config_atomically(
        root, without_injected(root, config, resolution, kept)
    )


def keep_generated(
    ctx: context.Context, resolution: resolve.Resolution, config: dict[str, t.Any]
) -> list[str]:
    """The state's part of a save: a new ``ID`` must not clash with a running
    instance (``config/instances.py``); resolutions read before are stale after."""
    if resolution.state is None:
        return []
    namespace = resolution.namespace
    return state.keep_generated(
        ctx,
        resolution.state,
        resolution.sources,
        config,
        lambda new_id: instances.refuse_foreign_instance(ctx.kube(), namespace, new_id),
    )


def without_injected(
    root: str,
    config: dict[str, t.Any],
    resolution: resolve.Resolution | None,
    kept: t.Iterable[str] = (),
) -> dict[str, t.Any]:
    """A copy of ``config`` where every key the plugin provided (``kept``: the
    keys the state holds; with a state, every key Tutor generates) has the root's
    own value, or is absent; keys set by ``--set``/``--unset`` are the user's."""
    if resolution is None:
        return config
    result = dict(config)
    previous = context.for_root(root).root_config()
    explicit = tutor_compat.explicitly_set_keys()
    injected = set(resolution.values) | set(kept)
    if resolution.state_secret:
        # Values Tutor generates belong in the state: a command that does not
        # read the cluster (`tutor plugins enable`) does not write them either.
        injected.update(tutor_compat.unique_keys())
    keep_templates(result, previous, resolution)
    for key in injected:
        if key in explicit:
            if key in resolution.values:
                fmt.echo_alert(
                    f"{key} is saved in the tutor root's config.yml, but "
                    f"{resolution.sources.get(key, 'the environment')} takes precedence over it."
                )
            continue
        if key in previous:
            result[key] = previous[key]
        else:
            result.pop(key, None)
    stand_in_slow_keys(result, resolution, kept)
    return result


def without_the_plugin(root: str, config: dict[str, t.Any]) -> None:
    """``tutor plugins disable eks``: ``config``, which Tutor writes next, loses
    the values the plugin provided and the stand-ins; that write is Tutor's own."""
    clean = without_injected(root, config, resolve.for_root(root))
    config.clear()
    config.update({k: v for k, v in clean.items() if v != STAND_IN})
    tutor_compat.set_command_value(DISABLED, True)


def stand_in_slow_keys(
    result: dict[str, t.Any], resolution: resolve.Resolution, kept: t.Iterable[str]
) -> None:
    """A slow generated value (an RSA key) that the cluster provides is written as
    :data:`~tutoreks.defaults.STAND_IN`, so that Tutor's first load of config.yml
    in the next command, before any plugin is loaded, does not generate one."""
    provided = set(resolution.values) | set(kept)
    for key in tutor_compat.slow_unique_keys():
        if key in provided and key not in result:
            result[key] = STAND_IN


def keep_templates(
    result: dict[str, t.Any],
    previous: dict[str, t.Any],
    resolution: resolve.Resolution,
) -> None:
    """A setting of the root whose template (``{{ MYSQL_ROOT_PASSWORD }}``) renders
    a value from a Secret or the state is written as its template, never as the
    value: ``--set`` text first, else the root's own text."""
    sensitive = [
        form
        for value in resolution.sensitive_values()
        for form in {value, quoted_string_escape(value)}
        if len(form) >= 4
    ]
    if not sensitive:
        return
    templates = {**previous, **tutor_compat.explicitly_set_values()}
    for key, value in list(result.items()):
        if key in resolution.values or not isinstance(value, str):
            continue
        if any(secret in value for secret in sensitive):
            template = templates.get(key)
            if isinstance(template, str) and template != value:
                result[key] = template
            else:
                raise EksError(
                    f"{key} would be written to the tutor root's config.yml holding a "
                    "value from a Kubernetes Secret or the state; nothing was written."
                )


# --- snapshot and restore -------------------------------------------------------------


def take_snapshot(root: str) -> None:
    """Keep config.yml and env/ so that a failed command can put them back."""
    if root in snapshots():
        return
    lock = lock_root(root)
    remove_stale_backups(root)
    path = tutor_compat.config_path(root)
    config_bytes = Path(path).read_bytes() if os.path.exists(path) else None
    env_dir = tutor_compat.env_dir(root)
    backup = None
    if os.path.isdir(env_dir):
        backup = tempfile.mkdtemp(prefix=BACKUP_PREFIX, dir=root)
        shutil.copytree(env_dir, os.path.join(backup, "env"), symlinks=True)
    snapshot = Snapshot(root, config_bytes, backup, lock)
    if not tutor_compat.on_command_end(lambda: finish(snapshot)):
        discard(snapshot)
        return
    snapshots()[root] = snapshot
    _restore_on_sigterm(snapshots())


def remove_stale_backups(root: str) -> None:
    """Backups of env/ a killed command left (SIGKILL, a lost machine): they hold
    the rendered credentials. This command holds the root's lock, so none is live."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(BACKUP_PREFIX) and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def mark_env_saved(root_env: str, _config: dict[str, t.Any]) -> None:
    """ENV_SAVED: config.yml and env/ were both written completely."""
    for snapshot in snapshots().values():
        if tutor_compat.env_dir(snapshot.root) == root_env:
            snapshot.env_saved = True


def failing() -> bool:
    """Whether the command is ending with an error (called while click closes it)."""
    error = sys.exc_info()[1]
    if error is None:
        return False
    if isinstance(error, click.exceptions.Exit):
        return error.exit_code != 0
    if isinstance(error, SystemExit):
        return error.code not in (0, None)
    return True


def finish(snapshot: Snapshot, failed: bool | None = None) -> None:
    """When the command ends: put config.yml and env/ back if it failed before env/
    was completely written (a command that saves config.yml alone, such as
    ``tutor plugins index add``, and succeeds, keeps what it wrote)."""
    if snapshot.finished:
        return
    snapshot.finished = True
    taken = snapshots()
    if taken.get(snapshot.root) is snapshot:
        del taken[snapshot.root]
    try:
        if (failing() if failed is None else failed) and not snapshot.env_saved:
            restore(snapshot)
    finally:
        discard(snapshot)


def discard(snapshot: Snapshot) -> None:
    if snapshot.backup:
        shutil.rmtree(snapshot.backup, ignore_errors=True)
        snapshot.backup = None
    if snapshot.lock is not None:
        os.close(snapshot.lock)  # releases the flock
        snapshot.lock = None


def restore(snapshot: Snapshot) -> None:
    path = tutor_compat.config_path(snapshot.root)
    if snapshot.config_bytes is None:
        if os.path.exists(path):
            os.remove(path)
    else:
        tmp = path + ".eks-restore"
        Path(tmp).write_bytes(snapshot.config_bytes)
        os.replace(tmp, path)
    env_dir = tutor_compat.env_dir(snapshot.root)
    if os.path.isdir(env_dir):
        shutil.rmtree(env_dir)
    if snapshot.backup:
        os.replace(os.path.join(snapshot.backup, "env"), env_dir)
    fmt.echo_alert(
        f"The save failed: {path} and {env_dir} are back to what they were before this command."
    )


def _restore_on_sigterm(taken: dict[str, Snapshot]) -> None:
    """SIGTERM (a cancelled CI job) restores and cleans up as an error does."""

    def restore_all() -> None:
        for snapshot in list(taken.values()):
            finish(snapshot, failed=True)

    signals.on_sigterm("restore", restore_all)
