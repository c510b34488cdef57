"""Benchmarks of the measuring instrument itself: can the load generator hold its target rate,
and what does turning a request log into availability cost?

A shortfall of the load generator is counted as *missing* requests by the availability
module, so a generator that cannot keep its rate would fail a claim on a perfect deployment.
The bench therefore runs the shipped locustfile against a target that costs nearly nothing
(HAProxy answering by itself with ``http-request return``, one thread, on 127.0.0.1) and
reports achieved / target rate, the worst second, and Locust's own CPU use. Every ratio is
taken within one run; the machine is shared, so compare runs only loosely.

Two more rows answer "does it scale": the measurement of a million logged requests (time and
peak memory of the process that measures, a subprocess of its own so its peak is its own),
and, with :func:`run_capacity_bench`, Locust's capacity in one process against that of
``load.workers`` processes (distributed mode), side by side at the same targets.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from cautious.exceptions import PrerequisiteError, SandboxError
from cautious.measure.availability import availability_of_logs
from cautious.measure.load import (
    DEFAULT_LOCUSTFILE,
    free_loopback_port,
    recommended_users,
    run_load,
)
from cautious.measure.requestlog import FIELDS

__all__ = [
    "BenchResult",
    "CapacityResult",
    "LoadBench",
    "MeasurementBench",
    "haproxy_target",
    "main",
    "render_bench",
    "render_capacity",
    "run_bench",
    "run_capacity_bench",
]

_HAPROXY_CONFIG = """\
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend bench
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string ok \
hdr X-Instance bench-haproxy hdr X-Release bench
"""

# HttpUser (requests) with the same staggered pacing as sandbox/locustfile.py, to show why
# the shipped locustfile uses FastHttpUser.
_HTTP_USER_LOCUSTFILE = """\
import itertools
import os
import time

import gevent
from locust import HttpUser, task

RATE = float(os.environ["CAUTIOUS_RATE"])
USERS = int(os.environ["CAUTIOUS_USERS"])
TIMEOUT_S = float(os.environ["CAUTIOUS_TIMEOUT_S"])
_user_ids = itertools.count()


class RequestsUser(HttpUser):
    _due = 0.0

    def on_start(self):
        self._due = time.monotonic() + (next(_user_ids) % USERS) / RATE
        gevent.sleep(max(0.0, self._due - time.monotonic()))

    def wait_time(self):
        now = time.monotonic()
        self._due = max(self._due + USERS / RATE, now)
        return self._due - now

    @task
    def index(self):
        self.client.get("/", timeout=TIMEOUT_S)
"""

_START_DEADLINE_S = 5.0
_MEASURED_ROWS = 1_000_000
_MEASURED_RATE = 1_000  # req/s of the synthetic log: 1,000 seconds of load
_MEASURE_LIMIT_S = 10.0  # what a million requests may cost to measure
_MEASURE_LIMIT_MB = 500.0
_MEASURE_DEADLINE_S = 300.0  # the measuring subprocess is killed after this
_SYNTHETIC_CHUNK_ROWS = 50_000
# Capacity: a run holds its target when it achieves >= 95 % of it; beyond 90 % short of it a
# configuration is saturated and is not pushed harder.
_HOLDS = 0.95
_SATURATED = 0.90
_SCALE_GOAL = 1.5  # N workers should hold 1.5 x what one process can send at most


@dataclass(frozen=True)
class LoadBench:
    """One load run against the bench target, judged over its whole seconds.

    ``locust_cpu_s`` counts every Locust process of the run (master and workers);
    ``loadavg_1m`` is the machine's load average as the run ended (a shared machine: a high
    one means other work took CPU the load generator would have used).
    """

    user_class: str
    target_rate: float
    users: int
    workers: int
    duration_s: int
    seconds_measured: int
    achieved_rate: float
    ratio: float
    worst_second_rate: int
    worst_second_ratio: float
    sent: int
    failed: int
    success_ratio: float | None
    p50_ms: float | None
    p99_ms: float | None
    locust_cpu_s: float
    locust_cpu_share_of_core: float
    locust_cpu_us_per_request: float | None
    per_second_sent: tuple[int, ...]
    loadavg_1m: float


@dataclass(frozen=True)
class MeasurementBench:
    """Availability of a synthetic request log, measured in a process of its own.

    ``wall_s`` and ``cpu_s`` cover reading the log and computing every figure;
    ``peak_rss_mb`` is that process's peak resident memory (the interpreter and numpy
    included, ``baseline_rss_mb`` of it before the log was read). ``within_limits``: under
    10 s and 500 MB.
    """

    rows: int
    file_bytes: int
    seconds: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    baseline_rss_mb: float
    per_100k_rows_s: float
    within_limits: bool


@dataclass(frozen=True)
class BenchResult:
    """Everything one ``invoke bench`` measured, and where the JSON went."""

    path: Path
    started: str
    machine: dict[str, str | int | float | None]
    load: tuple[LoadBench, ...]
    measurement: MeasurementBench


@dataclass(frozen=True)
class CapacityResult:
    """One process against ``workers`` processes at the same targets, and the scaling check.

    ``single_rate`` is the most one process achieved at any target (its capacity: the bench
    pushes it until it falls 10 % short); ``check`` is the run of ``workers`` processes at
    1.5 x that, which ``scaled`` says achieved at least 95 % of its target.
    """

    path: Path
    table: Path
    started: str
    machine: dict[str, str | int | float | None]
    workers: int
    runs: tuple[LoadBench, ...]
    single_rate: float
    single_saturated: bool
    check: LoadBench
    scaled: bool


def _wait_listening(
    port: int, process: subprocess.Popen[bytes], log: Path, deadline_s: float
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = log.read_text(encoding="utf-8", errors="replace").strip()[-500:]
            raise SandboxError(f"haproxy exited with code {process.returncode} at start: {said}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SandboxError(f"haproxy did not listen on 127.0.0.1:{port} within {deadline_s:g} s")


@contextmanager
def haproxy_target(workdir: Path) -> Iterator[str]:
    """A near-free HTTP target on 127.0.0.1: HAProxy answering 200 itself. Yields its URL."""
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        raise PrerequisiteError("haproxy not found; install it (apt-get install haproxy)")
    port = free_loopback_port()
    config = workdir / "haproxy.cfg"
    config.write_text(_HAPROXY_CONFIG.format(port=port), encoding="utf-8")
    log_path = workdir / "haproxy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_listening(port, process, log_path, _START_DEADLINE_S)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def _bench_target(prefix: str) -> Iterator[tuple[Path, str]]:
    """A scratch folder and the static HAProxy endpoint serving from it, both gone after."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, haproxy_target(Path(tmp)) as url:
        yield Path(tmp), url


def _bench_load(
    url: str,
    user_class: str,
    locustfile: Path,
    rate: float,
    duration_s: float,
    workdir: Path,
    workers: int = 1,
) -> LoadBench:
    users = recommended_users(rate)
    out = workdir / f"{user_class}-{rate:g}-x{workers}"
    run = run_load(
        url, rate, duration_s, users, 2.0, out, locustfile=locustfile, workers=workers
    ).check()
    availability = availability_of_logs([run.request_log], target_rate=rate)
    per_second = [row.sent for row in availability.per_second]
    if not per_second:
        raise SandboxError(f"{user_class} at {rate:g} req/s logged no whole second; see {out}")
    achieved = sum(per_second) / len(per_second)
    wall_s = max(run.ended - run.started, 1e-9)
    logged = availability.sent
    return LoadBench(
        user_class=user_class,
        target_rate=rate,
        users=users,
        workers=workers,
        duration_s=run.duration_s,
        seconds_measured=len(per_second),
        achieved_rate=round(achieved, 1),
        ratio=round(achieved / rate, 4),
        worst_second_rate=min(per_second),
        worst_second_ratio=round(min(per_second) / rate, 4),
        sent=availability.sent,
        failed=availability.failed,
        success_ratio=availability.success_ratio,
        p50_ms=availability.p50_ms,
        p99_ms=availability.p99_ms,
        locust_cpu_s=round(run.cpu_s, 2),
        locust_cpu_share_of_core=round(run.cpu_s / wall_s, 3),
        locust_cpu_us_per_request=round(run.cpu_s / logged * 1e6, 1) if logged else None,
        per_second_sent=tuple(per_second),
        loadavg_1m=round(os.getloadavg()[0], 2),
    )


def write_synthetic_log(path: Path, rows: int, rate: int) -> None:
    """A request log shaped like a rollout: three instances, two releases, 1 % connection
    errors, written the way the Locust plugin writes it (formatted in bulk: a million rows
    take seconds, not the minute that one record object per row would)."""
    t0 = 1_700_000_000.0
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write(",".join(FIELDS) + "\n")
        for first in range(0, rows, _SYNTHETIC_CHUNK_ROWS):
            lines = []
            for i in range(first, min(rows, first + _SYNTHETIC_CHUNK_ROWS)):
                start = f"{t0 + i / rate:.6f}"
                latency = f"{5.0 + (i * 7919 % 300) / 10:.3f}"
                method = "POST" if i % 7 == 0 else "GET"
                if i % 100 == 0:
                    tail = "0,{},/items,[Errno 111] Connection refused,,"
                    lines.append(f"{start},{latency},{tail.format(method)}\n")
                else:
                    release = "v1" if i < rows // 2 else "v2"
                    lines.append(
                        f"{start},{latency},200,{method},/items,,app-{i % 3 + 1},{release}\n"
                    )
            file.write("".join(lines))


def _bench_measurement(workdir: Path) -> MeasurementBench:
    """A million requests measured by a fresh ``python -m cautious.bench --measure`` process."""
    path = workdir / "synthetic-requests.csv"
    write_synthetic_log(path, _MEASURED_ROWS, _MEASURED_RATE)
    command = [sys.executable, "-m", "cautious.bench", "--measure", str(path)]
    try:
        done = subprocess.run(
            [*command, str(_MEASURED_RATE)],
            capture_output=True,
            text=True,
            timeout=_MEASURE_DEADLINE_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(
            f"measuring {_MEASURED_ROWS:,} requests ran past {_MEASURE_DEADLINE_S:g} s"
        ) from None
    if done.returncode != 0:
        raise SandboxError(f"measuring the synthetic log failed: {done.stderr.strip()[-500:]}")
    figures = json.loads(done.stdout)
    wall_s = float(figures["wall_s"])
    peak = float(figures["peak_rss_mb"])
    return MeasurementBench(
        rows=_MEASURED_ROWS,
        file_bytes=path.stat().st_size,
        seconds=int(figures["seconds"]),
        wall_s=round(wall_s, 2),
        cpu_s=round(float(figures["cpu_s"]), 2),
        peak_rss_mb=round(peak, 1),
        baseline_rss_mb=round(float(figures["baseline_rss_mb"]), 1),
        per_100k_rows_s=round(wall_s * 100_000 / _MEASURED_ROWS, 3),
        within_limits=wall_s < _MEASURE_LIMIT_S and peak < _MEASURE_LIMIT_MB,
    )


def _measure_and_report(path: str, rate: float) -> None:
    """The measuring subprocess: availability of ``path``, then its own costs as JSON."""
    baseline_mb = _peak_rss_mb()
    wall = time.perf_counter()
    cpu = time.process_time()
    measured = availability_of_logs([path], target_rate=rate, slo=0.999)
    figures = {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": _peak_rss_mb(),
        "baseline_rss_mb": baseline_mb,
        "seconds": measured.seconds,
    }
    print(json.dumps(figures))


def _peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program.

    Not ``ru_maxrss``: Linux carries that over from the process that forked this one, so a
    big parent would show as this process's peak. ``VmHWM`` belongs to this program alone.
    """
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise SandboxError("no VmHWM in /proc/self/status: peak memory needs Linux")


def _machine(loadavg_before: float) -> dict[str, str | int | float | None]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "locust": version("locust"),
        "target": "haproxy http-request return, nbthread 1, 127.0.0.1",
        # The machine is shared: a high load average means the ratios understate the tool.
        "loadavg_1m_before": round(loadavg_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }


def run_bench(
    results_dir: str | os.PathLike[str] = "bench/results",
    rates: Sequence[float] = (200.0, 1_000.0),
    duration_s: float = 12.0,
    compare_http_user: bool = True,
) -> BenchResult:
    """Run the benchmarks and write ``bench-<UTC timestamp>.json`` into ``results_dir``.

    Each rate runs the shipped locustfile (FastHttpUser); ``compare_http_user`` adds a run of
    requests-based HttpUser at the highest rate. About ``duration_s + 5`` seconds per run.
    """
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    load_before = os.getloadavg()[0]
    runs: list[LoadBench] = []
    with _bench_target("cautious-bench-") as (workdir, url):
        for rate in rates:
            runs.append(
                _bench_load(url, "FastHttpUser", DEFAULT_LOCUSTFILE, rate, duration_s, workdir)
            )
        if compare_http_user and rates:
            http_file = workdir / "http_user_locustfile.py"
            http_file.write_text(_HTTP_USER_LOCUSTFILE, encoding="utf-8")
            runs.append(_bench_load(url, "HttpUser", http_file, max(rates), duration_s, workdir))
        measurement = _bench_measurement(workdir)
    machine = _machine(load_before)
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{started}.json"
    result = BenchResult(path, started, machine, tuple(runs), measurement)
    document = {
        "schema_version": 2,
        "started": started,
        "machine": machine,
        "load": [asdict(run) for run in runs],
        "measurement": asdict(measurement),
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return result


def render_bench(result: BenchResult) -> str:
    """A short plain-text table (fits a terminal and a CI log)."""
    lines = [
        f"{'user class':<13} {'target':>7} {'users':>5} {'achieved':>9} {'ratio':>6} "
        f"{'worst s':>8} {'p99 ms':>7} {'locust CPU':>10}",
    ]
    for run in result.load:
        p99 = f"{run.p99_ms:.0f}" if run.p99_ms is not None else "-"
        lines.append(
            f"{run.user_class:<13} {run.target_rate:>7g} {run.users:>5} "
            f"{run.achieved_rate:>9.1f} {run.ratio:>6.1%} {run.worst_second_ratio:>8.1%} "
            f"{p99:>7} {run.locust_cpu_share_of_core:>9.0%}"
        )
    lines.append(_measurement_line(result.measurement))
    lines.append(
        f"load average (1 min) {result.machine['loadavg_1m_before']} before, "
        f"{result.machine['loadavg_1m_after']} after; results: {result.path}"
    )
    return "\n".join(lines)


def _measurement_line(measured: MeasurementBench) -> str:
    verdict = "within" if measured.within_limits else "OVER"
    return (
        f"measurement: {measured.rows:,} requests ({measured.file_bytes / 1e6:.0f} MB of log, "
        f"{measured.seconds:,} s of load) in {measured.wall_s:.2f} s "
        f"({measured.cpu_s:.2f} s CPU), peak {measured.peak_rss_mb:.0f} MB "
        f"({measured.baseline_rss_mb:.0f} MB before reading): {verdict} 10 s and 500 MB"
    )


def run_capacity_bench(
    results_dir: str | os.PathLike[str] = "bench/results",
    workers: int = 2,
    rates: Sequence[float] = (1_000.0, 2_000.0, 3_000.0, 4_000.0, 5_000.0),
    duration_s: float = 15.0,
) -> CapacityResult:
    """Locust in one process against ``workers`` processes, at the same targets.

    Each configuration climbs ``rates`` until it falls 10 % short (saturated). One process's
    capacity is the most it achieved; then ``workers`` processes run at 1.5 x that. Writes
    ``capacity-<UTC timestamp>.json`` and the table as ``.md`` into ``results_dir``. About
    ``duration_s + 10`` seconds per run, a dozen runs.
    """
    if workers < 2:
        raise ValueError(f"compare one process with 2 or more workers, not {workers}")
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    load_before = os.getloadavg()[0]
    runs: list[LoadBench] = []
    with _bench_target("cautious-capacity-") as (workdir, url):

        def bench(rate: float, count: int) -> LoadBench:
            run = _bench_load(
                url, "FastHttpUser", DEFAULT_LOCUSTFILE, rate, duration_s, workdir, count
            )
            runs.append(run)
            return run

        saturated: set[int] = set()
        for rate in rates:
            for count in (1, workers):
                if count not in saturated and bench(rate, count).ratio < _SATURATED:
                    saturated.add(count)
        single = max(run.achieved_rate for run in runs if run.workers == 1)
        target = float(math.ceil(_SCALE_GOAL * single / 10) * 10)
        check = next(
            (r for r in runs if r.workers == workers and r.target_rate == target), None
        ) or bench(target, workers)
    machine = _machine(load_before)
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"capacity-{started}.json"
    result = CapacityResult(
        path=path,
        table=path.with_suffix(".md"),
        started=started,
        machine=machine,
        workers=workers,
        runs=tuple(runs),
        single_rate=single,
        single_saturated=1 in saturated,
        check=check,
        scaled=check.ratio >= _HOLDS,
    )
    document = {
        "schema_version": 1,
        "started": started,
        "machine": machine,
        "workers": workers,
        "single_process_rate": single,
        "single_process_saturated": result.single_saturated,
        "check": asdict(check),
        "scaled": result.scaled,
        "runs": [asdict(run) for run in runs],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    result.table.write_text(render_capacity(result) + "\n", encoding="utf-8")
    return result


def render_capacity(result: CapacityResult) -> str:
    """Achieved against target for one process and for N, side by side (a Markdown table)."""
    n = result.workers
    by_key = {(run.target_rate, run.workers): run for run in result.runs}

    def cell(run: LoadBench | None) -> str:
        if run is None:
            return "(saturated below)"
        return (
            f"{run.achieved_rate:,.0f} ({run.ratio:.1%}, worst s {run.worst_second_ratio:.0%}, "
            f"CPU {run.locust_cpu_share_of_core:.0%}, load {run.loadavg_1m:g})"
        )

    lines = [
        f"| target req/s | 1 process: achieved (ratio, worst second, Locust CPU, load average) "
        f"| {n} workers |",
        "|---:|---|---|",
    ]
    for target in sorted({run.target_rate for run in result.runs}):
        lines.append(
            f"| {target:,.0f} | {cell(by_key.get((target, 1)))} | {cell(by_key.get((target, n)))} |"
        )
    check = result.check
    saturated = "" if result.single_saturated else " (never saturated: a lower bound)"
    lines += [
        "",
        f"One process: at most {result.single_rate:,.0f} req/s{saturated}. {n} workers at "
        f"1.5 x that ({check.target_rate:,.0f} req/s): {check.achieved_rate:,.0f} req/s, "
        f"{check.ratio:.1%} of target = {check.achieved_rate / result.single_rate:.2f} x one "
        f"process: {'holds' if result.scaled else 'does NOT hold'} (goal: >= 95 % of target).",
        f"Load average (1 min) {result.machine['loadavg_1m_before']} before, "
        f"{result.machine['loadavg_1m_after']} after, {result.machine['cpus']} CPUs shared "
        "with HAProxy; results: " + str(result.path),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m cautious.bench``: run with defaults and print the table.

    ``--measure LOG RATE`` is the measuring subprocess of the bench's measurement row.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--measure"] and len(args) == 3:
        _measure_and_report(args[1], float(args[2]))
        return
    print(render_bench(run_bench()))


if __name__ == "__main__":
    main()
