"""The Invoke tasks: the command line contract (flags, exit codes 0 / 1 / 2).

Tasks stay thin: parse flags, load the configuration (flags on top), call the library, print.
Every deliberate error (``CautiousError``) becomes one line on stderr and its exit code —
2 for bad input, 1 for a failure — never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task
from rich.status import Status
from rich.table import Table

from cautious.cli.audit import audit
from cautious.cli.chaos_tasks import chaos_ns, gameday, report_folder
from cautious.cli.forecast import print_estimate, print_legs, print_projection, print_tail_warnings
from cautious.cli.terminal import clean_errors, console
from cautious.cluster.sandbox import Sandbox, SandboxStatus
from cautious.config import Config, load_config
from cautious.deploy import DeployPipeline, Prepared, RolloutHook
from cautious.exceptions import ConfigError, UsageError
from cautious.inputs import finite_number, shorten
from cautious.legged import deploy_legs, legs_of
from cautious.measure.claims import claim_label, format_figure, format_target
from cautious.measure.load import MAX_WORKERS
from cautious.measure.session import (
    Measured,
    measured_load,
    measuring_hook,
)
from cautious.report.document import render_folder
from cautious.rollout.journal import StartupStats, startup_stats
from cautious.rollout.runner import RolloutResult

__all__ = ["ns"]


PYTEST_NO_TESTS = 5
_MAX_LOAD_S = 86_400


def _whole_number(flag: str, value: str | int | None) -> int | None:
    """Flags arrive as text; a non-number is bad input (exit 2), not a parser crash."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{flag} takes a whole number, not {shorten(value)}") from None


def _load(config: str | None, **overrides: Any) -> Config:
    return load_config(config, overrides)


def _say(message: str) -> None:
    console.print(f"[dim]{message}[/dim]")


@dataclass
class _LiveStage:
    """A running stage: its spinner, and how it ended when it ended badly without raising."""

    status: Status
    failed_as: str | None = None  # e.g. "rolled-back": a rollout that returned, not succeeded


_live: list[_LiveStage] = []  # the running stages, innermost last, for progress lines
_PLAIN_PROGRESS_EVERY_S = 5.0
_last_plain_progress = [0.0]


@contextmanager
def _stage(name: str) -> Iterator[None]:
    """Show a spinner while a stage runs, then its duration (✗ when it raised or failed)."""
    started = time.monotonic()
    with console.status(f"{name} …") as status:
        live = _LiveStage(status)
        _live.append(live)
        try:
            yield
        except UsageError:
            raise  # bad input: the one line that says what to fix is enough
        except BaseException:
            console.print(f"[red]✗[/red] {name} [dim]({time.monotonic() - started:.1f} s)[/dim]")
            raise
        finally:
            _live.pop()
    took = f"[dim]({time.monotonic() - started:.1f} s)[/dim]"
    if live.failed_as:
        console.print(f"[red]✗[/red] {name}: {live.failed_as} {took}")
    else:
        console.print(f"[green]✓[/green] {name} {took}")


def _progress(line: str) -> None:
    """A live progress line: in the spinner on a terminal, every few seconds in a CI log."""
    if console.is_terminal and _live:
        _live[-1].status.update(line)
    elif time.monotonic() - _last_plain_progress[0] >= _PLAIN_PROGRESS_EVERY_S:
        _last_plain_progress[0] = time.monotonic()
        console.print(f"[dim]{line}[/dim]")


# -- configuration -----------------------------------------------------------------------------


@task(help={"config": "path to cautious.yaml (default: $CAUTIOUS_CONFIG or ./cautious.yaml)"})
@clean_errors
def config(c: Context, config: str | None = None) -> None:
    """Print the effective configuration (file, then flags) as YAML."""
    import yaml

    effective = _load(config).public_dump()
    print(yaml.safe_dump(effective, sort_keys=False), end="")


# -- build ---------------------------------------------------------------------------------------


@task(
    help={
        "release": "a release declared in cautious.yaml (default: the working tree, by git sha)",
        "config": "path to cautious.yaml",
    }
)
@clean_errors
def build(c: Context, release: str | None = None, config: str | None = None) -> None:
    """Build a release image; print its label and digest."""
    sandbox = Sandbox(_load(config), say=_say)
    with _stage(f"build {release or 'working tree'}"):
        if release is not None:
            built = sandbox.release(release, rebuild=True)
        else:
            built = sandbox.working_tree_release()
    print(f"{built.label} {built.digest}")


# -- sandbox -------------------------------------------------------------------------------------


@task(
    help={
        "instances": "how many instances (default: cluster.instances)",
        "release": "release for new instances (default: the running one, else the first declared)",
        "config": "path to cautious.yaml",
    }
)
@clean_errors
def up(
    c: Context, instances: str | None = None, release: str | None = None, config: str | None = None
) -> None:
    """Start the sandbox cluster (idempotent): HAProxy plus N instances of a release."""
    count = _whole_number("--instances", instances)
    cfg = _load(config, **{"cluster.instances": count})
    sandbox = Sandbox(cfg, say=_say)
    with _stage(f"sandbox {cfg.cluster.name} up ({cfg.cluster.instances} instances)"):
        status = sandbox.up(cfg.cluster.instances, release)
    _print_status(status)


@task(help={"json": "machine-readable output", "config": "path to cautious.yaml"})
@clean_errors
def status(c: Context, json_: bool = False, config: str | None = None) -> None:
    """Instances, release, state, health, LB state and addresses; the cluster's lb_url."""
    current = Sandbox(_load(config), say=_say).status()
    if json_:
        print(json.dumps(current.to_dict(), indent=2))
    else:
        _print_status(current)


@task(help={"config": "path to cautious.yaml"})
@clean_errors
def down(c: Context, config: str | None = None) -> None:
    """Remove exactly what the sandbox created (containers, network)."""
    removed = Sandbox(_load(config), say=_say).down()
    for item in removed:
        _say(f"removed {item}")
    console.print(f"sandbox down: {len(removed)} object(s) removed")


# -- deploy, rollback, history -----------------------------------------------------------------


_REPORT_HELP = "report folder (default: <reports_dir>/<timestamp>-<command>)"
_CLAIM_HELP = "override a claim, NAME=VALUE (repeatable), e.g. --claim p99_ms=200"


@task(
    iterable=["claim"],
    help={
        "release": "a release declared in cautious.yaml (default: build the working tree)",
        "strategy": "rolling | stop-and-go | blue-green | canary (default: rollout.strategy)",
        "dry_run": "print the plan and change nothing",
        "plan": "three-legged: run the legs declared under 'legs', each a measured deploy",
        "report_dir": _REPORT_HELP,
        "claim": _CLAIM_HELP,
        "force": "deploy even when `cautious audit` finds drift (journaled, with the findings)",
        "config": "path to cautious.yaml",
    },
)
@clean_errors
def deploy(
    c: Context,
    release: str | None = None,
    strategy: str | None = None,
    dry_run: bool = False,
    report_dir: str | None = None,
    config: str | None = None,  # before claim: -c is --config in every task
    claim: list[str] | None = None,
    plan_: str | None = None,
    force: bool = False,
) -> None:
    """audit → test → build → rollout under load → claims → report. Exit 1 on drift (unless
    --force), a failed claim or a rollback."""
    cfg = _load(config, **{"rollout.strategy": strategy}, **_claim_overrides(claim))
    if release is not None:
        cfg.release(release)  # an undeclared name is bad input, for a dry run too
    if plan_ is not None:
        _three_legged(cfg, plan_, dry_run=dry_run, report_dir=report_dir)
        return
    pipeline = DeployPipeline(cfg, say=_say, stage=_stage)
    if dry_run:
        plan = pipeline.dry_run()
        console.print(f"plan: {plan.strategy} over {', '.join(plan.current)}")
        for line in plan.describe():
            print(line)
        print_estimate(plan, release or "the working tree", pipeline.journal)
        print_tail_warnings(cfg, pipeline.journal, release)
        if plan.strategy == "canary":
            from cautious.judges.planner import plan_from_config

            planned = plan_from_config(cfg)
            for line in planned.lines():
                print(line)
            for warning in planned.warnings:
                console.print(f"[yellow]warning:[/yellow] {warning}")
        return
    folder = report_folder(cfg, report_dir, "deploy")
    measured = _measuring(pipeline, folder, "deploy")
    _finish(pipeline.deploy(release, rollout=measured.hook, force=force), measured.result)


def _three_legged(cfg: Config, plan: str, *, dry_run: bool, report_dir: str | None) -> None:
    """``deploy --plan three-legged``: the legs, each a measured deploy; exit 1 unless all pass."""
    if plan != "three-legged":
        raise ConfigError(f"--plan takes three-legged, not {plan!r}")
    if dry_run:
        for leg in legs_of(cfg):
            for line in leg.describe():
                print(line)
        return
    folder = report_folder(cfg, report_dir, "deploy-legs")
    result = deploy_legs(cfg, folder, say=_say, stage=_stage, progress=_progress)
    print_legs(result)
    console.print(f"reports: {folder}")
    if not result.succeeded:
        stopped = result.stopped_at
        why = f"leg {stopped.leg}: {stopped.reason}" if stopped else "a leg did not succeed"
        raise Exit(f"cautious: three-legged plan stopped at {why}", code=1)


@task(help={"report_dir": _REPORT_HELP, "config": "path to cautious.yaml"})
@clean_errors
def rollback(c: Context, report_dir: str | None = None, config: str | None = None) -> None:
    """Roll the cluster back (under load, measured) to the release it ran before."""
    cfg = _load(config)
    pipeline = DeployPipeline(cfg, say=_say, stage=_stage)
    folder = report_folder(cfg, report_dir, "rollback")
    measured = _measuring(pipeline, folder, "rollback")
    _finish(pipeline.rollback(rollout=measured.hook), measured.result)


@task(
    iterable=["claim"],
    help={
        "url": "any HTTP server on loopback (default: the sandbox's lb_url)",
        "rate": "target requests per second (default: load.rate)",
        "workers": "Locust worker processes (default: load.workers; one holds ~1,000 req/s)",
        "duration": "seconds of load",
        "report_dir": _REPORT_HELP,
        "claim": _CLAIM_HELP,
        "config": "path to cautious.yaml",
    },
)
@clean_errors
def load(
    c: Context,
    url: str | None = None,
    rate: str | None = None,
    duration: str = "30",
    report_dir: str | None = None,
    config: str | None = None,  # before claim: -c is --config in every task
    claim: list[str] | None = None,
    workers: str | None = None,
) -> None:
    """Load any loopback URL, measure availability, judge the claims, write the report."""
    numbers = {"load.rate": _number("--rate", rate), "load.workers": _number("--workers", workers)}
    cfg = _load(config, **numbers, **_claim_overrides(claim))
    seconds = finite_number("--duration", duration, low=1, high=_MAX_LOAD_S, unit=" s")
    target = url or Sandbox(cfg, say=_say).status().lb_url
    if target is None:
        raise ConfigError("no --url given and the sandbox is not running; pass --url")
    folder = report_folder(cfg, report_dir, "load")
    with _stage(f"load {target} at {cfg.load.rate:g} req/s for {seconds:g} s"):
        measured = measured_load(cfg, target, cfg.load.rate, seconds, folder, progress=_progress)
    _verdict(measured)


@task(help={"path": "a report.json, or the folder holding it"})
@clean_errors
def report(c: Context, path: str) -> None:
    """Re-render report.md, junit.xml and report.html from a report.json (a deploy's, a
    load's or a game day's)."""
    for written in render_folder(path).rendered.values():
        print(written)


@task(
    help={
        "results_dir": "where bench-<timestamp>.json goes (default: bench/results)",
        "judge": "calibrate the canary judge by simulation instead (a few minutes)",
        "config": "path to cautious.yaml (--judge: its canary section; default: the defaults)",
        "workers": "compare Locust's capacity in one process with N worker processes "
        "instead (about five minutes)",
    }
)
@clean_errors
def bench(
    c: Context,
    results_dir: str = "bench/results",
    judge: bool = False,
    config: str | None = None,
    workers: str | None = None,
) -> None:
    """Benchmarks: the load generator and the measurement's overhead, or (--judge) the judge,
    or (--workers N) one Locust process against N."""
    if workers is not None:
        _bench_workers(results_dir, workers)
        return
    if judge:
        from cautious.judges.calibration import render_calibration, run_calibration

        canary = _load(config).canary if config else None
        with _stage("judge calibration (a few minutes)"):
            calibration = run_calibration(results_dir, canary=canary)
        print(render_calibration(calibration))
        return
    from cautious.bench import render_bench, run_bench

    with _stage("bench (about a minute)"):
        result = run_bench(results_dir=results_dir)
    print(render_bench(result))


def _bench_workers(results_dir: str, workers: str) -> None:
    from cautious.bench import render_capacity, run_capacity_bench

    count = _number("--workers", workers)
    if count is None or count != int(count) or not 2 <= count <= MAX_WORKERS:
        raise ConfigError(
            f"--workers takes a whole number from 2 to {MAX_WORKERS}, not {workers!r}"
        )
    with _stage(f"load capacity: 1 process against {int(count)} workers (about five minutes)"):
        result = run_capacity_bench(results_dir, workers=int(count))
    print(render_capacity(result))


@dataclass
class _Measuring:
    """The deploy's rollout hook, keeping the measurement it made."""

    hook: RolloutHook
    result: Measured | None = None


def _measuring(pipeline: DeployPipeline, folder: Path, command: str) -> _Measuring:
    state = _Measuring(hook=pipeline.run_rollout)
    measured: list[Measured] = []
    measure = measuring_hook(pipeline, folder, command, measured, progress=_progress)

    def hook(prepared: Prepared, kind: str) -> RolloutResult:
        result = measure(prepared, kind)
        state.result = measured[-1] if measured else None
        if not result.succeeded and _live:
            _live[-1].failed_as = result.outcome  # the stage must not print ✓
        return result

    state.hook = hook
    return state


def _claim_overrides(claims: list[str] | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in claims or []:
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise ConfigError(
                f"--claim takes NAME=VALUE (e.g. success_ratio=0.999), not {shorten(item)}"
            )
        overrides[f"claims.{name.strip()}"] = value.strip()
    return overrides


def _number(flag: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{flag} takes a number, not {shorten(value)}") from None


def _verdict(measured: Measured) -> None:
    table = Table(title=f"verdict: {measured.verdict}")
    for column in ("claim", "target", "measured", "verdict"):
        table.add_column(column)
    style = {"pass": "green", "fail": "red"}
    for result in measured.claims:
        colour = style.get(result.verdict, "yellow")
        table.add_row(
            claim_label(result.name),
            format_target(result.name, result.target),
            format_figure(result.name, result.measured),
            f"[{colour}]{result.verdict}[/{colour}]",
        )
    console.print(table)
    availability = measured.report["availability"]
    console.print(
        f"requests {availability['sent']} sent, {availability['failed']} failed, "
        f"{availability['missing']} missing; longest error window "
        f"{availability['longest_error_window_s']} s"
    )
    console.print(f"report: {measured.paths.json.parent}")
    if not measured.passed:
        reason = measured.report.get("verdict_reason") or "claims did not pass"
        raise Exit(f"cautious: verdict {measured.verdict}: {reason}", code=1)


def _finish(result: RolloutResult | None, measured: Measured | None = None) -> None:
    if result is None:
        return
    console.print(
        f"rollout {result.id}: [bold]{result.outcome}[/bold] "
        f"({result.from_release.label} → {result.to_release.label}, "
        f"{result.ended - result.started:.1f} s)"
    )
    for item in result.instances:
        _say(f"{item.name}: {item.release} ({item.state})")
    if result.longest_without_capacity_s > 0:
        console.print(
            f"[yellow]outage:[/yellow] no instance was in rotation for "
            f"{result.longest_without_capacity_s:.1f} s"
        )
    if not result.succeeded:
        if measured is not None:
            console.print(f"report: {measured.paths.json.parent}")
        raise Exit(f"cautious: rollout {result.outcome}: {result.reason}", code=1)
    if measured is not None:
        _verdict(measured)


@task(
    help={
        "json": "machine-readable output",
        "startup": "the distribution of instance start-up times across rollouts",
        "projection": "expected downtime, failed requests and error budget per month and year",
        "deploys_per_day": "with --projection: how often you deploy (default 10)",
        "config": "path to cautious.yaml",
    }
)
@clean_errors
def history(
    c: Context,
    json_: bool = False,
    startup: bool = False,
    projection: bool = False,
    deploys_per_day: str = "10",
    config: str | None = None,
) -> None:
    """The journal: every rollout, who, what, outcome (or start-up times, or the projection)."""
    cfg = _load(config)
    journal = Sandbox(cfg, say=_say).journal
    rollouts = journal.rollouts()
    if projection:
        per_day = _number("--deploys-per-day", deploys_per_day)
        if per_day is None or per_day <= 0:
            raise ConfigError(f"--deploys-per-day takes a positive number, not {deploys_per_day}")
        print_projection(cfg, journal, per_day, json_)
        return
    if startup:
        _print_startup(startup_stats(rollouts), json_)
        if not json_:
            print_tail_warnings(cfg, journal)
        return
    rows = [record.summary() for record in rollouts]
    if json_:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"rollouts on {cfg.cluster.name}")
    for column in ("id", "who", "kind", "strategy", "from → to", "outcome", "s"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold")
    for row in rows:
        table.add_row(
            row["id"],
            row["who"],
            row["kind"],
            row["strategy"],
            f"{row['from']} → {row['to']}",
            row["outcome"],
            str(row["duration_s"] or ""),
            row["reason"][:80],
        )
    console.print(table)


def _print_startup(stats: list[StartupStats], as_json: bool) -> None:
    if as_json:
        print(json.dumps([asdict(item) for item in stats], indent=2))
        return
    table = Table(title="time to ready, per release (s)")
    for column in ("release", "count", "min", "median", "p90", "p99", "max"):
        table.add_column(column)
    for item in stats:
        table.add_row(
            item.release,
            str(item.count),
            *(
                f"{value:.2f}"
                for value in (item.min_s, item.median_s, item.p90_s, item.p99_s, item.max_s)
            ),
        )
    console.print(table)


def _print_status(current: SandboxStatus) -> None:
    table = Table(title=f"cluster {current.cluster} ({current.backend})")
    on_hosts = any(row.host for row in current.instances)  # ssh: which files each host runs
    columns = ["instance", "release", "state", "health", "LB", "weight", "address"]
    for column in columns + (["host", "current →"] if on_hosts else []):
        table.add_column(column)
    for row in current.instances:
        cells = [
            row.name,
            row.release,
            row.state,
            row.health,
            row.lb_state,
            str(row.lb_weight),
            row.address,
        ]
        table.add_row(*cells, *([row.host, row.release_dir] if on_hosts else []))
    console.print(table)
    console.print(f"lb_url: {current.lb_url or '(no load balancer running)'}")


# -- tests ---------------------------------------------------------------------------------------


_MAX_REPEAT = 1_000
# Most of a Docker test is waiting (readiness, bakes, load at a fixed rate): two processes halve
# the suite's wall time on a 2-core machine without crowding the load generators.
_DEFAULT_JOBS = 2
_MAX_JOBS = 16


@task(
    help={
        "k": "only tests matching this pytest -k expression",
        "unit": "only the unit tests (no Docker, seconds)",
        "docker": "include the tests that need a Docker engine (--no-docker leaves them out)",
        "repeat": "run each selected test N times (finds flaky tests), e.g. --repeat 20",
        "jobs": f"test files run side by side in N processes (default {_DEFAULT_JOBS}; 1: one)",
    }
)
@clean_errors
def test(
    c: Context,
    k: str | None = None,
    unit: bool = False,
    docker: bool = True,
    repeat: str | None = None,
    jobs: str | None = None,
) -> None:
    """Run the test suite (unit, integration, Docker, sample service)."""
    count = _whole_number("--repeat", repeat)
    if count is not None and not 1 <= count <= _MAX_REPEAT:
        raise ConfigError(f"--repeat takes a whole number from 1 to {_MAX_REPEAT}, not {repeat!r}")
    processes = _whole_number("--jobs", jobs)
    processes = _DEFAULT_JOBS if processes is None else processes
    if not 1 <= processes <= _MAX_JOBS:
        raise ConfigError(f"--jobs takes a whole number from 1 to {_MAX_JOBS}, not {jobs!r}")
    arguments = [
        "tests/unit" if unit else "",
        f"-k {json.dumps(k)}" if k else "",
        "" if docker else '-m "not docker"',
        f"--count {count}" if count and count > 1 else "",
        # Whole files per process: a file's module fixtures (one cluster for its tests) stay put.
        f"-n {processes} --dist loadfile" if processes > 1 else "",
    ]
    result = c.run(
        " ".join([sys.executable, "-m", "pytest", *filter(None, arguments)]),
        warn=True,
        pty=False,
        in_stream=False,
    )
    code = result.exited if result is not None else 1
    if code == PYTEST_NO_TESTS:
        raise Exit("cautious: pytest collected no tests; check the -k expression", code=1)
    if code:
        raise Exit(code=code)


sandbox_tasks = Collection("sandbox", up, status, down)
ns = Collection(
    config,
    build,
    deploy,
    rollback,
    history,
    audit,
    load,
    report,
    bench,
    gameday,
    test,
    sandbox_tasks,
    chaos_ns,
)
