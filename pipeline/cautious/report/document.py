"""The report folder every ``deploy``, ``load`` and ``gameday`` leaves behind.

``report.json`` is the record (stable schema, documented in ``docs/report-schema.md``); the
other three files are renderings of it for people and CI, so :func:`render_from_json` can
rebuild them at any time (``invoke report PATH``):

- ``report.md``: verdict, claims, availability, rollout steps; small enough for a GitHub job
  summary;
- ``junit.xml``: one test case per claim (and one for the rollout), so CI lists them as tests;
- ``report.html``: one self-contained page with the timeline chart (matplotlib, embedded as a
  PNG data URI, no external resource).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from cautious import __version__
from cautious.exceptions import UsageError
from cautious.measure.availability import Availability
from cautious.measure.claims import (
    ClaimResult,
    Verdict,
    claim_label,
    format_figure,
    format_target,
    overall_verdict,
)

__all__ = [
    "SCHEMA_VERSION",
    "InstanceInfo",
    "ReportPaths",
    "RolloutOutcome",
    "RolloutStep",
    "RolloutSummary",
    "TimelineEvent",
    "build_report",
    "render_from_json",
    "write_report",
]

SCHEMA_VERSION = 1

RolloutOutcome = Literal["succeeded", "rolled-back", "aborted"]
ContextValue = str | int | float | bool | None


@dataclass(frozen=True)
class RolloutStep:
    """One step of a rollout as it happened (epoch seconds; ``ended`` None if cut short).

    ``outcome`` is ``ok``, ``failed`` or ``skipped`` by convention; anything but ``ok`` is
    drawn as trouble.
    """

    name: str
    instance: str | None
    started: float
    ended: float | None
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class RolloutSummary:
    """What a rollout did: from which release to which, how it ended, and why."""

    strategy: str
    from_release: str | None
    to_release: str
    outcome: RolloutOutcome
    reason: str = ""
    steps: tuple[RolloutStep, ...] = ()
    started: float | None = None
    ended: float | None = None


@dataclass(frozen=True)
class TimelineEvent:
    """An instance entered ``state`` (e.g. starting, ready, draining, maint, stopped) at ``t``,
    running ``release``."""

    t: float
    instance: str
    release: str
    state: str


@dataclass(frozen=True)
class InstanceInfo:
    """An instance and the release it runs at the end of the run."""

    name: str
    release: str


@dataclass(frozen=True)
class ReportPaths:
    """Where the four files of a report folder were written."""

    json: Path
    markdown: Path
    junit: Path
    html: Path


def build_report(
    *,
    command: str,
    availability: Availability,
    claims: Sequence[ClaimResult],
    rollout: RolloutSummary | None = None,
    timeline: Sequence[TimelineEvent] = (),
    instances: Sequence[InstanceInfo] = (),
    context: Mapping[str, ContextValue] | None = None,
    created: datetime | None = None,
) -> dict[str, Any]:
    """The report.json document (plain JSON types only).

    The verdict is the claims' overall verdict, except that a rollout that was rolled back or
    aborted makes it ``fail``: the exit code follows the verdict, and a deploy that did not
    happen must fail the pipeline. ``context`` holds free-form facts worth showing (URL,
    rate, git sha).
    """
    verdict, reason = _verdict(claims, rollout)
    moment = (created or datetime.now(UTC)).astimezone(UTC)
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "cautious", "version": __version__},
        "command": command,
        "created": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "verdict": verdict,
        "verdict_reason": reason,
        "context": dict(context or {}),
        "claims": [claim.to_dict() for claim in claims],
        "availability": availability.to_dict(),
        "rollout": asdict(rollout) if rollout is not None else None,
        "timeline": [asdict(event) for event in sorted(timeline, key=lambda e: (e.t, e.instance))],
        "instances": [asdict(instance) for instance in instances],
    }


def write_report(report: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> ReportPaths:
    """Write report.json (sorted keys) and render the other three files from it.

    The renderings are made from the JSON text just written, so they are exactly what
    :func:`render_from_json` would make later.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    target = folder / "report.json"
    target.write_text(text + "\n", encoding="utf-8")
    return _render(json.loads(text), target)


def render_from_json(path: str | os.PathLike[str]) -> ReportPaths:
    """Re-render report.md, junit.xml and report.html next to a report.json (or in its folder).

    A file that is not a readable report of this schema version is a :class:`UsageError`.
    """
    source = Path(path)
    if source.is_dir():
        source = source / "report.json"
    try:
        report = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(
            f"cannot read {source} ({exc.strerror}); give a report.json or its folder"
        ) from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}:{exc.lineno}: not JSON ({exc.msg})") from None
    found = report.get("schema_version") if isinstance(report, dict) else None
    if found != SCHEMA_VERSION:
        raise UsageError(
            f"{source}: not a Cautious report of schema version {SCHEMA_VERSION} "
            f"(schema_version is {found!r})"
        )
    try:
        return _render(report, source)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{source}: incomplete or malformed report ({exc!r})") from None


def _render(report: Mapping[str, Any], json_path: Path) -> ReportPaths:
    folder = json_path.parent
    paths = ReportPaths(
        json=json_path,
        markdown=folder / "report.md",
        junit=folder / "junit.xml",
        html=folder / "report.html",
    )
    paths.markdown.write_text(_markdown(report), encoding="utf-8")
    paths.junit.write_bytes(_junit(report))
    paths.html.write_text(_html(report), encoding="utf-8")
    return paths


def _verdict(claims: Sequence[ClaimResult], rollout: RolloutSummary | None) -> tuple[Verdict, str]:
    verdict = overall_verdict(claims)
    failed = [claim_label(c.name) for c in claims if c.verdict == "fail"]
    lacking = [claim_label(c.name) for c in claims if c.verdict == "not-enough-data"]
    if verdict == "fail":
        reasons = [f"claim{'s' if len(failed) > 1 else ''} not holding: {', '.join(failed)}"]
    elif verdict == "not-enough-data":
        reasons = [
            f"not enough data to judge: {', '.join(lacking)}"
            if lacking
            else "no claim was evaluated, so nothing was proven"
        ]
    else:
        reasons = ["the one claim holds" if len(claims) == 1 else f"all {len(claims)} claims hold"]
    if rollout is not None and rollout.outcome != "succeeded":
        verdict = "fail"
        why = f": {rollout.reason}" if rollout.reason else ""
        reasons.insert(0, f"the rollout was {rollout.outcome.replace('-', ' ')}{why}")
    return verdict, "; ".join(reasons)


# --- shared formatting -----------------------------------------------------------------------

_MARK = {"pass": "✅", "fail": "❌", "not-enough-data": "⚠️"}
_OUTCOME_MARK = {"succeeded": "✅", "rolled-back": "↩️", "aborted": "❌"}
_PHASE_LABEL = {"before": "before rollout", "during": "during rollout", "after": "after rollout"}


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _ratio(value: float | None) -> str:
    return format_figure("success_ratio", value)


def _budget(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:,.1f} %"


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _origin(report: Mapping[str, Any]) -> float | None:
    """Time zero for relative times: the earliest moment the report knows about."""
    moments = _moments(report)
    return min(moments) if moments else None


def _horizon(report: Mapping[str, Any], origin: float) -> float:
    """The latest moment the report knows about (at least a second after ``origin``)."""
    return max([*_moments(report), origin + 1])


def _moments(report: Mapping[str, Any]) -> list[float]:
    availability = report["availability"]
    moments = [m for m in (availability.get("start"), availability.get("end")) if m is not None]
    moments += [event["t"] for event in report.get("timeline") or []]
    rollout = report.get("rollout")
    if rollout:
        moments += [m for m in (rollout.get("started"), rollout.get("ended")) if m is not None]
        for step in rollout["steps"]:
            moments += [m for m in (step["started"], step["ended"]) if m is not None]
    return moments


def _relative(t: float | None, origin: float | None) -> str:
    return "-" if t is None or origin is None else f"+{t - origin:,.1f} s"


def _took(step: Mapping[str, Any]) -> str:
    if step["ended"] is None:
        return "cut short"
    seconds = step["ended"] - step["started"]
    return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:,.1f} s"


def _availability_rows(availability: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    phases = availability.get("phases", {})
    return [("whole run", availability)] + [
        (label, phases[phase]) for phase, label in _PHASE_LABEL.items() if phase in phases
    ]


def _availability_cells(stats: Mapping[str, Any]) -> list[str]:
    return [
        f"{stats['seconds']:,} s",
        _count(stats["sent"]),
        _count(stats["failed"]),
        _count(stats["missing"]),
        _ratio(stats["success_ratio"]),
        f"{stats['longest_error_window_s']:,} s",
        _count(stats["seconds_with_errors"]),
        _budget(stats["error_budget_used"]),
        _ms(stats["p50_ms"]),
        _ms(stats["p95_ms"]),
        _ms(stats["p99_ms"]),
    ]


_AVAILABILITY_HEADER = [
    "window",
    "length",
    "sent",
    "failed",
    "missing",
    "success ratio",
    "longest error window",
    "seconds with errors",
    "error budget used",
    "p50",
    "p95",
    "p99",
]
_BREAKDOWN_HEADER = ["sent", "good", "failed", "success ratio", "p50", "p99"]


def _breakdown_cells(stats: Mapping[str, Any]) -> list[str]:
    return [
        _count(stats["sent"]),
        _count(stats["good"]),
        _count(stats["failed"]),
        _ratio(stats["success_ratio"]),
        _ms(stats["p50_ms"]),
        _ms(stats["p99_ms"]),
    ]


def _load_line(availability: Mapping[str, Any]) -> str:
    parts = []
    if availability.get("target_rate") is not None:
        parts.append(f"target rate {availability['target_rate']:g} req/s")
    if availability.get("slo") is not None:
        parts.append(f"SLO {_ratio(availability['slo'])}")
    if availability.get("start") is not None:
        parts.append(f"measured from {_utc(availability['start'])} to {_utc(availability['end'])}")
    return " · ".join(parts)


# --- report.md -------------------------------------------------------------------------------


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _markdown(report: Mapping[str, Any]) -> str:
    """report.md: what a reader of a CI job summary needs, most important first."""
    verdict = report["verdict"]
    lines = [
        f"## {_MARK.get(verdict, '')} Cautious: {verdict}",
        "",
        f"`{_md_cell(report['command'])}` · {report['created']} · {report['verdict_reason']}",
        "",
    ]
    context = report.get("context") or {}
    if context:
        lines += _md_table(
            ["context", "value"], [(f"**{k}**", v) for k, v in sorted(context.items())]
        )
    lines += ["### Claims", ""]
    if report["claims"]:
        lines += _md_table(
            ["claim", "target", "measured", "verdict", "detail"],
            [
                (
                    claim_label(c["name"]),
                    format_target(c["name"], c["target"]),
                    format_figure(c["name"], c["measured"]),
                    f"{_MARK.get(c['verdict'], '')} {c['verdict']}",
                    c["detail"],
                )
                for c in report["claims"]
            ],
        )
    else:
        lines += ["No claim was evaluated.", ""]

    availability = report["availability"]
    lines += ["### Availability", ""]
    lines += _md_table(
        _AVAILABILITY_HEADER,
        [[label, *_availability_cells(s)] for label, s in _availability_rows(availability)],
    )
    if _load_line(availability):
        lines += [_load_line(availability), ""]
    for title, key in (("instance", "per_instance"), ("release", "per_release")):
        if availability.get(key):
            lines += [f"#### Per {title}", ""]
            lines += _md_table(
                [title, *_BREAKDOWN_HEADER],
                [[name, *_breakdown_cells(s)] for name, s in availability[key].items()],
            )

    rollout = report.get("rollout")
    if rollout:
        origin = _origin(report)
        lines += [
            f"### Rollout: {rollout['strategy']}, {rollout['from_release'] or '(none)'} → "
            f"{rollout['to_release']}: {_OUTCOME_MARK.get(rollout['outcome'], '')} "
            f"{rollout['outcome']}",
            "",
        ]
        if rollout.get("reason"):
            lines += [rollout["reason"], ""]
        if rollout["steps"]:
            lines += _md_table(
                ["#", "step", "instance", "started", "took", "outcome", "detail"],
                [
                    (
                        number,
                        step["name"],
                        step["instance"] or "",
                        _relative(step["started"], origin),
                        _took(step),
                        step["outcome"],
                        step["detail"],
                    )
                    for number, step in enumerate(rollout["steps"], 1)
                ],
            )
    if report.get("instances"):
        lines += ["### Instances at the end", ""]
        lines += _md_table(
            ["instance", "release"], [(i["name"], i["release"]) for i in report["instances"]]
        )
    tool = report.get("tool", {})
    lines += [
        f"<sub>cautious {tool.get('version', '?')} · report schema {report['schema_version']} · "
        "the timeline chart is in report.html</sub>",
        "",
    ]
    return "\n".join(lines)


# --- junit.xml -------------------------------------------------------------------------------


def _junit(report: Mapping[str, Any]) -> bytes:
    """junit.xml: one testsuite; a testcase per claim (failed → <failure>, not enough data →
    <skipped>) and one for the rollout, if there was one."""
    suite = ET.Element("testsuite", name="cautious", timestamp=report["created"])
    properties = ET.SubElement(suite, "properties")
    for name in ("command", "verdict", "verdict_reason"):
        ET.SubElement(properties, "property", name=name, value=str(report[name]))
    failures = skipped = 0
    for claim in report["claims"]:
        case = ET.SubElement(suite, "testcase", classname="cautious.claims", name=claim["name"])
        case.set("time", "0")
        figure = format_figure(claim["name"], claim["measured"])
        target = format_target(claim["name"], claim["target"])
        if claim["verdict"] == "fail":
            failures += 1
            failure = ET.SubElement(
                case,
                "failure",
                type="ClaimFailed",
                message=f"{claim['name']}: measured {figure}, target {target}",
            )
            failure.text = claim["detail"]
        elif claim["verdict"] != "pass":
            skipped += 1
            ET.SubElement(case, "skipped", message=f"not enough data: {claim['detail']}")
        ET.SubElement(case, "system-out").text = claim["detail"]
    rollout = report.get("rollout")
    if rollout:
        case = ET.SubElement(suite, "testcase", classname="cautious.rollout", name="rollout")
        case.set("time", f"{_rollout_seconds(rollout):.3f}")
        if rollout["outcome"] != "succeeded":
            failures += 1
            failure = ET.SubElement(
                case,
                "failure",
                type="RolloutNotSucceeded",
                message=f"rollout {rollout['from_release']} → {rollout['to_release']} "
                f"{rollout['outcome']}: {rollout.get('reason') or 'no reason given'}",
            )
            failure.text = "\n".join(
                f"{s['name']} {s['instance'] or ''}: {s['outcome']} {s['detail']}".strip()
                for s in rollout["steps"]
            )
    tests = len(suite.findall("testcase"))
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    suite.set("time", str(report["availability"]["seconds"]))
    ET.indent(suite)
    buffer = io.BytesIO()
    ET.ElementTree(suite).write(buffer, encoding="utf-8", xml_declaration=True)
    return buffer.getvalue() + b"\n"


def _rollout_seconds(rollout: Mapping[str, Any]) -> float:
    if rollout.get("started") is not None and rollout.get("ended") is not None:
        return float(rollout["ended"] - rollout["started"])
    ended = [s["ended"] for s in rollout["steps"] if s["ended"] is not None]
    started = [s["started"] for s in rollout["steps"]]
    return max(ended) - min(started) if ended and started else 0.0


# --- the timeline chart ----------------------------------------------------------------------

_STATE_COLOURS = {
    "ready": "#2e7d32",
    "starting": "#1565c0",
    "draining": "#ef8f00",
    "maint": "#757575",
    "stopped": "#c62828",
}
_OTHER_STATE_COLOUR = "#6a1b9a"
_HATCHES = ("", "///", "...", "xxx", "\\\\\\", "+++")


def _chart_png(report: Mapping[str, Any]) -> bytes:
    """The timeline chart, one shared time axis: requests/s, errors/s (failed and missing
    stacked, on their own scale so one error stays visible next to 1,000 req/s), latency,
    rollout steps as numbered spans, and one lane per instance coloured by state and labelled
    with its release."""
    availability = report["availability"]
    rows = availability["per_second"]
    timeline = report.get("timeline") or []
    rollout = report.get("rollout")
    steps = rollout["steps"] if rollout else []
    origin = _origin(report) or 0.0
    horizon = _horizon(report, origin) - origin
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
    axes[-1].set_xlabel(f"seconds since {_utc(origin)}")
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


# --- report.html -----------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1240px;padding:0 16px;color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.2em;margin-top:28px;
border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.pass,.succeeded,.ok{background:#2e7d32}.fail,.rolled-back,.aborted,.failed{background:#c62828}
.not-enough-data,.skipped{background:#ef8f00}
td.pass,td.fail,td.not-enough-data,td.succeeded,td.ok,td.failed,td.skipped{color:#fff}
.muted{color:#666;font-size:.9em}img#timeline-chart{width:100%;height:auto;
border:1px solid #eee}details{margin:8px 0}summary{cursor:pointer}
"""


def _h(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int = 99
) -> str:
    head = "".join(f"<th>{_h(cell)}</th>" for cell in header)
    body = []
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            if isinstance(cell, tuple):  # (text, css class)
                cells.append(f'<td class="{_h(cell[1])}">{_h(cell[0])}</td>')
            else:
                css = ' class="num"' if index >= numeric_from else ""
                cells.append(f"<td{css}>{_h(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html(report: Mapping[str, Any]) -> str:
    """report.html: the whole report on one self-contained page, chart first after claims."""
    verdict = report["verdict"]
    availability = report["availability"]
    origin = _origin(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Cautious report: {_h(verdict)} — {_h(report['command'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1>Cautious report <span class="badge {_h(verdict)}" id="verdict">{_h(verdict)}'
        "</span></h1>",
        f"<p><code>{_h(report['command'])}</code> · {_h(report['created'])}</p>",
        f"<p>{_h(report['verdict_reason'])}</p>",
    ]
    context = report.get("context") or {}
    if context:
        parts.append(_html_table(["context", "value"], sorted(context.items())))

    parts.append("<h2>Claims</h2>")
    if report["claims"]:
        parts.append(
            _html_table(
                ["claim", "target", "measured", "verdict", "detail"],
                [
                    (
                        claim_label(c["name"]),
                        format_target(c["name"], c["target"]),
                        format_figure(c["name"], c["measured"]),
                        (c["verdict"], c["verdict"]),
                        c["detail"],
                    )
                    for c in report["claims"]
                ],
            )
        )
    else:
        parts.append("<p>No claim was evaluated.</p>")

    chart = base64.b64encode(_chart_png(report)).decode("ascii")
    parts += [
        "<h2>Timeline</h2>",
        f'<img id="timeline-chart" src="data:image/png;base64,{chart}" alt="Timeline chart: '
        "requests and errors per second, latency per second, rollout steps, and each "
        "instance's state and release over time\">",
    ]

    parts.append("<h2>Availability</h2>")
    parts.append(
        _html_table(
            _AVAILABILITY_HEADER,
            [[label, *_availability_cells(s)] for label, s in _availability_rows(availability)],
            numeric_from=1,
        )
    )
    if _load_line(availability):
        parts.append(f'<p class="muted">{_h(_load_line(availability))}</p>')
    for title, key in (("instance", "per_instance"), ("release", "per_release")):
        if availability.get(key):
            parts.append(f"<h3>Per {title}</h3>")
            parts.append(
                _html_table(
                    [title, *_BREAKDOWN_HEADER],
                    [[name, *_breakdown_cells(s)] for name, s in availability[key].items()],
                    numeric_from=1,
                )
            )

    rollout = report.get("rollout")
    if rollout:
        parts.append(
            f'<h2>Rollout <span class="badge {_h(rollout["outcome"])}">'
            f"{_h(rollout['outcome'])}</span></h2>"
        )
        parts.append(
            f"<p>{_h(rollout['strategy'])}: {_h(rollout['from_release'] or '(none)')} → "
            f"{_h(rollout['to_release'])}"
            + (f" · {_h(rollout['reason'])}" if rollout.get("reason") else "")
            + "</p>"
        )
        if rollout["steps"]:
            parts.append(
                _html_table(
                    ["#", "step", "instance", "started", "took", "outcome", "detail"],
                    [
                        (
                            number,
                            step["name"],
                            step["instance"] or "",
                            _relative(step["started"], origin),
                            _took(step),
                            (step["outcome"], step["outcome"]),
                            step["detail"],
                        )
                        for number, step in enumerate(rollout["steps"], 1)
                    ],
                )
            )
    if report.get("instances"):
        parts.append("<h2>Instances at the end</h2>")
        parts.append(
            _html_table(
                ["instance", "release"], [(i["name"], i["release"]) for i in report["instances"]]
            )
        )
    if report.get("timeline"):
        parts.append(
            f"<details><summary>Instance events ({len(report['timeline'])})</summary>"
            + _html_table(
                ["time", "instance", "state", "release"],
                [
                    (_relative(e["t"], origin), e["instance"], e["state"], e["release"])
                    for e in report["timeline"]
                ],
            )
            + "</details>"
        )
    if availability["per_second"]:
        parts.append(
            f"<details><summary>Per second ({len(availability['per_second'])} rows)</summary>"
            + _html_table(
                ["second", "sent", "good", "failed", "missing", "p50", "p95", "p99"],
                [
                    (
                        _relative(r["t"], origin),
                        _count(r["sent"]),
                        _count(r["good"]),
                        _count(r["failed"]),
                        _count(r["missing"]),
                        _ms(r["p50_ms"]),
                        _ms(r["p95_ms"]),
                        _ms(r["p99_ms"]),
                    )
                    for r in availability["per_second"]
                ],
                numeric_from=1,
            )
            + "</details>"
        )
    tool = report.get("tool", {})
    parts.append(
        f'<p class="muted">cautious {_h(tool.get("version", "?"))} · report schema '
        f"{_h(report['schema_version'])} · times relative to "
        f"{_h(_utc(origin) if origin is not None else '-')}</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
