"""Every realistic password works: each value RDS accepts as a master password
(printable ASCII but ``/ " @`` and space) and each Terraform ``override_special``
character arrives exactly wherever Tutor 22 puts it: its YAML config files, its
Python settings, and its MySQL init script run with the real ``mysql`` client."""

from __future__ import annotations

import ast
import re
import string
import subprocess
import typing as t

import pymysql
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tutor import config as tutor_config
from tutor import env as tutor_env

from tutoreks.config import values
from tutoreks.render import tasks

from .services import Service

RDS_ALPHABET = "".join(
    ch for ch in string.printable[:95] if ch not in '/"@ ' and ch.isprintable()
)
TERRAFORM_SPECIAL = "!#$%&*()-_=+[]{}<>:?"
NASTY = [
    "a'b\"c\\d$e`f!g#h%i&j*k(l)m-n_o=p+q[r]s{t}u<v>w:x?y~z|{{ x }}{% y %}",
    TERRAFORM_SPECIAL * 2,
    "\\'; DROP TABLE x; -- $(touch /tmp/pwned) `id` ${HOME}",
    "ends-with-backslash\\",
    "'",
]


def rendered_config(raw: dict[str, str]) -> dict[str, t.Any]:
    """Tutor's configuration with ``raw`` given as the plugin gives it to Tutor."""
    config = tutor_config.load_defaults()
    tutor_config.update_with_base(config)
    config.update(
        {key: values.template_value(key, value) for key, value in raw.items()}
    )
    tutor_config.render_full(config)
    return config


def render(config: dict[str, t.Any], template: str) -> str:
    return str(tutor_env.Renderer(config).render_template(template))


def python_string(settings_text: str, pattern: str) -> str:
    """The Python string literal that a settings line assigns, evaluated."""
    found = re.search(pattern, settings_text, re.MULTILINE)
    assert found, pattern
    value = ast.literal_eval(found.group(1))
    assert isinstance(value, str)
    return value


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet=RDS_ALPHABET + TERRAFORM_SPECIAL, min_size=1, max_size=40))
@example("a\\\"b'c$d`e{{ f }}%")
def test_quoted_values_arrive_exactly_in_yaml_and_python(password: str) -> None:
    for key in ("OPENEDX_MYSQL_PASSWORD", "SMTP_PASSWORD", "MONGODB_PASSWORD"):
        values.check_value(key, password, f"Secret ns/s key {key}")
    config = rendered_config(
        {
            "OPENEDX_MYSQL_PASSWORD": password,
            "SMTP_PASSWORD": password,
            "MONGODB_USERNAME": "openedx",
            "MONGODB_PASSWORD": password,
        }
    )
    env_yml = yaml.safe_load(render(config, "apps/openedx/config/lms.env.yml"))
    assert env_yml["DATABASES"]["default"]["PASSWORD"] == password
    assert env_yml["EMAIL_HOST_PASSWORD"] == password
    common = render(config, "apps/openedx/settings/partials/common_all.py")
    assert python_string(common, r'^\s*"password": (".*"),$') == password


def test_unknown_keys_keep_the_strict_rule_and_hosts_are_checked() -> None:
    from tutoreks.exceptions import EksError

    with pytest.raises(EksError, match=r"where Tutor or a plugin puts NOTES_SECRET"):
        values.check_value("NOTES_SECRET", "a$b", "Secret ns/s key k")
    with pytest.raises(EksError, match=r"not a host name"):
        values.check_value("MONGODB_HOST", "h1;touch /tmp/X;#,h2", "Secret ns/s key k")
    values.check_value(
        "MONGODB_HOST", "h1.example.com, 10.0.0.2,h3", "Secret ns/s key k"
    )
    values.check_value("MONGODB_HOST", "mongodb+srv://cluster0.example.net", "w")
    with pytest.raises(EksError, match="steers the deploy"):
        values.check_value("RUN_MYSQL", "true", "Secret ns/s key k")
    with pytest.raises(EksError, match="non-printable"):
        values.check_value("SMTP_PASSWORD", "a\u2028b", "Secret ns/s key k")


@pytest.mark.services
@pytest.mark.parametrize("password", NASTY, ids=range(len(NASTY)))
def test_tutor_mysql_init_script_runs_with_any_password(
    mariadb: Service, password: str
) -> None:
    """Tutor's jobs/init/mysql.sh, rewritten by the plugin and rendered by Tutor,
    run with the real mysql client: the root user and the openedx user both have
    a nasty password; the openedx user can then log in with it."""
    suffix = str(abs(hash(password)) % 10**6)
    admin, user, database = f"admin{suffix}", f"openedx{suffix}", f"openedx{suffix}"
    with (
        pymysql.connect(
            host=mariadb.host,
            port=mariadb.port,
            user=mariadb.username,
            password=mariadb.password,
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (admin, password)
        )
        cursor.execute(f"GRANT ALL ON *.* TO `{admin}`@'%' WITH GRANT OPTION")
    raw = {
        "MYSQL_HOST": mariadb.host,
        "MYSQL_ROOT_USERNAME": admin,
        "MYSQL_ROOT_PASSWORD": password,
        "OPENEDX_MYSQL_USERNAME": user,
        "OPENEDX_MYSQL_PASSWORD": password,
    }

    class Keys:
        def secret_keys(self) -> dict[str, tuple[str, str]]:
            return {key: ("a-secret", key) for key in raw}

    config = rendered_config(raw)
    config.update(MYSQL_PORT=mariadb.port, OPENEDX_MYSQL_DATABASE=database)
    script = tutor_env.read_core_template_file("jobs", "init", "mysql.sh")
    rewritten = tasks.rewrite(script, Keys())  # type: ignore[arg-type]
    command = tutor_env.render_str(config, rewritten)
    if len(password) > 3:
        assert password not in command, "the Job's args never hold the password"
    result = subprocess.run(
        ["sh", "-e", "-c", command],
        env={
            "PATH": "/usr/bin:/bin",
            **{f"TUTOREKS_{key}": value for key, value in raw.items()},
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:].replace(password, "***")
    with (
        pymysql.connect(
            host=mariadb.host,
            port=mariadb.port,
            user=user,
            password=password,
            database=database,
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT CURRENT_USER()")
        assert cursor.fetchone()[0].startswith(user + "@")
