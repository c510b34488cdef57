"""report.html: the whole report on one page, with the timeline chart.

Nothing is inline: the stylesheet (report.css) and the charts (timeline.png, canary.png) are
files beside the page, and there is no script. A Content-Security-Policy that allows only the
server's own images and stylesheets — Jenkins' default for published HTML, ``sandbox;
default-src 'none'; img-src 'self'; style-src 'self';`` — shows the page whole, and it still
opens from a CI artefact with no network.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from cautious.report.canary import HOW_TO_READ, canary_chart_png, canary_table
from cautious.report.chart import chart_png
from cautious.report.tables import (
    Badge,
    Cell,
    Links,
    Table,
    availability_table,
    breakdown_tables,
    claims_table,
    context_table,
    event_table,
    experiment_notes,
    experiments_table,
    instances_table,
    load_line,
    origin,
    per_second_table,
    steps_table,
    utc,
)

__all__ = [
    "CANARY_CHART",
    "STYLESHEET",
    "TIMELINE_CHART",
    "canary_chart",
    "render",
    "stylesheet",
    "timeline_chart",
]

STYLESHEET = "report.css"
TIMELINE_CHART = "timeline.png"
CANARY_CHART = "canary.png"

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
.muted{color:#666;font-size:.9em}img#timeline-chart,img#canary-chart{width:100%;height:auto;
border:1px solid #eee}details{margin:8px 0}summary{cursor:pointer}
"""


def stylesheet(report: Mapping[str, Any]) -> bytes:
    """report.css: the same for every report."""
    return _CSS.lstrip().encode("utf-8")


def timeline_chart(report: Mapping[str, Any]) -> bytes | None:
    """timeline.png, when the report measured availability (nothing to draw otherwise)."""
    return chart_png(report) if report.get("availability") is not None else None


def canary_chart(report: Mapping[str, Any]) -> bytes | None:
    """canary.png, when a canary was judged."""
    return canary_chart_png(report) if canary_table(report) else None


def _h(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(cell: Cell, numeric: bool) -> str:
    if isinstance(cell, Badge):
        return f'<td class="{_h(cell.css)}">{_h(cell.text)}</td>'
    if isinstance(cell, Links):
        links = " · ".join(f'<a href="{_h(path)}">{_h(label)}</a>' for label, path in cell.items)
        return f"<td>{links or '-'}</td>"
    css = ' class="num"' if numeric else ""
    return f"<td{css}>{_h(cell)}</td>"


def _table(table: Table | None) -> str:
    if table is None:
        return ""
    first = table.numeric_from if table.numeric_from is not None else len(table.header)
    head = "".join(f"<th>{_h(cell)}</th>" for cell in table.header)
    body = "".join(
        "<tr>" + "".join(_cell(cell, index >= first) for index, cell in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _details(summary: str, table: Table | None) -> str:
    if table is None:
        return ""
    return f"<details><summary>{_h(summary)} ({len(table.rows)})</summary>{_table(table)}</details>"


def render(report: Mapping[str, Any]) -> bytes:
    """The whole report on one page, the chart right after the claims (files beside it)."""
    verdict = report["verdict"]
    availability = report.get("availability")
    start = origin(report)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Cautious report: {_h(verdict)} — {_h(report['command'])}</title>",
        f'<link rel="stylesheet" href="{STYLESHEET}"></head><body>',
        f'<h1>Cautious report <span class="badge {_h(verdict)}" id="verdict">{_h(verdict)}'
        "</span></h1>",
        f"<p><code>{_h(report['command'])}</code> · {_h(report['created'])}</p>",
        f"<p>{_h(report['verdict_reason'])}</p>",
        _table(context_table(report)),
    ]
    if report.get("experiments"):
        parts += ["<h2>Experiments</h2>", _table(experiments_table(report))]
        for entry in report["experiments"]:
            notes = "".join(f"<li>{_h(note)}</li>" for note in experiment_notes(entry))
            parts.append(
                f'<h3><span class="badge {_h(entry["verdict"])}">{_h(entry["verdict"])}</span> '
                f"{_h(entry['name'])}</h3><p><em>{_h(entry['title'])}</em> — "
                f"{entry['duration_s']:g} s</p>" + (f"<ul>{notes}</ul>" if notes else "")
            )
    if availability is not None or report["claims"]:
        claims = claims_table(report)
        parts += ["<h2>Claims</h2>", _table(claims) or "<p>No claim was evaluated.</p>"]
    if availability is not None:
        parts += [
            "<h2>Timeline</h2>",
            f'<img id="timeline-chart" src="{TIMELINE_CHART}" alt="Timeline chart: '
            "requests and errors per second, latency per second, rollout steps, and each "
            "instance's state and release over time\">",
            "<h2>Availability</h2>",
            _table(availability_table(availability)),
        ]
        if load_line(availability):
            parts.append(f'<p class="muted">{_h(load_line(availability))}</p>')
        for title, table in breakdown_tables(availability):
            parts += [f"<h3>{_h(title)}</h3>", _table(table)]
    rollout = report.get("rollout")
    if rollout:
        parts += [
            f'<h2>Rollout <span class="badge {_h(rollout["outcome"])}">'
            f"{_h(rollout['outcome'])}</span></h2>",
            f"<p>{_h(rollout['strategy'])}: {_h(rollout['from_release'] or '(none)')} → "
            f"{_h(rollout['to_release'])}"
            + (f" · {_h(rollout['reason'])}" if rollout.get("reason") else "")
            + "</p>",
            _table(steps_table(report)),
        ]
        judged = canary_table(report)
        if judged:
            parts += [
                "<h2>Canary judgement</h2>",
                _table(judged),
                f'<p class="muted">{_h(HOW_TO_READ)}</p>',
                f'<img id="canary-chart" src="{CANARY_CHART}" alt="Canary and '
                "baseline latency distributions, and their error ratios at each look of the "
                'judge">',
            ]
    instances = instances_table(report)
    if instances:
        parts += ["<h2>Instances at the end</h2>", _table(instances)]
    parts.append(_details("Instance events", event_table(report)))
    parts.append(_details("Per second", per_second_table(report)))
    tool = report.get("tool", {})
    parts.append(
        f'<p class="muted">cautious {_h(tool.get("version", "?"))} · report schema '
        f"{_h(report['schema_version'])} · times relative to "
        f"{_h(utc(start) if start is not None else '-')}</p>"
    )
    parts.append("</body></html>")
    return ("\n".join(part for part in parts if part) + "\n").encode("utf-8")
