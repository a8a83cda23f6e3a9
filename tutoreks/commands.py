"""``tutor eks ...``: the operator's commands, and the ``tutor k8s quickstart`` alias.

Cheap to import (click and Tutor only): every ``tutor`` command loads this module.
Heavier work is imported inside each command.
"""

from __future__ import annotations

import os
import typing as t

import click
from tutor import config as tutor_config
from tutor import fmt

from . import environments, precedence
from .exceptions import EksError


@click.group(
    name="eks", help="Deploy Open edX environments to Kubernetes (AWS EKS first)"
)
def eks() -> None:
    pass


def current_resolution() -> precedence.Resolution:
    resolution = precedence.current()
    if resolution is None:
        raise EksError("No environment is selected.")
    return resolution


def selected_or_explain(root: str) -> str:
    name, _ = precedence.selected_environment(precedence.read_root_config(root))
    if not name:
        raise EksError(
            "No environment selected: set TUTOR_EKS_ENVIRONMENT=<name>, or run "
            "`tutor config save --set EKS_ENVIRONMENT=<name>`. `tutor eks envs` lists them."
        )
    return name


def load_config(root: str, *, read_secrets: bool) -> dict[str, t.Any]:
    """The full config of the selected environment, optionally without Secrets."""
    previous = precedence.STATE.skip_secrets
    precedence.STATE.skip_secrets = not read_secrets
    try:
        return tutor_config.load_full(root)
    finally:
        precedence.STATE.skip_secrets = previous


@eks.command(
    name="envs",
    help="List the environments and validate each (config, JSON, manifests)",
)
@click.pass_obj
def envs(context: t.Any) -> None:
    from tutor import env as tutor_env

    from . import settings

    root = context.root
    selected, envs_root = precedence.selected_environment(
        precedence.read_root_config(root)
    )
    names = environments.list_names(envs_root)
    if not names:
        raise EksError(
            f"No environment found in {environments.display_path(envs_root)}: an environment "
            f"is a folder holding a {environments.CONFIG_FILE}."
        )
    broken = 0
    saved = os.environ.get("TUTOR_EKS_ENVIRONMENT")
    try:
        for name in names:
            os.environ["TUTOR_EKS_ENVIRONMENT"] = name
            marker = "*" if name == selected else " "
            try:
                config = load_config(root, read_secrets=False)
                resolution = current_resolution()
                tutor_env.Renderer(config).render_template("eks/k8s/manifests.yml")
                for patch_name, code in settings.production_patches(
                    resolution.environment
                ):
                    compile(code, patch_name, "exec")
            except EksError as e:
                broken += 1
                fmt.echo(f"{marker} {name:<20} BROKEN  {e}")
                continue
            environment = resolution.environment
            parts = [
                f"namespace {config['K8S_NAMESPACE']}",
                f"edge {config['EKS_EDGE']}",
                f"LMS {config['LMS_HOST']}",
            ]
            if environment.settings:
                parts.append(
                    "settings_merge: " + ", ".join(sorted(environment.settings))
                )
            if environment.manifests:
                parts.append(
                    "k8s: "
                    + ", ".join(m.path.name for m in environment.manifests.values())
                )
            fmt.echo(f"{marker} {name:<20} ok      {'; '.join(parts)}")
    finally:
        if saved is None:
            os.environ.pop("TUTOR_EKS_ENVIRONMENT", None)
        else:
            os.environ["TUTOR_EKS_ENVIRONMENT"] = saved
    if not selected:
        fmt.echo(
            "No environment selected: set TUTOR_EKS_ENVIRONMENT=<name> or run "
            "`tutor config save --set EKS_ENVIRONMENT=<name>`."
        )
    if broken:
        raise EksError(f"{broken} of {len(names)} environments are broken.")


@eks.command(
    name="secrets",
    help="Which Tutor key comes from which Secret and key (never a value)",
)
@click.pass_obj
def secrets_command(context: t.Any) -> None:
    root = context.root
    name = selected_or_explain(root)
    load_config(root, read_secrets=True)
    resolution = current_resolution()
    provided = resolution.secrets
    if provided is None:
        fmt.echo(f"Environment {name}: EKS_SECRETS is empty, no Secret is read.")
        return
    rows = [("TUTOR KEY", "SECRET/KEY", "LENGTH", "NOTE")]
    for key in sorted(provided.values):
        note = []
        if key in resolution.conflicts:
            note.append(
                f"also in {resolution.environment.display}/config.yml (the Secret wins)"
            )
        if resolution.sources.get(key, "").startswith("TUTOR_"):
            note.append(f"overridden by {resolution.sources[key]}")
        rows.append(
            (
                key,
                provided.origin(key),
                str(len(provided.values[key])),
                "; ".join(note),
            )
        )
    for key, source in sorted(resolution.sources.items()):
        if key.startswith("RUN_") and " from Secret " in source:
            rows.append((key, "-", "-", f"false: {source}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    fmt.echo(f"Environment {name}, namespace {provided.namespace}:")
    for row in rows:
        fmt.echo(
            "  "
            + "  ".join(
                cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)
            ).rstrip()
        )
    fmt.echo(f"Secrets read: {', '.join(provided.found) or 'none'}")
    if provided.missing_optional:
        fmt.echo(f"Optional Secrets absent: {', '.join(provided.missing_optional)}")


@eks.command(
    name="rbac",
    help="Print the least-privilege Role/ClusterRole and bindings for the CI identity",
)
@click.option(
    "--service-account",
    "service_account",
    metavar="[NAMESPACE:]NAME",
    help="Bind a ServiceAccount (default: tutor-deployer in K8S_NAMESPACE)",
)
@click.option(
    "--user",
    "user",
    metavar="NAME",
    help="Bind a user, e.g. the username of an EKS access entry",
)
@click.option(
    "--group",
    "group",
    metavar="NAME",
    help="Bind a group, e.g. a group of an EKS access entry",
)
@click.option(
    "--namespace",
    "namespace",
    metavar="NAME",
    help="Namespace of the Role (default: the environment's K8S_NAMESPACE)",
)
@click.pass_obj
def rbac(
    context: t.Any,
    service_account: str | None,
    user: str | None,
    group: str | None,
    namespace: str | None,
) -> None:
    from . import rbac as eks_rbac

    selected_or_explain(context.root)
    config = load_config(context.root, read_secrets=False)
    documents = eks_rbac.documents(
        config,
        namespace=namespace,
        service_account=service_account,
        user=user,
        group=group,
    )
    click.echo(eks_rbac.dump(documents), nl=False)


@eks.command(
    name="check",
    help="Preflight before migrations: Secrets, databases, S3, cert-manager, ingress",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of {name, ok, detail}"
)
@click.pass_context
def check_command(ctx: click.Context, as_json: bool) -> None:
    import json

    from . import check as eks_check
    from . import kube

    root = ctx.obj.root
    selected_or_explain(root)
    results: list[eks_check.Result]
    try:
        config = load_config(root, read_secrets=True)
    except EksError as e:
        results = [eks_check.Result("secrets", False, str(e))]
    else:
        resolution = current_resolution()
        provided = resolution.secrets
        values: list[str] = []
        if provided is None:
            results = [
                eks_check.Result(
                    "secrets", True, "EKS_SECRETS is empty: no Secret to read"
                )
            ]
        else:
            values = list(provided.values.values())
            absent = (
                f"; optional, absent: {', '.join(provided.missing_optional)}"
                if provided.missing_optional
                else ""
            )
            results = [
                eks_check.Result(
                    "secrets",
                    True,
                    f"{len(provided.values)} keys from {', '.join(provided.found) or 'no Secret'} "
                    f"in namespace {provided.namespace}{absent}",
                )
            ]
        try:
            client = kube.Client.from_environment()
        except EksError as e:
            results.append(eks_check.Result("kubernetes", False, str(e)))
        else:
            results += eks_check.run(eks_check.checks_for(config, client), values)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        width = max(len(r.name) for r in results)
        for r in results:
            status = (
                click.style("ok  ", fg="green")
                if r.ok
                else click.style("FAIL", fg="red")
            )
            click.echo(f"{status}  {r.name.ljust(width)}  {r.detail}")
    failed = [r.name for r in results if not r.ok]
    if failed:
        if not as_json:
            click.echo(
                f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}",
                err=True,
            )
        ctx.exit(1)


@eks.command(
    name="diff",
    help="Show what `tutor k8s start` would change on the cluster (server-side)",
)
@click.pass_context
def diff_command(ctx: click.Context) -> None:
    import shutil
    import subprocess

    from tutor import env as tutor_env

    root = ctx.obj.root
    selected_or_explain(root)
    env_dir = tutor_env.pathjoin(root)
    if not os.path.exists(os.path.join(env_dir, "kustomization.yml")):
        raise EksError(
            f"{env_dir} has no kustomization.yml: run `tutor config save` first."
        )
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise EksError("kubectl is not installed (tutor eks diff runs `kubectl diff`).")
    # The same objects as `tutor k8s start`: everything but Jobs and the Namespace.
    command = [
        kubectl,
        "diff",
        "--kustomize",
        env_dir,
        "--selector",
        "app.kubernetes.io/component notin (job,namespace)",
    ]
    code = subprocess.call(command)
    if code == 0:
        fmt.echo_info("No change: `tutor k8s start` would leave the cluster as it is.")
    elif code == 1:
        fmt.echo_info("`tutor k8s start` would make the changes above.")
    else:
        raise EksError(f"`kubectl diff` failed (exit {code}); see its message above.")
    ctx.exit(code)
