"""settings_merge: deep-merge JSON into the final LMS and CMS Django settings.

The generated Python is a patch of Tutor's ``openedx-{lms,cms}-production-settings``
patch points, so it runs at the very end of ``production.py``. It is built so that
no JSON content can become code, and so that Tutor's Jinja (which renders every
patch once) sees no template delimiter in it:

- the data is embedded as JSON text inside a raw triple-single-quoted Python
  string and decoded with ``json.loads`` at import time: it is data, never code;
- inside JSON strings, ``{ } % # '`` are written as ``\\uXXXX`` escapes and every
  non-ASCII character is escaped too, so the text holds no ``'`` (which could end
  the Python string) and no ``{{``, ``{%`` or ``{#`` (which Jinja would act on);
  a structural ``{`` is always followed by a newline or ``}``.

Merge rules: a JSON object merges into an existing mapping (a dict, or the
``FEATURES`` proxy of Tutor 22's edx-platform, which is a MutableMapping over the
settings module); any other value replaces.
"""

from __future__ import annotations

import json
import typing as t

from tutor import hooks

from ..environment import Environment

#: Characters written as JSON \\u escapes inside strings.
_ESCAPED = {ch: f"\\u{ord(ch):04x}" for ch in "{}%#'"}

MERGE_FUNCTION = """\
def _tutoreks_settings_merge(target, source):
    from collections.abc import Mapping, MutableMapping

    for key, value in source.items():
        current = target[key] if key in target else None
        if isinstance(value, dict) and isinstance(current, MutableMapping):
            _tutoreks_settings_merge(current, value)
        elif isinstance(value, dict) and isinstance(current, Mapping):
            merged = dict(current)
            _tutoreks_settings_merge(merged, value)
            target[key] = merged
        else:
            target[key] = value
"""


def encode_string(value: str) -> str:
    text = json.dumps(value, ensure_ascii=True)
    for ch, escape in _ESCAPED.items():
        text = text.replace(ch, escape)
    return text


def encode(value: t.Any, indent: int = 0) -> str:
    """JSON text of ``value`` (from json.loads) that is safe in a Jinja template and a
    Python raw string. See the module docstring for the guarantees."""
    pad = "    " * (indent + 1)
    end = "    " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{pad}{encode_string(str(k))}: {encode(v, indent + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{end}}}"
    if isinstance(value, list):
        if not value:
            return "[]"
        items = [f"{pad}{encode(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{end}]"
    if isinstance(value, str):
        return encode_string(value)
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value, allow_nan=False)
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def merge_code(
    environment_name: str, documents: list[tuple[str, dict[str, t.Any]]]
) -> str:
    """The settings patch for one service: the merge function, then one call per file."""
    if not documents:
        return ""
    lines = [
        f"# tutor-contrib-eks: settings_merge of environment {encode_string(environment_name)}",
        "import json as _tutoreks_json",
        "",
        MERGE_FUNCTION,
    ]
    for display, data in documents:
        lines.append(f"# from {encode_string(display)}")
        lines.append(
            "_tutoreks_settings_merge(globals(), _tutoreks_json.loads(r'''"
            + encode(data)
            + "'''))"
        )
    lines.append("del _tutoreks_settings_merge, _tutoreks_json")
    return "\n".join(lines) + "\n"


@hooks.lru_cache  # Tutor's pattern: by the environment's content
def production_patches(environment: Environment) -> tuple[tuple[str, str], ...]:
    """The ``openedx-{lms,cms}-production-settings`` patches of an environment."""
    patches = []
    for service in ("lms", "cms"):
        code = merge_code(environment.name, environment.settings_for(service))
        if code:
            patches.append((f"openedx-{service}-production-settings", code))
    return tuple(patches)
