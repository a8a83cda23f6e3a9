"""One command's context for one tutor root, built once and passed explicitly.

Tutor loads the configuration several times per command and calls the plugin's
hooks without arguments: each finds the root with ``tutor_compat.current_root``
and its context with :func:`for_root`, the one cache (Tutor's own
``hooks.lru_cache``, cleared when plugins change, and here when a command
starts). A context holds what a command reads once: the root's config.yml (read
again only when it changes), the Kubernetes client, the Secrets, the state, the
values masked, Tutor's defaults and the resolutions made from them.
"""

from __future__ import annotations

import os
import threading
import typing as t

from tutor import hooks

from .. import environment, kube, tutor_compat

if t.TYPE_CHECKING:
    from .resolve import Resolution
    from .secrets import SecretValues
    from .state import State


#: The command's key of the environment ``tutor eks envs`` validates.
OVERRIDE = "tutoreks.environment"


class Context:
    """What one command knows about one tutor root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._stamp: tuple[int, int] | None = None
        self._text = ""
        self._config: dict[str, t.Any] | None = None
        self._kube: kube.Kube | None = None
        self._lock = threading.Lock()
        self._defaults: dict[str, t.Any] | None = None
        #: Memos of this command: resolutions by their inputs, Secrets and states
        #: by where they are read from, values masked under GitHub Actions.
        self.resolutions: dict[t.Hashable, Resolution] = {}
        self.secrets: dict[t.Hashable, SecretValues] = {}
        self.states: dict[tuple[str, str], State] = {}
        self.lock = threading.Lock()
        self.masked: set[str] = set()
        #: What the command's steps hand each other: warnings already shown (Tutor
        #: renders several times per command), when each Job was first polled, the
        #: full config `start` loaded (for after it), whether `launch` ran the
        #: migrations before `start`, the kustomize patches of the last renderer.
        self.warned: set[str] = set()
        self.job_started: dict[str, float] = {}
        self.start_config: dict[str, t.Any] | None = None
        self.migrated = False
        self.kustomize_patches: tuple[object, str] | None = None

    # --- the root's config.yml -------------------------------------------------

    def root_text(self) -> str:
        """``<root>/config.yml`` as text, read again only when its mtime or size
        changed (the command itself writes it)."""
        path = tutor_compat.config_path(self.root)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            self._stamp, self._text, self._config = None, "", {}
            return ""
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            with open(path, encoding="utf-8") as f:
                self._stamp, self._text, self._config = stamp, f.read(), None
        return self._text

    def root_config(self) -> dict[str, t.Any]:
        """The raw (unrendered) content of ``<root>/config.yml``."""
        text = self.root_text()
        if self._config is None:
            loaded = tutor_compat.read_root_config_text(text) if text else {}
            self._config = loaded if isinstance(loaded, dict) else {}
        return self._config

    @property
    def override(self) -> environment.Selection | None:
        """The environment ``tutor eks envs`` validates, instead of the selected
        one (kept by the command: :data:`OVERRIDE`)."""
        found: environment.Selection | None = tutor_compat.command_value(OVERRIDE)
        return found

    def may_select(self) -> bool:
        """False when no environment can be selected: no TUTOR_EKS_ENVIRONMENT and
        no EKS_ENVIRONMENT in the root's config.yml (a text search, no parse)."""
        if self.override is not None or "TUTOR_EKS_ENVIRONMENT" in os.environ:
            return True
        return "EKS_ENVIRONMENT" in self.root_text()

    def selection(self) -> environment.Selection:
        return self.override or environment.select(self.root_config())

    # --- what is read once --------------------------------------------------------

    def kube(self) -> kube.Kube:
        """The command's Kubernetes client (made on first use)."""
        with self._lock:  # concurrent first calls would each read the kubeconfig
            if self._kube is None:
                self._kube = kube.new_client()
            return self._kube

    def tutor_defaults(self) -> dict[str, t.Any]:
        """Tutor's and the loaded plugins' defaults, unrendered; read-only."""
        if self._defaults is None:
            self._defaults = tutor_compat.load_defaults()
        return self._defaults

    def forget(self) -> None:
        """Resolutions and states read before are stale: the state Secret was just
        written (the Secrets are not read again)."""
        self.resolutions.clear()
        self.states.clear()


@hooks.lru_cache
def _context(root: str) -> Context:
    return Context(root)


def for_root(root: str) -> Context:
    """The context of ``root`` for the running command."""
    made: Context = _context(root)
    return made


def current() -> Context:
    """The context of the running command's root."""
    return for_root(tutor_compat.current_root())


@hooks.Actions.PROJECT_ROOT_READY.add()
def _new_command(_root: str) -> None:
    """A command starts (in tests, several run in one process): nothing carries over."""
    _context.cache_clear()  # type: ignore[attr-defined]
