"""The admin user: a staff superuser from the ``admin-edx`` Secret.

When ``ADMIN_USER``, ``ADMIN_EMAIL`` and ``ADMIN_PASSWORD`` come from Kubernetes
Secrets (the cookiecutter-openedx-devops Terraform puts them in ``admin-edx``),
``tutor k8s init`` (and ``launch``) runs one more init task in the LMS, after
Tutor's and the plugins' migrations: it creates that user, or brings an existing
one up to date (e-mail, staff, superuser, active, password), and changes nothing
when all is as it should be. The script refers to the values as ``{{ KEY }}``,
which ``render/tasks.py`` turns into ``${TUTOREKS_KEY}`` variables the Job reads
from the Secret: no value is in the Job's arguments or in its log.
"""

from __future__ import annotations

import os
import typing as t

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution

KEYS = ("ADMIN_USER", "ADMIN_EMAIL", "ADMIN_PASSWORD")
SERVICE = "lms"
SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(__file__)),
    "templates",
    "eks",
    "tasks",
    "admin-user.sh",
)


def init_tasks(resolution: Resolution) -> list[tuple[str, str]]:
    """The admin user's init task, when its three keys come from Secrets."""
    if not any(key in resolution.values for key in KEYS):
        return []
    from_secrets = resolution.secret_keys()
    elsewhere = [key for key in KEYS if key not in from_secrets]
    if elsewhere:
        from tutor import fmt

        fmt.echo_alert(
            "No admin user task: it needs ADMIN_USER, ADMIN_EMAIL and ADMIN_PASSWORD "
            f"from Secrets (admin-edx), and {', '.join(elsewhere)} come from elsewhere."
        )
        return []
    with open(SCRIPT, encoding="utf-8") as f:
        return [(SERVICE, f.read())]
