"""The bad-input catalogue: one table across config.yml, settings_merge, k8s/
manifests, Kubernetes Secrets and command-line options. Each case: a clear error
naming the file (line, column), Secret or key, exit non-zero, and the previous
config.yml and env/ left byte for byte as they were. Secret cases run against the
control plane (marker `cluster`)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import pytest

from .conftest import Project, fail_if_secret_in, put_secret, use_cluster


@dataclass
class Case:
    id: str
    files: dict[str, str]
    message: str  # a regular expression the error must match
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    #: Another command than `tutor config save`.
    command: tuple[str, ...] = ("config", "save")
    #: Variables of the test's environment to remove for this case.
    unset: tuple[str, ...] = ()
    #: Secrets to (re)create before the failing run: name -> data (None deletes it).
    secrets: dict[str, dict[str, str] | None] | None = None


GOOD_SECRETS: dict[str, dict[str, str]] = {
    "mysql-root": {
        "MYSQL_HOST": "mysql.example.internal",
        "MYSQL_ROOT_PASSWORD": "good-root-pw-1",
    },
    "mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": "good-openedx-pw-1"},
}


CASES = [
    Case(
        "config-alias-bomb",
        {
            "environments/dev/config.yml": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\ni: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n"
        },
        r"environments/dev/config\.yml:\d+:\d+: invalid YAML: its aliases expand to more than 100000 values",
    ),
    Case(
        "manifest-alias-bomb",
        {
            "environments/dev/k8s/bomb.yml": "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\ni: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n"
        },
        r"environments/dev/k8s/bomb\.yml \(rendered\):\d+:\d+: invalid YAML: its aliases expand",
    ),
    Case(
        "config-jinja-syntax",
        {
            "environments/dev/config.yml": 'LMS_HOST: lms.example.com\nCMS_HOST: "{{ LMS_HOST "\n'
        },
        r"environments/dev/config\.yml:2: CMS_HOST: Jinja syntax error",
    ),
    Case(
        "config-complex-key",
        {"environments/dev/config.yml": "? [a, b]\n: c\n"},
        r"environments/dev/config\.yml:1:\d+: invalid YAML: .*a key that is not a plain value",
    ),
    Case(
        "settings-huge-number",
        {"environments/dev/settings_merge.json": '{"A": 1e400}'},
        r"settings_merge\.json: invalid JSON: a number is too large for a float",
    ),
    Case(
        "settings-too-deep",
        {
            "environments/dev/settings_merge.json": '{"A": '
            + "[" * 900
            + "]" * 900
            + "}"
        },
        r"settings_merge\.json: nested more than 100 levels deep",
    ),
    Case(
        "settings-both-formats",
        {"environments/dev/settings_merge.yml": "A: 1\n"},
        r"settings_merge\.(yml|json) and .*settings_merge\.(json|yml): an environment holds settings_merge files in one format",
    ),
    Case(
        "config-shell-format",
        {
            "environments/dev/config.yml": "LMS_HOSTNAME=lms.example.com\nCMS_HOSTNAME=studio.example.com\n"
        },
        r"environments/dev/config\.yml: is written as shell KEY=value lines.*Line 1, LMS_HOSTNAME=\.\.\., is `LMS_HOST: <its value>` in YAML",
    ),
    Case(
        "unknown-environment",
        {},
        r"Unknown environment 'nope'.*Known environments in environments: dev, qa",
        env={"TUTOR_EKS_ENVIRONMENT": "nope"},
    ),
    Case(
        "unknown-environment-with-set",
        {},
        r"Unknown environment 'nope'.*Known environments in environments: dev, qa",
        args=("--set", "EKS_ENVIRONMENT=nope"),
    ),
    Case(
        "config-not-yaml",
        {"environments/dev/config.yml": "LMS_HOST: a\n  bad: [\n"},
        r"environments/dev/config\.yml:2:\d+: invalid YAML",
    ),
    Case(
        "config-not-mapping",
        {"environments/dev/config.yml": "- LMS_HOST\n"},
        r"environments/dev/config\.yml: must be a mapping",
    ),
    Case(
        "config-duplicate-key",
        {"environments/dev/config.yml": "LMS_HOST: a\nLMS_HOST: b\n"},
        r"environments/dev/config\.yml:2:1: .*duplicate key 'LMS_HOST'",
    ),
    Case(
        "config-sets-plugins",
        {"environments/dev/config.yml": "PLUGINS: [mfe]\n"},
        r"environments/dev/config\.yml: PLUGINS cannot be set here",
    ),
    Case(
        "settings-invalid-json",
        {"environments/dev/settings_merge.json": '{\n  "A": 1,\n}\n'},
        r"environments/dev/settings_merge\.json:3:1: invalid JSON",
    ),
    Case(
        "settings-not-object",
        {"environments/dev/settings_merge.json": "[1, 2]"},
        r"environments/dev/settings_merge\.json: must be a mapping of Django settings",
    ),
    Case(
        "settings-lms-invalid",
        {"environments/dev/settings_merge.lms.json": '{"A": tru}'},
        r"environments/dev/settings_merge\.lms\.json:1:7: invalid JSON",
    ),
    Case(
        "settings-bad-name",
        {"environments/dev/settings_merge.json": '{"features": {}}'},
        r"settings_merge\.json: top-level key 'features' is not a Django setting",
    ),
    Case(
        "settings-nan",
        {"environments/dev/settings_merge.json": '{"A": NaN}'},
        r"settings_merge\.json: invalid JSON: NaN",
    ),
    Case(
        "manifest-jinja-syntax",
        {"environments/dev/k8s/extra.yml": "kind: ConfigMap\nname: {{ LMS_HOST }\n"},
        r"environments/dev/k8s/extra\.yml:2: Jinja syntax error",
    ),
    Case(
        "manifest-undefined",
        {
            "environments/dev/k8s/extra.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ NOPE }}\n"
        },
        r"environments/dev/k8s/extra\.yml:4: cannot be rendered: 'NOPE' is undefined",
    ),
    Case(
        "manifest-rendered-yaml",
        {
            "environments/dev/k8s/extra.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: {{ LMS_HOST }}: y\n"
        },
        r"environments/dev/k8s/extra\.yml \(rendered\):6:\d+: invalid YAML",
    ),
    Case(
        "manifest-no-kind",
        {"environments/dev/k8s/extra.yml": "apiVersion: v1\nmetadata:\n  name: x\n"},
        r"environments/dev/k8s/extra\.yml \(rendered\), document 1: has no kind",
    ),
    Case(
        "unknown-edge",
        {
            "environments/dev/config.yml": "LMS_HOST: a.example.com\nEKS_EDGE: cloudfront\n"
        },
        r"environments/dev/config\.yml: EKS_EDGE is not one of ingress, gateway, alb, caddy\.",
    ),
    Case(
        "unknown-edge-variable",
        {},
        r"TUTOR_EKS_EDGE: EKS_EDGE is not one of ingress",
        env={"TUTOR_EKS_EDGE": "nginx"},
    ),
    Case(
        "unknown-issuer-kind",
        {},
        r"TUTOR_EKS_ISSUER_KIND: EKS_ISSUER_KIND is not one of ",
        env={"TUTOR_EKS_ISSUER_KIND": "Acme"},
    ),
    Case(
        "gateway-without-class",
        {"environments/dev/config.yml": "LMS_HOST: a.example.com\nEKS_EDGE: gateway\n"},
        r"environments/dev/config\.yml: EKS_EDGE is gateway and EKS_GATEWAY_CLASS is empty: set it to the GatewayClass",
    ),
    Case(
        "gateway-class-not-a-name",
        {
            "environments/dev/config.yml": "LMS_HOST: a.example.com\nEKS_EDGE: gateway\nEKS_GATEWAY_CLASS: Envoy Gateway\n"
        },
        r"environments/dev/config\.yml: EKS_GATEWAY_CLASS must be the name of a GatewayClass",
    ),
    Case(
        "gateway-bad-reference",
        {},
        r"TUTOR_EKS_GATEWAY: EKS_GATEWAY must name a Gateway as \"name\" or \"namespace/name\"",
        env={"TUTOR_EKS_EDGE": "gateway", "TUTOR_EKS_GATEWAY": "edge/shared/x"},
    ),
    Case(
        "gateway-too-many-hosts",
        {
            "environments/dev/config.yml": "LMS_HOST: a.example.com\nEKS_EDGE: gateway\nEKS_GATEWAY_CLASS: eg\nEKS_EXTRA_HOSTS: ["
            + ", ".join(f"h{i}.example.com" for i in range(16))
            + "]\n"
        },
        r"EKS_EDGE gateway: \d+ public hosts .* are more than the 16 host names an HTTPRoute holds; serve fewer hosts \(EKS_EXTRA_HOSTS: environments/dev/config\.yml\)",
    ),
    Case(
        "alb-not-an-acm-arn",
        {
            "environments/dev/config.yml": "LMS_HOST: a.example.com\nEKS_EDGE: alb\nEKS_ACM_CERTIFICATE_ARN: arn:aws:iam::123456789012:server-certificate/x\n"
        },
        r"environments/dev/config\.yml: EKS_ACM_CERTIFICATE_ARN must be ACM certificate ARNs",
    ),
    Case(
        "alb-bad-group",
        {},
        r"TUTOR_EKS_ALB_GROUP: EKS_ALB_GROUP must be an ALB group name",
        env={"TUTOR_EKS_EDGE": "alb", "TUTOR_EKS_ALB_GROUP": "Shared_ALB"},
    ),
    Case(
        "alb-annotation-not-text",
        {
            "environments/dev/config.yml": "LMS_HOST: a.example.com\nEKS_EDGE: alb\nEKS_ALB_ANNOTATIONS:\n  alb.ingress.kubernetes.io/tags: {team: web}\n"
        },
        r"environments/dev/config\.yml: EKS_ALB_ANNOTATIONS\['alb\.ingress\.kubernetes\.io/tags'\] must be text, not a dict",
    ),
    Case(
        "alb-annotation-bad-key",
        {
            "environments/dev/config.yml": "LMS_HOST: a.example.com\nEKS_EDGE: alb\nEKS_ALB_ANNOTATIONS:\n  'waf acl': x\n"
        },
        r"environments/dev/config\.yml: EKS_ALB_ANNOTATIONS has the key 'waf acl', which is not an annotation name",
    ),
    Case(
        "alb-annotations-not-a-mapping",
        {},
        r"TUTOR_EKS_ALB_ANNOTATIONS: EKS_ALB_ANNOTATIONS must be a mapping of annotation to text, not a list",
        env={"TUTOR_EKS_EDGE": "alb", "TUTOR_EKS_ALB_ANNOTATIONS": "[a, b]"},
    ),
    Case(
        "proxy-contradicts-edge",
        {
            "environments/dev/config.yml": "LMS_HOST: a.example.com\nENABLE_WEB_PROXY: true\n"
        },
        r"environments/dev/config\.yml: ENABLE_WEB_PROXY: true contradicts EKS_EDGE 'ingress'",
    ),
    # command-line options
    Case(
        "set-unknown-edge",
        {},
        r"the tutor root's config\.yml: EKS_EDGE is not one of ingress",
        args=("--set", "EKS_EDGE=lb"),
    ),
    Case(
        "set-secrets-not-a-list",
        {},
        r"EKS_SECRETS must be a list of Secret names",
        args=("--set", "EKS_SECRETS=mysql-root"),
        unset=("TUTOR_EKS_SECRETS",),
    ),
    Case(
        "set-bad-secret-name",
        {},
        r"EKS_SECRETS has 'Not_A_Name'",
        args=("--set", 'EKS_SECRETS=["Not_A_Name"]'),
        unset=("TUTOR_EKS_SECRETS",),
    ),
    Case(
        "set-bad-renames",
        {},
        r"EKS_SECRET_KEYS entry 'smtp'",
        args=("--set", 'EKS_SECRET_KEYS={"smtp": "X"}'),
    ),
    Case(
        "rbac-empty-subject",
        {},
        r"An RBAC subject needs a name",
        command=("eks", "rbac", "--service-account", "ns:"),
    ),
    Case(
        "check-unknown-option",
        {},
        r"No such option '--bogus'",
        command=("eks", "check", "--bogus"),
    ),
    # Kubernetes Secrets (control plane)
    Case(
        "secret-missing",
        {},
        r"Secret {ns}/mysql-openedx not found: create it in namespace '{ns}'",
        secrets={"mysql-openedx": None},
    ),
    Case(
        "secret-key-missing",
        {},
        r"Secret {ns}/mysql-root has no key MYSQL_ROOT_PASSWORD",
        secrets={"mysql-root": {"MYSQL_HOST": "h"}},
    ),
    Case(
        "secret-endpoint-without-password",
        {},
        r"Secret {ns}/mysql-openedx has no key OPENEDX_MYSQL_PASSWORD",
        secrets={"mysql-openedx": {"OPENEDX_MYSQL_USERNAME": "edx-user-77"}},
    ),
    Case(
        "secret-redis-key-prefix",
        {},
        r"Secret {ns}/mysql-openedx key REDIS_KEY_PREFIX \(REDIS_KEY_PREFIX\): a Redis key prefix holds 1 to 63",
        secrets={
            "mysql-openedx": {
                "OPENEDX_MYSQL_PASSWORD": "p",
                "REDIS_HOST": "h",
                "REDIS_KEY_PREFIX": "qa/../prod",
            }
        },
    ),
    Case(
        "secret-steering-key",
        {},
        r"Secret {ns}/mysql-root key RUN_MYSQL \(RUN_MYSQL\): RUN_MYSQL steers the deploy",
        secrets={
            "mysql-root": {
                "MYSQL_HOST": "h",
                "MYSQL_ROOT_PASSWORD": "p",
                "RUN_MYSQL": "true",
            }
        },
    ),
    Case(
        "secret-host-injection",
        {},
        r"Secret {ns}/mysql-openedx key MONGODB_HOST \(MONGODB_HOST\): the value is not a host name",
        secrets={
            "mysql-openedx": {
                "OPENEDX_MYSQL_PASSWORD": "p",
                "MONGODB_HOST": "h1;touch /tmp/X;#,h2",
            }
        },
    ),
    Case(
        "secret-value-newline",
        {},
        r"Secret {ns}/mysql-openedx key OPENEDX_MYSQL_PASSWORD .*newline, control",
        secrets={"mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": "bad\npw"}},
    ),
    Case(
        "secret-port-not-a-number",
        {},
        r"Secret {ns}/mysql-root key MYSQL_PORT: MYSQL_PORT must be a whole number",
        secrets={
            "mysql-root": {
                "MYSQL_HOST": "h",
                "MYSQL_PORT": "33o6",
                "MYSQL_ROOT_PASSWORD": "p",
            }
        },
    ),
    Case(
        "secret-key-not-a-setting",
        {},
        r"Secret {ns}/mysql-openedx key tls\.crt: 'TLS\.CRT' is not a Tutor setting name",
        secrets={"mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": "p", "tls.crt": "x"}},
    ),
    Case(
        "secret-key-twice",
        {},
        r"Secret {ns}/mysql-openedx key MYSQL_HOST: MYSQL_HOST differs from Secret {ns}/mysql-root key MYSQL_HOST",
        secrets={"mysql-openedx": {"OPENEDX_MYSQL_PASSWORD": "p", "MYSQL_HOST": "h"}},
    ),
    Case(
        "secret-forbidden",
        {},
        r"Not allowed to read Secret {ns}/mysql-root \(verb get, resource secrets, namespace {ns}\)",
        secrets={},
        env={"KUBECONFIG": "stranger"},
    ),
    # What the shared-stack and TLS settings take (render/services.py).
    Case(
        "redis-key-prefix",
        {
            "environments/dev/config.yml": "LMS_HOST: lms.example.com\nREDIS_KEY_PREFIX: 'a b'\n"
        },
        r"REDIS_KEY_PREFIX: a Redis key prefix holds 1 to 63 letters",
    ),
    Case(
        "mysql-tls-without-bundle",
        {
            "environments/dev/config.yml": "LMS_HOST: lms.example.com\nMYSQL_USE_SSL: true\n"
        },
        r"MYSQL_USE_SSL is true but the environment has no CA bundle",
    ),
    Case(
        "ca-bundle-garbage",
        {
            "environments/dev/ca-bundle.pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        },
        r"environments/dev/ca-bundle\.pem: is not a valid PEM CA bundle",
    ),
    # k8s/ manifests: runtime errors and names (tracebacks before).
    Case(
        "manifest-runtime-error",
        {
            "environments/dev/k8s/extra.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: '{{ 1 // 0 }}'\n"
        },
        r"environments/dev/k8s/extra\.yml:6: cannot be rendered: an expression raised ZeroDivisionError",
    ),
    Case(
        "manifest-name-not-a-name",
        {
            "environments/dev/k8s/extra.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ../../namespaces/x\n"
        },
        r"environments/dev/k8s/extra\.yml \(rendered\), document 1: ConfigMap metadata\.name is not a Kubernetes name",
    ),
    Case(
        "manifest-name-a-number",
        {
            "environments/dev/k8s/extra.yml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 123456789012345678901234567890\n"
        },
        r"ConfigMap metadata\.name is not a Kubernetes name",
    ),
]


def params() -> list[object]:
    return [
        pytest.param(
            c, id=c.id, marks=[pytest.mark.cluster] if c.secrets is not None else []
        )
        for c in CASES
    ]


@pytest.mark.parametrize("case", params())
def test_bad_input_is_clear_and_changes_nothing(
    project: Project, case: Case, request: pytest.FixtureRequest
) -> None:
    assert len(CASES) >= 25
    project.write("environments/qa/config.yml", "LMS_HOST: qa.example.com\n")
    project.write("environments/dev/settings_merge.json", '{"A": 1}')
    project.write(
        "environments/dev/k8s/extra.yml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n",
    )
    namespace = ""
    env = dict(case.env)
    if case.secrets is not None:
        cluster = request.getfixturevalue("cluster")
        namespace = f"eks-bad-{uuid.uuid4().hex[:6]}"
        cluster.kubectl("create", "namespace", namespace)
        request.addfinalizer(
            lambda: cluster.kubectl(
                "delete", "namespace", namespace, "--wait=false", check=False
            )
        )
        project.write(
            "environments/dev/config.yml",
            f"LMS_HOST: lms.dev.example.com\nK8S_NAMESPACE: {namespace}\n",
        )
        project.environ["TUTOR_EKS_SECRETS"] = '["mysql-root", "mysql-openedx"]'
        use_cluster(project, cluster)
        for name, data in GOOD_SECRETS.items():
            put_secret(cluster, namespace, name, data, replace=True)
        if env.get("KUBECONFIG") == "stranger":
            env["KUBECONFIG"] = str(
                cluster.service_account_kubeconfig(namespace, "stranger")
            )
    # Cases that drop TUTOR_EKS_SECRETS keep an empty list in the root's config.yml.
    keep = ("--set", "EKS_SECRETS=[]") if "TUTOR_EKS_SECRETS" in case.unset else ()
    project.tutor("config", "save", "--set", "EKS_ENVIRONMENT=dev", *keep)
    before = project.fingerprint()

    for relative, text in case.files.items():
        project.write(relative, text)
    for name in case.unset:
        project.environ.pop(name, None)
    for name, change in (case.secrets or {}).items():
        if change is None:
            cluster.kubectl("delete", "secret", name, "-n", namespace)
        else:
            put_secret(cluster, namespace, name, change, replace=True)
    result = project.tutor(*case.command, *case.args, env=env, check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(case.message.format(ns=namespace), output, re.DOTALL), output
    assert "Traceback" not in output, output
    assert project.fingerprint() == before, "config.yml or env/ changed"
    for data in [
        *GOOD_SECRETS.values(),
        *(d for d in (case.secrets or {}).values() if d),
    ]:
        for value in data.values():
            if len(value) > 3:
                fail_if_secret_in(value, output, "the error output")


def test_failed_first_save_leaves_no_root_behind(project: Project) -> None:
    project.write(
        "environments/dev/k8s/extra.yml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ NOPE }}\n",
    )
    before = project.fingerprint()
    result = project.tutor(
        "config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"}, check=False
    )
    assert result.returncode != 0
    assert project.fingerprint() == before
    assert not (project.root / "env").exists()


# --- a bad value is named by its file and key, never shown ----------------------------

A_PASSWORD = "Tr0ub4dor-and-3"


def test_a_shell_format_config_names_the_key_not_the_value() -> None:
    from tutoreks.environment import shell_format_hint

    hint = shell_format_hint(
        f"# exported\nMYSQL_ROOT_PASSWORD='{A_PASSWORD}'\n",
        "environments/dev/config.yml",
    )
    assert (
        "Line 2, MYSQL_ROOT_PASSWORD=..., is `MYSQL_ROOT_PASSWORD: <its value>`" in hint
    )
    fail_if_secret_in(A_PASSWORD, hint, "the hint")
    fail_if_secret_in(A_PASSWORD[:6], hint, "the hint")


def test_a_huge_number_is_refused_without_repeating_it() -> None:
    from tutoreks.environment import parse_json
    from tutoreks.exceptions import EksError

    with pytest.raises(EksError) as raised:
        parse_json('{"A": 98765e400}', "settings_merge.json")
    assert str(raised.value) == (
        "settings_merge.json: invalid JSON: a number is too large for a float"
    )


def test_a_wrong_choice_names_the_key_not_the_value(project: Project) -> None:
    project.write(
        "environments/dev/config.yml",
        f"LMS_HOST: a.example.com\nEKS_EDGE: {A_PASSWORD}\n",
    )
    result = project.tutor(
        "config", "save", env={"TUTOR_EKS_ENVIRONMENT": "dev"}, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "config.yml: EKS_EDGE is not one of ingress, gateway, alb, caddy." in output
    fail_if_secret_in(A_PASSWORD, output, "the error output")
