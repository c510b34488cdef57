"""The timeline chart of report.html: load, errors, latency, rollout steps and instance lanes
on one time axis, drawn with matplotlib into a PNG (no external resource)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from cautious.report import tables

__all__ = ["chart_png"]

_STATE_COLOURS = {
    "ready": "#2e7d32",
    "starting": "#1565c0",
    "draining": "#ef8f00",
    "maint": "#757575",
    "stopped": "#c62828",
}
_OTHER_STATE_COLOUR = "#6a1b9a"
_HATCHES = ("", "///", "...", "xxx", "\\\\\\", "+++")


def chart_png(report: Mapping[str, Any]) -> bytes:
    """The timeline chart, one shared time axis: requests/s, errors/s (failed and missing
    stacked, on their own scale so one error stays visible next to 1,000 req/s), latency,
    rollout steps as numbered spans, and one lane per instance coloured by state and labelled
    with its release."""
    availability = report["availability"]
    rows = availability["per_second"]
    timeline = report.get("timeline") or []
    rollout = report.get("rollout")
    steps = rollout["steps"] if rollout else []
    origin = tables.origin(report) or 0.0
    horizon = tables.horizon(report, origin) - origin
    lanes = sorted({event["instance"] for event in timeline})

    heights = [2.4, 1.3, 2.0] + ([max(1.0, 0.45 * len(lanes))] if lanes else [])
    figure = Figure(figsize=(12, 1.0 + 1.15 * sum(heights)), dpi=100, layout="constrained")
    axes = [
        row[0]
        for row in figure.subplots(
            len(heights), 1, sharex=True, squeeze=False, height_ratios=heights
        )
    ]
    ax_rate, ax_errors, ax_latency = axes[:3]

    if rows:
        x = [row["t"] - origin for row in rows] + [rows[-1]["t"] + 1 - origin]

        def stepped(key: str) -> list[float]:
            values = [math.nan if row[key] is None else float(row[key]) for row in rows]
            return [*values, values[-1]]

        ax_rate.step(x, stepped("sent"), where="post", color="#1f77b4", label="sent")
        if availability.get("target_rate") is not None:
            ax_rate.axhline(
                availability["target_rate"],
                color="#555555",
                linestyle="--",
                linewidth=1,
                label=f"target {availability['target_rate']:g}",
            )
        failed, missing = stepped("failed"), stepped("missing")
        ax_errors.fill_between(x, failed, step="post", color="#d62728", label="failed")
        ax_errors.fill_between(
            x,
            failed,
            [f + m for f, m in zip(failed, missing, strict=True)],
            step="post",
            color="#ff9896",
            label="missing",
        )
        ax_latency.step(x, stepped("p99_ms"), where="post", color="#9467bd", label="p99")
        ax_latency.step(x, stepped("p50_ms"), where="post", color="#8c8c8c", label="p50")
    else:
        ax_rate.text(
            0.5,
            0.5,
            "no full second of load was measured",
            ha="center",
            va="center",
            color="#555555",
            transform=ax_rate.transAxes,
        )
    for ax, label in ((ax_rate, "requests/s"), (ax_errors, "errors/s"), (ax_latency, "ms")):
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    ax_errors.set_ylim(top=max(1.0, ax_errors.get_ylim()[1]))

    marker = blended_transform_factory(ax_rate.transData, ax_rate.transAxes)
    labelled_at = -math.inf
    for number, step in enumerate(steps, 1):
        start = step["started"] - origin
        stop = (step["ended"] if step["ended"] is not None else origin + horizon) - origin
        colour = "#d62728" if step["outcome"] != "ok" else "#17becf" if number % 2 else "#1f77b4"
        for ax in (ax_rate, ax_errors, ax_latency):
            ax.axvspan(start, max(stop, start + 0.05), color=colour, alpha=0.15, linewidth=0)
        if start - labelled_at >= horizon / 60:  # a label only where it does not overprint
            ax_rate.text(start, 1.01, str(number), transform=marker, fontsize=7)
            labelled_at = start
    if rollout:
        for moment in (rollout.get("started"), rollout.get("ended")):
            if moment is not None:
                for ax in axes:
                    ax.axvline(moment - origin, color="#222222", linestyle=":", linewidth=1)

    if lanes:
        _draw_lanes(axes[3], timeline, lanes, origin, horizon)
    axes[-1].set_xlim(0, horizon)
    axes[-1].set_xlabel(f"seconds since {tables.utc(origin)}")
    for ax in axes:
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    title = f"{report['command']}: {report['verdict']}"
    if steps:
        title += f" (shaded: rollout steps 1-{len(steps)}, dotted: rollout start and end)"
    figure.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _draw_lanes(
    ax: Any,
    timeline: Sequence[Mapping[str, Any]],
    lanes: Sequence[str],
    origin: float,
    horizon: float,
) -> None:
    releases = list(dict.fromkeys(event["release"] for event in timeline))
    hatch_of = {release: _HATCHES[i % len(_HATCHES)] for i, release in enumerate(releases)}
    states: dict[str, str] = {}
    for lane, name in enumerate(lanes):
        events = [event for event in timeline if event["instance"] == name]
        for index, event in enumerate(events):
            start = event["t"] - origin
            stop = events[index + 1]["t"] - origin if index + 1 < len(events) else horizon
            colour = _STATE_COLOURS.get(event["state"], _OTHER_STATE_COLOUR)
            states[event["state"]] = colour
            ax.broken_barh(
                [(start, stop - start)],
                (lane - 0.4, 0.8),
                facecolors=colour,
                edgecolor="white",
                linewidth=0.5,
                hatch=hatch_of[event["release"]],
            )
            if stop - start >= horizon * 0.05:
                ax.text(
                    (start + stop) / 2,
                    lane,
                    event["release"],
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white",
                    fontweight="bold",
                    clip_on=True,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": colour, "edgecolor": "none"},
                )
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    handles = [Patch(facecolor=c, label=s) for s, c in states.items()]
    handles += [
        Patch(facecolor="#9e9e9e", edgecolor="white", hatch=hatch_of[r], label=f"release {r}")
        for r in releases
    ]
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False
    )
