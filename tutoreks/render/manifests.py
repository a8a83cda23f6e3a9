"""Kubernetes objects the plugin adds to what ``tutor k8s start`` applies.

The defaults (``templates/eks/k8s/defaults/``) and the environment's own
``k8s/*.yml`` are rendered with Tutor's Jinja and the full configuration into one
file, ``env/plugins/eks/k8s/manifests.yml``, listed in Tutor's kustomization. An
environment file with a default's name replaces that default. Every rendered
document is checked here, so that a mistake is reported with its file and line
when the env is saved, not later by kubectl.
"""

from __future__ import annotations

import typing as t

import jinja2

from ..environment import parse_yaml_documents
from ..exceptions import EksError

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution

DEFAULT_TEMPLATE = "eks/k8s/defaults/{name}.yml"
OUTPUT = "plugins/eks/k8s/manifests.yml"


def default_names(config: t.Mapping[str, t.Any]) -> list[str]:
    """The default manifests of the edge mode: ingress mode adds an Ingress, and
    with HTTPS the issuer and Certificate; caddy mode adds none (Caddy's own
    LoadBalancer Service faces the internet)."""
    if config.get("EKS_EDGE") != "ingress":
        return []
    if not config.get("ENABLE_HTTPS"):
        return ["ingress"]
    return ["ingress", "issuer", "certificate"]


def public_hosts(config: t.Mapping[str, t.Any]) -> list[str]:
    """Every host name the platform answers on, in a stable order, without repeats."""
    hosts: list[str] = [config["LMS_HOST"], config["CMS_HOST"]]
    if config.get("PREVIEW_LMS_HOST"):
        hosts.append(config["PREVIEW_LMS_HOST"])
    if "mfe" in (config.get("PLUGINS") or []) and config.get("MFE_HOST"):
        hosts.append(config["MFE_HOST"])
    if config.get("RUN_MEILISEARCH"):
        url = str(config.get("MEILISEARCH_PUBLIC_URL") or "")
        hosts.append(
            url.split("://", 1)[-1].split("/", 1)[0]
            if url
            else config["MEILISEARCH_HOST"]
        )
    hosts.extend(config.get("EKS_EXTRA_HOSTS") or [])
    unique: list[str] = []
    for host in hosts:
        if host and host not in unique:
            unique.append(str(host))
    return unique


def render_all(context: jinja2.runtime.Context, resolution: Resolution) -> str:
    """Template global ``eks_manifests()``: every manifest of the environment, rendered."""
    variables = context.get_all()
    environment = resolution.environment
    rendered: list[tuple[str, str]] = []
    for name in default_names(variables):
        if name in environment.manifests:
            continue
        template_name = DEFAULT_TEMPLATE.format(name=name)
        template = context.environment.get_template(template_name)
        rendered.append(
            (
                f"tutoreks/templates/{template_name}",
                render(template, variables, template_name),
            )
        )
    for manifest in environment.manifests.values():
        try:
            template = context.environment.from_string(manifest.source)
        except jinja2.TemplateSyntaxError as e:
            raise EksError(
                f"{manifest.display}:{e.lineno}: Jinja syntax error: {e.message}"
            ) from e
        rendered.append(
            (manifest.display, render(template, variables, manifest.display))
        )
    parts = []
    for display, text in rendered:
        check(text, display)
        parts.append(f"# Source: {display}\n{text.strip()}\n")
    return "---\n".join(parts)


def render(template: jinja2.Template, variables: dict[str, t.Any], display: str) -> str:
    try:
        return template.render(variables)
    except jinja2.TemplateError as e:
        line = template_line(e)
        where = f"{display}:{line}" if line else display
        raise EksError(f"{where}: cannot be rendered: {e.message or e}") from e


def template_line(error: BaseException) -> int | None:
    """The template line a Jinja runtime error was raised at, if it is known."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        if (
            tb.tb_frame.f_code.co_filename == "<template>"
            or tb.tb_frame.f_code.co_filename.endswith(".yml")
        ):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def check(text: str, display: str) -> None:
    """Each rendered document is a Kubernetes object: apiVersion, kind, metadata.name.
    Messages quote nothing of the rendered text (it may hold Secret values)."""
    for index, document in enumerate(
        parse_yaml_documents(text, f"{display} (rendered)", quote=False), start=1
    ):
        if document is None:
            continue
        where = f"{display} (rendered), document {index}"
        if not isinstance(document, dict):
            raise EksError(
                f"{where}: is a {type(document).__name__}, not a Kubernetes object."
            )
        for key in ("apiVersion", "kind"):
            if not isinstance(document.get(key), str) or not document[key]:
                raise EksError(f"{where}: has no {key}.")
        metadata = document.get("metadata")
        if not isinstance(metadata, dict) or not metadata.get("name"):
            raise EksError(f"{where}: {document['kind']} has no metadata.name.")
