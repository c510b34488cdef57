"""report.md: what a reader of a CI job summary needs, most important first.

Small enough for ``$GITHUB_STEP_SUMMARY``; the timeline chart is only in report.html.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cautious.report import tables
from cautious.report.canary import HOW_TO_READ, canary_table
from cautious.report.tables import Badge, Cell, Links, Table

__all__ = ["render"]

_MARK = {"pass": "✅", "fail": "❌", "not-enough-data": "⚠️"}
_OUTCOME_MARK = {"succeeded": "✅", "rolled-back": "↩️", "aborted": "❌"}


def _text(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _cell(cell: Cell) -> str:
    if isinstance(cell, Badge):
        return f"{_MARK.get(cell.css, '')} {_text(cell.text)}".strip()
    if isinstance(cell, Links):
        return " · ".join(f"[{label}]({path})" for label, path in cell.items) or "-"
    return _text(cell)


def _table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in table.rows]
    return [*lines, ""]


def render(report: Mapping[str, Any]) -> bytes:
    verdict = report["verdict"]
    title = "Cautious game day" if report.get("experiments") is not None else "Cautious"
    lines = [
        f"## {_MARK.get(verdict, '')} {title}: {verdict}",
        "",
        f"`{_text(report['command'])}` · {report['created']} · {report['verdict_reason']}",
        "",
    ]
    context, experiments = tables.context_table(report), tables.experiments_table(report)
    lines += _table(context) if context else []
    lines += ["### Experiments", "", *_table(experiments)] if experiments else []
    for entry in report.get("experiments") or []:
        lines += [f"#### {_MARK.get(entry['verdict'], '')} {entry['name']}", ""]
        lines += [f"*{_text(entry['title'])}* — {entry['duration_s']:g} s", ""]
        notes = tables.experiment_notes(entry)
        lines += [f"- {_text(note)}" for note in notes] + ([""] if notes else [])
    availability = report.get("availability")
    if availability is not None or report["claims"]:
        claims = tables.claims_table(report)
        lines += [
            "### Claims",
            "",
            *(_table(claims) if claims else ["No claim was evaluated.", ""]),
        ]
    if availability is not None:
        lines += ["### Availability", "", *_table(tables.availability_table(availability))]
        if tables.load_line(availability):
            lines += [tables.load_line(availability), ""]
        for title, table in tables.breakdown_tables(availability):
            lines += [f"#### {title}", "", *_table(table)]
    rollout = report.get("rollout")
    if rollout:
        lines += [
            f"### Rollout: {rollout['strategy']}, {rollout['from_release'] or '(none)'} → "
            f"{rollout['to_release']}: {_OUTCOME_MARK.get(rollout['outcome'], '')} "
            f"{rollout['outcome']}",
            "",
        ]
        if rollout.get("reason"):
            lines += [rollout["reason"], ""]
        steps = tables.steps_table(report)
        lines += _table(steps) if steps else []
        judged = canary_table(report)
        if judged:
            lines += ["### Canary judgement", "", *_table(judged), HOW_TO_READ, ""]
    instances = tables.instances_table(report)
    if instances:
        lines += ["### Instances at the end", "", *_table(instances)]
    tool = report.get("tool", {})
    chart = " · the timeline chart is in report.html" if availability is not None else ""
    lines += [
        f"<sub>cautious {tool.get('version', '?')} · report schema {report['schema_version']}"
        f"{chart}</sub>",
        "",
    ]
    return "\n".join(lines).encode("utf-8")
