"""Game days: run Chaos Toolkit experiments on the sandbox, judge them ourselves, report.

``invoke chaos.run EXPERIMENT`` is a game day of one experiment; ``invoke gameday`` runs a
suite (:mod:`cautious.gameday.suite`), goes on after a failure, and writes one summary. Each
experiment runs through the plain ``chaos`` CLI (:mod:`cautious.gameday.chaos`) and is judged
from its journal (:mod:`cautious.gameday.judge`). After each experiment the game day checks the
cluster itself — every instance healthy, no fault left — and restores it before the next one
when that fails (the experiment is then failed too).

The report folder (``--report-dir``)::

    summary.json, summary.md     the game day: one entry per experiment with its figures
    report.json, report.md,      the same summary under the names every Cautious command
    junit.xml                    leaves (CI reads these); junit: one test case per experiment
    01-<experiment>/             per experiment: journal.json, chaostoolkit.log, chaos-run.json,
                                 load/requests.csv, rollouts/*, and its own report.json/.md/
                                 .html/junit.xml (availability, claims, rollout, chaos events)
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from cautious import __version__
from cautious.config import ClaimsConfig, Config
from cautious.exceptions import CautiousError, PrerequisiteError
from cautious.files import read_json_object
from cautious.gameday.chaos import check_chaostoolkit, run_chaos
from cautious.gameday.judge import ExperimentVerdict, claims_config, figures, judge_journal
from cautious.gameday.suite import Suite, SuiteEntry
from cautious.gameday.summary import entry_dict, junit, summary_markdown

__all__ = ["ExperimentResult", "GameDay"]

_CLEANUP_SETTLE_S = 30.0
_MAX_EVENTS_IN_CONTEXT = 15


# -- results ------------------------------------------------------------------------------------


@dataclass
class ExperimentResult:
    """One experiment of a game day: how chaoslib ended it, our verdict, and its figures."""

    name: str
    title: str
    path: str
    folder: str
    status: str  # chaoslib's: completed | failed | aborted | interrupted; or error | timeout
    deviated: bool
    verdict: ExperimentVerdict
    reasons: list[str]
    started: float
    duration_s: float
    figures: dict[str, Any] = field(default_factory=dict)
    rollout: dict[str, Any] = field(default_factory=dict)
    cleanup: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    journal: str | None = None
    report: str | None = None
    report_html: str | None = None

    @property
    def held(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- running ------------------------------------------------------------------------------------


def _extension(module: str) -> ModuleType:
    """A module of the chaostoolkit-cautious extension (``pip install -e ./chaos``)."""
    try:
        return importlib.import_module(f"chaoscautious.{module}")
    except ImportError:
        raise PrerequisiteError(
            "the Chaos Toolkit extension is not installed: run `pip install -e ./chaos` "
            "(after `pip install -e .`), or `scripts/install`"
        ) from None


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

    @property
    def _configuration(self) -> dict[str, str]:
        return {
            "cautious_config": str(self.config_path),
            "cautious_cluster": self.config.cluster.name,
        }

    def run(self, suite: Suite) -> dict[str, Any]:
        """Every experiment of ``suite``, in order, going on after failures; returns the
        summary it wrote (``self.results`` holds the results)."""
        check_chaostoolkit()
        _extension("context")
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
        return self.write_summary(suite, started)

    def run_one(self, entry: SuiteEntry, folder: Path) -> ExperimentResult:
        """One experiment with the plain chaos CLI, judged, its cluster checked, reported."""
        folder.mkdir(parents=True, exist_ok=True)
        started = time.time()
        status = self._chaos_run(entry, folder)
        journal = read_json_object(folder / "journal.json")
        run_state = read_json_object(folder / "chaos-run.json")
        verdict, reasons = judge_journal(journal, run_state)
        if status is not None:  # timeout or crash of the chaos process itself
            reasons.insert(0, status)
            verdict = "fail"
        experiment = (journal or {}).get("experiment") or read_json_object(entry.path) or {}
        result = ExperimentResult(
            name=entry.name,
            title=str(experiment.get("title", entry.name)),
            path=str(entry.path),
            folder=str(folder),
            status=str((journal or {}).get("status") or ("timeout" if status else "error")),
            deviated=bool((journal or {}).get("deviated")),
            verdict=verdict,
            reasons=reasons,
            started=started,
            duration_s=0.0,
            journal=str(folder / "journal.json") if journal else None,
            events=list((run_state or {}).get("events") or []),
        )
        result.figures = figures(journal)
        result.rollout = _rollout_of(run_state)
        result.cleanup = self._check_cluster(run_state)
        if result.cleanup.get("problem"):
            result.verdict = "fail"
            result.reasons.append(result.cleanup["problem"])
        result.duration_s = round(time.time() - started, 1)
        with contextlib.suppress(CautiousError, OSError, KeyError, ValueError, TypeError):
            paths = self._experiment_report(result, journal, run_state)
            if paths is not None:
                result.report, result.report_html = str(paths[0]), str(paths[1])
        return result

    def _chaos_run(self, entry: SuiteEntry, folder: Path) -> str | None:
        return run_chaos(
            entry,
            folder,
            variables={**self._configuration, "cautious_out_dir": str(folder)},
            env={
                "CAUTIOUS_CONFIG": str(self.config_path),
                "CAUTIOUS_CLUSTER": self.config.cluster.name,
                "CAUTIOUS_CHAOS_OUT": str(folder),
            },
            cwd=self.config.root,
            say=self.say,
        )

    def _check_cluster(self, run_state: Mapping[str, Any] | None) -> dict[str, Any]:
        """Healthy again, nothing left behind? If not, restore before the next experiment."""
        try:
            context = _extension("context")
            cluster = _extension("cluster")
            faults = _extension("faults")
            target = context.target(self._configuration)
            background = _extension("background")
            stray = background.stop_background(context.RunState(target))
            snapshot = cluster.wait_healthy(target, _CLEANUP_SETTLE_S)
            left = faults.leftovers(target)
        except Exception as exc:
            return {
                "healthy": None,
                "leftovers": None,
                "problem": f"cannot check the cluster: {exc}",
            }
        result: dict[str, Any] = {
            "healthy": f"{snapshot['healthy']}/{snapshot['expected']}",
            "releases": snapshot["releases"],
            "leftovers": left["count"],
        }
        problems = []
        if stray:
            problems.append(f"left running: {', '.join(stray)}")
        if snapshot["unhealthy"]:
            problems.append(f"{snapshot['healthy']}/{snapshot['expected']} instances healthy")
        if left["count"]:
            problems.append(f"faults left behind: {_leftover_text(left)}")
        if problems:
            result["problem"] = "after the experiment: " + "; ".join(problems)
            self.say(f"restoring the cluster: {result['problem']}")
            baseline = (run_state or {}).get("baseline_release")
            try:
                restored = cluster.restore(target, None, release=baseline)
                result["restored"] = restored["done"]
            except Exception as exc:
                result["restored"] = f"failed: {exc}"
        return result

    # -- reports ------------------------------------------------------------------------------

    def _experiment_report(
        self,
        result: ExperimentResult,
        journal: Mapping[str, Any] | None,
        run_state: Mapping[str, Any] | None,
    ) -> tuple[Path, Path] | None:
        """The experiment's own Cautious report, from its request log and rollout."""
        from cautious.measure.availability import compute_availability
        from cautious.measure.claims import evaluate_claims
        from cautious.measure.requestlog import read_request_log
        from cautious.report.document import (
            InstanceInfo,
            RolloutStep,
            RolloutSummary,
            TimelineEvent,
            build_report,
            write_report,
        )

        load = (run_state or {}).get("load") or {}
        if not load.get("request_log") or not Path(load["request_log"]).is_file():
            return None
        claims = ClaimsConfig.model_validate(
            claims_config(journal) or self.config.claims.model_dump()
        )
        rollout_result = _rollout_result(run_state)
        rollout: RolloutSummary | None = None
        timeline: list[TimelineEvent] = []
        instances: list[InstanceInfo] = []
        window: dict[str, float] = {}
        if rollout_result.get("outcome") in {"succeeded", "rolled-back", "aborted"}:
            rollout = RolloutSummary(
                strategy=str(rollout_result.get("strategy", "")),
                from_release=rollout_result.get("from_release"),
                to_release=str(rollout_result.get("to_release", rollout_result.get("release"))),
                outcome=rollout_result["outcome"],
                reason=str(rollout_result.get("reason", "")),
                steps=tuple(
                    RolloutStep(
                        name=("rollback: " if step.get("phase") == "rollback" else "")
                        + str(step["name"]),
                        instance=", ".join(step.get("instances", [])) or None,
                        started=float(step["started"]),
                        ended=step.get("ended"),
                        outcome=str(step["outcome"]),
                        detail=str(step.get("detail", "")),
                    )
                    for step in rollout_result.get("steps") or []
                ),
                started=rollout_result.get("rollout_started"),
                ended=rollout_result.get("rollout_ended"),
            )
            timeline = [TimelineEvent(**event) for event in rollout_result.get("timeline") or []]
            instances = [
                InstanceInfo(item["name"], item["release"])
                for item in rollout_result.get("instances") or []
            ]
            window = {
                "rollout_start": float(rollout_result["rollout_started"]),
                "rollout_end": float(rollout_result["rollout_ended"]),
            }
        for event in result.events:
            if event.get("instance") and event.get("state"):
                timeline.append(
                    TimelineEvent(
                        t=float(event["t"]),
                        instance=str(event["instance"]),
                        release=str(event.get("release", "")),
                        state=str(event["state"]),
                    )
                )
        availability = compute_availability(
            read_request_log(load["request_log"]),
            target_rate=float(load["rate"]),
            slo=claims.success_ratio,
            **window,
        )
        judged = evaluate_claims(claims, availability)
        origin = float((run_state or {}).get("started") or result.started)
        context: dict[str, str | int | float | bool | None] = {
            "experiment": result.name,
            "title": result.title,
            "chaoslib status": result.status,
            "deviated": result.deviated,
            "cluster": self.config.cluster.name,
            "load": f"{float(load['rate']):g} req/s, {load.get('users')} users",
            "journal": "journal.json",
        }
        for index, event in enumerate(result.events[:_MAX_EVENTS_IN_CONTEXT], 1):
            offset = max(0.0, float(event["t"]) - origin)
            context[f"event {index:02d}"] = f"+{offset:.1f} s: {event['what']}"
        report = build_report(
            command=self.command
            if self.command.startswith("chaos.run")
            else f"{self.command} › {result.name}",
            availability=availability,
            claims=judged,
            rollout=rollout,
            timeline=timeline,
            instances=instances,
            context=context,
        )
        # The experiment decides: a rollback can be exactly what an experiment expects.
        report["verdict"] = result.verdict
        report["verdict_reason"] = (
            "the experiment held: its steady-state hypothesis was met before and after the "
            "method, every action and rollback succeeded, the cluster was left healthy"
            if result.held
            else "; ".join(result.reasons)
        )
        report["experiments"] = [entry_dict(result, self.report_dir)]
        paths = write_report(report, Path(result.folder))
        return paths.markdown, paths.html

    def summary(self, suite: Suite, started: float) -> dict[str, Any]:
        """The game day's summary document (report.json-compatible: verdict, experiments[])."""
        failed = [result for result in self.results if not result.held]
        verdict: ExperimentVerdict = "fail" if failed or not self.results else "pass"
        if not self.results:
            reason = "no experiment ran"
        elif failed:
            reason = (
                f"{len(failed)} of {len(self.results)} experiment(s) did not hold: "
                + ", ".join(result.name for result in failed)
            )
        else:
            reason = f"all {len(self.results)} experiment(s) held"
        return {
            "schema_version": 1,
            "tool": {"name": "cautious", "version": __version__},
            "command": self.command,
            "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "verdict": verdict,
            "verdict_reason": reason,
            "context": {
                "suite": str(suite.path) if suite.path else suite.name,
                "suite_name": suite.name,
                "cluster": self.config.cluster.name,
                "config": str(self.config_path),
                "experiments": len(self.results),
                "held": len(self.results) - len(failed),
                "duration_s": round(time.time() - started, 1),
            },
            "claims": [],
            "availability": None,
            "rollout": None,
            "timeline": [],
            "instances": [],
            "experiments": [entry_dict(result, self.report_dir) for result in self.results],
        }

    def write_summary(self, suite: Suite, started: float) -> dict[str, Any]:
        document = self.summary(suite, started)
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        markdown = summary_markdown(document)
        for name in ("summary.json", "report.json"):
            (self.report_dir / name).write_text(text + "\n", encoding="utf-8")
        for name in ("summary.md", "report.md"):
            (self.report_dir / name).write_text(markdown, encoding="utf-8")
        (self.report_dir / "junit.xml").write_bytes(junit(document))
        return document


# -- helpers ------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "experiment"


def _rollout_result(run_state: Mapping[str, Any] | None) -> dict[str, Any]:
    rollouts = (run_state or {}).get("rollouts") or []
    if not rollouts:
        return {}
    last = rollouts[-1]
    result = read_json_object(Path(last["result"])) or {}
    return {**last, **result}


def _rollout_of(run_state: Mapping[str, Any] | None) -> dict[str, Any]:
    result = _rollout_result(run_state)
    if not result:
        return {}
    started, ended = result.get("rollout_started"), result.get("rollout_ended")
    return {
        "release": result.get("release"),
        "from": result.get("from_release"),
        "outcome": result.get("outcome", "unknown"),
        "reason": result.get("reason", ""),
        "duration_s": round(ended - started, 1) if started and ended else None,
        "log": result.get("log"),
    }


def _leftover_text(left: Mapping[str, Any]) -> str:
    parts = []
    for key in ("helpers", "qdiscs", "lb_redirects", "paused", "disconnected"):
        if left.get(key):
            items = left[key]
            parts.append(f"{key} {', '.join(items) if isinstance(items, list) else items}")
    return "; ".join(parts)
