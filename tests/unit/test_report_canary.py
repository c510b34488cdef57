"""A canary's report explains each metric: a table in report.md and report.html, and a chart of
both latency distributions and the error ratios over time."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from cautious.judges.samples import Samples
from cautious.report.canary import canary_chart_png, canary_section, canary_table
from cautious.report.document import write_report
from cautious.rollout.records import RolloutSummary, StepRecord

from tests.unit.test_judge import judge_both
from tests.unit.test_report import T, sample_document


def judged_bake() -> StepRecord:
    rng = np.random.default_rng(4)
    canary = Samples.of(40 * np.exp(0.5 * rng.standard_normal(3_000)) * 1.6, errors=30)
    baseline = Samples.of(40 * np.exp(0.5 * rng.standard_normal(9_000)), errors=90)
    judged = judge_both(canary, baseline)
    looks = [
        {
            "t": t,
            "verdict": "not-enough-data",
            "canary_requests": 100 * t,
            "canary_error_ratio": 0.01,
            "baseline_error_ratio": 0.01,
            "canary_p99_ms": 190.0,
            "baseline_p99_ms": 120.0,
        }
        for t in (1.0, 2.0, 3.0)
    ]
    facts = {
        "judgement": judged.to_dict(),
        "latency_quantiles": {
            "canary": {"0.5": 64.0, "0.99": 205.0},
            "baseline": {"0.5": 40.0, "0.99": 128.0},
        },
        "looks": looks,
        "samples_from": "request log",
    }
    return StepRecord(
        "bake 30 s watching sample-5",
        "forward",
        T + 12.0,
        T + 15.0,
        "failed",
        kind="bake",
        instances=("sample-5",),
        detail=f"canary: {judged.summary()}",
        verdict=judged.verdict,
        facts=facts,
    )


def canary_rollout() -> RolloutSummary:
    return RolloutSummary(
        id="20261202T120000-abcdef",
        strategy="canary",
        from_release="v1",
        to_release="slow-responses",
        outcome="rolled-back",
        reason="canary: p99 latency worse",
        steps=(judged_bake(),),
        started=T + 10.0,
        ended=T + 16.0,
    )


def test_report_json_keeps_every_judged_bake_with_its_evidence(tmp_path: Path) -> None:
    paths = write_report(sample_document(rollout=canary_rollout()), tmp_path)
    report = json.loads(paths.json.read_text(encoding="utf-8"))
    [bake] = report["rollout"]["canary"]
    assert bake["verdict"] == "fail"
    metrics = {item["metric"]: item for item in bake["judgement"]["metrics"]}
    assert metrics["latency_p99"]["verdict"] == "fail"
    assert {"interval", "p_value", "canary_samples", "effect"} <= set(metrics["error_ratio"])


def test_report_md_tabulates_each_metric_and_says_how_to_read_it(tmp_path: Path) -> None:
    paths = write_report(sample_document(rollout=canary_rollout()), tmp_path)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "### Canary judgement" in markdown
    assert re.search(r"\| latency_p99 \| fail \|", markdown) or "latency_p99" in markdown
    assert "How to read it" in markdown


def test_report_html_shows_the_table_and_the_canary_chart(tmp_path: Path) -> None:
    paths = write_report(sample_document(rollout=canary_rollout()), tmp_path)
    html = paths["html"].read_text(encoding="utf-8")
    assert "<h2>Canary judgement</h2>" in html
    assert '<img id="canary-chart" src="canary.png"' in html
    assert paths["canary-chart"] == tmp_path / "canary.png"
    assert (tmp_path / "canary.png").read_bytes().startswith(b"\x89PNG")


def test_steps_without_a_judgement_make_no_canary_section() -> None:
    assert canary_section([{"name": "bake", "requests": 3}]) == []
    report = {"rollout": {"canary": []}}
    assert canary_table(report) is None and canary_chart_png(report) is None
