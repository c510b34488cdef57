"""The game day's reports: one per experiment, and the summary across them.

Both are ordinary Cautious reports (``cautious.report``), so they render, re-render and reach
CI like a deploy's. The experiments decide their verdict: a rollback can be exactly what an
experiment expects.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cautious.config import ClaimsConfig, Config
from cautious.gameday.experiment import ExperimentResult
from cautious.gameday.judge import claims_config
from cautious.gameday.suite import Suite
from cautious.measure.availability import availability_of_logs
from cautious.measure.claims import evaluate_claims
from cautious.report.document import ContextValue, ReportDocument, build_report
from cautious.rollout.records import RolloutSummary, TimelineEvent

__all__ = ["experiment_report", "gameday_report"]

_MAX_EVENTS_IN_CONTEXT = 15


def experiment_report(
    result: ExperimentResult,
    *,
    journal: Mapping[str, Any] | None,
    run_state: Mapping[str, Any] | None,
    rollout: RolloutSummary | None,
    config: Config,
    command: str,
) -> ReportDocument | None:
    """The experiment's own report, from its request log and rollout; None without load."""
    load = (run_state or {}).get("load") or {}
    if not load.get("request_log") or not Path(load["request_log"]).is_file():
        return None
    claims = ClaimsConfig.model_validate(claims_config(journal) or config.claims.model_dump())
    window = {}
    if rollout is not None and rollout.started is not None and rollout.ended is not None:
        window = {"rollout_start": rollout.started, "rollout_end": rollout.ended}
    availability = availability_of_logs(
        [load["request_log"]],
        target_rate=float(load["rate"]),
        slo=claims.success_ratio,
        **window,
    )
    chaos_events = [
        TimelineEvent.from_dict(event)
        for event in result.events
        if event.get("instance") and event.get("state")
    ]
    origin = float((run_state or {}).get("started") or result.started)
    context: dict[str, ContextValue] = {
        "experiment": result.name,
        "title": result.title,
        "chaoslib status": result.status,
        "deviated": result.deviated,
        "cluster": config.cluster.name,
        "load": f"{float(load['rate']):g} req/s, {load.get('users')} users",
        "journal": "journal.json",
    }
    for index, event in enumerate(result.events[:_MAX_EVENTS_IN_CONTEXT], 1):
        offset = max(0.0, float(event["t"]) - origin)
        context[f"event {index:02d}"] = f"+{offset:.1f} s: {event['what']}"
    return build_report(
        command=command,
        availability=availability,
        claims=evaluate_claims(claims, availability),
        rollout=rollout,
        timeline=[*(rollout.timeline if rollout else ()), *chaos_events],
        experiments=[result],
        context=context,
    )


def gameday_report(
    results: Sequence[ExperimentResult],
    *,
    suite: Suite,
    config: Config,
    config_path: Path,
    command: str,
    started: float,
) -> ReportDocument:
    """The summary: one entry per experiment with its figures and links."""
    held = sum(1 for result in results if result.held)
    return build_report(
        command=command,
        experiments=results,
        context={
            "suite": str(suite.path) if suite.path else suite.name,
            "suite_name": suite.name,
            "cluster": config.cluster.name,
            "config": str(config_path),
            "experiments": len(results),
            "held": held,
            "duration_s": round(time.time() - started, 1),
        },
    )
