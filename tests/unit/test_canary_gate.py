"""The canary gate reads the request log load writes, asks the judge, and keeps the evidence."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cautious.cluster.balancer import ServerStat
from cautious.config import Config
from cautious.measure.requestlog import RequestLogWriter, RequestRecord
from cautious.rollout.canary import CanaryGate, CanaryRefused
from cautious.rollout.plan import Bake

CANARY, BASELINES = ("app-4",), ("app-1", "app-2", "app-3")


class CountingLb:
    """Just the per-server counters the gate cross-checks with."""

    def __init__(self) -> None:
        self.requests = {name: 0 for name in (*CANARY, *BASELINES)}

    def stats(self) -> dict[str, ServerStat]:
        return {
            name: ServerStat(name, "UP", 1, 0, count, 0, "L7OK", "10.0.0.1:8000")
            for name, count in self.requests.items()
        }


def write_log(path: Path, *, canary_ms: float, canary_errors: float, n: int = 6_000) -> None:
    """A log of requests that began just after now: a quarter to the canary."""
    rng = np.random.default_rng(5)
    began = time.time() + 1
    with RequestLogWriter(path) as writer:
        for i in range(n):
            canary = i % 4 == 0
            instance = CANARY[0] if canary else BASELINES[i % 3]
            median = canary_ms if canary else 40.0
            failed = rng.random() < (canary_errors if canary else 0.01)
            writer.write(
                RequestRecord(
                    began + i / 1_000,
                    float(median * np.exp(0.4 * rng.standard_normal())),
                    500 if failed else 200,
                    instance=instance,
                    release="v2" if canary else "v1",
                )
            )


def gate(request_log: Path | None, lb: CountingLb | None = None) -> CanaryGate:
    logs = (request_log,) if request_log is not None else ()
    config = Config.model_validate({"canary": {"detect": {"error_ratio": 0.03, "p99": 0.5}}})

    def watched(_: Sequence[str]) -> None:
        return None

    return CanaryGate(
        config,
        lb or CountingLb(),  # type: ignore[arg-type]
        request_logs=logs,
        poll_s=0.01,
        check_watched=watched,
        say=lambda _: None,
    )


def bake(extend_s: float = 0.0) -> Bake:
    return Bake(0.05, CANARY, judge_against=BASELINES, extend_s=extend_s)


def test_a_canary_as_good_as_its_baseline_passes_the_decisive_bake(tmp_path: Path) -> None:
    log = tmp_path / "requests.csv"
    write_log(log, canary_ms=40.0, canary_errors=0.01)
    facts: dict[str, Any] = gate(log).bake(bake(extend_s=1.0))
    assert facts["judgement"]["verdict"] == "pass"
    assert facts["samples_from"] == "request log"
    assert [m["metric"] for m in facts["judgement"]["metrics"]] == ["error_ratio", "latency_p99"]
    assert set(facts["latency_quantiles"]) == {"canary", "baseline"}
    assert facts["looks"] and facts["looks"][-1]["verdict"] == "pass"


def test_a_slower_canary_fails_on_latency_with_its_evidence(tmp_path: Path) -> None:
    log = tmp_path / "requests.csv"
    write_log(log, canary_ms=120.0, canary_errors=0.01)
    with pytest.raises(CanaryRefused) as refused:
        gate(log).bake(bake())
    assert refused.value.verdict == "fail"
    assert str(refused.value).startswith("canary: p99 latency: canary")
    latency = refused.value.facts["judgement"]["metrics"][1]
    assert latency["verdict"] == "fail" and latency["effect"] > 1.0


def test_without_traffic_the_decisive_bake_ends_not_enough_data(tmp_path: Path) -> None:
    with pytest.raises(CanaryRefused) as refused:
        gate(tmp_path / "not-written-yet.csv").bake(bake(extend_s=0.1))
    assert refused.value.verdict == "not-enough-data"
    assert "not enough data to promote" in str(refused.value)


def test_an_intermediate_bake_lets_the_rollout_go_on_without_a_verdict(tmp_path: Path) -> None:
    facts = gate(tmp_path / "empty.csv").bake(bake())
    assert facts["judgement"]["verdict"] == "not-enough-data"


def test_the_load_balancer_cross_checks_the_request_log(tmp_path: Path) -> None:
    log = tmp_path / "requests.csv"
    write_log(log, canary_ms=40.0, canary_errors=0.0, n=400)
    lb = CountingLb()
    checked = gate(log, lb)
    checked.bake(bake())  # the first bake starts counting
    lb.requests[CANARY[0]] = 5_000  # the LB saw far more canary requests than the log names
    facts = checked.bake(bake())
    assert "cross_check" in facts and "X-Instance" in facts["cross_check"]
