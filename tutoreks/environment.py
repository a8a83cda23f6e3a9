"""Step 1: select the environment and load ``environments/<env>/``.

Which environment: ``TUTOR_EKS_ENVIRONMENT``, else ``EKS_ENVIRONMENT`` of the
tutor root's config.yml (:func:`select`). Its folder holds ``config.yml``,
``settings_merge.{json,yml}`` (and ``.lms``/``.cms`` variants) and ``k8s/*.yml``
(:func:`load`). Everything here works on files only. Each problem is an
:class:`EksError` that names the file, and the line and column where the parser
gives them; no message quotes a value.
"""

from __future__ import annotations

import json
import math
import os
import re
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import yaml

from . import defaults, tutor_compat
from .exceptions import EksError

CONFIG_FILE = "config.yml"
#: settings_merge files by scope, without their format suffix.
SETTINGS_STEMS = {
    "common": "settings_merge",
    "lms": "settings_merge.lms",
    "cms": "settings_merge.cms",
}
SETTINGS_FORMATS = (".json", ".yml", ".yaml")
#: A YAML document that expands to more nodes than this is refused (alias bombs).
MAX_YAML_NODES = 100_000
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
class Selection:
    """Which environment to deploy, and where the environments are."""

    name: str
    #: EKS_ENVIRONMENTS_ROOT, absolute.
    root: Path


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


def select(root_config: t.Mapping[str, t.Any]) -> Selection:
    """EKS_ENVIRONMENT and EKS_ENVIRONMENTS_ROOT: TUTOR_ variable, else the tutor
    root's config.yml, else the default. The root is relative to the working
    directory unless absolute."""
    values = []
    for key in defaults.SELECTION_KEYS:
        name = f"EKS_{key}"
        if f"TUTOR_{name}" in os.environ:
            value = tutor_compat.parse_env_value(os.environ[f"TUTOR_{name}"])
        else:
            value = root_config.get(name, defaults.CONFIG_DEFAULTS[key])
        values.append("" if value is None else str(value))
    root = Path(os.path.expanduser(values[1]))
    return Selection(values[0], root if root.is_absolute() else Path.cwd() / root)


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


def fingerprint(root: Path, name: str) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of an environment's files: equal means unchanged."""
    found = []
    for directory in (root / name, root / name / MANIFESTS_DIR):
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.is_file():
                stat = entry.stat()
                found.append((entry.path, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


def load(root: Path, name: str) -> Environment:
    """Load and validate ``<root>/<name>/``; raise :class:`EksError` on any problem."""
    if not NAME_PATTERN.match(name):
        raise EksError(
            "Invalid EKS_ENVIRONMENT: an environment is a folder name made of "
            "letters, digits, '.', '_' and '-'."
        )
    path = root / name
    display = display_path(path)
    if not (path / CONFIG_FILE).is_file():
        raise EksError(unknown_environment_message(root, name))
    return Environment(
        name=name,
        path=path,
        display=display,
        config=load_config(path / CONFIG_FILE, f"{display}/{CONFIG_FILE}"),
        settings=load_all_settings(path, display),
        manifests=load_manifests(path / MANIFESTS_DIR, f"{display}/{MANIFESTS_DIR}"),
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


# --- YAML ------------------------------------------------------------------------


class _SafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader (libyaml's parser when PyYAML has it) that refuses duplicate
    mapping keys (YAML would keep the last), keys that are not scalars, and
    documents whose aliases expand to more than :data:`MAX_YAML_NODES` nodes."""

    def construct_document(self, node: yaml.Node) -> t.Any:
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"its aliases expand to more than {MAX_YAML_NODES} values",
                node.start_mark,
            )
        return super().construct_document(node)


def _expanded_size(node: yaml.Node, seen: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias is expanded."""
    known = seen.get(id(node))
    if known is not None:
        return known
    seen[id(node)] = 1  # a recursive alias counts once
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, seen)
            if size > MAX_YAML_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            size += _expanded_size(key, seen) + _expanded_size(value, seen)
            if size > MAX_YAML_NODES:
                break
    seen[id(node)] = size
    return size


def _construct_unique_mapping(
    loader: yaml.SafeLoader, node: yaml.MappingNode
) -> dict[t.Any, t.Any]:
    loader.flatten_mapping(node)
    mapping: dict[t.Any, t.Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found a key that is not a plain value",
                key_node.start_mark,
            )
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


_SafeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)

#: Quoted fragments of parser messages: they may hold a rendered value.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def yaml_error(display: str, error: yaml.YAMLError, quote: bool = True) -> EksError:
    """An EksError naming the file, line and column of a YAML error. With
    ``quote=False`` (rendered text, which may hold Secret values) no fragment of
    the text is repeated."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or type(error).__name__
    context = getattr(error, "context", None)
    what = f"{context}: {problem}" if context else str(problem)
    if not quote:
        what = _QUOTED.sub("(...)", what)
    if mark is not None:
        return EksError(
            f"{display}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {what}"
        )
    return EksError(f"{display}: invalid YAML: {what}")


def parse_yaml_documents(text: str, display: str, quote: bool = True) -> list[t.Any]:
    try:
        return list(yaml.load_all(text, Loader=_SafeLoader))
    except yaml.YAMLError as e:
        raise yaml_error(display, e, quote) from e
    except RecursionError as e:
        raise EksError(f"{display}: invalid YAML: nested too deeply") from e


# --- config.yml --------------------------------------------------------------------

#: ``KEY=value``: the shell format of older cookiecutter-openedx-devops config.yml.
_SHELL_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
#: Their shell names that differ from Tutor's (and its plugins').
LEGACY_KEYS = {
    "LMS_HOSTNAME": "LMS_HOST",
    "CMS_HOSTNAME": "CMS_HOST",
    "PREVIEW_LMS_HOSTNAME": "PREVIEW_LMS_HOST",
    "MFE_HOSTNAME": "MFE_HOST",
    "DOCKER_IMAGE_MFE": "MFE_DOCKER_IMAGE",
    "DOCKER_IMAGE_CREDENTIALS": "CREDENTIALS_DOCKER_IMAGE",
    "DOCKER_IMAGE_BACKUP": "BACKUP_DOCKER_IMAGE",
}


def load_config(path: Path, display: str) -> dict[str, t.Any]:
    text = read_text(path, display)
    shell = shell_format_hint(text, display)
    try:
        documents = parse_yaml_documents(text, display)
    except EksError:
        if shell:
            raise EksError(shell) from None
        raise
    if len(documents) > 1:
        raise EksError(
            f"{display}: holds {len(documents)} YAML documents; a config.yml holds one mapping."
        )
    config = documents[0] if documents else None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise EksError(
            shell
            or f"{display}: must be a mapping of Tutor settings (KEY: value), "
            f"not a {type(config).__name__}."
        )
    for key in config:
        if not isinstance(key, str):
            raise EksError(f"{display}: key {key!r} is not a string.")
        if key in FORBIDDEN_KEYS:
            raise EksError(
                f"{display}: {key} cannot be set here: {FORBIDDEN_KEYS[key]}."
            )
    check_jinja_values(config, text, display)
    return config


def check_jinja_values(config: dict[str, t.Any], text: str, display: str) -> None:
    """Tutor renders every value with Jinja: a syntax error is reported here, with
    the file and the line of the key."""
    parser = jinja2.Environment()  # noqa: S701 - renders YAML, never HTML
    for key, value in config.items():
        for item in _strings(value):
            try:
                parser.parse(item)
            except jinja2.TemplateSyntaxError as e:
                found = re.search(rf"^{re.escape(key)}\s*:", text, re.MULTILINE)
                line = text.count("\n", 0, found.start()) + 1 if found else None
                where = f"{display}:{line}" if line else display
                raise EksError(
                    f"{where}: {key}: Jinja syntax error: {e.message}"
                ) from e


def _strings(value: t.Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


def shell_format_hint(text: str, display: str) -> str:
    """The error for a config.yml written as shell ``KEY=value`` lines, with the
    YAML form of its first line; empty when the file is not in that format."""
    lines = [
        line
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        return ""
    first = _SHELL_LINE.match(lines[0])
    if first is None or ":" in lines[0].split("=", 1)[0]:
        return ""
    key = first.group(1)
    yaml_key = LEGACY_KEYS.get(key, key)
    renamed = f" ({key} is {yaml_key} in Tutor)" if yaml_key != key else ""
    return (
        f"{display}: is written as shell KEY=value lines (the format of older "
        "cookiecutter-openedx-devops environments); a config.yml is YAML. "
        f"Line {text.splitlines().index(lines[0]) + 1}, {key}=..., is "
        f"`{yaml_key}: <its value>` in YAML{renamed}."
    )


# --- settings_merge ------------------------------------------------------------------


def load_all_settings(
    path: Path, display: str
) -> dict[str, tuple[str, dict[str, t.Any]]]:
    """The settings_merge files of an environment, one format for all of them."""
    found: dict[str, tuple[str, Path]] = {}
    formats: dict[str, str] = {}
    for scope, stem in SETTINGS_STEMS.items():
        for suffix in SETTINGS_FORMATS:
            file_path = path / f"{stem}{suffix}"
            if not file_path.is_file():
                continue
            file_display = f"{display}/{file_path.name}"
            kind = "json" if suffix == ".json" else "yaml"
            other = next((f for f, k in formats.items() if k != kind), None)
            if scope in found or other:
                first = found[scope][0] if scope in found else other
                raise EksError(
                    f"{file_display} and {first}: an environment holds settings_merge "
                    "files in one format, JSON or YAML; keep one of them."
                )
            found[scope] = (file_display, file_path)
            formats[file_display] = kind
    return {
        scope: (shown, load_settings(file_path, shown))
        for scope, (shown, file_path) in found.items()
    }


def _reject_constant(name: str) -> t.NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _unique_object(pairs: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
    result: dict[str, t.Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _huge_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number is too large for a float")
    return value


def load_settings(path: Path, display: str) -> dict[str, t.Any]:
    """Parse a settings_merge file (JSON or YAML): a mapping of upper-case Django
    settings holding JSON values only."""
    text = read_text(path, display)
    if path.suffix == ".json":
        data = parse_json(text, display)
    else:
        documents = parse_yaml_documents(text, display)
        if len(documents) > 1:
            raise EksError(
                f"{display}: holds {len(documents)} YAML documents; keep one."
            )
        data = documents[0] if documents else {}
    check_json_compatible(data, display)
    if not isinstance(data, dict):
        raise EksError(
            f"{display}: must be a mapping of Django settings, not {type(data).__name__}."
        )
    for key in data:
        if (
            not isinstance(key, str)
            or not key.isidentifier()
            or key != key.upper()
            or key.startswith("_")
        ):
            raise EksError(
                f"{display}: top-level key {key!r} is not a Django setting name "
                "(Django reads upper-case identifiers only, such as FEATURES or CACHES)."
            )
    return data


def parse_json(text: str, display: str) -> t.Any:
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_constant=_reject_constant,
            parse_float=_huge_float,
        )
    except json.JSONDecodeError as e:
        raise EksError(f"{display}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from e
    except RecursionError as e:
        raise EksError(f"{display}: invalid JSON: nested too deeply") from e
    except ValueError as e:
        raise EksError(f"{display}: invalid JSON: {e}") from e


MAX_DEPTH = 100


def check_json_compatible(value: t.Any, display: str, depth: int = 0) -> None:
    """YAML settings hold what JSON holds: mappings with string keys, lists,
    strings, numbers, booleans and null; not too deep."""
    if depth > MAX_DEPTH:
        raise EksError(f"{display}: nested more than {MAX_DEPTH} levels deep.")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EksError(f"{display}: key {key!r} is not a string.")
            check_json_compatible(item, display, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_compatible(item, display, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise EksError(f"{display}: holds a number JSON cannot (inf or nan).")
    elif value is not None and not isinstance(value, (str, bool, int, float)):
        raise EksError(
            f"{display}: holds a {type(value).__name__}; settings hold JSON values only "
            "(quote dates and times)."
        )


# --- k8s/ ---------------------------------------------------------------------------


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


# --- the CA bundle -------------------------------------------------------------------

#: The CA bundle an environment folder may hold (``EKS_CA_BUNDLE`` names another).
CA_BUNDLE_FILE = "ca-bundle.pem"
#: A bundle larger than this is refused (the AWS global RDS bundle is ~160 KiB).
MAX_CA_BUNDLE = 1024 * 1024


@dataclass(frozen=True)
class CaBundle:
    """CA certificates (PEM) that verify the managed services over TLS."""

    path: Path
    display: str
    text: str


def load_ca_bundle(
    environment: Environment, setting: t.Any, source: str
) -> CaBundle | None:
    """``EKS_CA_BUNDLE`` (relative to the environment folder, or absolute), else the
    environment's ``ca-bundle.pem`` when present; checked to hold certificates."""
    if setting in ("", None):
        path = environment.path / CA_BUNDLE_FILE
        if not path.is_file():
            return None
    elif not isinstance(setting, str) or "{" in setting:
        raise EksError(f"{source}: EKS_CA_BUNDLE must be a plain file path.")
    else:
        path = Path(os.path.normpath(environment.path / os.path.expanduser(setting)))
        if not path.is_file():
            raise EksError(
                f"{source}: EKS_CA_BUNDLE names {display_path(path)}, which is not a file."
            )
    display = display_path(path)
    if path.stat().st_size > MAX_CA_BUNDLE:
        raise EksError(f"{display}: a CA bundle larger than 1 MiB is refused.")
    text = read_text(path, display)
    check_ca_bundle(text, display)
    return CaBundle(path, display, text)


def check_ca_bundle(text: str, display: str) -> None:
    """Every block is a certificate OpenSSL reads; no private key."""
    import ssl  # not for the commands that read no CA bundle

    if "PRIVATE KEY-----" in text:
        raise EksError(
            f"{display}: holds a private key; a CA bundle holds certificates only."
        )
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise EksError(
            f"{display}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)."
        )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as e:
        reason = getattr(e, "reason", None) or type(e).__name__
        raise EksError(f"{display}: is not a valid PEM CA bundle ({reason}).") from e
