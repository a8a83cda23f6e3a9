"""Task scripts of ``tutor k8s do``: values from Secrets never land in a Job's args.

Tutor renders each task script with the live configuration and puts it into the
Job's arguments. Before it does, every ``{{ KEY }}`` whose value came from a
Kubernetes Secret or the state becomes ``${TUTOREKS_KEY}``, which the Job reads
from that Secret (``render/kustomize.py`` adds the ``secretKeyRef`` variables to
every Job). This applies to every task of every ``tutor k8s do`` command: init
tasks whatever ``--limit`` says, ``createuser``, ``sqlshell`` and the MySQL
maintenance tasks.
"""

from __future__ import annotations

import re
import typing as t

from .kustomize import ENV_PREFIX

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution

#: ``{{ KEY }}`` in a task script.
_REFERENCE = r"\{{\{{-?\s*(?P<key>{keys})\s*-?\}}\}}"


def rewrite(script: str, resolution: Resolution) -> str:
    """``script`` with every reference to a Secret value read from the environment."""
    keys = resolution.secret_keys()
    if not keys:
        return script
    pattern = re.compile(
        _REFERENCE.format(keys="|".join(re.escape(k) for k in sorted(keys)))
    )
    return pattern.sub(lambda m: "${" + ENV_PREFIX + m.group("key") + "}", script)
