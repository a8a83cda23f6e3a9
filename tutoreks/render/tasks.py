"""Task scripts of ``tutor k8s do``: values from Secrets never land in a Job's args,
and whatever characters they hold, the script receives them exactly.

Tutor renders each task script with the live configuration and puts it into the
Job's arguments. Before it does, every ``{{ KEY }}`` whose value came from a
Kubernetes Secret or the state becomes a reference to ``$TUTOREKS_KEY``, which the
Job reads from that Secret (``render/kustomize.py`` adds the ``secretKeyRef``
variables to every Job). The reference is written for where it stands in the
shell script (a small lexer follows the quotes):

- outside quotes: ``"${TUTOREKS_KEY}"`` (no word splitting, no globbing);
- inside double quotes: ``${TUTOREKS_KEY}`` (the shell does not re-read an
  expanded value: ``$``, backticks and quotes in it stay as they are);
- between single quotes inside double quotes (SQL strings of ``mysql -e "..."``,
  Python strings of ``python -c "..."``): ``${TUTOREKS_KEY_SQ}``, the value with
  ``\\`` and ``'`` backslash-escaped, which both MySQL and Python read back
  exactly; a line at the top of the script computes it with ``sed``;
- inside single quotes: ``'"${TUTOREKS_KEY}"'``.

This applies to every task of every ``tutor k8s do`` command: init tasks
whatever ``--limit`` says, ``createuser``, ``sqlshell`` and the MySQL maintenance
tasks. Jinja tags are left as they are.
"""

from __future__ import annotations

import re
import typing as t

from .kustomize import ENV_PREFIX

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution

#: A Jinja tag, comment or expression: opaque to the shell lexer.
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_REFERENCE = re.compile(r"\{\{-?\s*([A-Z][A-Z0-9_]*)\s*-?\}\}")
SQ_SUFFIX = "_SQ"


def rewrite(script: str, resolution: Resolution) -> str:
    """``script`` with every reference to a Secret value read from the environment."""
    keys = set(resolution.secret_keys())
    if not keys:
        return script
    out: list[str] = []
    quoted: set[str] = set()
    state = ""  # "", "'" or '"'
    position = 0
    while position < len(script):
        jinja = _JINJA.match(script, position)
        if jinja:
            text = jinja.group(0)
            reference = _REFERENCE.fullmatch(text)
            if reference and reference.group(1) in keys:
                key = reference.group(1)
                text = shell_reference(key, state, script, position, jinja.end())
                if text.endswith(SQ_SUFFIX + "}"):
                    quoted.add(key)
            out.append(text)
            position = jinja.end()
            continue
        char = script[position]
        if (
            char == "#"
            and not state
            and (position == 0 or script[position - 1] in " \t\n;")
        ):
            end = script.find("\n", position)
            end = len(script) if end < 0 else end
            out.append(
                _REFERENCE.sub(
                    lambda m: (
                        f"${{{ENV_PREFIX}{m.group(1)}}}"
                        if m.group(1) in keys
                        else m.group(0)
                    ),
                    script[position:end],
                )
            )
            position = end
            continue
        if char == "\\" and state != "'":
            out.append(script[position : position + 2])
            position += 2
            continue
        if char in "'\"" and (not state or state == char):
            state = "" if state else char
        out.append(char)
        position += 1
    return "".join([*(escape_line(key) for key in sorted(quoted)), *out])


def shell_reference(key: str, state: str, script: str, start: int, end: int) -> str:
    """The shell text that stands for ``key``'s value at this place."""
    variable = ENV_PREFIX + key
    if state == "'":
        return f"'\"${{{variable}}}\"'"
    if state == '"':
        between_quotes = (
            script[start - 1 : start] == "'" and script[end : end + 1] == "'"
        )
        return f"${{{variable}{SQ_SUFFIX}}}" if between_quotes else f"${{{variable}}}"
    return f'"${{{variable}}}"'


def escape_line(key: str) -> str:
    """The script line that sets ``$TUTOREKS_KEY_SQ``: ``\\`` and ``'`` escaped."""
    variable = ENV_PREFIX + key
    return (
        f"{variable}{SQ_SUFFIX}=$(printf '%s' \"${{{variable}}}\" | "
        "sed -e 's/\\\\/\\\\\\\\/g' -e \"s/'/\\\\\\\\'/g\")\n"
    )
