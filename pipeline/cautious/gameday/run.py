"""Game days: run Chaos Toolkit experiments on the sandbox, judge them ourselves, report.

``invoke chaos.run EXPERIMENT`` is a game day of one experiment; ``invoke gameday`` runs a
suite (:mod:`cautious.gameday.suite`), goes on after a failure, and writes one summary. Each
experiment runs through the plain ``chaos`` CLI (:mod:`~cautious.gameday.chaos`), is judged
from its journal (:mod:`~cautious.gameday.judge`), and the cluster is checked — and restored
when it is not as the experiment found it — before the next one
(:mod:`~cautious.gameday.cleanup`). The core never imports the Chaos Toolkit extension: it
meets it only through the ``chaos`` CLI and the files an experiment leaves.

The report folder (``--report-dir``)::

    report.json, report.md,      the game day: verdict, one entry per experiment with its
    report.html, junit.xml       figures and links; junit: one test case per experiment
    01-<experiment>/             per experiment: journal.json, chaostoolkit.log, chaos-run.json,
                                 load/requests.csv, rollouts/*, and its own report.json/.md/
                                 .html/junit.xml (availability, claims, rollout, chaos events)
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cautious.cluster.sandbox import Sandbox
from cautious.config import Config
from cautious.exceptions import CautiousError
from cautious.files import read_json_object
from cautious.gameday.chaos import check_chaostoolkit, run_chaos
from cautious.gameday.cleanup import check_cluster
from cautious.gameday.experiment import ExperimentResult, last_rollout
from cautious.gameday.judge import figures, judge_journal
from cautious.gameday.suite import Suite, SuiteEntry
from cautious.gameday.summary import experiment_report, gameday_report
from cautious.report.document import write_report

__all__ = ["GameDay"]


class GameDay:
    """Runs experiments one after the other on one cluster and writes the summary."""

    def __init__(
        self,
        config: Config,
        config_path: Path,
        report_dir: Path,
        *,
        say: Callable[[str], None] = print,
        command: str = "gameday",
    ) -> None:
        self.config = config
        self.config_path = config_path.resolve()
        self.report_dir = report_dir.resolve()
        self.say = say
        self.command = command
        self.results: list[ExperimentResult] = []

    def run(self, suite: Suite) -> dict[str, Any]:
        """Every experiment of ``suite``, in order, going on after failures; returns the
        summary report it wrote (``self.results`` holds the results)."""
        check_chaostoolkit()
        self.report_dir.mkdir(parents=True, exist_ok=True)
        started = time.time()
        for index, entry in enumerate(suite.entries, 1):
            folder = self.report_dir / f"{index:02d}-{_slug(entry.name)}"
            self.say(f"experiment {index}/{len(suite.entries)}: {entry.name}")
            result = self.run_one(entry, folder)
            self.results.append(result)
            mark = "held" if result.held else "FAILED"
            self.say(f"{entry.name}: {mark} ({result.status}, {result.duration_s:.0f} s)")
            for reason in result.reasons:
                self.say(f"  - {reason}")
        document = gameday_report(
            self.results,
            suite=suite,
            config=self.config,
            config_path=self.config_path,
            command=self.command,
            started=started,
        )
        write_report(document, self.report_dir)
        return document.to_dict(self.report_dir)

    def run_one(self, entry: SuiteEntry, folder: Path) -> ExperimentResult:
        """One experiment with the plain chaos CLI, judged, its cluster checked, reported."""
        folder.mkdir(parents=True, exist_ok=True)
        started = time.time()
        problem = run_chaos(
            entry,
            folder,
            variables={
                "cautious_config": str(self.config_path),
                "cautious_cluster": self.config.cluster.name,
                "cautious_out_dir": str(folder),
            },
            env={
                "CAUTIOUS_CONFIG": str(self.config_path),
                "CAUTIOUS_CLUSTER": self.config.cluster.name,
                "CAUTIOUS_CHAOS_OUT": str(folder),
            },
            cwd=self.config.root,
            say=self.say,
        )
        journal = read_json_object(folder / "journal.json")
        run_state = read_json_object(folder / "chaos-run.json")
        verdict, reasons = judge_journal(journal, run_state)
        if problem is not None:  # a timeout or crash of the chaos process itself
            verdict, reasons = "fail", [problem, *reasons]
        cleanup = check_cluster(Sandbox(self.config, say=self.say), run_state, self.say)
        if cleanup.get("problem"):
            verdict, reasons = "fail", [*reasons, cleanup["problem"]]
        rollout = last_rollout(run_state)
        experiment = (journal or {}).get("experiment") or read_json_object(entry.path) or {}
        result = ExperimentResult(
            name=entry.name,
            title=str(experiment.get("title", entry.name)),
            path=entry.path,
            folder=folder,
            status=str((journal or {}).get("status") or ("timeout" if problem else "error")),
            deviated=bool((journal or {}).get("deviated")),
            verdict=verdict,
            reasons=tuple(reasons),
            started=started,
            duration_s=round(time.time() - started, 1),
            figures=figures(journal),
            rollout=rollout.facts,
            cleanup=cleanup,
            events=tuple((run_state or {}).get("events") or ()),
            journal=folder / "journal.json" if journal else None,
        )
        with contextlib.suppress(CautiousError, OSError, KeyError, ValueError, TypeError):
            document = experiment_report(
                result,
                journal=journal,
                run_state=run_state,
                rollout=rollout.summary,
                config=self.config,
                command=self.command
                if self.command.startswith("chaos.run")
                else f"{self.command} › {result.name}",
            )
            if document is not None:
                paths = write_report(document, folder)
                result = replace(result, report=paths["markdown"], report_html=paths["html"])
        return result


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "experiment"
