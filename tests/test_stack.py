"""Self-checks of tests/stack.py and the cookiecutter-openedx-devops fixtures."""

from __future__ import annotations

import json
import re
import typing as t
from importlib import resources
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import stack

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NAMESPACE = "yourschool-global-prod"


def tutor22_keys() -> set[str]:
    """Every key Tutor core defines: defaults.yml and base.yml of the installed Tutor."""
    keys: set[str] = set()
    config = resources.files("tutor") / "templates" / "config"
    for name in ("defaults.yml", "base.yml"):
        keys.update(yaml.safe_load((config / name).read_text(encoding="utf-8")))
    return keys


def env_lines(text: str) -> dict[str, str]:
    """``NAME=value`` lines as the Actions runner reads a ``$GITHUB_ENV`` file: split at
    the first ``=``, value verbatim, blank lines skipped. ``#`` lines are our comments."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"not a NAME=value line: {line!r}"
        values[name] = value
    return values


def test_every_secret_is_described() -> None:
    secrets = stack.stack_secrets(NAMESPACE)
    assert list(secrets) == list(stack.SECRET_BUILDERS)
    assert set(secrets) == set(stack.TERRAFORM_FILES) == set(stack.TUTOR22_KEYS)
    for name, build in stack.SECRET_BUILDERS.items():
        doc = build.__doc__ or ""
        assert f"Secret ``{name}``" in doc
        assert stack.TERRAFORM_FILES[name] in doc
        for key in secrets[name]:
            assert f"``{key}``" in doc, f"{name}: key {key} is not documented"
    switched = {s for names in stack.MODULE_SWITCHES.values() for s in names}
    assert switched <= set(secrets)
    assert set(stack.CONDITIONAL_SECRETS) <= switched
    assert set(stack.READ_BY_WORKFLOW) <= set(secrets)


def test_keys_are_split_as_tutor_22_knows_them() -> None:
    tutor_keys = tutor22_keys()
    for name, data in stack.stack_secrets(NAMESPACE).items():
        split = stack.TUTOR22_KEYS[name]
        assert sorted(split.known + split.unknown) == sorted(data), name
        assert set(split.known) <= tutor_keys, name
        assert not set(split.unknown) & tutor_keys, name
    for source, target in stack.TUTOR_RENAMES.items():
        secret, key = source.split("/")
        assert key in stack.TUTOR22_KEYS[secret].unknown
        assert target in tutor_keys


def test_values_look_like_terraform_ones() -> None:
    secrets = stack.stack_secrets("openedx-dev")
    for data in secrets.values():
        assert all(isinstance(v, str) for v in data.values())
    for key, holders in stack.DUPLICATED_KEYS.items():
        assert len({secrets[s][key] for s in holders}) == 1, key
    mongodb = secrets["mongodb-openedx"]
    assert mongodb["MONGODB_USERNAME"] == mongodb["MONGODB_PASSWORD"] == ""
    assert secrets["aws-ses-config"]["SMTP_PORT"] == "587"
    for name, data in secrets.items():
        if name.startswith("mysql-") and name != "mysql-root":
            prefix = name.removeprefix("mysql-").upper().replace("-", "_")
            assert len(data[f"{prefix}_MYSQL_USERNAME"]) <= 32
            assert len(data[f"{prefix}_MYSQL_DATABASE"]) <= 64
            password = data[f"{prefix}_MYSQL_PASSWORD"]
            assert re.fullmatch(r"[A-Za-z0-9_%@]{16}", password)
    assert re.fullmatch(
        r"[A-Za-z0-9]{24}", secrets["edx-secret-key"]["OPENEDX_SECRET_KEY"]
    )
    assert secrets["s3-openedx-storage"]["S3_STORAGE_BUCKET"] == "openedx-dev-storage"
    pem = secrets["jwt"]["private_key"]
    assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert pem.endswith("-----END RSA PRIVATE KEY-----\n")
    loaded = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.key_size == 2048
    assert stack.stack_secrets("openedx-dev")["jwt"]["private_key"] != pem
    assert json.loads(secrets["cookiecutter"]["tags"])


@pytest.mark.parametrize("bad", ["", "Prod", "prod_1", "-prod", "a" * 64])
def test_namespace_hint_must_be_a_namespace(bad: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        stack.stack_secrets(bad)


def test_current_environment_fixture() -> None:
    folder = FIXTURES / "cookiecutter-env"
    text = (folder / "config.yml").read_text(encoding="utf-8")
    values = env_lines(text)
    assert set(values) == {"LMS_HOSTNAME", "CMS_HOSTNAME", "MFE_HOSTNAME"}
    assert set(values) <= set(stack.LEGACY_CONFIG_KEYS)
    # Not a YAML mapping: YAML reads the lines as one plain string.
    assert isinstance(yaml.safe_load(text), str)

    merge = yaml.safe_load((folder / "settings_merge.yml").read_text(encoding="utf-8"))
    assert isinstance(merge, dict)
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", k) for k in merge)
    assert isinstance(merge["FEATURES"], dict)

    documents = list(
        yaml.safe_load_all(
            (folder / "k8s" / "cluster-issuer.yml").read_text(encoding="utf-8")
        )
    )
    kinds = {d["kind"]: d for d in documents if d}
    assert set(kinds) == {"ClusterIssuer", "Certificate"}
    issuer = kinds["ClusterIssuer"]
    assert issuer["metadata"]["name"] == "letsencrypt"
    solvers: list[dict[str, t.Any]] = issuer["spec"]["acme"]["solvers"]
    assert [sorted(s) for s in solvers] == [["dns01"]]
    assert "route53" in solvers[0]["dns01"]
    certificate = kinds["Certificate"]
    assert certificate["spec"]["issuerRef"] == {
        "kind": "ClusterIssuer",
        "name": "letsencrypt",
    }
    assert all(n.startswith("*.") for n in certificate["spec"]["dnsNames"])


def test_legacy_environment_fixture() -> None:
    folder = FIXTURES / "cookiecutter-env-legacy"
    values = env_lines((folder / "config.yml").read_text(encoding="utf-8"))
    assert "LMS_HOSTNAME" in values and "CMS_HOSTNAME" in values
    assert set(values) <= set(stack.LEGACY_CONFIG_KEYS)
    merge = json.loads((folder / "settings_merge.json").read_text(encoding="utf-8"))
    assert isinstance(merge, dict) and isinstance(merge["FEATURES"], dict)
