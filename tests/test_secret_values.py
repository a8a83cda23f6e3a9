"""Property: an arbitrary string as a Secret value either arrives exactly in what
Tutor renders, or is refused cleanly (an EksError that names the key, not the value)."""

from __future__ import annotations

import ast
import subprocess

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tutor import env as tutor_env

from tutoreks.config import values as secrets
from tutoreks.exceptions import EksError

KEYS = ["MYSQL_ROOT_PASSWORD", "REDIS_PASSWORD", "SMTP_PASSWORD"]


def render(key: str, value: str) -> str:
    """What Tutor's config loading makes of the value the plugin hands it."""
    return tutor_env.render_str({}, secrets.template_value(key, value))


FIXED_SENTENCES = {
    "the value contains a newline, control or non-printable character, which "
    "Tutor's templates cannot hold.",
}


@settings(max_examples=400, deadline=None)
@given(value=st.text(), key=st.sampled_from(KEYS))
@example(value="{{ 7*7 }}", key="SMTP_PASSWORD")
@example(value="{% if x %}", key="SMTP_PASSWORD")
@example(value="p@ss%w0rd#", key="SMTP_PASSWORD")
@example(value="a\"b\\c$d`e'f", key="SMTP_PASSWORD")
@example(value="\U0001f393é", key="MYSQL_ROOT_PASSWORD")
@example(value="a \u2028 b", key="MYSQL_ROOT_PASSWORD")
def test_arrives_exactly_or_is_refused_cleanly(value: str, key: str) -> None:
    try:
        secrets.check_value(key, value, f"Secret ns/my-secret key {key}")
    except EksError as e:
        message = str(e)
        assert message.startswith(f"Secret ns/my-secret key {key} ({key}): ")
        # The message is one of the fixed sentences: it holds no part of the value.
        assert message.split("): ", 1)[1] in FIXED_SENTENCES
        return
    # Accepted: it arrives exactly in the double-quoted YAML and Python strings
    # Tutor's templates put it in ...
    rendered = render(key, value)
    assert yaml.safe_load(f'PASSWORD: "{rendered}"')["PASSWORD"] == value
    assert ast.literal_eval(f'"{rendered}"') == value
    # ... and in a shell script, read from the environment (render/tasks.py).
    shell = subprocess.run(
        ["sh", "-c", 'printf %s "${TUTOREKS_VALUE}"'],
        env={"TUTOREKS_VALUE": value},
        capture_output=True,
        check=True,
    )
    assert shell.stdout.decode("utf-8", "surrogateescape") == value


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_literal_is_jinja_safe(value: str) -> None:
    literal = secrets.jinja_literal(value)
    inner = literal[len('{{ "') : -len('" }}')]
    for delimiter in ("{{", "{%", "{#", "}}", "%}", '"'):
        assert delimiter not in inner
