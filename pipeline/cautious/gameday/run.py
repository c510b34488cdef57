"""Game days: run Chaos Toolkit experiments on the sandbox, judge them ourselves, report.

``invoke chaos.run EXPERIMENT`` is a game day of one experiment; ``invoke gameday`` runs a
suite (``chaos/gameday.yaml``: a list of experiment files), goes on after a failure, and writes
one summary. Each experiment runs as ``python -m chaostoolkit run`` in its own process:

- it is exactly what a user runs by hand with the plain CLI (same code, same journal), and
  chaoslib gets the main thread of its own process, as it needs;
- it has a hard deadline: past it the process gets SIGINT (chaoslib then plays the rollbacks),
  then SIGKILL; a wedged experiment cannot hang the game day;
- rollbacks are always played (``--rollback-strategy always``), whatever happened.

chaoslib's own status is not trusted alone (FIELD-NOTES): an experiment *held* only when its
journal says ``completed``, not deviated, the steady state was met before and after the method
(and during it, when checked), no action of the method failed, and every rollback succeeded.
After each experiment the game day checks the cluster itself — every instance healthy, no
helper container, netem qdisc or other fault left — and restores it before the next one when
that fails (the experiment is then failed too).

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
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cautious import __version__
from cautious.config import ClaimsConfig, Config
from cautious.exceptions import CautiousError, ConfigError, PrerequisiteError

__all__ = [
    "DEFAULT_SUITE",
    "DEFAULT_TIMEOUT_S",
    "ExperimentResult",
    "GameDay",
    "Suite",
    "SuiteEntry",
    "judge_journal",
    "load_suite",
    "resolve_experiment",
    "summary_markdown",
]

DEFAULT_SUITE = Path("chaos") / "gameday.yaml"
DEFAULT_TIMEOUT_S = 900.0
_INTERRUPT_GRACE_S = 240.0  # SIGINT → chaoslib plays the rollbacks (a restore is a rollout)
_CLEANUP_SETTLE_S = 30.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MAX_EVENTS_IN_CONTEXT = 15

Verdict = Literal["pass", "fail"]


# -- the suite ----------------------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    name: str | None = None
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=7_200)
    vars: dict[str, str | int | float | bool] = Field(default_factory=dict)


class _SuiteFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "game day"
    description: str = ""
    experiments: list[_Entry | str] = Field(min_length=1)


@dataclass(frozen=True)
class SuiteEntry:
    """One experiment of a game day, and how long it may take."""

    path: Path
    name: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    vars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """The experiments of a game day, in order."""

    name: str
    entries: tuple[SuiteEntry, ...]
    path: Path | None = None


def load_suite(path: Path) -> Suite:
    """Read a suite file; experiment paths are relative to it. Bad input is a ConfigError."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the game-day suite {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        suite = _SuiteFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    entries = []
    for item in suite.experiments:
        entry = _Entry(path=item) if isinstance(item, str) else item
        experiment = (path.parent / entry.path).resolve()
        if not experiment.is_file():
            raise ConfigError(f"{path}: experiment {entry.path} does not exist ({experiment})")
        entries.append(
            SuiteEntry(
                path=experiment,
                name=entry.name or experiment.stem,
                timeout_s=entry.timeout_s,
                vars={key: str(value) for key, value in entry.vars.items()},
            )
        )
    return Suite(name=suite.name, entries=tuple(entries), path=path.resolve())


def resolve_experiment(text: str, config: Config) -> Path:
    """An experiment file: as given, relative to the config's folder, or a bare name under
    ``chaos/experiments`` (``kill-mid-rollout``)."""
    candidates = [Path(text), config.root / text]
    if "/" not in text and not text.endswith((".json", ".yaml", ".yml")):
        candidates.append(config.root / "chaos" / "experiments" / f"{text}.json")
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"no experiment file {text!r} (looked in ., {config.root}/chaos/experiments)")


# -- judging a journal --------------------------------------------------------------------------


def _failing_probe(state: Mapping[str, Any] | None) -> str:
    for probe in (state or {}).get("probes") or []:
        if not probe.get("tolerance_met", False):
            name = probe.get("activity", {}).get("name", "?")
            output = probe.get("output")
            if probe.get("status") == "failed":
                error = "".join(probe.get("exception") or []).strip().splitlines()[-1:] or ["?"]
                return f"probe {name!r} failed: {error[0]}"
            return f"probe {name!r} out of tolerance ({_brief(output)})"
    return "no probe result"


def _brief(output: Any) -> str:
    if not isinstance(output, Mapping):
        return str(output)[:200]
    keys = (
        "verdict", "outcome", "unhealthy", "not_up", "missed", "count", "success_ratio",
        "longest_error_window_s", "p99_ms", "failed", "missing", "max_starts_per_instance",
    )  # fmt: skip
    picked = {key: output[key] for key in keys if key in output}
    failed_claims = [
        claim.get("detail", "")
        for claim in output.get("claims") or []
        if claim["verdict"] != "pass"
    ]
    text = ", ".join(f"{key}={value}" for key, value in picked.items())
    return text + (f"; {'; '.join(failed_claims)}" if failed_claims else "")


def judge_journal(
    journal: Mapping[str, Any] | None, run_state: Mapping[str, Any] | None = None
) -> tuple[Verdict, list[str]]:
    """``pass`` only if the experiment really held; else the reasons (see module docstring).

    Pure: it reads the chaoslib journal (and the control's run state for what chaoslib does
    not journal, such as a hypothesis that failed before the method and interrupted the run).
    """
    if journal is None:
        return "fail", ["no journal was written (the chaos process crashed or was killed)"]
    reasons: list[str] = []
    status = journal.get("status")
    experiment = journal.get("experiment") or {}
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    if not hypothesis.get("probes"):
        reasons.append("the experiment has no steady-state hypothesis: nothing was checked")
    states = journal.get("steady_states") or {}
    hypotheses = list((run_state or {}).get("hypotheses") or [])
    before = states.get("before")
    if before is None:
        failed_before = [
            h for h in hypotheses if h.get("phase") == "before-method" and h.get("met") is False
        ]
        if failed_before:
            entry = failed_before[-1]
            reasons.append(
                f"the steady state did not hold before the method (probe "
                f"{entry.get('failing_probe')!r}: {entry.get('detail')}); nothing was injected"
            )
        elif hypothesis.get("probes"):
            reasons.append("the steady state was not checked before the method")
    elif not before.get("steady_state_met"):
        reasons.append(f"the steady state did not hold before the method: {_failing_probe(before)}")
    for index, during in enumerate(states.get("during") or []):
        if not during.get("steady_state_met"):
            reasons.append(
                f"the steady state deviated during the method (check {index + 1}): "
                f"{_failing_probe(during)}"
            )
            break
    after = states.get("after")
    if journal.get("deviated"):
        reasons.append(f"the steady state deviated after the method: {_failing_probe(after)}")
    elif after is None:
        if hypothesis.get("probes") and before is not None and before.get("steady_state_met"):
            reasons.append("the steady state was not checked after the method")
    elif not after.get("steady_state_met"):
        reasons.append(f"the steady state did not hold after the method: {_failing_probe(after)}")
    for run in journal.get("run") or []:
        if run.get("status") == "failed":
            error = "".join(run.get("exception") or []).strip().splitlines()[-1:] or ["?"]
            name = run.get("activity", {}).get("name", "?")
            reasons.append(
                f"{run.get('activity', {}).get('type', 'activity')} {name!r} failed: {error[0]}"
            )
    for run in journal.get("rollbacks") or []:
        if run.get("status") == "failed":
            error = "".join(run.get("exception") or []).strip().splitlines()[-1:] or ["?"]
            name = run.get("activity", {}).get("name", "?")
            reasons.append(f"rollback {name!r} failed: {error[0]}")
    if status != "completed":
        reasons.insert(0, f"chaoslib ended the experiment {status!r}")
    return ("pass" if not reasons else "fail"), reasons


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
    verdict: Verdict
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


def _check_chaostoolkit() -> None:
    if importlib.util.find_spec("chaostoolkit") is None:
        raise PrerequisiteError(
            "the Chaos Toolkit is not installed: run `pip install chaostoolkit`"
        )
    _extension("context")


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
        _check_chaostoolkit()
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
        journal = _read_json(folder / "journal.json")
        run_state = _read_json(folder / "chaos-run.json")
        verdict, reasons = judge_journal(journal, run_state)
        if status is not None:  # timeout or crash of the chaos process itself
            reasons.insert(0, status)
            verdict = "fail"
        experiment = (journal or {}).get("experiment") or _read_json(entry.path) or {}
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
        result.figures = _figures(journal)
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
        """Run ``chaos run``; None when it ended by itself, else what went wrong with it."""
        variables = {**self._configuration, "cautious_out_dir": str(folder), **entry.vars}
        command = [
            sys.executable,
            "-m",
            "chaostoolkit",
            "--no-version-check",
            "--log-file",
            str(folder / "chaostoolkit.log"),
            "--settings",
            str(folder / "chaostoolkit-settings.yaml"),  # absent: no user settings leak in
            "run",
            "--journal-path",
            str(folder / "journal.json"),
            "--rollback-strategy",
            "always",
        ]
        for key, value in variables.items():
            command += ["--var", f"{key}={value}"]
        command.append(str(entry.path))
        env = {
            **os.environ,
            "CAUTIOUS_CONFIG": str(self.config_path),
            "CAUTIOUS_CLUSTER": self.config.cluster.name,
            "CAUTIOUS_CHAOS_OUT": str(folder),
        }
        output_path = folder / "chaos-output.txt"
        with output_path.open("wb") as output:
            process = subprocess.Popen(
                command,
                cwd=self.config.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        follower = _Follower(output_path, self.say)
        deadline = time.monotonic() + entry.timeout_s
        while process.poll() is None and time.monotonic() < deadline:
            follower.poll()
            time.sleep(0.5)
        problem = None
        if process.poll() is None:
            self.say(f"{entry.name}: past its {entry.timeout_s:g} s deadline; interrupting it")
            problem = f"the experiment ran past its {entry.timeout_s:g} s deadline and was stopped"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)  # chaoslib plays the rollbacks
            try:
                process.wait(timeout=_INTERRUPT_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        follower.poll()
        if problem is None and process.returncode not in (0, 1):
            problem = f"the chaos process exited with {process.returncode} (see chaos-output.txt)"
        return problem

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
            _claims_config(journal) or self.config.claims.model_dump()
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
        report["experiments"] = [_entry_dict(result, self.report_dir)]
        paths = write_report(report, Path(result.folder))
        return paths.markdown, paths.html

    def summary(self, suite: Suite, started: float) -> dict[str, Any]:
        """The game day's summary document (report.json-compatible: verdict, experiments[])."""
        failed = [result for result in self.results if not result.held]
        verdict: Verdict = "fail" if failed or not self.results else "pass"
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
            "experiments": [_entry_dict(result, self.report_dir) for result in self.results],
        }

    def write_summary(self, suite: Suite, started: float) -> dict[str, Any]:
        document = self.summary(suite, started)
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        markdown = summary_markdown(document)
        for name in ("summary.json", "report.json"):
            (self.report_dir / name).write_text(text + "\n", encoding="utf-8")
        for name in ("summary.md", "report.md"):
            (self.report_dir / name).write_text(markdown, encoding="utf-8")
        (self.report_dir / "junit.xml").write_bytes(_junit(document))
        return document


# -- helpers ------------------------------------------------------------------------------------


class _Follower:
    """Forwards the chaos process's log lines as they come (colours stripped)."""

    def __init__(self, path: Path, say: Callable[[str], None]) -> None:
        self.path = path
        self.say = say
        self.offset = 0

    def poll(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        for line in chunk[:end].decode(errors="replace").splitlines():
            line = _ANSI.sub("", line).strip()
            if line:
                self.say(f"  {line}")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "experiment"


def _probe_outputs(journal: Mapping[str, Any] | None, phase: str) -> list[dict[str, Any]]:
    state = ((journal or {}).get("steady_states") or {}).get(phase) or {}
    return [
        {"name": probe.get("activity", {}).get("name"), "output": probe.get("output")}
        for probe in state.get("probes") or []
        if isinstance(probe.get("output"), dict)
    ]


def _availability_output(journal: Mapping[str, Any] | None) -> dict[str, Any]:
    """The last availability probe output: after the method if it ran, else before."""
    for phase in ("after", "before"):
        for probe in reversed(_probe_outputs(journal, phase)):
            if "claims_config" in probe["output"]:
                output: dict[str, Any] = probe["output"]
                return output
    return {}


def _claims_config(journal: Mapping[str, Any] | None) -> dict[str, Any] | None:
    config = _availability_output(journal).get("claims_config")
    return config if isinstance(config, dict) else None


def _figures(journal: Mapping[str, Any] | None) -> dict[str, Any]:
    output = _availability_output(journal)
    keys = (
        "verdict", "success_ratio", "longest_error_window_s", "p99_ms", "sent", "failed",
        "missing", "seconds",
    )  # fmt: skip
    figures = {key: output[key] for key in keys if key in output}
    if output:
        figures["phase"] = output.get("phase")
        figures["claims"] = [
            {key: claim[key] for key in ("name", "target", "measured", "verdict")}
            for claim in output.get("claims") or []
        ]
    for probe in _probe_outputs(journal, "after"):
        result = probe["output"]
        if "missed" in result:
            figures["faults_caught"] = f"{result['caught']}/{result['injected']}"
            lb = [f.get("lb_down_after_s") for f in result.get("faults") or []]
            figures["lb_down_after_s"] = lb[0] if len(lb) == 1 else lb
        if "max_starts_per_instance" in result:
            figures["max_starts_per_instance"] = result["max_starts_per_instance"]
    return figures


def _rollout_result(run_state: Mapping[str, Any] | None) -> dict[str, Any]:
    rollouts = (run_state or {}).get("rollouts") or []
    if not rollouts:
        return {}
    last = rollouts[-1]
    result = _read_json(Path(last["result"])) or {}
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


def _relative(path: str | None, base: Path) -> str | None:
    if path is None:
        return None
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(base))
    return path


def _entry_dict(result: ExperimentResult, base: Path) -> dict[str, Any]:
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


def _junit(document: Mapping[str, Any]) -> bytes:
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
