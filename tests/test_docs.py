"""The documentation against the code: every setting and every `tutor eks` command
and option is documented, the generated pages are current, README.md stays short,
and the docs workflow publishes the site. Unit tier: no cluster, no build."""

from __future__ import annotations

import importlib.util
import re
import sys
import typing as t
from pathlib import Path
from types import ModuleType

import click
import pytest
import yaml

from tutoreks import defaults
from tutoreks.cli.group import eks

from .conftest import REPO

DOCS = REPO / "docs"
CONFIG_PAGE = DOCS / "reference" / "configuration.md"
CLI_PAGE = DOCS / "reference" / "cli.md"
README = REPO / "README.md"
DOCS_WORKFLOW = REPO / ".github" / "workflows" / "docs.yml"
README_MAX_LINES = 250


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    """docs/gen_reference.py, which is a script, not a package module."""
    spec = importlib.util.spec_from_file_location(
        "gen_reference", DOCS / "gen_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_reference", module)
    spec.loader.exec_module(module)
    return module


def settings() -> list[str]:
    """Every setting the plugin defines: EKS_* and the Secret contract's."""
    return [f"EKS_{key}" for key in defaults.CONFIG_DEFAULTS] + list(
        defaults.SERVICE_DEFAULTS
    )


def missing_settings(page: str) -> list[str]:
    return [key for key in settings() if f"| `{key}` |" not in page]


def options(command: click.Command) -> list[str]:
    return [
        name
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden
        for name in param.opts + param.secondary_opts
        if name != "--help"
    ]


def missing_commands(page: str) -> list[str]:
    """``tutor eks NAME`` (and ``tutor eks NAME --option``) absent from ``page``."""
    missing = []
    sections = re.split(r"^## ", page, flags=re.MULTILINE)
    for name, command in eks.commands.items():
        if command.hidden:
            continue
        section = next(
            (s for s in sections if s.startswith(f"tutor eks {name}\n")), None
        )
        if section is None:
            missing.append(f"tutor eks {name}")
            continue
        missing += [
            f"tutor eks {name} {option}"
            for option in options(command)
            if not re.search(rf"`{re.escape(option)}[ `,]", section)
        ]
    return missing


def test_every_setting_is_in_the_configuration_reference() -> None:
    assert missing_settings(CONFIG_PAGE.read_text(encoding="utf-8")) == []


def test_a_setting_missing_from_the_reference_is_found() -> None:
    page = CONFIG_PAGE.read_text(encoding="utf-8")
    without = "\n".join(
        line for line in page.splitlines() if not line.startswith("| `EKS_PRUNE` |")
    )
    assert missing_settings(without) == ["EKS_PRUNE"]


def test_every_setting_has_a_description(generator: ModuleType) -> None:
    assert generator.undescribed() == [], (
        "describe them in DESCRIPTIONS of docs/gen_reference.py"
    )
    assert generator.stale_descriptions() == [], (
        "these settings no longer exist: remove them from DESCRIPTIONS"
    )


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    assert missing_commands(CLI_PAGE.read_text(encoding="utf-8")) == []


def test_a_command_or_option_missing_from_the_reference_is_found() -> None:
    page = CLI_PAGE.read_text(encoding="utf-8")
    assert "tutor eks status --markdown" in missing_commands(
        page.replace("`--markdown FILE`", "`--md FILE`")
    )
    assert "tutor eks adopt" in missing_commands(
        page.replace("## tutor eks adopt\n", "## adopt\n")
    )


@pytest.mark.parametrize("page", ["configuration", "cli"])
def test_the_generated_pages_are_current(generator: ModuleType, page: str) -> None:
    path = DOCS / "reference" / f"{page}.md"
    rendered = generator.PAGES[path]()
    assert path.read_text(encoding="utf-8") == rendered, (
        f"{path.relative_to(REPO)} is out of date: run `make docs-reference`"
    )


def test_the_defaults_shown_are_the_code_s(generator: ModuleType) -> None:
    page = CONFIG_PAGE.read_text(encoding="utf-8")
    assert (
        f"| `EKS_ROLLOUT_TIMEOUT` | `{defaults.CONFIG_DEFAULTS['ROLLOUT_TIMEOUT']}` |"
        in page
    )
    for name, value in defaults.CLB_ANNOTATIONS.items():
        assert f'"{name}": "{value}"' in page


def test_the_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES


def link_targets(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("document", ["README.md", "DEVELOPMENT.md"])
def test_relative_links_of_the_repository_documents_resolve(document: str) -> None:
    path = REPO / document
    broken = [
        target
        for target in link_targets(path)
        if not re.match(r"[a-z]+:", target)
        and not target.startswith("#")
        and not (path.parent / target.split("#")[0]).exists()
    ]
    assert broken == []


def nav_pages(nav: t.Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return [page for item in nav for page in nav_pages(item)]


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(listed) == pages
    assert config["strict"] is True


def test_the_docs_workflow_builds_strictly_and_publishes_from_main() -> None:
    workflow = yaml.safe_load(DOCS_WORKFLOW.read_text(encoding="utf-8"))
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    runs = [step.get("run", "") for step in build["steps"]]
    uses = [step.get("uses", "").split("@")[0] for step in build["steps"]]
    assert any("mkdocs build --strict" in run for run in runs)
    assert any("docs/gen_reference.py --check" in run for run in runs)
    assert "actions/configure-pages" in uses
    assert "actions/upload-pages-artifact" in uses
    assert [step["uses"].split("@")[0] for step in deploy["steps"]] == [
        "actions/deploy-pages"
    ]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert workflow["permissions"] == {"contents": "read"}
    assert "refs/heads/main" in deploy["if"]
    # `on:` is read by YAML 1.1 as True.
    assert workflow[True]["push"]["branches"] == ["main"]
