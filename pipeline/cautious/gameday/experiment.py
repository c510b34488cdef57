"""One experiment of a game day as it ended: chaoslib's word, our verdict, and its figures.

An :class:`ExperimentResult` is made from the files the experiment left in its folder — the
chaoslib journal, the control's run state (``chaos-run.json``) and the background rollout's
result file — plus what the game day saw itself (the chaos process, the cluster after).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cautious.files import read_json_object
from cautious.gameday.judge import ExperimentVerdict
from cautious.rollout.records import RolloutSummary

__all__ = ["ExperimentResult", "LastRollout", "last_rollout"]


@dataclass(frozen=True)
class ExperimentResult:
    """One experiment: how chaoslib ended it, our verdict and why, its figures and files.

    ``status`` is chaoslib's (completed | failed | aborted | interrupted), or ``error`` /
    ``timeout`` when the chaos process itself failed.
    """

    name: str
    title: str
    path: Path
    folder: Path
    status: str
    deviated: bool
    verdict: ExperimentVerdict
    reasons: tuple[str, ...]
    started: float
    duration_s: float
    figures: Mapping[str, Any]
    rollout: Mapping[str, Any]
    cleanup: Mapping[str, Any]
    events: tuple[Mapping[str, Any], ...]
    journal: Path | None
    report: Path | None = None
    report_html: Path | None = None

    @property
    def held(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self, folder: Path) -> dict[str, Any]:
        """Its entry in a report's ``experiments[]``; files relative to ``folder``."""
        return {
            "name": self.name,
            "title": self.title,
            "path": str(self.path),
            "status": self.status,
            "deviated": self.deviated,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "duration_s": self.duration_s,
            "figures": dict(self.figures),
            "rollout": dict(self.rollout),
            "cleanup": dict(self.cleanup),
            "events": [event.get("what") for event in self.events],
            "folder": _relative(self.folder, folder),
            "journal": _relative(self.journal, folder),
            "report": _relative(self.report, folder),
            "report_html": _relative(self.report_html, folder),
        }


@dataclass(frozen=True)
class LastRollout:
    """The experiment's last background rollout: the facts a summary shows, and the rollout
    itself when the worker got to run one."""

    facts: Mapping[str, Any]
    summary: RolloutSummary | None


def last_rollout(run_state: Mapping[str, Any] | None) -> LastRollout:
    """Read from the run state's last ``rollouts`` entry and the worker's result file."""
    rollouts = (run_state or {}).get("rollouts") or []
    if not rollouts:
        return LastRollout({}, None)
    record = rollouts[-1]
    result = read_json_object(Path(record["result"])) or {}
    summary = RolloutSummary.from_dict(result["rollout"]) if result.get("rollout") else None
    took = None
    if summary is not None and summary.started and summary.ended:
        took = round(summary.ended - summary.started, 1)
    facts = {
        "release": record.get("release"),
        "from": summary.from_release if summary else None,
        "outcome": result.get("outcome") or record.get("outcome") or "unknown",
        "reason": result.get("reason", record.get("reason", "")),
        "duration_s": took,
        "log": record.get("log"),
    }
    return LastRollout(facts, summary)


def _relative(path: Path | None, base: Path) -> str | None:
    if path is None:
        return None
    with contextlib.suppress(ValueError):
        return str(path.relative_to(base))
    return str(path)
