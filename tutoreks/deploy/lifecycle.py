"""What a deploy does around Tutor's own ``tutor k8s launch`` and ``start``, when an
environment is selected:

- before ``launch``, in a root that has no ``env/version`` (a CI job's empty root):
  the Tutor version of the last successful deploy, from the state, becomes
  ``env/version``, so that Tutor runs its release-upgrade steps when the release
  changed, as it would from a persistent root;
- before ``start`` applies anything: the namespace must not run another Tutor
  instance (``deploy/adopt.py``);
- after ``start`` succeeded: the state records the Tutor release and the plugin
  version of this deploy.
"""

from __future__ import annotations

from .. import tutor_compat
from ..config import resolve


def before_launch(root: str) -> None:
    resolution = resolve.for_root(root)
    if resolution is None or resolution.state is None:
        return
    last = resolution.state.last_tutor_version
    if last and tutor_compat.env_version(root) is None:
        tutor_compat.write_env_version(root, last)


def before_start(root: str) -> None:
    from . import adopt

    resolution = resolve.for_root(root)
    if resolution is None or resolution.state is None:
        return
    instance = resolution.state.values.get("ID")
    if instance is not None and "ID" in resolution.state.provided(resolution.sources):
        adopt.refuse_foreign_instance(resolve.client(), resolution.namespace, instance)


def after_start(root: str) -> None:
    from ..config import state

    resolution = resolve.for_root(root)
    if resolution is None or resolution.state is None:
        return
    state.record_deploy(resolve.client(), resolution.state)
    resolve.forget()


def install() -> None:
    tutor_compat.wrap_k8s_command("launch", before=before_launch)
    tutor_compat.wrap_k8s_command("start", before=before_start, after=after_start)
