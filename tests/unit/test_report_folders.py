"""``invoke report`` re-renders every kind of report folder exactly as its run wrote it.

The folders are built by the same builders the commands use — a deploy's from a real rollout
on the fake backend, a load's without one, a game day's summary and one experiment's report —
then re-rendered through the command line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cautious.config import ClaimsConfig, Config
from cautious.gameday.experiment import ExperimentResult
from cautious.gameday.suite import Suite
from cautious.gameday.summary import experiment_report, gameday_report
from cautious.measure.availability import Availability, compute_availability
from cautious.measure.claims import evaluate_claims
from cautious.measure.requestlog import RequestRecord, write_request_log
from cautious.report.document import build_report, write_report
from cautious.rollout.records import RolloutSummary

from tests.rendering import assert_rerenders_identically
from tests.unit.fakes import fake_cluster


def records(start: float, seconds: int = 12, rate: int = 20) -> list[RequestRecord]:
    return [
        RequestRecord(start + n / rate, 12.0 + n % 7, 200, instance="sample-1", release="v2")
        for n in range(seconds * rate)
    ]


def measured(start: float) -> Availability:
    return compute_availability(records(start), target_rate=20, slo=0.999)


@pytest.fixture
def rollout(tmp_path: Path) -> tuple[Config, RolloutSummary]:
    cluster = fake_cluster(tmp_path)
    return cluster.config, cluster.roll("v2").summary()


def test_a_deploy_folder(tmp_path: Path, rollout: tuple[Config, RolloutSummary]) -> None:
    config, summary = rollout
    availability = measured(summary.started or time.time())
    document = build_report(
        command="deploy",
        availability=availability,
        claims=evaluate_claims(config.claims, availability),
        rollout=summary,
        context={"cluster": config.cluster.name, "rollout_id": summary.id},
    )
    write_report(document, tmp_path / "deploy")
    assert_rerenders_identically(tmp_path / "deploy")


def test_a_load_folder(tmp_path: Path) -> None:
    availability = measured(1_763_900_000.0)
    claims = evaluate_claims(ClaimsConfig(min_requests=50), availability)
    write_report(build_report(command="load", availability=availability, claims=claims), tmp_path)
    assert_rerenders_identically(tmp_path)


def test_a_game_day_folder_and_its_experiments_folder(
    tmp_path: Path, rollout: tuple[Config, RolloutSummary]
) -> None:
    config, summary = rollout
    folder = tmp_path / "gameday"
    experiment = folder / "01-rolling-under-load"
    experiment.mkdir(parents=True)
    write_request_log(experiment / "requests.csv", records(summary.started or time.time()))
    result = ExperimentResult(
        name="rolling-under-load",
        title="A rolling deploy under load keeps the claims",
        path=tmp_path / "rolling-under-load.json",
        folder=experiment,
        status="completed",
        deviated=False,
        verdict="pass",
        reasons=(),
        started=summary.started or time.time(),
        duration_s=12.0,
        figures={"success_ratio": 1.0},
        rollout={"release": "v2", "outcome": summary.outcome},
        cleanup={"healthy": "4/4", "leftovers": 0},
        events=(),
        journal=experiment / "journal.json",
    )
    run_state = {"load": {"request_log": str(experiment / "requests.csv"), "rate": 20}}
    document = experiment_report(
        result,
        journal=None,
        run_state=run_state,
        rollout=summary,
        config=config,
        command="gameday › rolling-under-load",
    )
    assert document is not None
    write_report(document, experiment)
    summary_document = gameday_report(
        [result],
        suite=Suite(name="a game day of one", entries=()),
        config=config,
        config_path=tmp_path / "cautious.yaml",
        command="gameday",
        started=time.time(),
    )
    write_report(summary_document, folder)
    assert_rerenders_identically(folder)
    assert_rerenders_identically(experiment)
