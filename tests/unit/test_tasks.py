"""The task layer: clean errors and exit codes, without touching Docker."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from cautious.cli import tasks
from cautious.measure import session
from invoke.config import Config as InvokeConfig
from invoke.context import MockContext
from invoke.exceptions import Exit
from invoke.runners import Result

REPO_CONFIG = str(Path(__file__).resolve().parents[2] / "cautious.yaml")


def test_config_prints_the_effective_configuration_as_yaml(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tasks.config(MockContext(), config=REPO_CONFIG)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["cluster"]["name"] == "sandbox"
    assert "v2" in printed["releases"]


def test_a_bad_flag_becomes_exit_2_with_one_line() -> None:
    with pytest.raises(Exit) as error:
        tasks.up(MockContext(), instances="-1", config=REPO_CONFIG)
    assert error.value.code == 2
    assert "cluster.instances = -1" in str(error.value.message)


def test_a_missing_config_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(Exit) as error:
        tasks.config(MockContext(), config=str(tmp_path / "absent.yaml"))
    assert error.value.code == 2


def test_a_malformed_claim_override_is_bad_input() -> None:
    with pytest.raises(Exit) as error:
        tasks.deploy(MockContext(), claim=["p99_ms"], dry_run=True, config=REPO_CONFIG)
    assert error.value.code == 2
    assert "NAME=VALUE" in str(error.value.message)


def test_the_test_task_fails_when_pytest_collects_nothing() -> None:
    context = MockContext(run=Result(exited=5))
    with pytest.raises(Exit) as error:
        tasks.test(context, k="no_such_test")
    assert error.value.code == 1
    assert "collected no tests" in str(error.value.message)


def test_the_test_task_passes_pytests_failure_code_on() -> None:
    with pytest.raises(Exit) as error:
        tasks.test(MockContext(run=Result(exited=1)))
    assert error.value.code == 1


def test_the_test_task_succeeds_when_pytest_does() -> None:
    tasks.test(MockContext(run=Result(exited=0)), unit=True)


def test_the_test_task_repeats_every_test_to_find_flaky_ones() -> None:
    context = MockContext(run=Result(exited=0))
    tasks.test(context, docker=False, repeat="20")
    command = context.run.call_args.args[0]
    assert command.endswith('-m pytest -m "not docker" --count 20 -n 2 --dist loadfile')


def test_the_test_task_runs_test_files_side_by_side_unless_told_one_process() -> None:
    context = MockContext(run=Result(exited=0), repeat=True)
    tasks.test(context, jobs="3")
    assert context.run.call_args.args[0].endswith("-m pytest -n 3 --dist loadfile")
    tasks.test(context, jobs="1")
    assert context.run.call_args.args[0].endswith("-m pytest")


@pytest.mark.parametrize(
    ("flag", "value"),
    [("repeat", value) for value in ("0", "-3", "many", "1e3", "1001")]
    + [("jobs", value) for value in ("0", "17", "two")],
)
def test_the_test_task_refuses_a_count_out_of_range(flag: str, value: str) -> None:
    with pytest.raises(Exit) as error:
        tasks.test(MockContext(run=Result(exited=0)), **{flag: value})
    assert error.value.code == 2
    assert f"--{flag}" in str(error.value.message)


def test_a_rolled_back_rollout_stage_ends_with_a_cross_not_a_tick(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rolled_back = SimpleNamespace(succeeded=False, outcome="rolled-back")
    monkeypatch.setattr(session, "measured_rollout", lambda *_, **__: (rolled_back, None))
    sandbox = SimpleNamespace(status=lambda: SimpleNamespace(lb_url="http://127.0.0.1:1"))
    pipeline: Any = SimpleNamespace(sandbox=sandbox, config=None, run_rollout=None, journal=None)
    measuring = tasks._measuring(pipeline, tmp_path, "deploy")
    with tasks._stage("rollout v2 → broken"):
        measuring.hook(SimpleNamespace(), "deploy")
    printed = capsys.readouterr().err
    assert "✗ rollout v2 → broken: rolled-back" in printed
    assert "✓" not in printed


@pytest.mark.parametrize("workers", ["1", "2.5", "33", "many"])
def test_bench_workers_takes_a_whole_number_of_2_or_more(workers: str) -> None:
    with pytest.raises(Exit) as error:
        tasks.bench(MockContext(), results_dir="unused", workers=workers)
    assert error.value.code == 2
    assert "--workers" in str(error.value.message)


@pytest.mark.parametrize("workers", ["0", "1.5", "33"])
def test_load_workers_out_of_range_is_bad_input(workers: str) -> None:
    with pytest.raises(Exit) as error:
        tasks.load(MockContext(), url="http://127.0.0.1:9", workers=workers, config=REPO_CONFIG)
    assert error.value.code == 2
    assert "load.workers" in str(error.value.message)


def test_a_dry_run_refuses_a_release_name_that_is_not_declared() -> None:
    with pytest.raises(Exit) as error:
        tasks.deploy(MockContext(), release="../../etc/passwd", dry_run=True, config=REPO_CONFIG)
    assert error.value.code == 2
    assert "release '../../etc/passwd' is not declared" in str(error.value.message)


@pytest.mark.parametrize("duration", ["nan", "1e12", "inf", "0"])
def test_load_refuses_a_duration_that_is_not_1_s_to_a_day_and_writes_nothing(
    duration: str, tmp_path: Path
) -> None:
    with pytest.raises(Exit) as error:
        tasks.load(
            MockContext(),
            url="http://127.0.0.1:9",
            duration=duration,
            report_dir=str(tmp_path / "report"),
            config=REPO_CONFIG,
        )
    assert error.value.code == 2
    assert "--duration takes a number from 1 to 86400 s" in str(error.value.message)
    assert not (tmp_path / "report").exists()


def test_config_prints_secret_values_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cautious.yaml"
    path.write_text("service: {env: {API_TOKEN: planted-config-token, PLAIN: shown}}\n")
    tasks.config(MockContext(), config=str(path))
    printed = capsys.readouterr().out
    assert "planted-config-token" not in printed
    assert "API_TOKEN: '[redacted]'" in printed and "PLAIN: shown" in printed


def test_invokes_dry_flag_is_refused_rather_than_ignored_by_a_real_deploy() -> None:
    dry = MockContext(config=InvokeConfig(overrides={"run": {"dry": True}}))
    with pytest.raises(Exit) as error:
        tasks.deploy(dry, dry_run=True)
    assert error.value.code == 2
    assert "--dry only echoes shell commands" in str(error.value.message)


def test_a_long_flag_has_the_same_short_flag_in_every_task_that_has_one() -> None:
    from cautious.tasks import ns

    shorts: dict[str, set[str]] = {}
    for context in copy.deepcopy(ns).to_contexts(ignore_unknown_help=True):
        for argument in set(context.flags.values()):
            names = sorted(argument.names, key=len)
            if len(names[0]) == 1:
                shorts.setdefault(names[-1], set()).add(names[0])
    assert shorts["config"] == {"c"}
    # --report-dir stays -e beside --release (-r) and -r elsewhere: the one known exception
    assert {name for name, letters in shorts.items() if len(letters) > 1} == {"report-dir"}
