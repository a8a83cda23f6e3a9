"""Kubernetes objects the plugin adds to what ``tutor k8s start`` applies.

The defaults (``templates/eks/k8s/defaults/``) and the environment's own
``k8s/*.yml`` are rendered with Tutor's Jinja and the full configuration into one
file, ``env/plugins/eks/k8s/manifests.yml``, listed in Tutor's kustomization. An
environment file with a default's name replaces that default. Every rendered
document is checked here, so that a mistake is reported with its file and line
when the env is saved, not later by kubectl.
"""

from __future__ import annotations

import os
import re
import typing as t

import jinja2
import yaml

from .. import tutor_compat
from ..config import context as command
from ..environment import parse_yaml_documents
from ..exceptions import EksError
from . import edge
from .kustomize import deployment_settings
from .services import ca_configmap
from .workloads import extra_objects

if t.TYPE_CHECKING:
    from ..config.resolve import Resolution
    from ..environment import CaBundle

DEFAULT_TEMPLATE = "eks/k8s/defaults/{name}.yml"
OUTPUT = "plugins/eks/k8s/manifests.yml"
HOST_PATTERN = re.compile(
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
#: Cluster-scoped kinds an environment's k8s/ may hold. The ``kustomization``
#: patch keeps the environment's instance labels off them (and the namespace off
#: the ClusterIssuer, which kustomize does not know).
CLUSTER_SCOPED_KINDS = (
    "ClusterIssuer",
    "ClusterRole",
    "ClusterRoleBinding",
    "IngressClass",
    "StorageClass",
    "PriorityClass",
    "PersistentVolume",
    "CustomResourceDefinition",
    "GatewayClass",
)
ISSUER_KINDS = ("Issuer", "ClusterIssuer")
OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$")  # ":" in RBAC names


def public_hosts(
    config: t.Mapping[str, t.Any],
    render: t.Callable[[str], str],
    source: str = "EKS_EXTRA_HOSTS",
) -> list[str]:
    """Every host name the platform answers on, in a stable order, without repeats:
    the public hosts of Tutor and of every enabled plugin (``APP_PUBLIC_HOSTS``,
    each rendered by ``render`` with the configuration), then ``EKS_EXTRA_HOSTS``.
    Meilisearch's public host is left out when Tutor does not run Meilisearch (an
    external one is not served by Caddy)."""
    external = ""
    if not config.get("RUN_MEILISEARCH"):
        external = host_of(str(config.get("MEILISEARCH_PUBLIC_URL") or ""))
    hosts = [host_of(render(item)) for item in tutor_compat.public_host_templates()]
    hosts = [host for host in hosts if host and host != external]
    hosts.extend(extra_hosts(config.get("EKS_EXTRA_HOSTS"), source))
    unique: list[str] = []
    for host in hosts:
        if host not in unique:
            unique.append(host)
    return unique


def host_of(text: str) -> str:
    """The host name of a rendered public host: no scheme, path or port."""
    host = text.strip().split("://", 1)[-1].split("/", 1)[0]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def extra_hosts(value: t.Any, source: str) -> list[str]:
    """``EKS_EXTRA_HOSTS``: a list of host names (a string would be its letters)."""
    if value is None:
        return []
    if isinstance(value, str):
        raise EksError(
            f"{source}: EKS_EXTRA_HOSTS is a string; it must be a list of host names, "
            'e.g. EKS_EXTRA_HOSTS: ["preview.example.com"].'
        )
    if not isinstance(value, list):
        raise EksError(
            f"{source}: EKS_EXTRA_HOSTS must be a list of host names, not a "
            f"{type(value).__name__}."
        )
    for host in value:
        if not isinstance(host, str) or not HOST_PATTERN.match(host):
            raise EksError(
                f"{source}: EKS_EXTRA_HOSTS has {host!r}, which is not a host name "
                "(lower-case DNS labels, optionally starting with '*.')."
            )
    return list(value)


def extra_hosts_source(resolution: Resolution) -> str:
    """Where ``EKS_EXTRA_HOSTS`` comes from, for messages."""
    return source_of(resolution, "EKS_EXTRA_HOSTS")


def source_of(resolution: Resolution, key: str) -> str:
    """Where ``key`` of the configuration comes from, for messages."""
    if key in resolution.sources:
        return resolution.sources[key]
    if f"TUTOR_{key}" in os.environ:
        return f"TUTOR_{key}"
    return "the tutor root's config.yml"


def context_renderer(context: jinja2.runtime.Context) -> t.Callable[[str], str]:
    """Render a template string with the configuration of ``context``, as Tutor
    renders the items of ``APP_PUBLIC_HOSTS``."""
    variables = context.get_all()

    def render(text: str) -> str:
        return str(context.environment.from_string(text).render(variables))

    return render


def render_all(context: jinja2.runtime.Context, resolution: Resolution) -> str:
    """Template global ``eks_manifests()``: every manifest of the environment, rendered."""
    environment = resolution.environment
    hosts = public_hosts(
        context.get_all(), context_renderer(context), extra_hosts_source(resolution)
    )
    variables = {
        **context.get_all(),
        "eks_edge": edge.template_values(
            context.get_all(), hosts, lambda key: source_of(resolution, key)
        ),
    }
    rendered: list[tuple[str, str]] = []
    defaults: dict[str, str] = {}
    for name, template_file in edge.default_templates(variables).items():
        if name in environment.manifests:
            continue
        template_name = DEFAULT_TEMPLATE.format(name=template_file)
        template = context.environment.get_template(template_name)
        display = f"tutoreks/templates/{template_name}"
        defaults[name] = display
        rendered.append((display, render(template, variables, template_name)))
    added: set[str] = set()
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
        if manifest.name not in DEFAULT_NAMES:
            added.add(manifest.display)
    parts = []
    messages: list[str] = []
    for display, text in rendered:
        documents = check(text, display)
        parts.append(f"# Source: {display}\n{text.strip()}\n")
        if display in added:
            messages += beside_defaults(display, documents, defaults, hosts, variables)
    for message in messages:  # once every file rendered and checked
        warn(message)
    if resolution.ca_bundle is not None:
        parts.append(ca_bundle_part(resolution.ca_bundle))
    parts += workload_parts(context, resolution.sources.get("EKS_WORKLOADS", ""))
    return "---\n".join(parts)


def workload_parts(context: jinja2.runtime.Context, origin: str) -> list[str]:
    """The HPAs and PodDisruptionBudgets of ``EKS_WORKLOADS`` (``render/workloads.py``)."""

    _deployments, items = deployment_settings(context, origin)
    return [
        "# Source: EKS_WORKLOADS\n" + yaml.safe_dump(obj, sort_keys=False)
        for obj in extra_objects(items)
    ]


def ca_bundle_part(ca: CaBundle) -> str:
    """The CA bundle's ConfigMap (``render/services.py``), as a manifest part."""

    return f"# Source: {ca.display}\n" + yaml.safe_dump(
        ca_configmap(ca), sort_keys=False
    )


#: The names of the default manifests (``k8s/<name>.yml`` replaces one).
DEFAULT_NAMES = ("ingress", "issuer", "certificate", "gateway", "httproute")


def warn(message: str) -> None:
    """Print a warning once per command (Tutor renders several times per command)."""
    warned = command.current().warned
    if message in warned:
        return
    warned.add(message)
    from tutor import fmt

    fmt.echo_alert(message)


def beside_defaults(
    display: str,
    documents: list[dict[str, t.Any]],
    defaults: dict[str, str],
    hosts: list[str],
    config: t.Mapping[str, t.Any],
) -> list[str]:
    """Warnings for objects of an environment file added beside the defaults: a
    second issuer, a Certificate or Ingress for hosts the defaults already cover,
    and cluster-scoped objects (shared with other environments, perhaps: ``tutor
    k8s delete`` leaves them, see ``deploy/lifecycle.py``)."""
    messages = []
    for document in documents:
        kind = str(document["kind"])
        name = str(document["metadata"]["name"])
        what = f"{display}: {kind} {name!r}"
        group = str(document["apiVersion"]).split("/")[0]
        if kind in ISSUER_KINDS and group == "cert-manager.io" and "issuer" in defaults:
            messages.append(
                f"{what} is added beside the default issuer "
                f"({defaults['issuer']}: {config.get('EKS_ISSUER_KIND')} "
                f"{config.get('EKS_CLUSTER_ISSUER')!r}), which the Ingress and the "
                "Certificate use. To use yours instead, name the file k8s/issuer.yml "
                f"(it then replaces the default) and set EKS_CLUSTER_ISSUER: {name}; "
                "otherwise remove it."
            )
        covered: list[str] = []
        default = ""
        if kind == "Certificate" and group == "cert-manager.io":
            default = "certificate"
            names = (document.get("spec") or {}).get("dnsNames") or []
            covered = [h for h in hosts if any(matches(n, h) for n in names)]
        elif kind == "Ingress":
            default = "ingress"
            rules = (document.get("spec") or {}).get("rules") or []
            names = [r.get("host") for r in rules if isinstance(r, dict)]
            covered = [h for h in hosts if any(matches(n, h) for n in names)]
        if covered and default in defaults:
            messages.append(
                f"{what} covers {', '.join(covered)}, which the default {kind} "
                f"({defaults[default]}) already covers: two of them for one host "
                f"conflict. Name the file k8s/{default}.yml to replace the default, "
                "or remove it."
            )
        if kind in CLUSTER_SCOPED_KINDS:
            messages.append(
                f"{what} is cluster-scoped: it carries no namespace and none of this "
                "environment's instance labels, and `tutor k8s delete` of this "
                "environment leaves it on the cluster (other environments may use "
                "it): delete it by hand once none does (see the README: sharing one "
                "issuer)."
            )
    return messages


def matches(pattern: t.Any, host: str) -> bool:
    """Whether a DNS name of a Certificate or Ingress (``*.`` wildcards cover one
    label) covers ``host``."""
    if not isinstance(pattern, str) or not pattern:
        return False
    if pattern.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == host


def render(template: jinja2.Template, variables: dict[str, t.Any], display: str) -> str:
    try:
        return template.render(variables)
    except jinja2.TemplateError as e:
        line = template_line(e)
        where = f"{display}:{line}" if line else display
        raise EksError(f"{where}: cannot be rendered: {e.message or e}") from e
    except Exception as e:  # a runtime error of an expression (1 // 0, int("x") ...)
        line = template_line(e)
        where = f"{display}:{line}" if line else display
        # Its message could quote a value: only its type is shown.
        raise EksError(
            f"{where}: cannot be rendered: an expression raised {type(e).__name__}"
        ) from None


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


def check(text: str, display: str) -> list[dict[str, t.Any]]:
    """Each rendered document is a Kubernetes object: apiVersion, kind, metadata.name.
    Messages quote nothing of the rendered text (it may hold Secret values)."""
    documents = []
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
        for key in ("name", "namespace"):
            value = metadata.get(key)
            if value is not None and not (
                isinstance(value, str)
                and len(value) <= 253
                and OBJECT_NAME.match(value)
            ):
                raise EksError(
                    f"{where}: {document['kind']} metadata.{key} is not a Kubernetes "
                    "name (lower-case letters, digits, '-' and '.', at most 253)."
                )
        documents.append(document)
    return documents


def without_shared_cluster_objects(text: str) -> tuple[str, list[str]]:
    """The rendered manifests file without the cluster-scoped objects that come
    from an environment's k8s/ (the plugin's own issuer, unique to the
    environment, stays); and those objects, as "Kind name (file)"."""

    parts = re.split(r"^(?=# Source: )", text, flags=re.MULTILINE)
    kept: list[str] = []
    shared: list[str] = []
    for part in parts:
        part = re.sub(
            r"(^|\n)---\s*$", "\n", part
        )  # the separator before the next part
        if not part.strip():
            continue
        source = part.split("\n", 1)[0].removeprefix("# Source: ").strip()
        if source.startswith("tutoreks/"):
            kept.append(part)
            continue
        documents = [d for d in yaml.safe_load_all(part) if isinstance(d, dict)]
        local = [d for d in documents if d.get("kind") not in CLUSTER_SCOPED_KINDS]
        shared += [
            f"{d['kind']} {d.get('metadata', {}).get('name')} ({source})"
            for d in documents
            if d.get("kind") in CLUSTER_SCOPED_KINDS
        ]
        if len(local) == len(documents):
            kept.append(part)
        elif local:
            kept.append(
                f"# Source: {source}\n" + yaml.safe_dump_all(local, sort_keys=False)
            )
    return "---\n".join(p if p.endswith("\n") else p + "\n" for p in kept), shared
