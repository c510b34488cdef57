"""Turn a Cautious report folder into what GitHub Actions shows.

Used by the ``rollout`` and ``gameday`` composite actions after ``cautious deploy`` /
``cautious gameday`` has run (whatever its exit code)::

    python3 cautious_github.py publish --report-dir DIR --exit-code N --command "cautious deploy" \
        --config cautious.yaml

It
- appends ``report.md`` to ``$GITHUB_STEP_SUMMARY`` (or a short note when there is no report),
  then ``junit.xml`` as a table (one row per test case: each claim, the rollout, or each
  experiment),
- prints one ``::error file=cautious.yaml,line=N,title=claim <name>::…`` workflow command per
  failed claim, pointing at the claim's line in the configuration (a ``::warning`` for a claim
  without enough data), one per failed or deviated experiment, and one for a rollout that was
  rolled back or aborted,
- writes the step outputs ``verdict``, ``success-ratio``, ``report-dir`` and ``exit-code`` to
  ``$GITHUB_OUTPUT``.

It never fails the step itself (exit 0 unless it is called wrongly): the action decides after the
report has been uploaded. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NO_REPORT = "error"  # the verdict output when the command wrote no report.json
CLAIMS_SECTION = ""  # the key of the `claims:` line itself in claim_lines()
_CLAIMS_KEY = re.compile(r"^claims\s*:")
_NESTED_KEY = re.compile(r"^(\s+)([A-Za-z_]\w*)\s*:")


@dataclass(frozen=True)
class Location:
    """Where an annotation points: a file (relative to the repository) and a 1-based line."""

    file: str
    line: int


def escape_data(text: str) -> str:
    """Escape a workflow command's message (GitHub's toolkit rules)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command property such as ``title``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, title: str, message: str, where: Location | None = None) -> str:
    """One workflow command line, e.g. ``::error file=cautious.yaml,line=9,title=claim x::…``."""
    properties = [f"file={escape_property(where.file)}", f"line={where.line}"] if where else []
    properties.append(f"title={escape_property(title)}")
    return f"::{kind} {','.join(properties)}::{escape_data(message)}"


def claim_lines(config_text: str) -> dict[str, int]:
    """The 1-based line of each claim under the top-level ``claims:`` key of a cautious.yaml.

    ``CLAIMS_SECTION`` maps to the ``claims:`` line itself (a flow mapping such as
    ``claims: {p99_ms: 200}`` has only that). A line scanner, not a YAML parser: the standard
    library has none, and block mappings, the way cautious.yaml is written, are line-shaped.
    """
    lines: dict[str, int] = {}
    indent: int | None = None
    for number, line in enumerate(config_text.splitlines(), start=1):
        if CLAIMS_SECTION not in lines:
            if _CLAIMS_KEY.match(line):
                lines[CLAIMS_SECTION] = number
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            break  # the next top-level key ends the section
        match = _NESTED_KEY.match(line)
        if match and indent in (None, len(match[1])):
            indent = len(match[1])
            lines[match[2]] = number
    return lines


def claim_locations(config: Path, workspace: Path | None) -> dict[str, Location]:
    """Where each claim is declared in ``config`` (``CLAIMS_SECTION``: the fallback line).

    The file is named relative to ``workspace`` (the repository) when it is inside it, as
    GitHub expects; an unreadable file gives no locations.
    """
    try:
        text = config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    resolved = config.resolve()
    name = str(config)
    if workspace is not None and resolved.is_relative_to(workspace.resolve()):
        name = resolved.relative_to(workspace.resolve()).as_posix()
    lines = {CLAIMS_SECTION: 1, **claim_lines(text)}
    return {claim: Location(name, line) for claim, line in lines.items()}


def load_report(report_dir: Path) -> dict[str, Any] | None:
    """report.json as a dict, or None when it is missing or unreadable."""
    try:
        report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "n/a" if value is None else str(value)


def _claim_message(claim: dict[str, Any]) -> str:
    name = str(claim.get("name", "?"))
    detail = claim.get("detail")
    if detail:
        return f"{name}: {detail}"
    return (
        f"{name}: measured {_figure(claim.get('measured'))}, target {_figure(claim.get('target'))}"
    )


def _experiment_name(entry: dict[str, Any]) -> str:
    for key in ("name", "experiment", "title", "path"):
        if entry.get(key):
            return str(entry[key])
    return "?"


def _experiment_failed(entry: dict[str, Any]) -> bool:
    if entry.get("deviated") is True:
        return True
    verdict = entry.get("verdict")
    if verdict is not None:
        return bool(verdict != "pass")
    status = entry.get("status")
    return status is not None and status != "completed"


def annotation_lines(
    report: dict[str, Any] | None,
    exit_code: int,
    what: str,
    locations: Mapping[str, Location] | None = None,
) -> list[str]:
    """The workflow commands (one line each) that explain a report, or its absence.

    A claim's annotation points at ``locations[name]`` (else the claims section) when given.
    """
    where = locations or {}
    if report is None:
        if exit_code == 0:
            return [command("warning", what, f"{what} succeeded but wrote no report.json")]
        return [
            command(
                "error",
                what,
                f"{what} exited with {exit_code} and wrote no report.json "
                "(exit 2 means bad input: see the log line starting with 'cautious:')",
            )
        ]
    lines: list[str] = []
    for claim in report.get("claims") or []:
        if not isinstance(claim, dict):
            continue
        verdict = claim.get("verdict")
        name = str(claim.get("name", "?"))
        title = f"claim {name}"
        declared = where.get(name, where.get(CLAIMS_SECTION))
        if verdict == "fail":
            lines.append(command("error", title, _claim_message(claim), declared))
        elif verdict == "not-enough-data":
            lines.append(command("warning", title, _claim_message(claim), declared))
    for entry in report.get("experiments") or []:
        if isinstance(entry, dict) and _experiment_failed(entry):
            name = _experiment_name(entry)
            status = entry.get("verdict") or entry.get("status") or "failed"
            extra = " (deviated)" if entry.get("deviated") else ""
            lines.append(command("error", f"experiment {name}", f"{name}: {status}{extra}"))
    rollout = report.get("rollout")
    if isinstance(rollout, dict) and rollout.get("outcome") not in (None, "succeeded"):
        outcome = str(rollout["outcome"])
        reason = rollout.get("reason") or report.get("verdict_reason") or ""
        lines.append(
            command(
                "error",
                f"rollout {outcome}",
                f"rollout {rollout.get('from_release')} → {rollout.get('to_release')} "
                f"{outcome}" + (f": {reason}" if reason else ""),
            )
        )
    if report.get("verdict") != "pass" and not lines:
        lines.append(
            command(
                "error",
                f"verdict {report.get('verdict')}",
                str(report.get("verdict_reason") or f"{what} did not pass"),
            )
        )
    return lines


def summary(report_dir: Path, report: dict[str, Any] | None, exit_code: int, what: str) -> str:
    """Markdown for the job summary: report.md as written and the junit.xml table, or a note."""
    markdown = report_dir / "report.md"
    if report is not None and markdown.is_file():
        text = markdown.read_text(encoding="utf-8")
        text = text if text.endswith("\n") else text + "\n"
        table = junit_table(report_dir / "junit.xml")
        return f"{text}\n{table}" if table else text
    return (
        f"## ❌ Cautious: no report\n\n`{what}` exited with {exit_code} "
        f"and wrote no report in `{report_dir}`.\n"
    )


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def junit_table(junit_xml: Path) -> str:
    """junit.xml as a Markdown table, one row per test case; empty without a readable file."""
    try:
        root = ET.parse(junit_xml).getroot()
    except (OSError, ET.ParseError):
        return ""
    rows = []
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for case in root.iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            result, detail = "failed", failure.get("message") or failure.text
        elif skipped is not None:
            result, detail = "skipped", skipped.get("message") or skipped.text
        else:
            result, detail = "passed", case.findtext("system-out")
        counts[result] += 1
        mark = {"passed": "✅", "failed": "❌", "skipped": "⚠️"}[result]
        test = f"{case.get('classname', '')} · {case.get('name', '?')}".lstrip(" ·")
        rows.append(f"| {_cell(test)} | {mark} {result} | {_cell(detail)} |")
    if not rows:
        return ""
    heading = ", ".join(f"{count} {result}" for result, count in counts.items())
    header = [
        f"### Tests (junit.xml): {heading}",
        "",
        "| test | result | detail |",
        "|---|---|---|",
    ]
    return "\n".join([*header, *rows]) + "\n"


def outputs(report: dict[str, Any] | None, report_dir: Path, exit_code: int) -> dict[str, str]:
    """The step outputs, all single-line strings."""
    verdict = NO_REPORT
    ratio = ""
    if report is not None:
        verdict = str(report.get("verdict") or NO_REPORT)
        availability = report.get("availability")
        if isinstance(availability, dict) and availability.get("success_ratio") is not None:
            ratio = repr(float(availability["success_ratio"]))
    return {
        "verdict": verdict,
        "success-ratio": ratio,
        "report-dir": str(report_dir),
        "exit-code": str(exit_code),
    }


def _append(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)


def publish(
    report_dir: Path, exit_code: int, what: str, config: Path | None = None
) -> dict[str, str]:
    """Summary, annotations and outputs for one finished command; returns the outputs."""
    report = load_report(report_dir)
    _append(os.environ.get("GITHUB_STEP_SUMMARY"), summary(report_dir, report, exit_code, what))
    workspace = os.environ.get("GITHUB_WORKSPACE")
    locations = claim_locations(config, Path(workspace) if workspace else None) if config else {}
    for line in annotation_lines(report, exit_code, what, locations):
        print(line, flush=True)
    values = outputs(report, report_dir, exit_code)
    _append(
        os.environ.get("GITHUB_OUTPUT"),
        "".join(f"{key}={value}\n" for key, value in values.items()),
    )
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cautious_github.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    pub = sub.add_parser("publish", help="summary, annotations and outputs for a report folder")
    pub.add_argument("--report-dir", required=True, type=Path)
    pub.add_argument("--exit-code", required=True, type=int)
    pub.add_argument("--command", default="cautious", help="what ran, for messages")
    pub.add_argument("--config", type=Path, help="the cautious.yaml the claims come from")
    args = parser.parse_args(argv)
    values = publish(args.report_dir, args.exit_code, args.command, args.config)
    print(
        f"cautious: verdict {values['verdict']}, success ratio "
        f"{values['success-ratio'] or 'n/a'}, report in {values['report-dir']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
