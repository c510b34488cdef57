"""The report every ``deploy``, ``rollback``, ``load``, ``chaos.run`` and ``gameday`` leaves.

:func:`build_report` makes the one :class:`ReportDocument` from what the run produced (claims,
availability, rollout, experiments) and gives it the one verdict (:mod:`cautious.verdict`).
:func:`write_report` writes it as ``report.json`` — the record, with a stable schema documented
in ``docs/report-schema.md`` — and has every registered renderer
(:mod:`cautious.report.registry`) draw its file from that JSON text. :func:`render_folder`
draws them again from a ``report.json`` at any time (``invoke report PATH``), byte for byte
what the run wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cautious import __version__, redaction
from cautious.exceptions import UsageError
from cautious.inputs import MAX_DOCUMENT_BYTES, clip, load_json, read_text, shorten
from cautious.measure.availability import Availability
from cautious.measure.claims import ClaimResult
from cautious.report.canary import canary_section
from cautious.report.registry import RENDERERS
from cautious.report.schema import check_report
from cautious.rollout.records import InstanceRecord, RolloutSummary, StepRecord, TimelineEvent
from cautious.verdict import Experiment, Judgement, judge_run

__all__ = [
    "SCHEMA_VERSION",
    "ContextValue",
    "ReportDocument",
    "ReportPaths",
    "ReportedExperiment",
    "build_report",
    "read_report",
    "render_folder",
    "write_report",
]

SCHEMA_VERSION = 1
_REPORT_NAME = "report.json"

ContextValue = str | int | float | bool | None


class ReportedExperiment(Experiment, Protocol):
    """An experiment as a game-day report lists it."""

    def to_dict(self, folder: Path) -> dict[str, Any]:
        """Its entry in ``experiments[]``, with file paths relative to ``folder``."""
        ...


@dataclass(frozen=True)
class ReportDocument:
    """What report.json holds, before it is written (see ``docs/report-schema.md``)."""

    command: str
    judgement: Judgement
    created: datetime
    claims: tuple[ClaimResult, ...] = ()
    availability: Availability | None = None
    rollout: RolloutSummary | None = None
    timeline: tuple[TimelineEvent, ...] = ()
    instances: tuple[InstanceRecord, ...] = ()
    experiments: tuple[ReportedExperiment, ...] | None = None
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.judgement.verdict

    def to_dict(self, folder: Path) -> dict[str, Any]:
        """The report.json document (plain JSON types); file paths are relative to ``folder``."""
        events = sorted(self.timeline, key=lambda event: (event.t, event.instance))
        document = {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "cautious", "version": __version__},
            "command": self.command,
            "created": self.created.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "verdict": self.judgement.verdict,
            "verdict_reason": self.judgement.reason,
            "context": dict(self.context),
            "claims": [claim.to_dict() for claim in self.claims],
            "availability": self.availability.to_dict() if self.availability else None,
            "rollout": _rollout(self.rollout) if self.rollout is not None else None,
            "timeline": [event.to_dict() for event in events],
            "instances": [_instance(item) for item in self.instances],
        }
        if self.experiments is not None:
            document["experiments"] = [item.to_dict(folder) for item in self.experiments]
        return document


@dataclass(frozen=True)
class ReportPaths:
    """Where a report folder's files were written: report.json and one file per renderer."""

    json: Path
    rendered: Mapping[str, Path]

    @property
    def folder(self) -> Path:
        return self.json.parent

    def __getitem__(self, renderer: str) -> Path:
        return self.rendered[renderer]


def build_report(
    *,
    command: str,
    claims: Sequence[ClaimResult] = (),
    availability: Availability | None = None,
    rollout: RolloutSummary | None = None,
    timeline: Sequence[TimelineEvent] | None = None,
    instances: Sequence[InstanceRecord] | None = None,
    experiments: Sequence[ReportedExperiment] | None = None,
    context: Mapping[str, ContextValue] | None = None,
    created: datetime | None = None,
) -> ReportDocument:
    """The report of one run, with its verdict.

    The timeline and the instances default to the rollout's. ``experiments`` (a game day, or
    one experiment) makes the experiments decide the verdict; ``context`` holds free-form facts
    worth showing (URL, rate, git sha).
    """
    return ReportDocument(
        command=command,
        judgement=judge_run(claims, rollout, experiments),
        created=(created or datetime.now(UTC)).astimezone(UTC),
        claims=tuple(claims),
        availability=availability,
        rollout=rollout,
        timeline=tuple(timeline if timeline is not None else rollout.timeline if rollout else ()),
        instances=tuple(
            instances if instances is not None else rollout.instances if rollout else ()
        ),
        experiments=tuple(experiments) if experiments is not None else None,
        context=dict(context or {}),
    )


def write_report(document: ReportDocument, out_dir: str | os.PathLike[str]) -> ReportPaths:
    """Write report.json (sorted keys, secret values redacted) and render the other files from
    the text just written, so they are exactly what :func:`render_folder` makes later."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        redaction.redact_data(document.to_dict(folder.resolve())),
        sort_keys=True,
        indent=2,
        ensure_ascii=False,
        allow_nan=False,
    )
    target = folder / _REPORT_NAME
    target.write_text(text + "\n", encoding="utf-8")
    return _write(_draw(json.loads(text)), target)


def read_report(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """A report.json (or the folder holding one) and where it is; anything that is not a
    regular file holding a report of this schema version, in the shape the renderers rely
    on, is a :class:`UsageError`."""
    source = Path(path)
    if os.path.isdir(source):
        source = source / _REPORT_NAME
    where = clip(str(source), 80)
    report = load_json(read_text(source, "the report", MAX_DOCUMENT_BYTES), where)
    found = report.get("schema_version") if isinstance(report, dict) else None
    if found != SCHEMA_VERSION:
        raise UsageError(
            f"{where}: not a Cautious report of schema version {SCHEMA_VERSION} "
            f"(schema_version is {shorten(found)}); give a report.json or its folder"
        )
    check_report(report, where)
    return report, source


def render_folder(path: str | os.PathLike[str]) -> ReportPaths:
    """Render every registered file again next to a report.json (or in its folder); nothing
    is written unless every renderer could draw the document."""
    report, source = read_report(path)
    try:
        drawn = _draw(report)
    except Exception as exc:  # it passed the schema check, yet a renderer cannot draw it
        raise UsageError(
            f"{clip(str(source), 80)}: incomplete or malformed report "
            f"({type(exc).__name__}: {clip(str(exc), 80)})"
        ) from None
    return _write(drawn, source)


def _draw(report: Mapping[str, Any]) -> dict[str, tuple[str, bytes | None]]:
    """Every renderer's file name and bytes (None: nothing to draw), drawn in memory."""
    return {item.name: (item.filename, item.render(report)) for item in RENDERERS}


def _write(drawn: Mapping[str, tuple[str, bytes | None]], json_path: Path) -> ReportPaths:
    rendered = {}
    for name, (filename, content) in drawn.items():
        target = json_path.parent / filename
        if content is None:
            target.unlink(missing_ok=True)  # a file an earlier rendering left has no place now
            continue
        target.write_bytes(content)
        rendered[name] = target
    return ReportPaths(json=json_path, rendered=rendered)


def _rollout(rollout: RolloutSummary) -> dict[str, Any]:
    """The report's view of a rollout: its steps as people read them (a rollback step says so,
    the instances it acted on are one string)."""
    return {
        "strategy": rollout.strategy,
        "from_release": rollout.from_release,
        "to_release": rollout.to_release,
        "outcome": rollout.outcome,
        "reason": rollout.reason,
        "started": rollout.started,
        "ended": rollout.ended,
        "steps": [_step(step) for step in rollout.steps],
        "canary": canary_section([step.to_dict() for step in rollout.steps]),
    }


def _step(step: StepRecord) -> dict[str, Any]:
    return {
        "name": ("rollback: " if step.phase == "rollback" else "") + step.name,
        "instance": ", ".join(step.instances) or None,
        "started": step.started,
        "ended": step.ended,
        "outcome": step.outcome,
        "detail": step.detail,
    }


def _instance(item: InstanceRecord) -> dict[str, str]:
    """Name and release; an instance whose host does not answer also says so, and where."""
    if item.state == "unreachable":
        return {"name": item.name, "release": "", "state": item.state, "host": item.host}
    return {"name": item.name, "release": item.release}
