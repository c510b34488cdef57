"""The canary judge in a report: each metric's verdict with its evidence, and a chart.

report.json keeps, under ``rollout.canary``, every judged bake: its judgement (per metric:
canary vs baseline, the effect and its anytime-valid interval, the sequential p-value, samples,
verdict), the judge's looks over time and both latency distributions. The table reads the last
judged bake (the one that decided); the chart shows the two latency distributions and the error
ratios over time.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

from cautious.report.tables import Badge, Table

__all__ = [
    "HOW_TO_READ",
    "canary_chart_png",
    "canary_section",
    "canary_table",
    "decisive_bake",
]

HOW_TO_READ = (
    "How to read it: the anytime interval holds the effect (canary − baseline) at every look "
    "of the judge with the declared confidence. fail: the interval lies above zero — the canary "
    "is worse beyond doubt. pass: even at the declared power, the effect is below the minimal "
    'effect ("pass needs"). Otherwise not-enough-data: the gate extended the bake, then '
    "refused promotion."
)


def canary_section(steps: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``rollout.canary`` of report.json: the judged bakes, in order, from the journal's steps."""
    return [
        {
            "step": step["name"],
            "verdict": step["judgement"]["verdict"],
            **{key: step[key] for key in _KEPT if key in step},
        }
        for step in steps
        if isinstance(step.get("judgement"), Mapping)
    ]


_KEPT = (
    "judgement",
    "baked_s",
    "extended_s",
    "samples_from",
    "lb_canary_requests",
    "cross_check",
    "latency_quantiles",
    "looks",
)


def decisive_bake(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The last judged bake: the one whose verdict let the rollout go on, or stopped it."""
    bakes = (report.get("rollout") or {}).get("canary") or []
    return bakes[-1] if bakes else None


def canary_table(report: Mapping[str, Any]) -> Table | None:
    """One row per metric of the deciding judgement."""
    bake = decisive_bake(report)
    if bake is None:
        return None
    rows = []
    for metric in bake["judgement"]["metrics"]:
        scale, unit = (100.0, " points") if metric["unit"] == "ratio" else (100.0, " %")
        low, high = metric["interval"]
        rows.append(
            (
                metric["metric"],
                Badge(metric["verdict"], metric["verdict"]),
                _value(metric["canary"], metric["unit"]),
                _value(metric["baseline"], metric["unit"]),
                _signed(metric["effect"], scale, unit),
                f"[{_signed(low, scale, '')}, {_signed(high, scale, '')}]{unit}",
                f"< {_signed(metric['minimal_effect'], scale, unit)}",
                f"{metric['p_value']:.2g}",
                f"{metric['canary_samples']:,} / {metric['baseline_samples']:,}",
            )
        )
    return Table(
        (
            "metric",
            "verdict",
            "canary",
            "baseline",
            "effect",
            "anytime interval",
            "pass needs",
            "anytime p",
            "samples (canary / baseline)",
        ),
        tuple(rows),
        numeric_from=2,
    )


def canary_chart_png(report: Mapping[str, Any]) -> bytes | None:
    """Two panels: canary and baseline latency distributions; error ratios at each look."""
    bake = decisive_bake(report)
    if bake is None:
        return None
    figure = Figure(figsize=(12, 3.6), dpi=100, layout="constrained")
    left, right = figure.subplots(1, 2)
    quantiles = bake.get("latency_quantiles") or {}
    for side, colour in (("baseline", "#1565c0"), ("canary", "#c62828")):
        points = [(float(level), ms) for level, ms in (quantiles.get(side) or {}).items() if ms]
        if points:
            left.plot(
                [ms for _, ms in points],
                [level for level, _ in points],
                "o-",
                color=colour,
                label=side,
            )
    left.set_xscale("log")
    left.set_xlabel("latency (ms, log scale)")
    left.set_ylabel("share of good answers at or below")
    left.set_title("latency distributions")
    if quantiles:
        left.legend(loc="lower right")
    looks = [look for item in report["rollout"]["canary"] for look in item.get("looks", [])]
    for key, colour, label in (
        ("baseline_error_ratio", "#1565c0", "baseline"),
        ("canary_error_ratio", "#c62828", "canary"),
    ):
        series = [(look["t"], look[key]) for look in looks if look[key] is not None]
        if series:
            right.plot(
                [t for t, _ in series], [100 * v for _, v in series], "-", color=colour, label=label
            )
    right.set_xlabel("seconds since the canary took traffic")
    right.set_ylabel("error ratio so far (%)")
    right.set_title("error ratios at each look of the judge")
    if looks:
        right.legend(loc="upper right")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if unit == "ratio" else f"{value:.1f} ms"


def _signed(value: float | None, scale: float, unit: str) -> str:
    if value is None:
        return "∞" if unit == "" else "-"
    return f"{value * scale:+.2f}{unit}"
