"""The tables of a report, built once from report.json and drawn by each renderer.

A :class:`Table` holds text already formatted for people ("99.9 %", "312.4 ms", "+4.2 s");
a renderer only decides how a table, a :class:`Badge` (a verdict or outcome, coloured) and
:class:`Links` look in its format. So Markdown and HTML show the same figures the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cautious.measure.claims import claim_label, format_figure, format_target

__all__ = [
    "Badge",
    "Cell",
    "Links",
    "Table",
    "availability_table",
    "breakdown_tables",
    "claims_table",
    "context_table",
    "event_table",
    "experiment_notes",
    "experiments_table",
    "horizon",
    "instances_table",
    "load_line",
    "origin",
    "per_second_table",
    "ratio",
    "relative",
    "steps_table",
    "utc",
]


@dataclass(frozen=True)
class Badge:
    """A verdict or outcome word that renderers colour (``css`` names the colour class)."""

    text: str
    css: str


@dataclass(frozen=True)
class Links:
    """Links to files of the report folder: (label, relative path) pairs."""

    items: tuple[tuple[str, str], ...]


Cell = str | int | Badge | Links


@dataclass(frozen=True)
class Table:
    """A header and rows of cells; columns from ``numeric_from`` on hold figures."""

    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    numeric_from: int | None = None


# --- figures ----------------------------------------------------------------------------------


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _ms(value: float | None) -> str:
    return "-" if value is None or value < 0 else f"{value:,.1f} ms"


def ratio(value: float | None) -> str:
    """A success ratio as a percentage ("99.95 %")."""
    return format_figure("success_ratio", value)


def _budget(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:,.1f} %"


def utc(t: float) -> str:
    """An epoch moment as people read it."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _moments(report: Mapping[str, Any]) -> list[float]:
    availability = report.get("availability") or {}
    moments = [m for m in (availability.get("start"), availability.get("end")) if m is not None]
    moments += [event["t"] for event in report.get("timeline") or []]
    rollout = report.get("rollout")
    if rollout:
        moments += [m for m in (rollout.get("started"), rollout.get("ended")) if m is not None]
        for step in rollout["steps"]:
            moments += [m for m in (step["started"], step["ended"]) if m is not None]
    return moments


def origin(report: Mapping[str, Any]) -> float | None:
    """Time zero for relative times: the earliest moment the report knows about."""
    moments = _moments(report)
    return min(moments) if moments else None


def horizon(report: Mapping[str, Any], start: float) -> float:
    """The latest moment the report knows about (at least a second after ``start``)."""
    return max([*_moments(report), start + 1])


def relative(t: float | None, start: float | None) -> str:
    """``t`` as seconds after ``start`` ("+4.2 s")."""
    return "-" if t is None or start is None else f"+{t - start:,.1f} s"


def _took(step: Mapping[str, Any]) -> str:
    if step["ended"] is None:
        return "cut short"
    seconds = step["ended"] - step["started"]
    return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:,.1f} s"


def load_line(availability: Mapping[str, Any]) -> str:
    """The load the figures were measured under, in one line (empty when unknown)."""
    parts = []
    if availability.get("target_rate") is not None:
        parts.append(f"target rate {availability['target_rate']:g} req/s")
    if availability.get("slo") is not None:
        parts.append(f"SLO {ratio(availability['slo'])}")
    if availability.get("start") is not None:
        parts.append(f"measured from {utc(availability['start'])} to {utc(availability['end'])}")
    return " · ".join(parts)


# --- tables -----------------------------------------------------------------------------------


def context_table(report: Mapping[str, Any]) -> Table | None:
    context = report.get("context") or {}
    if not context:
        return None
    return Table(("context", "value"), tuple((k, str(v)) for k, v in sorted(context.items())))


def claims_table(report: Mapping[str, Any]) -> Table | None:
    if not report["claims"]:
        return None
    return Table(
        ("claim", "target", "measured", "verdict", "detail"),
        tuple(
            (
                claim_label(c["name"]),
                format_target(c["name"], c["target"]),
                format_figure(c["name"], c["measured"]),
                Badge(c["verdict"], c["verdict"]),
                c["detail"],
            )
            for c in report["claims"]
        ),
    )


_PHASE_LABEL = {"before": "before rollout", "during": "during rollout", "after": "after rollout"}


def availability_table(availability: Mapping[str, Any]) -> Table:
    """The whole run and each phase: counts, ratios, error windows, latency."""
    phases = availability.get("phases", {})
    windows = [("whole run", availability)] + [
        (label, phases[phase]) for phase, label in _PHASE_LABEL.items() if phase in phases
    ]
    header: tuple[str, ...] = ("window", "length", "sent", "failed", "missing")
    header += ("success ratio", "longest error window", "seconds with errors")
    return Table(
        (*header, "error budget used", "p50", "p95", "p99"),
        tuple(
            (
                label,
                f"{stats['seconds']:,} s",
                _count(stats["sent"]),
                _count(stats["failed"]),
                _count(stats["missing"]),
                ratio(stats["success_ratio"]),
                f"{stats['longest_error_window_s']:,} s",
                _count(stats["seconds_with_errors"]),
                _budget(stats["error_budget_used"]),
                _ms(stats["p50_ms"]),
                _ms(stats["p95_ms"]),
                _ms(stats["p99_ms"]),
            )
            for label, stats in windows
        ),
        numeric_from=1,
    )


def breakdown_tables(availability: Mapping[str, Any]) -> list[tuple[str, Table]]:
    """("Per instance", table) and ("Per release", table), for those the report has."""
    tables = []
    for title, key in (("instance", "per_instance"), ("release", "per_release")):
        if availability.get(key):
            rows = tuple(
                (
                    name,
                    _count(stats["sent"]),
                    _count(stats["good"]),
                    _count(stats["failed"]),
                    ratio(stats["success_ratio"]),
                    _ms(stats["p50_ms"]),
                    _ms(stats["p99_ms"]),
                )
                for name, stats in availability[key].items()
            )
            header = (title, "sent", "good", "failed", "success ratio", "p50", "p99")
            tables.append((f"Per {title}", Table(header, rows, numeric_from=1)))
    return tables


def steps_table(report: Mapping[str, Any]) -> Table | None:
    rollout = report.get("rollout")
    if not rollout or not rollout["steps"]:
        return None
    start = origin(report)
    return Table(
        ("#", "step", "instance", "started", "took", "outcome", "detail"),
        tuple(
            (
                number,
                step["name"],
                step["instance"] or "",
                relative(step["started"], start),
                _took(step),
                Badge(step["outcome"], step["outcome"]),
                step["detail"],
            )
            for number, step in enumerate(rollout["steps"], 1)
        ),
    )


def instances_table(report: Mapping[str, Any]) -> Table | None:
    if not report.get("instances"):
        return None
    return Table(
        ("instance", "release"),
        tuple((i["name"], i["release"] or _unknown(i)) for i in report["instances"]),
    )


def _unknown(instance: Mapping[str, Any]) -> str:
    if instance.get("state") == "unreachable":
        return f"unknown: {instance.get('host') or 'its host'} does not answer"
    return "unknown"


def event_table(report: Mapping[str, Any]) -> Table | None:
    """Every instance state change, in order."""
    if not report.get("timeline"):
        return None
    start = origin(report)
    return Table(
        ("time", "instance", "state", "release"),
        tuple(
            (relative(e["t"], start), e["instance"], e["state"], e["release"])
            for e in report["timeline"]
        ),
    )


def per_second_table(report: Mapping[str, Any]) -> Table | None:
    """One row per measured second."""
    rows = (report.get("availability") or {}).get("per_second")
    if not rows:
        return None
    start = origin(report)
    return Table(
        ("second", "sent", "good", "failed", "missing", "p50", "p95", "p99"),
        tuple(
            (
                relative(r["t"], start),
                _count(r["sent"]),
                _count(r["good"]),
                _count(r["failed"]),
                _count(r["missing"]),
                _ms(r["p50_ms"]),
                _ms(r["p95_ms"]),
                _ms(r["p99_ms"]),
            )
            for r in rows
        ),
        numeric_from=1,
    )


def experiments_table(report: Mapping[str, Any]) -> Table | None:
    """A game day: one row per experiment with its verdict, figures and links."""
    experiments = report.get("experiments") or []
    if not experiments:
        return None
    header: tuple[str, ...] = ("experiment", "verdict", "status", "deviated", "success ratio")
    header += ("longest error window", "p99", "sent / failed / missing", "rollout")
    rows = []
    for entry in experiments:
        figures = entry.get("figures") or {}
        rollout = entry.get("rollout") or {}
        cleanup = entry.get("cleanup") or {}
        window = figures.get("longest_error_window_s")
        success = figures.get("success_ratio")
        links = [("journal", entry.get("journal")), ("report", entry.get("report"))]
        links.append(("html", entry.get("report_html")))
        rows.append(
            (
                entry["name"],
                Badge(entry["verdict"], entry["verdict"]),
                entry["status"],
                "yes" if entry["deviated"] else "no",
                ratio(success) if isinstance(success, int | float) and success >= 0 else "-",
                "-" if window is None else f"{window} s",
                _ms(figures.get("p99_ms")),
                " / ".join(str(figures.get(key, "-")) for key in ("sent", "failed", "missing")),
                (f"{rollout['release']}: " if rollout.get("release") else "")
                + f"{rollout.get('outcome', '-')}",
                f"{cleanup.get('healthy', '-')} healthy, {cleanup.get('leftovers', '-')} leftovers",
                Links(tuple((label, path) for label, path in links if path)),
            )
        )
    return Table((*header, "cluster after", "links"), tuple(rows))


def experiment_notes(entry: Mapping[str, Any]) -> list[str]:
    """What a reader wants under an experiment's name: why it failed, and what it showed."""
    figures = entry.get("figures") or {}
    notes = list(entry.get("reasons") or [])
    notes += [
        f"{label}: {figures[key]}"
        for key, label in (
            ("faults_caught", "faults caught"),
            ("lb_down_after_s", "LB took the slow instance out after (s)"),
            ("max_starts_per_instance", "most starts of one instance"),
        )
        if key in figures
    ]
    claims = figures.get("claims") or []
    if claims:
        notes.append(
            "claims: " + ", ".join(f"{c['name']} {c['verdict']} ({c['measured']})" for c in claims)
        )
    if entry.get("events"):
        notes.append("what happened: " + "; ".join(entry["events"]))
    return notes
