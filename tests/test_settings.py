"""settings_merge: deep-merged into the final LMS and CMS settings, injection-proof."""

from __future__ import annotations

import ast
import json
import typing as t
from collections.abc import Iterator, MutableMapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutoreks.render import settings as eks_settings

from .conftest import Project

MARKER = "# tutor-contrib-eks: settings_merge"

#: Strings that would break out of a Python string, a Jinja template or JSON.
NASTY = [
    "'''",
    '"""',
    "{{ 7*7 }}",
    "{% raw %}x{% endraw %}",
    "{# comment #}",
    "\\",
    "\\'",
    "line1\nline2\r\n",
    "tab\tend",
    "é 中文 🎓 \u2028 \u0000",
    "__import__('os').system('false')",
    "'); import os; ('",
    "}}{{",
    "%}{%",
    "\\u007b",
]


class FeaturesProxy(MutableMapping[str, t.Any]):
    """What Tutor 22's edx-platform binds FEATURES to: item access on the module globals."""

    def __init__(self, namespace: dict[str, t.Any]) -> None:
        self.ns = namespace

    def __getitem__(self, key: str) -> t.Any:
        return self.ns[key]

    def __setitem__(self, key: str, value: t.Any) -> None:
        self.ns[key] = value

    def __delitem__(self, key: str) -> None:
        del self.ns[key]

    def __iter__(self) -> Iterator[str]:
        return iter(k for k in self.ns if k.isupper())

    def __len__(self) -> int:
        return sum(1 for _ in self)


def code_shape(code: str) -> str:
    """The AST of the code with every constant blanked: equal shapes run the same code."""
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            node.value = None
    return ast.dump(tree)


def run_settings(code: str, namespace: dict[str, t.Any]) -> dict[str, t.Any]:
    exec(compile(code, "production.py", "exec"), namespace)  # noqa: S102 - the point of the test
    return namespace


def settings_tail(text: str) -> str:
    """The plugin's part of a rendered production.py (the rest imports edx-platform)."""
    assert MARKER in text, "the settings_merge patch is missing from production.py"
    return text[text.index(MARKER) :]


def test_merge_rules_with_features_dict() -> None:
    data = {
        "FEATURES": {"ENABLE_NEW": True, "NESTED": {"b": 2}},
        "CACHES": {"default": {"TIMEOUT": 10}},
        "ALLOWED_HOSTS": ["only.example.com"],
        "NEW_SETTING": None,
    }
    code = eks_settings.merge_code("dev", [("settings_merge.json", data)])
    ns = run_settings(
        code,
        {
            "FEATURES": {"ENABLE_OLD": True, "NESTED": {"a": 1}},
            "CACHES": {"default": {"BACKEND": "redis", "TIMEOUT": 300}, "general": {}},
            "ALLOWED_HOSTS": ["lms", "a.example.com"],
        },
    )
    assert ns["FEATURES"] == {
        "ENABLE_OLD": True,
        "ENABLE_NEW": True,
        "NESTED": {"a": 1, "b": 2},
    }
    assert ns["CACHES"] == {
        "default": {"BACKEND": "redis", "TIMEOUT": 10},
        "general": {},
    }
    assert ns["ALLOWED_HOSTS"] == ["only.example.com"], (
        "lists replace, they do not append"
    )
    assert ns["NEW_SETTING"] is None
    assert "_tutoreks_settings_merge" not in ns, (
        "the helper must not leak into the settings"
    )


def test_merge_into_features_proxy_writes_module_globals() -> None:
    code = eks_settings.merge_code(
        "dev", [("settings_merge.json", {"FEATURES": {"ENABLE_X": True}})]
    )
    ns: dict[str, t.Any] = {"ENABLE_X": False, "ENABLE_Y": True}
    ns["FEATURES"] = FeaturesProxy(ns)
    run_settings(code, ns)
    assert isinstance(ns["FEATURES"], FeaturesProxy), (
        "the proxy must be kept, not replaced by a dict"
    )
    assert ns["ENABLE_X"] is True
    assert ns["FEATURES"]["ENABLE_Y"] is True


def test_service_file_wins_over_common_file() -> None:
    code = eks_settings.merge_code(
        "dev",
        [
            ("settings_merge.json", {"A": 1, "B": {"x": 1}}),
            ("settings_merge.lms.json", {"A": 2, "B": {"y": 2}}),
        ],
    )
    ns = run_settings(code, {})
    assert ns["A"] == 2
    assert ns["B"] == {"x": 1, "y": 2}


@pytest.mark.parametrize("value", NASTY)
def test_nasty_strings_arrive_exactly(value: str) -> None:
    data = {"S": value, "FEATURES": {value: value}, "L": [value, {"k": value}]}
    code = eks_settings.merge_code("dev", [("settings_merge.json", data)])
    for delimiter in ("{{", "{%", "{#"):
        assert delimiter not in code
    ns = run_settings(code, {"FEATURES": {}})
    assert ns["S"] == value
    assert ns["FEATURES"] == {value: value}
    assert ns["L"] == [value, {"k": value}]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
setting_names = st.from_regex(r"\A[A-Z][A-Z0-9_]{0,12}\Z")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(setting_names, json_values, max_size=5))
def test_arbitrary_json_arrives_exactly_and_never_runs(data: dict[str, t.Any]) -> None:
    code = eks_settings.merge_code("dev", [("settings_merge.json", data)])
    for delimiter in ("{{", "{%", "{#"):
        assert delimiter not in code
    assert code_shape(code) == code_shape(
        eks_settings.merge_code("dev", [("settings_merge.json", {})])
    ), "the data changed the shape of the code: it must only ever be a string constant"
    ns = run_settings(code, {})
    for key, value in data.items():
        assert json.dumps(ns[key], sort_keys=True) == json.dumps(value, sort_keys=True)


def test_rendered_by_tutor_into_lms_and_cms(project: Project) -> None:
    common = {"FEATURES": {"ENABLE_X": True}, "S": NASTY, "PLATFORM_NAME": "Common"}
    project.write("environments/dev/settings_merge.json", json.dumps(common))
    project.write(
        "environments/dev/settings_merge.lms.json",
        json.dumps({"PLATFORM_NAME": "LMS only"}),
    )
    project.write(
        "environments/dev/settings_merge.cms.json",
        json.dumps({"CMS_ONLY": {"a": "{{ LMS_HOST }}"}}),
    )
    project.save()
    for service, platform_name in (("lms", "LMS only"), ("cms", "Common")):
        text = project.env_file(f"apps/openedx/settings/{service}/production.py")
        tail = settings_tail(text)
        assert text.rstrip().endswith(tail.rstrip()), (
            "the merge must come last in production.py"
        )
        for features in ({"ENABLE_OLD": 1}, None):
            ns: dict[str, t.Any] = {"PLATFORM_NAME": "before"}
            ns["FEATURES"] = features if features is not None else FeaturesProxy(ns)
            run_settings(tail, ns)
            assert ns["S"] == NASTY
            assert ns["PLATFORM_NAME"] == platform_name
            assert ns["FEATURES"]["ENABLE_X"] is True
            if service == "cms":
                assert ns["CMS_ONLY"] == {"a": "{{ LMS_HOST }}"}, (
                    "JSON must never be rendered by Jinja"
                )
            else:
                assert "CMS_ONLY" not in ns


def test_merge_comes_after_every_plugins_settings(project: Project) -> None:
    """mfe patches openedx-{lms,cms}-production-settings too (and loads after eks):
    the environment's settings_merge still has the last word."""
    project.tutor("plugins", "enable", "mfe")
    project.write(
        "environments/dev/settings_merge.json",
        json.dumps({"MFE_CONFIG": {"SITE_NAME": "Ours"}}),
    )
    project.save()
    for service in ("lms", "cms"):
        text = project.env_file(f"apps/openedx/settings/{service}/production.py")
        mfe = text.index('LOGIN_REDIRECT_WHITELIST.append("apps.lms.dev.example.com")')
        assert mfe < text.index(MARKER), f"{service}: mfe's settings after the merge"
        ns = run_settings(settings_tail(text), {"MFE_CONFIG": {"BASE_URL": "b"}})
        assert ns["MFE_CONFIG"] == {"BASE_URL": "b", "SITE_NAME": "Ours"}


def test_no_settings_merge_means_no_patch(project: Project) -> None:
    project.save()
    assert MARKER not in project.env_file("apps/openedx/settings/lms/production.py")
