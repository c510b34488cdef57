"""junit.xml: the report's checks as test cases, so CI lists them as tests.

One ``<testsuite name="cautious">``. A game day (a report with ``experiments``) has one test
case per experiment, failed unless it held — the experiments decide its verdict. Any other
report has one per claim (failed → ``<failure>``, not enough data → ``<skipped>``) and one for
the rollout, if there was one.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from cautious.measure.claims import format_figure, format_target

__all__ = ["render"]


def render(report: Mapping[str, Any]) -> bytes:
    suite = ET.Element("testsuite", name="cautious", timestamp=report["created"])
    properties = ET.SubElement(suite, "properties")
    for name in ("command", "verdict", "verdict_reason"):
        ET.SubElement(properties, "property", name=name, value=str(report[name]))
    experiments = report.get("experiments")
    if experiments is not None:
        for entry in experiments:
            _experiment(suite, entry)
        seconds = sum(float(entry["duration_s"]) for entry in experiments)
    else:
        for claim in report["claims"]:
            _claim(suite, claim)
        if report.get("rollout"):
            _rollout(suite, report["rollout"])
        seconds = float((report.get("availability") or {}).get("seconds") or 0)
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(case.find("failure") is not None for case in cases)))
    suite.set("errors", "0")
    suite.set("skipped", str(sum(case.find("skipped") is not None for case in cases)))
    suite.set("time", f"{seconds:g}")
    ET.indent(suite)
    buffer = io.BytesIO()
    ET.ElementTree(suite).write(buffer, encoding="utf-8", xml_declaration=True)
    return buffer.getvalue() + b"\n"


def _case(suite: ET.Element, classname: str, name: str, seconds: str) -> ET.Element:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name)
    case.set("time", seconds)
    return case


def _failure(case: ET.Element, kind: str, message: str, text: str) -> None:
    ET.SubElement(case, "failure", type=kind, message=message).text = text


def _claim(suite: ET.Element, claim: Mapping[str, Any]) -> None:
    case = _case(suite, "cautious.claims", claim["name"], "0")
    if claim["verdict"] == "fail":
        figure = format_figure(claim["name"], claim["measured"])
        target = format_target(claim["name"], claim["target"])
        message = f"{claim['name']}: measured {figure}, target {target}"
        _failure(case, "ClaimFailed", message, claim["detail"])
    elif claim["verdict"] != "pass":
        ET.SubElement(case, "skipped", message=f"not enough data: {claim['detail']}")
    ET.SubElement(case, "system-out").text = claim["detail"]


def _rollout(suite: ET.Element, rollout: Mapping[str, Any]) -> None:
    case = _case(suite, "cautious.rollout", "rollout", f"{_rollout_seconds(rollout):.3f}")
    if rollout["outcome"] != "succeeded":
        message = (
            f"rollout {rollout['from_release']} → {rollout['to_release']} "
            f"{rollout['outcome']}: {rollout.get('reason') or 'no reason given'}"
        )
        steps = "\n".join(
            f"{s['name']} {s['instance'] or ''}: {s['outcome']} {s['detail']}".strip()
            for s in rollout["steps"]
        )
        _failure(case, "RolloutNotSucceeded", message, steps)


def _rollout_seconds(rollout: Mapping[str, Any]) -> float:
    if rollout.get("started") is not None and rollout.get("ended") is not None:
        return float(rollout["ended"] - rollout["started"])
    ended = [s["ended"] for s in rollout["steps"] if s["ended"] is not None]
    started = [s["started"] for s in rollout["steps"]]
    return max(ended) - min(started) if ended and started else 0.0


def _experiment(suite: ET.Element, entry: Mapping[str, Any]) -> None:
    case = _case(suite, "cautious.experiments", entry["name"], f"{entry['duration_s']:.1f}")
    if entry["verdict"] != "pass":
        deviated = " (deviated)" if entry["deviated"] else ""
        _failure(
            case,
            "ExperimentDeviated" if entry["deviated"] else "ExperimentFailed",
            f"{entry['name']}: {entry['status']}{deviated}",
            "\n".join(entry["reasons"]),
        )
    ET.SubElement(case, "system-out").text = json.dumps(entry.get("figures"), default=str)
