"""The admin user's init task (templates/eks/tasks/admin-user.sh), run as the Job
runs it (``sh -e -c``, values in ``TUTOREKS_ADMIN_*`` variables) against a real
Django with a SQLite database. edx-platform is not here: a stand-in
``manage.py`` takes the service name first as edx-platform's does, and a
``common.djangoapps.student`` app holds the ``UserProfile`` model the script
creates."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tutoreks.render import admin
from tutoreks.render.kustomize import ENV_PREFIX

pytest.importorskip("django")

MANAGE = """\
#!{python}
import os
import sys

import django
from django.conf import settings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
settings.configure(
    DATABASES={{
        "default": {{
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(HERE, "db.sqlite3"),
        }}
    }},
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "common.djangoapps.student",
    ],
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    USE_TZ=True,
    # A salted hash that takes no second per password (the default PBKDF2 does):
    # the script sets and checks passwords through Django, whatever the hasher.
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
)
django.setup()
from django.core.management import execute_from_command_line

args = sys.argv[1:]
if args and args[0] in ("lms", "cms"):
    args = args[1:]  # edx-platform's manage.py takes the service first
execute_from_command_line([sys.argv[0], *args])
"""

MODELS = """\
from django.conf import settings
from django.db import models


class UserProfile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, related_name="profile", on_delete=models.CASCADE
    )
    name = models.CharField(max_length=255, blank=True)

    class Meta:
        app_label = "student"
"""


@pytest.fixture
def platform(tmp_path: Path) -> Path:
    (tmp_path / "manage.py").write_text(MANAGE.format(python=sys.executable))
    (tmp_path / "manage.py").chmod(0o755)
    app = tmp_path / "common" / "djangoapps" / "student"
    app.mkdir(parents=True)
    for package in (tmp_path / "common", tmp_path / "common" / "djangoapps"):
        (package / "__init__.py").write_text("")
    (app / "__init__.py").write_text("")
    (app / "apps.py").write_text(
        textwrap.dedent(
            """\
            from django.apps import AppConfig


            class StudentConfig(AppConfig):
                name = "common.djangoapps.student"
                label = "student"
            """
        )
    )
    (app / "models.py").write_text(MODELS)
    subprocess.run(
        ["./manage.py", "lms", "migrate", "--run-syncdb", "-v", "0"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return tmp_path


def job_script() -> str:
    """The task script as the Job gets it: every ``{{ KEY }}`` a ``${TUTOREKS_KEY}``
    (what render/tasks.py does for values from Secrets)."""
    with open(admin.SCRIPT, encoding="utf-8") as f:
        script = f.read()
    rewritten = re.sub(
        r"\{\{ (ADMIN_[A-Z]+) \}\}",
        lambda m: "${" + ENV_PREFIX + m.group(1) + "}",
        script,
    )
    assert "{{" not in rewritten and "{%" not in rewritten
    return rewritten


def run(platform: Path, user: str, email: str, password: str) -> str:
    result = subprocess.run(
        ["sh", "-e", "-c", job_script()],
        cwd=platform,
        env={
            **os.environ,
            "TUTOREKS_ADMIN_USER": user,
            "TUTOREKS_ADMIN_EMAIL": email,
            "TUTOREKS_ADMIN_PASSWORD": password,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert password not in output, "the log never shows the password"
    return output


def user_row(platform: Path, username: str) -> tuple[str, ...]:
    code = (
        "from django.contrib.auth import get_user_model;"
        f"u = get_user_model().objects.get(username={username!r});"
        "print('ROW', u.email, u.is_staff, u.is_superuser, u.is_active, u.password,"
        " u.profile.name)"
    )
    out = subprocess.run(
        ["./manage.py", "lms", "shell", "-c", code],
        cwd=platform,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    row = next(line for line in out.splitlines() if line.startswith("ROW "))
    return tuple(row.split()[1:])


def test_creates_then_changes_nothing_then_updates(platform: Path) -> None:
    password = "Pa55%word_@x"
    assert "admin user created" in run(platform, "admin", "admin@a.example", password)
    email, staff, superuser, active, hashed, name = user_row(platform, "admin")
    assert (email, staff, superuser, active, name) == (
        "admin@a.example",
        "True",
        "True",
        "True",
        "admin",
    )
    assert password not in hashed

    assert "admin user unchanged" in run(platform, "admin", "admin@a.example", password)
    assert user_row(platform, "admin")[4] == hashed, "the same password keeps its hash"

    assert "admin user updated" in run(platform, "admin", "ops@b.example", "N3w-pass")
    email, *_flags, new_hash, _name = user_row(platform, "admin")
    assert email == "ops@b.example"
    assert new_hash != hashed


def test_an_existing_plain_user_becomes_a_staff_superuser(platform: Path) -> None:
    subprocess.run(
        [
            "./manage.py",
            "lms",
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model;"
            "get_user_model().objects.create_user('admin', 'admin@a.example', 'x')",
        ],
        cwd=platform,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert "admin user updated" in run(
        platform, "admin", "admin@a.example", "s3cret-pw"
    )
    _email, staff, superuser, active, _hash, name = user_row(platform, "admin")
    assert (staff, superuser, active, name) == ("True", "True", "True", "admin")
