"""Bad input: a clear error naming the file (line, column), exit non-zero, and the
previous config.yml and env/ left byte for byte as they were."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from .conftest import Project


@dataclass
class Case:
    id: str
    files: dict[str, str]
    message: str  # a regular expression the error must match
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()


CASES = [
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
        r"environments/dev/settings_merge\.json: must be a JSON object",
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
        r"environments/dev/config\.yml: EKS_EDGE is 'cloudfront'; it must be one of ingress, caddy",
    ),
    Case(
        "unknown-edge-variable",
        {},
        r"TUTOR_EKS_EDGE: EKS_EDGE is 'nginx'",
        env={"TUTOR_EKS_EDGE": "nginx"},
    ),
    Case(
        "unknown-issuer-kind",
        {},
        r"TUTOR_EKS_ISSUER_KIND: EKS_ISSUER_KIND is 'Acme'",
        env={"TUTOR_EKS_ISSUER_KIND": "Acme"},
    ),
    Case(
        "proxy-contradicts-edge",
        {
            "environments/dev/config.yml": "LMS_HOST: a.example.com\nENABLE_WEB_PROXY: true\n"
        },
        r"environments/dev/config\.yml: ENABLE_WEB_PROXY: true contradicts EKS_EDGE 'ingress'",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_clear_and_changes_nothing(project: Project, case: Case) -> None:
    project.write("environments/qa/config.yml", "LMS_HOST: qa.example.com\n")
    project.write("environments/dev/settings_merge.json", '{"A": 1}')
    project.write(
        "environments/dev/k8s/extra.yml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n",
    )
    project.tutor("config", "save", "--set", "EKS_ENVIRONMENT=dev")
    before = project.fingerprint()

    for relative, text in case.files.items():
        project.write(relative, text)
    result = project.tutor("config", "save", *case.args, env=case.env, check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert re.search(case.message, output, re.DOTALL), output
    assert "Traceback" not in output, output
    assert project.fingerprint() == before, "config.yml or env/ changed"


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
