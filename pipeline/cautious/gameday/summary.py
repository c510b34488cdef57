"""The game day's summary: one entry per experiment, as Markdown and JUnit for people and CI."""

from __future__ import annotations

import contextlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cautious.gameday.run import ExperimentResult

__all__ = ["entry_dict", "junit", "summary_markdown"]


def _relative(path: str | None, base: Path) -> str | None:
    if path is None:
        return None
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(base))
    return path


def entry_dict(result: ExperimentResult, base: Path) -> dict[str, Any]:
    """One experiment as the summary (and CI's report readers) show it."""
    return {
        "name": result.name,
        "title": result.title,
        "path": result.path,
        "status": result.status,
        "deviated": result.deviated,
        "verdict": result.verdict,
        "reasons": result.reasons,
        "duration_s": result.duration_s,
        "figures": result.figures,
        "rollout": result.rollout,
        "cleanup": result.cleanup,
        "events": [event.get("what") for event in result.events],
        "folder": _relative(result.folder, base),
        "journal": _relative(result.journal, base),
        "report": _relative(result.report, base),
        "report_html": _relative(result.report_html, base),
    }


def _ratio(value: Any) -> str:
    if not isinstance(value, int | float) or value < 0:
        return "-"
    return f"{value * 100:.3f}".rstrip("0").rstrip(".") + " %"


def _md(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary_markdown(document: Mapping[str, Any]) -> str:
    """summary.md: the verdict, one row per experiment with its figures and links."""
    verdict = document["verdict"]
    mark = "✅" if verdict == "pass" else "❌"
    context = document.get("context") or {}
    lines = [
        f"## {mark} Cautious game day: {verdict}",
        "",
        f"{document['verdict_reason']}. Suite `{context.get('suite_name', '')}` on cluster "
        f"`{context.get('cluster', '')}`, {context.get('duration_s', 0):g} s.",
        "",
        "| experiment | verdict | status | deviated | success ratio | longest error window "
        "| p99 | sent / failed / missing | rollout | cluster after | links |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in document.get("experiments") or []:
        figures = entry.get("figures") or {}
        rollout = entry.get("rollout") or {}
        cleanup = entry.get("cleanup") or {}
        p99 = figures.get("p99_ms")
        window = figures.get("longest_error_window_s")
        links = [f"[journal]({entry['journal']})"] if entry.get("journal") else []
        if entry.get("report"):
            links.append(f"[report]({entry['report']})")
        if entry.get("report_html"):
            links.append(f"[html]({entry['report_html']})")
        row = [
            entry["name"],
            ("✅ " if entry["verdict"] == "pass" else "❌ ") + entry["verdict"],
            entry["status"],
            "yes" if entry["deviated"] else "no",
            _ratio(figures.get("success_ratio")),
            "-" if window is None else f"{window} s",
            "-" if not isinstance(p99, int | float) or p99 < 0 else f"{p99:,.1f} ms",
            " / ".join(str(figures.get(key, "-")) for key in ("sent", "failed", "missing")),
            (f"{rollout['release']}: " if rollout.get("release") else "")
            + f"{rollout.get('outcome', '-')}",
            f"{cleanup.get('healthy', '-')} healthy, {cleanup.get('leftovers', '-')} leftovers",
            " · ".join(links) or "-",
        ]
        lines.append("| " + " | ".join(_md(cell) for cell in row) + " |")
    for entry in document.get("experiments") or []:
        lines += ["", f"### {'✅' if entry['verdict'] == 'pass' else '❌'} {entry['name']}", ""]
        lines.append(f"*{_md(entry['title'])}* — {entry['duration_s']:g} s")
        if entry["reasons"]:
            lines += [""] + [f"- {_md(reason)}" for reason in entry["reasons"]]
        figures = entry.get("figures") or {}
        extra = [
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
            extra.append(
                "claims: "
                + ", ".join(f"{c['name']} {c['verdict']} ({c['measured']})" for c in claims)
            )
        if entry.get("events"):
            extra.append("what happened: " + "; ".join(entry["events"]))
        if extra:
            lines += [""] + [f"- {_md(item)}" for item in extra]
    return "\n".join(lines) + "\n"


def junit(document: Mapping[str, Any]) -> bytes:
    """junit.xml: one test case per experiment, failed unless it held."""
    suite = ET.Element("testsuite", name="cautious.gameday", timestamp=document["created"])
    properties = ET.SubElement(suite, "properties")
    for name in ("command", "verdict", "verdict_reason"):
        ET.SubElement(properties, "property", name=name, value=str(document[name]))
    failures = 0
    for entry in document.get("experiments") or []:
        case = ET.SubElement(
            suite, "testcase", classname="cautious.experiments", name=entry["name"]
        )
        case.set("time", f"{entry['duration_s']:.1f}")
        if entry["verdict"] != "pass":
            failures += 1
            failure = ET.SubElement(
                case,
                "failure",
                type="ExperimentDeviated" if entry["deviated"] else "ExperimentFailed",
                message=f"{entry['name']}: {entry['status']}"
                + (" (deviated)" if entry["deviated"] else ""),
            )
            failure.text = "\n".join(entry["reasons"])
        ET.SubElement(case, "system-out").text = json.dumps(entry.get("figures"), default=str)
    suite.set("tests", str(len(document.get("experiments") or [])))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    ET.indent(suite)
    text: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
