"""Measure: load around the work, then availability → claims → verdict → report folder.

``measured_rollout`` wraps a rollout: Locust starts first (a warm-up so the steady state is on
record), the rollout runs, load goes on for a tail, then the request log becomes availability
figures split into before / during / after, the claims are judged, and report.json, report.md,
junit.xml and report.html are written. ``measured_load`` does the same for any loopback URL.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cautious.config import Config
from cautious.exceptions import SandboxError
from cautious.measure.availability import availability_of_logs
from cautious.measure.claims import ClaimResult, evaluate_claims
from cautious.measure.load import REQUEST_LOG_NAME, LoadHandle, start_load
from cautious.measure.projection import MEASURED_NOTE, DeployFigures
from cautious.measure.readwrite import read_only_window, read_write_stats
from cautious.measure.requestlog import iter_request_log
from cautious.measure.shadow import (
    SHADOW_LOG_ENV,
    SHADOW_LOG_NAME,
    SHADOW_PLUGIN,
    SHADOW_SAMPLE_ENV,
    SHADOW_TARGET_ENV,
    SHADOW_TARGET_NAME,
)
from cautious.report.document import ReportDocument, ReportPaths, build_report, write_report
from cautious.rollout.journal import Journal
from cautious.rollout.runner import RolloutResult

if TYPE_CHECKING:  # the deploy chain calls measurement, never the other way round at run time
    from cautious.deploy import DeployPipeline, Prepared, RolloutHook

__all__ = [
    "Measured",
    "default_report_dir",
    "measured_load",
    "measured_rollout",
    "measuring_hook",
    "request_log_path",
]

_LONGEST_LOAD_S = 3_600  # the rollout stops the load itself; this only bounds a runaway
_TICK_S = 1.0


@dataclass(frozen=True)
class Measured:
    """A finished measurement: the verdict, the figures behind it, and where the files are."""

    verdict: str
    report: dict[str, Any]
    paths: ReportPaths
    claims: list[ClaimResult]

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


def default_report_dir(config: Config, command: str) -> Path:
    """``<reports_dir>/<UTC timestamp>-<command>``: one folder per run, sorted by time."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return config.path(config.reports_dir) / f"{stamp}-{command}"


def measured_rollout(
    config: Config,
    url: str,
    report_dir: Path,
    rollout: Callable[[Callable[[str], None]], RolloutResult],
    *,
    command: str = "deploy",
    progress: Callable[[str], None] = lambda _: None,
    journal: Journal | None = None,
) -> tuple[RolloutResult, Measured]:
    """Run ``rollout(on_step)`` under load and measure it; with ``journal``, record what the
    deploy cost there (error seconds, failed requests, rollout time: the downtime projection's
    input)."""
    load = config.load
    with _load(config, url, report_dir) as handle, _ticker(handle, progress) as set_step:
        set_step("warm-up")
        handle.wait_until_sending()
        _wait(load.warmup_s, handle)
        result = rollout(set_step)
        set_step("tail")
        _wait(load.tail_s, handle)
        run = handle.stop()
    run.check()
    availability = availability_of_logs(
        [run.request_log],
        target_rate=load.rate,
        slo=config.claims.success_ratio,
        rollout_start=result.started,
        rollout_end=result.ended,
    )
    window = read_only_window(result.steps)
    read_write = read_write_stats(iter_request_log(run.request_log), window) if window else None
    claims = evaluate_claims(config.claims, availability, read_write)
    document = build_report(
        command=command,
        availability=availability,
        claims=claims,
        rollout=result.summary(),
        context={
            "cluster": config.cluster.name,
            "lb_url": url,
            "rate": load.rate,
            "users": load.users,
            "rollout_id": result.id,
            "from_digest": result.from_release.digest,
            "to_digest": result.to_release.digest,
            "git_sha": result.to_release.git_sha,
            **(read_write.context() if read_write else {}),
        },
    )
    if journal is not None:
        figures = DeployFigures(
            rollout_id=result.id,
            error_s=availability.seconds_with_errors,
            failed=availability.failed + availability.missing,
            requests=availability.sent + availability.missing,
            window_s=availability.seconds,
            rollout_s=result.ended - result.started,
        )
        journal.note(MEASURED_NOTE, **figures.to_dict())
    return result, _written(document, report_dir, claims)


def measured_load(
    config: Config,
    url: str,
    rate: float,
    duration_s: float,
    report_dir: Path,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> Measured:
    """Load any loopback URL for ``duration_s`` and judge the claims on what came back."""
    load = config.load.model_copy(update={"rate": rate})
    cfg = config.model_copy(update={"load": load})
    with _load(cfg, url, report_dir) as handle, _ticker(handle, progress) as set_step:
        set_step("load")
        handle.wait_until_sending()
        _wait(duration_s, handle)
        run = handle.stop()
    run.check()
    availability = availability_of_logs(
        [run.request_log], target_rate=rate, slo=config.claims.success_ratio
    )
    claims = evaluate_claims(config.claims, availability)
    document = build_report(
        command="load",
        availability=availability,
        claims=claims,
        context={"url": url, "rate": rate, "users": load.users, "duration_s": duration_s},
    )
    return _written(document, report_dir, claims)


def _written(document: ReportDocument, report_dir: Path, claims: list[ClaimResult]) -> Measured:
    paths = write_report(document, report_dir)
    report = json.loads(paths.json.read_text(encoding="utf-8"))
    return Measured(document.verdict, report, paths, claims)


def _load(config: Config, url: str, report_dir: Path) -> LoadHandle:
    load = config.load
    out = request_log_path(report_dir).parent
    shadow = config.canary.shadow
    return start_load(
        url,
        rate=load.rate,
        duration_s=_LONGEST_LOAD_S,
        users=load.users,
        timeout_s=load.timeout_s,
        out_dir=out,
        locustfile=config.path(load.locustfile),
        workers=load.workers,
        plugins=(SHADOW_PLUGIN,) if shadow else (),
        extra_env=_shadow_env(out, config.canary.shadow_sample) if shadow else None,
    )


def _shadow_env(out: Path, sample: float) -> dict[str, str]:
    """Where the mirror plugin finds the candidate (written by the shadow gate) and logs."""
    out.mkdir(parents=True, exist_ok=True)
    (out / SHADOW_TARGET_NAME).write_text("", encoding="utf-8")
    return {
        SHADOW_TARGET_ENV: str(out / SHADOW_TARGET_NAME),
        SHADOW_LOG_ENV: str(out / SHADOW_LOG_NAME),
        SHADOW_SAMPLE_ENV: repr(sample),
    }


def measuring_hook(
    pipeline: DeployPipeline,
    folder: Path,
    command: str,
    measured: list[Measured],
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> RolloutHook:
    """A deploy's rollout hook that runs the prepared rollout under load, measured into
    ``folder`` and journaled; each measurement is appended to ``measured``."""

    def hook(prepared: Prepared, kind: str) -> RolloutResult:
        url = pipeline.sandbox.status().lb_url
        if url is None:
            raise SandboxError("the sandbox has no load balancer to send load through")
        result, measurement = measured_rollout(
            pipeline.config,
            url,
            folder,
            lambda on_step: pipeline.run_rollout(
                prepared, kind, on_step=on_step, request_logs=(request_log_path(folder),)
            ),
            command=command,
            progress=progress,
            journal=pipeline.journal,
        )
        measured.append(measurement)
        return result

    return hook


def request_log_path(report_dir: Path) -> Path:
    """Where a measured run's load writes its request log (the canary gate follows it live)."""
    return report_dir / "load" / REQUEST_LOG_NAME


def _wait(seconds: float, handle: LoadHandle) -> None:
    """Let the load run for ``seconds`` (bounded; stops early if Locust died)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and handle.running:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


@contextmanager
def _ticker(handle: LoadHandle, progress: Callable[[str], None]) -> Iterator[Callable[[str], None]]:
    """A background line once a second: elapsed, rate, errors — and the current step."""
    step = ["starting"]
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(_TICK_S):
            progress(f"{handle.progress().line(handle.target_rate)} | {step[0]}")

    thread = threading.Thread(target=tick, name="cautious-progress", daemon=True)
    thread.start()
    try:
        yield lambda text: step.__setitem__(0, text)
    finally:
        stop.set()
        thread.join(timeout=5)
