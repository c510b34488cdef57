"""The configuration schema: defaults, overrides, and one clear line for every bad value."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml
from cautious.cli import tasks
from cautious.config import CONFIG_ENV_VAR, Config, load_config
from cautious.exceptions import ConfigError
from hypothesis import given, settings
from hypothesis import strategies as st
from invoke.context import MockContext
from invoke.exceptions import Exit
from pydantic import BaseModel

REPO_CONFIG = Path(__file__).resolve().parents[2] / "cautious.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cautious.yaml"
    path.write_text(text)
    return path


def test_the_bundled_config_declares_the_demo_releases() -> None:
    config = load_config(REPO_CONFIG)
    assert {"v1", "v2", "crash-on-start", "slow-start", "errors-5pct"} <= set(config.releases)
    assert config.cluster.backend == "docker"


def test_an_empty_file_means_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.cluster.instances == 3
    assert config.rollout.strategy == "rolling"


def test_relative_paths_start_from_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "service: {context: app}\n"))
    assert config.path(config.service.context) == (tmp_path / "app").resolve()


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster: {instances: 2}\n")
    assert load_config(path, {"cluster.instances": 5}).cluster.instances == 5


def test_a_flag_that_was_not_given_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster: {instances: 2}\n")
    assert load_config(path, {"cluster.instances": None}).cluster.instances == 2


def test_a_negative_instance_count_names_the_key_and_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, ""), {"cluster.instances": -1})
    message = str(error.value)
    assert "cluster.instances = -1" in message
    assert "greater than or equal to 1" in message
    assert "\n" not in message


def test_an_unknown_backend_lists_what_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, "cluster: {backend: k8s}\n"))
    assert "cluster.backend = 'k8s'" in str(error.value)
    assert "'docker'" in str(error.value)
    # the file is named first (a long path is shortened in its middle, never at its end)
    assert str(error.value).startswith(str(tmp_path)[:20])
    assert "cautious.yaml: cluster.backend" in str(error.value)


def test_a_misspelt_key_is_an_error_that_lists_the_allowed_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'cluster.instanses'.*instances"):
        load_config(write(tmp_path, "cluster: {instanses: 3}\n"))


def test_a_misspelt_release_key_lists_the_release_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"releases.v1.enviroment.*description, env"):
        load_config(write(tmp_path, "releases: {v1: {enviroment: {}}}\n"))


def test_release_names_must_be_image_tags(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="release name 'V 1'"):
        load_config(write(tmp_path, "releases: {'V 1': {}}\n"))


def test_canary_steps_must_rise_to_100(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="canary_steps"):
        load_config(write(tmp_path, "rollout: {canary_steps: [50, 25]}\n"))


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cautious.yaml:2: not valid YAML"):
        load_config(write(tmp_path, "cluster:\n  instances: 3: 4\n"))


def test_a_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load_config(tmp_path / "nope.yaml")


def test_the_environment_variable_points_at_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_ENV_VAR, str(write(tmp_path, "cluster: {name: elsewhere}\n")))
    assert load_config().cluster.name == "elsewhere"


def test_a_release_runs_with_the_service_env_then_its_overlay(tmp_path: Path) -> None:
    path = write(tmp_path, "service: {env: {A: '1', B: '1'}}\nreleases: {v2: {env: {B: '2'}}}\n")
    assert load_config(path).release_env("v2") == {"A": "1", "B": "2"}


def test_an_undeclared_release_lists_the_known_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "releases: {v1: {}, v2: {}}\n"))
    with pytest.raises(ConfigError, match="known: v1, v2"):
        config.release("v3")


def refusal(tmp_path: Path, text: str, overrides: dict[str, object] | None = None) -> str:
    """The one line a configuration is refused with."""
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), overrides)
    message = str(error.value)
    assert "\n" not in message and len(message) <= 300
    return message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("cluster: {instances: true}\n", "cluster.instances = True is not allowed: a boolean"),
        ("rollout: {canary_steps: [yes, 100]}\n", "rollout.canary_steps = [True, 100]"),
        (
            "claims: {p99_ms: .inf}\n",
            "claims.p99_ms = inf is not allowed: Input should be",
        ),
        ("claims: {success_ratio: .nan}\n", "claims.success_ratio = nan is not allowed"),
        ("lb: {timeout_client_ms: 2147483648}\n", "less than or equal to 2147483647"),
        ("cluster: {instances: 2}\ncluster: {instances: 3}\n", "duplicate key 'cluster'"),
        ("a: &a [1, 2]\nb: *a\n", "aliases (*name) are not accepted"),
        ('service: {context: "a\\0b"}\n', "service.context holds a NUL character"),
        ("service: {env: {'A B': x}}\n", "variable name 'A B' must be letters, digits and '_'"),
        ("releases: {'../../etc': {}}\n", "release name '../../etc' must be up to 64 lowercase"),
        ("cluster: {instances: " + "9" * 400 + "}\n", "cluster.instances = 9999"),
        (
            "ssh: {hosts: [{address: a, nope: 1}]}\n",
            "unknown key 'ssh.hosts.0.nope'; allowed",
        ),
        ("- a list\n", "the top level must be a mapping of sections"),
    ],
)
def test_every_family_of_bad_value_is_one_line_naming_key_value_and_rule(
    tmp_path: Path, text: str, problem: str
) -> None:
    assert problem in refusal(tmp_path, text)


def test_an_empty_config_flag_does_not_fall_back_to_another_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config takes the path of a file, not ''"):
        load_config("")


def test_a_fifo_given_as_the_config_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "cautious.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO, not a regular file"):
        load_config(fifo)


def test_a_secret_looking_variable_is_never_shown_in_an_error(tmp_path: Path) -> None:
    message = refusal(tmp_path, "service: {env: {API_TOKEN: 123456789}}\n")
    assert "service.env.API_TOKEN = [redacted]" in message
    assert "123456789" not in message


def test_a_variable_may_be_declared_secret_and_still_reaches_the_service(tmp_path: Path) -> None:
    text = "service: {env: {DB_URL: {value: postgres://u:pw@db/x, secret: true}, PLAIN: a}}\n"
    config = load_config(write(tmp_path, text + "releases: {v1: {}}\n"))
    assert config.release_env("v1") == {"DB_URL": "postgres://u:pw@db/x", "PLAIN": "a"}


def test_the_public_dump_masks_every_secret_value_and_keeps_the_rest(tmp_path: Path) -> None:
    text = (
        "service: {env: {DB_URL: {value: planted-dump-url, secret: true}, PLAIN: visible}}\n"
        "releases: {v1: {env: {API_TOKEN: planted-dump-token}}}\n"
        "dependencies: [{name: db, image: pg, port: 5432, env: {PG_PASSWORD: planted-pg-pw}}]\n"
    )
    dumped = load_config(write(tmp_path, text)).public_dump()
    assert dumped["service"]["env"] == {
        "DB_URL": {"value": "[redacted]", "secret": True},
        "PLAIN": "visible",
    }
    assert dumped["releases"]["v1"]["env"] == {"API_TOKEN": "[redacted]"}
    assert dumped["dependencies"][0]["env"] == {"PG_PASSWORD": "[redacted]"}
    assert "planted" not in str(dumped)


# -- every generated configuration is valid, or exit 2 with one line ----------------------------

SECTIONS = {
    name: sorted(field.annotation.model_fields)  # type: ignore[union-attr]
    for name, field in Config.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}
KEYS = sorted({key for keys in SECTIONS.values() for key in keys})
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["rolling", "canary", "docker", "/ready", "v1", "20 %", "1e400", ""])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
DOCUMENTS = st.dictionaries(
    st.sampled_from(sorted(SECTIONS)) | st.sampled_from(["releases", "state_dir"]) | st.text(),
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), VALUES, max_size=4) | VALUES,
    max_size=4,
)
TEXTS = (
    DOCUMENTS.map(lambda document: yaml.safe_dump(document, allow_unicode=True))
    | st.text(max_size=200)
    | st.sampled_from(["a: &x [1]\nb: *x\n", "cluster:\n  name: a\ncluster: {}\n", "[" * 300])
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=TEXTS)
def test_any_configuration_is_valid_or_exit_2_with_one_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "cautious.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            tasks.config(MockContext(), config=str(path))
        except Exit as error:
            message = str(error.message)
            assert error.code == 2, message
            assert message.startswith("cautious: ") and "\n" not in message
            assert len(message) <= 300
