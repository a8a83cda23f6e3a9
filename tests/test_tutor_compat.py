"""Each use of Tutor internals (tutoreks/tutor_compat.py) against the installed Tutor:
these fail when a Tutor release changes what the plugin relies on."""

from __future__ import annotations

import inspect
import os
import typing as t
from pathlib import Path

import click
import pytest
from tutor import config as tutor_config
from tutor import env as tutor_env
from tutor import hooks
from tutor.commands import config as config_commands
from tutor.commands import k8s as tutor_k8s

from tutoreks import tutor_compat

from .conftest import Project


def core_template(name: str) -> str:
    return str(tutor_env.read_core_template_file(*name.split("/")))


def test_apply_selector_is_the_one_of_k8s_start() -> None:
    source = inspect.getsource(tutor_k8s)
    start = source[source.index("def start(") :]
    assert f'"{tutor_compat.APPLY_SELECTOR}"' in start[: start.index("\ndef ")]


def test_instance_label_is_in_every_selector_of_the_kustomization() -> None:
    kustomization = core_template("kustomization.yml")
    assert (
        f"{tutor_compat.INSTANCE_LABEL}: "
        + tutor_compat.instance_label_value("{{ ID }}")
        in kustomization
    )
    assert "includeSelectors: true" in kustomization


def test_credential_configmaps_are_generated_from_those_folders() -> None:
    kustomization = core_template("kustomization.yml")
    for name, folder in tutor_compat.CREDENTIAL_CONFIGMAPS.items():
        assert f"- name: {name}\n" in kustomization
        assert f'"{folder}"|walk_templates' in kustomization


def test_workload_templates_exist() -> None:
    for name in tutor_compat.WORKLOAD_TEMPLATES:
        assert "kind: " in core_template(name)


def test_unique_keys_are_base_yml_and_config_unique() -> None:
    keys = tutor_compat.unique_keys()
    for key in ("ID", "OPENEDX_SECRET_KEY", "JWT_RSA_PRIVATE_KEY", "CMS_OAUTH2_SECRET"):
        assert key in keys
    for setting in tutor_compat.BASE_SETTINGS:
        assert setting in tutor_config.get_template("base.yml")
        assert setting not in keys
    with hooks.Contexts.app("compat-test").enter():
        hooks.Filters.CONFIG_UNIQUE.add_item(
            ("COMPAT_TEST_SECRET", "{{ 8|random_string }}")
        )
    try:
        assert "COMPAT_TEST_SECRET" in tutor_compat.unique_keys()
    finally:
        hooks.clear_all(context=hooks.Contexts.app("compat-test").name)


def test_slow_unique_keys_are_those_made_by_a_slow_filter() -> None:
    """Tutor's JWT key is made by ``rsa_private_key`` (0.3-1 s), a plugin's too."""
    templates = tutor_compat.unique_templates()
    assert "rsa_private_key" in templates["JWT_RSA_PRIVATE_KEY"]
    assert "random_string" in templates["OPENEDX_SECRET_KEY"]
    assert tutor_compat.slow_unique_keys() == ["JWT_RSA_PRIVATE_KEY"]
    with hooks.Contexts.app("compat-test").enter():
        hooks.Filters.CONFIG_UNIQUE.add_item(
            ("COMPAT_KEY", "{{ 2048|rsa_private_key }}")
        )
    try:
        assert tutor_compat.slow_unique_keys() == ["JWT_RSA_PRIVATE_KEY", "COMPAT_KEY"]
    finally:
        hooks.clear_all(context=hooks.Contexts.app("compat-test").name)


def test_save_params_are_those_of_config_save() -> None:
    names = {p.name for p in config_commands.save.params}
    assert set(tutor_compat.SAVE_KEY_PARAMS) | {tutor_compat.SAVE_UNSET_PARAM} <= names


def test_explicitly_set_keys_and_command_path_in_a_config_save_context() -> None:
    ctx = click.Context(config_commands.save, info_name="save")
    ctx.params = {"set_vars": [("LMS_HOST", "x")], "unset_vars": ["CMS_HOST"]}
    with ctx:
        assert tutor_compat.explicitly_set_keys() == {"LMS_HOST", "CMS_HOST"}


def test_current_root_from_the_root_option_or_tutor_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTOR_ROOT", str(tmp_path / "from-env"))
    assert tutor_compat.current_root() == str(tmp_path / "from-env")
    ctx = click.Context(click.Command("tutor"))
    ctx.params = {"root": str(tmp_path / "from-option")}
    with ctx:
        assert tutor_compat.current_root() == str(tmp_path / "from-option")


def unwrapped(function: t.Any) -> t.Any:
    """Tutor's own function, whether or not the plugin wrapped it in this process."""
    return getattr(function, "_tutoreks_original", function)


def test_replaced_save_config_file_routes_every_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = unwrapped(tutor_config.save_config_file)

    def save(root: str, config: dict[str, t.Any]) -> None:
        calls.append(root)
        original(root, config)

    monkeypatch.setattr(tutor_config, "save_config_file", original)
    tutor_compat.replace_save_config_file(save)
    tutor_config.save_config_file(str(tmp_path), {"X": 1})
    assert calls == [str(tmp_path)]
    assert tutor_config.get_yaml_file(tutor_compat.config_path(str(tmp_path))) == {
        "X": 1
    }


def test_env_version_is_the_one_tutor_reads(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert tutor_compat.env_version(root) is None
    tutor_compat.write_env_version(root, "21.0.4")
    assert tutor_env.current_version(root) == "21.0.4"
    assert tutor_env.should_upgrade_from_release(root) == "ulmo"
    assert tutor_compat.env_dir(root) == os.path.join(root, "env")


def test_k8s_commands_and_their_callbacks() -> None:
    group = tutor_compat.k8s_group()
    for name in ("launch", "start", "init"):
        assert name in group.commands
        assert tutor_compat.k8s_command(name).callback is not None
    assert {"non_interactive"} <= {
        p.name for p in tutor_compat.k8s_command("launch").params
    }


def test_wrap_k8s_command_runs_before_and_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    command = click.Command("probe", callback=lambda: "ran")
    monkeypatch.setattr(tutor_k8s, "probe", command, raising=False)
    seen: list[str] = []
    tutor_compat.wrap_k8s_command(
        "probe",
        before=lambda root: seen.append("before"),
        after=lambda root: seen.append("after"),
    )
    assert command.callback is not None and command.callback() == "ran"
    assert seen == ["before", "after"]


def test_task_scripts_pass_through_the_rewrite(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[str, str]] = []

    class Runner(tutor_k8s.K8sTaskRunner):
        def run_task(self, service: str, command: str) -> int:
            runs.append((service, command))
            return 0

    monkeypatch.setattr(
        tutor_k8s.K8sTaskRunner,
        "run_task_from_str",
        unwrapped(tutor_k8s.K8sTaskRunner.run_task_from_str),
    )
    tutor_compat.wrap_task_scripts(
        lambda service, script: script.replace("{{ X }}", "$X")
    )
    Runner("/nonexistent", {"X": "secret"}).run_task_from_str("lms", "echo {{ X }}")
    assert runs == [("lms", "echo $X")]


def test_config_helpers_parse_as_tutor_does() -> None:
    assert tutor_compat.parse_env_value("true") is True
    assert tutor_compat.parse_env_value("[]") == []
    assert tutor_compat.read_root_config_text("A: 1\n") == {"A": 1}
    assert tutor_compat.load_defaults()["MYSQL_PORT"] == 3306
    assert tutor_compat.tutor_version().split(".")[0] == "22"
    rendered = tutor_compat.render_template(
        {**tutor_compat.load_defaults(), "ID": "x"}, "kustomization.yml"
    )
    assert "openedx-x" in rendered


def test_atomic_write_matches_tutors_own(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    config = {"PLUGINS": ["eks"], "LMS_HOST": "a.example.com", "N": 3, "L": [1, 2]}
    tutor_compat.write_config_atomically(str(ours), config)
    unwrapped(tutor_config.save_config_file)(str(theirs), config)
    assert (ours / "config.yml").read_bytes() == (theirs / "config.yml").read_bytes()
    assert not [p for p in ours.iterdir() if p.name != "config.yml"]


def test_public_host_templates_are_tutors_app_public_hosts() -> None:
    templates = tutor_compat.public_host_templates()
    assert templates[:2] == ["{{ LMS_HOST }}", "{{ CMS_HOST }}"]
    assert any("MEILISEARCH_PUBLIC_URL" in item for item in templates)
    config: dict[str, t.Any] = {
        "LMS_HOST": "lms.example.com",
        "CMS_HOST": "studio.example.com",
        "MEILISEARCH_PUBLIC_URL": "https://meilisearch.lms.example.com",
        # tutor-mfe's host, when an in-process test of this worker loaded mfe
        "MFE_HOST": "apps.lms.example.com",
    }
    rendered = [tutor_env.render_str(config, item) for item in templates]
    assert rendered[:2] == ["lms.example.com", "studio.example.com"]
    assert "meilisearch.lms.example.com" in rendered, "no port in the local context"
    dev = list(hooks.Filters.APP_PUBLIC_HOSTS.iterate("dev"))
    assert dev[0] == "{{ LMS_HOST }}:8000", "the dev context is the one with ports"


def test_excluded_components_are_those_of_the_apply_selector() -> None:
    components = ",".join(tutor_compat.APPLY_EXCLUDED_COMPONENTS)
    assert (
        f"app.kubernetes.io/component notin ({components})"
    ) == tutor_compat.APPLY_SELECTOR


def test_k8s_start_names_are_the_arguments_of_start() -> None:
    start = tutor_compat.k8s_command("start")
    assert "names" in {p.name for p in start.params}
    for given, expected in (((), ()), (("lms", "cms"), ("lms", "cms"))):
        ctx = click.Context(start, info_name="start")
        ctx.params = {"names": given, "prune_configmaps": False}
        with ctx:
            assert tutor_compat.k8s_start_names() == expected
    assert tutor_compat.k8s_start_names() == ()


def test_tutor_polls_the_job_it_started_by_name() -> None:
    source = inspect.getsource(unwrapped(tutor_k8s.K8sTaskRunner.run_task))
    assert 'field_selector = f"metadata.name={job_name}"' in source
    assert tutor_compat.JOB_POLL_SELECTOR == "metadata.name="
    poll = source[source.index("# Wait for completion") :]
    assert "K8sClients.instance().batch_api.list_namespaced_job(" in poll
    assert "field_selector=field_selector" in poll
    assert "sleep(5)" in poll
    assert isinstance(tutor_k8s.K8sClients.__dict__["batch_api"], property)


def test_wrap_job_wait_checks_each_poll_of_the_started_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    polls: list[tuple[str, dict[str, t.Any]]] = []

    class BatchApi:
        def list_namespaced_job(self, namespace: str, **kwargs: t.Any) -> str:
            polls.append((namespace, kwargs))
            return "answer"

    def run_task(self: t.Any, service: str, command: str) -> int:
        # What Tutor's run_task does while it waits, and before (other Jobs).
        api = tutor_k8s.K8sClients.instance().batch_api
        api.list_namespaced_job(
            "ns", label_selector="app.kubernetes.io/managed-by=tutor"
        )
        assert (
            api.list_namespaced_job("ns", field_selector="metadata.name=lms-job-1")
            == "answer"
        )
        return 0

    clients = object.__new__(tutor_k8s.K8sClients)
    clients._batch_api = BatchApi()  # type: ignore[assignment]
    original_property = tutor_k8s.K8sClients.__dict__["batch_api"]
    monkeypatch.setattr(
        tutor_k8s.K8sClients,
        "batch_api",
        getattr(original_property.fget, "_tutoreks_original", original_property),
    )
    monkeypatch.setattr(tutor_k8s.K8sClients, "_instance", clients)
    monkeypatch.setattr(tutor_k8s.K8sTaskRunner, "run_task", run_task)
    checked: list[tuple[dict[str, t.Any], str]] = []
    tutor_compat.wrap_job_wait(lambda config, name: checked.append((config, name)))
    runner = tutor_k8s.K8sTaskRunner("/nonexistent", {"K8S_NAMESPACE": "ns"})
    assert runner.run_task("lms", "echo") == 0
    assert checked == [({"K8S_NAMESPACE": "ns"}, "lms-job-1")]
    assert len(polls) == 2, "Tutor's own requests still reach the API"

    # Outside a task run, polling is not checked.
    tutor_k8s.K8sClients.instance().batch_api.list_namespaced_job(
        "ns", field_selector="metadata.name=x"
    )
    assert len(checked) == 1

    def failing(config: dict[str, t.Any], name: str) -> None:
        raise RuntimeError(f"{name} failed")

    monkeypatch.setattr(tutor_k8s.K8sTaskRunner, "run_task", run_task)
    monkeypatch.setattr(
        tutor_k8s.K8sClients,
        "batch_api",
        getattr(original_property.fget, "_tutoreks_original", original_property),
    )
    tutor_compat.wrap_job_wait(failing)
    with pytest.raises(RuntimeError, match="lms-job-1 failed"):
        runner.run_task("lms", "echo")


def test_rsa_private_keys_are_those_tutor_reads() -> None:
    from tutor import utils

    assert tutor_compat.is_rsa_private_key(utils.rsa_private_key(1024))
    public = utils.rsa_import_key(utils.rsa_private_key(1024)).public_key()
    assert not tutor_compat.is_rsa_private_key(public.export_key().decode())
    assert not tutor_compat.is_rsa_private_key(
        "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"
    )


def test_core_config_is_parsed_once_and_each_caller_gets_a_copy() -> None:
    tutor_compat.parse_core_config_once()
    get_template = tutor_config.get_template
    original = get_template._tutoreks_original  # type: ignore[attr-defined]
    for name in ("base.yml", "defaults.yml"):
        first = get_template(name)
        assert first == original(name)
        first["COMPAT_ADDED"] = "x"
        assert "COMPAT_ADDED" not in get_template(name)
    assert tutor_config.load_defaults()["DOCKER_IMAGE_OPENEDX"]


def count_rsa_imports(monkeypatch: pytest.MonkeyPatch) -> list[t.Any]:
    """What pycryptodome's ``RSA.import_key`` (Tutor's reader) is given, from now on."""
    from Crypto.PublicKey import RSA

    imports: list[t.Any] = []
    real_import = RSA.import_key

    def import_key(data: t.Any, *args: t.Any) -> t.Any:
        imports.append(data)
        return real_import(data, *args)

    monkeypatch.setattr(RSA, "import_key", import_key)
    return imports


def test_the_jwt_key_is_imported_once_for_every_settings_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tutor's settings templates import the signing key in each file they render:
    with the plugin's filter, the first import is kept (the JWKs render the same),
    and a key Tutor cannot read is still an error every time."""
    from tutor import utils

    pem = utils.rsa_private_key(1024)
    template = (
        "{% set key | rsa_import_key %}{{ JWT_RSA_PRIVATE_KEY }}{% endset %}"
        "{{ key.n|long_to_base64 }} {{ key.d|long_to_base64 }}"
    )
    config: dict[str, t.Any] = {"JWT_RSA_PRIVATE_KEY": pem}
    tutors_own = tutor_env.Renderer(config)
    tutors_own.environment.filters["rsa_import_key"] = utils.rsa_import_key
    expected = tutors_own.render_str(template)

    imports = count_rsa_imports(monkeypatch)
    filters = dict(tutor_compat.with_rsa_import_once([("rsa_import_key", None)]))
    assert filters["rsa_import_key"] is tutor_compat.rsa_import_key
    for _ in range(5):
        renderer = tutor_env.Renderer(config)
        renderer.environment.filters.update(filters)
        assert renderer.render_str(template) == expected
    assert len(imports) == 1
    for _ in range(2):
        assert not tutor_compat.is_rsa_private_key("-----BEGIN RSA PRIVATE KEY-----")
    assert len(imports) == 3


def test_a_save_imports_the_jwt_key_once(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tutor alone imports it four times per save (its lms and cms settings)."""
    imports = count_rsa_imports(monkeypatch)
    project.save("dev")
    assert "JWT_PRIVATE_SIGNING_JWK" in project.env_file(
        "apps/openedx/settings/lms/production.py"
    )
    assert len(imports) == 1


def test_each_new_root_generates_its_own_values(tmp_path: Path) -> None:
    """Tutor's generated settings (passwords, the JWT key) differ between two new
    roots made by one process, as they do between two processes."""
    values = []
    for name in ("first", "second"):
        project = Project(tmp_path / name)
        project.in_process = True
        project.tutor("config", "save")
        config = project.config()
        values.append(
            {k: config[k] for k in ("MYSQL_ROOT_PASSWORD", "JWT_RSA_PRIVATE_KEY", "ID")}
        )
    assert all(values[0][k] != values[1][k] for k in values[0]), "a value repeated"
