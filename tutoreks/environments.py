"""The deployment repository's ``environments/<env>/`` folders: find, load, validate.

Everything here works on files only. Each problem is an :class:`EksError` that
names the file, and the line and column where the parser gives them.
"""

from __future__ import annotations

import json
import os
import re
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml

from .exceptions import EksError

CONFIG_FILE = "config.yml"
SETTINGS_FILES = {
    "common": "settings_merge.json",
    "lms": "settings_merge.lms.json",
    "cms": "settings_merge.cms.json",
}
MANIFESTS_DIR = "k8s"
MANIFEST_SUFFIXES = (".yml", ".yaml")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

#: Keys an environment's config.yml cannot set, and why.
FORBIDDEN_KEYS = {
    "EKS_ENVIRONMENT": "it selects the environment: set TUTOR_EKS_ENVIRONMENT or "
    "`tutor config save --set EKS_ENVIRONMENT=...` instead",
    "EKS_ENVIRONMENTS_ROOT": "it locates the environments: set it in the tutor "
    "root's config.yml or as TUTOR_EKS_ENVIRONMENTS_ROOT",
    "PLUGINS": "Tutor enables plugins before it reads environments: run "
    "`tutor plugins enable ...` in the deploy job instead",
}


@dataclass(frozen=True)
class Manifest:
    """One file of ``environments/<env>/k8s/``: its stem names it."""

    name: str
    path: Path
    display: str
    source: str


@dataclass(frozen=True, eq=False)
class Environment:
    name: str
    path: Path
    display: str
    config: dict[str, t.Any]
    #: Parsed settings_merge files: scope ("common", "lms", "cms") -> (display path, data)
    settings: dict[str, tuple[str, dict[str, t.Any]]] = field(default_factory=dict)
    manifests: dict[str, Manifest] = field(default_factory=dict)

    def settings_for(self, service: str) -> list[tuple[str, dict[str, t.Any]]]:
        """The settings_merge documents for "lms" or "cms", in merge order."""
        return [
            self.settings[scope]
            for scope in ("common", service)
            if scope in self.settings
        ]


def display_path(path: Path, cwd: str | None = None) -> str:
    """A path as the user typed it: relative to the working directory where it can."""
    try:
        return str(path.relative_to(cwd or os.getcwd()))
    except ValueError:
        return str(path)


def list_names(root: Path) -> list[str]:
    """Names of the environments under ``root``: folders that hold a config.yml."""
    if not root.is_dir():
        return []
    return sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir()
        and NAME_PATTERN.match(entry.name)
        and os.path.isfile(os.path.join(entry.path, CONFIG_FILE))
    )


def load(root: Path, name: str) -> Environment:
    """Load and validate ``<root>/<name>/``; raise :class:`EksError` on any problem."""
    if not NAME_PATTERN.match(name):
        raise EksError(
            f"Invalid EKS_ENVIRONMENT {name!r}: an environment is a folder name made of "
            "letters, digits, '.', '_' and '-'."
        )
    path = root / name
    display = display_path(path)
    if not (path / CONFIG_FILE).is_file():
        raise EksError(unknown_environment_message(root, name))
    config = load_config(path / CONFIG_FILE, f"{display}/{CONFIG_FILE}")
    settings: dict[str, tuple[str, dict[str, t.Any]]] = {}
    for scope, filename in SETTINGS_FILES.items():
        file_path = path / filename
        if file_path.is_file():
            file_display = f"{display}/{filename}"
            settings[scope] = (file_display, load_settings(file_path, file_display))
    manifests = load_manifests(path / MANIFESTS_DIR, f"{display}/{MANIFESTS_DIR}")
    return Environment(
        name=name,
        path=path,
        display=display,
        config=config,
        settings=settings,
        manifests=manifests,
    )


def unknown_environment_message(root: Path, name: str) -> str:
    root_display = display_path(root)
    if not root.is_dir():
        return (
            f"Unknown environment {name!r}: the environments root {root_display} does "
            "not exist (EKS_ENVIRONMENTS_ROOT is relative to the working directory)."
        )
    known = list_names(root)
    listing = ", ".join(known) if known else "none"
    return (
        f"Unknown environment {name!r}: there is no {root_display}/{name}/{CONFIG_FILE}. "
        f"Known environments in {root_display}: {listing}."
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys (YAML would keep the last)."""


def _construct_unique_mapping(
    loader: yaml.SafeLoader, node: yaml.MappingNode
) -> dict[t.Any, t.Any]:
    loader.flatten_mapping(node)
    mapping: dict[t.Any, t.Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def yaml_error(display: str, error: yaml.YAMLError) -> EksError:
    """An EksError naming the file, line and column of a YAML error."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    what = f"{context}: {problem}" if context else problem
    if mark is not None:
        return EksError(
            f"{display}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {what}"
        )
    return EksError(f"{display}: invalid YAML: {what}")


def parse_yaml_documents(text: str, display: str) -> list[t.Any]:
    try:
        return list(yaml.load_all(text, Loader=_UniqueKeyLoader))
    except yaml.YAMLError as e:
        raise yaml_error(display, e) from e


def load_config(path: Path, display: str) -> dict[str, t.Any]:
    text = read_text(path, display)
    documents = parse_yaml_documents(text, display)
    if len(documents) > 1:
        raise EksError(
            f"{display}: holds {len(documents)} YAML documents; a config.yml holds one mapping."
        )
    config = documents[0] if documents else None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise EksError(
            f"{display}: must be a mapping of Tutor settings (KEY: value), "
            f"not a {type(config).__name__}."
        )
    for key in config:
        if not isinstance(key, str):
            raise EksError(f"{display}: key {key!r} is not a string.")
        if key in FORBIDDEN_KEYS:
            raise EksError(
                f"{display}: {key} cannot be set here: {FORBIDDEN_KEYS[key]}."
            )
    return config


def _reject_constant(name: str) -> t.NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _unique_object(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
    result: dict[str, t.Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def load_settings(path: Path, display: str) -> dict[str, t.Any]:
    """Parse a settings_merge JSON file: an object of upper-case Django settings."""
    text = read_text(path, display)
    try:
        data = json.loads(
            text, object_pairs_hook=_unique_object, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as e:
        raise EksError(f"{display}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from e
    except ValueError as e:
        raise EksError(f"{display}: invalid JSON: {e}") from e
    if not isinstance(data, dict):
        raise EksError(
            f"{display}: must be a JSON object of Django settings, not {type(data).__name__}."
        )
    for key in data:
        if not key.isidentifier() or key != key.upper() or key.startswith("_"):
            raise EksError(
                f"{display}: top-level key {key!r} is not a Django setting name "
                "(Django reads upper-case identifiers only, such as FEATURES or CACHES)."
            )
    return data


def load_manifests(directory: Path, display: str) -> dict[str, Manifest]:
    """Read ``k8s/*.yml`` and check their Jinja syntax; rendering comes later."""
    if not directory.is_dir():
        return {}
    manifests: dict[str, Manifest] = {}
    parser = jinja2.Environment()  # noqa: S701 - renders YAML, never HTML
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        stem, suffix = os.path.splitext(entry.name)
        if (
            not entry.is_file()
            or suffix not in MANIFEST_SUFFIXES
            or entry.name.startswith(".")
        ):
            continue
        file_display = f"{display}/{entry.name}"
        if stem in manifests:
            raise EksError(
                f"{file_display}: {manifests[stem].display} has the same name; "
                "keep one of them."
            )
        source = read_text(Path(entry.path), file_display)
        try:
            parser.parse(source)
        except jinja2.TemplateSyntaxError as e:
            raise EksError(
                f"{file_display}:{e.lineno}: Jinja syntax error: {e.message}"
            ) from e
        manifests[stem] = Manifest(
            name=stem, path=Path(entry.path), display=file_display, source=source
        )
    return manifests


def read_text(path: Path, display: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise EksError(f"{display}: is not UTF-8 text (byte {e.start}).") from e
    except OSError as e:
        raise EksError(f"{display}: cannot be read: {e.strerror}.") from e
