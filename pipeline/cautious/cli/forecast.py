"""What the journal predicts, for the command line: rollout time, start-up tails, downtime,
and the legs of a three-legged plan.

``deploy --dry-run`` prints the expected rollout time (p50, p99) resampled from the journal and
warns when ``rollout.ready_timeout_s`` sits inside a release's start-up tail;
``history --projection --deploys-per-day N`` prints the downtime projection;
``deploy --plan three-legged`` prints (or, in a dry run, describes) the legs.
"""

from __future__ import annotations

import json

from cautious.cli.terminal import console
from cautious.config import Config
from cautious.measure.projection import Estimate, Projection, figures_from_journal, project
from cautious.rollout.journal import Journal
from cautious.rollout.legs import LegsResult
from cautious.rollout.plan import Plan
from cautious.rollout.startup import estimate_rollout, startup_samples, tail_warnings

__all__ = ["print_estimate", "print_legs", "print_projection", "print_tail_warnings"]


def print_estimate(plan: Plan, release: str, journal: Journal) -> None:
    """The plan's expected duration from the journal, or why there is none."""
    estimate = estimate_rollout(plan, release, journal.rollouts())
    if estimate is None:
        console.print("expected rollout time: no start-up in the journal yet to estimate from")
        return
    console.print(estimate.line())


def print_tail_warnings(config: Config, journal: Journal, release: str | None = None) -> None:
    """Warn for every release (or only ``release``) whose start-up tail reaches the deadline."""
    samples = startup_samples(journal.rollouts())
    if release is not None:
        samples = {release: samples.get(release, [])}
    for warning in tail_warnings(samples, config.rollout.ready_timeout_s):
        console.print(f"[yellow]warning:[/yellow] {warning.message(config.cluster.instances)}")


def print_projection(
    config: Config, journal: Journal, deploys_per_day: float, as_json: bool
) -> None:
    """The downtime projection of the journal's measured deploys."""
    figures = figures_from_journal(journal)
    if not figures:
        console.print("no measured deploy in the journal yet: run `invoke deploy` first")
        return
    projection = project(figures, deploys_per_day, slo=config.claims.success_ratio)
    if as_json:
        print(json.dumps(projection.to_dict(), indent=2))
        return
    for line in projection_lines(projection):
        print(line)


def projection_lines(projection: Projection) -> list[str]:
    """A paragraph per period: downtime, failed requests, error budget, time deploying."""
    lines = [
        f"{projection.deploys_per_day:g} deploys a day, projected from {projection.measured} "
        f"measured deploys ({projection.confidence:.0%} prediction intervals)"
    ]
    for period in projection.periods:
        lines.append(f"per {period.period} ({period.deploys:,.0f} deploys):")
        lines.append(f"  downtime (seconds with errors) {_range(period.downtime_s, 's')}")
        failed = _range(period.failed_requests, "", digits=0)
        lines.append(f"  failed requests at the measured rate {failed}")
        if period.budget_used is not None:
            lines.append(f"  error budget used {_range(period.budget_used, '%', 100)}")
        lines.append(f"  time spent deploying {_range(period.rollout_s, 's')}")
    return lines


def _range(estimate: Estimate, unit: str, scale: float = 1, digits: int = 1) -> str:
    def show(value: float) -> str:
        return f"{value * scale:,.{digits}f}{' ' + unit if unit else ''}"

    if estimate.low is None or estimate.high is None:
        return f"{show(estimate.expected)} (one measured deploy: no interval)"
    return f"{show(estimate.expected)} ({show(estimate.low)} to {show(estimate.high)})"


def print_legs(result: LegsResult) -> None:
    """Each leg's outcome, its rollout's verdict and its hooks."""
    for leg in result.legs:
        colour = {"succeeded": "green", "skipped": "dim"}.get(leg.state, "red")
        verdict = f", claims {leg.rollout.verdict}" if leg.rollout and leg.rollout.verdict else ""
        reason = f": {leg.reason}" if leg.reason else ""
        console.print(
            f"leg {leg.leg} → {leg.release}: [{colour}]{leg.state}[/{colour}]{verdict}{reason}"
        )
        for run in leg.hooks:
            mark = "✓" if run.ok else "✗"
            console.print(f"  {mark} {run.when} {run.hook} ({run.seconds:.1f} s)")
