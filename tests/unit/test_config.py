"""The configuration schema: defaults, overrides, and one clear line for every bad value."""

from __future__ import annotations

from pathlib import Path

import pytest
from cautious.config import CONFIG_ENV_VAR, load_config
from cautious.exceptions import ConfigError

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
    assert str(tmp_path / "cautious.yaml") in str(error.value)


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
