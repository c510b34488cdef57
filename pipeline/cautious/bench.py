"""Benchmarks of the measuring instrument itself: can the load generator hold its target rate,
and what does turning a request log into availability cost?

A shortfall of the load generator is counted as *missing* requests by the availability
module, so a generator that cannot keep its rate would fail a claim on a perfect deployment.
The bench therefore runs the shipped locustfile against a target that costs nearly nothing
(HAProxy answering by itself with ``http-request return``, one thread, on 127.0.0.1) and
reports achieved / target rate, the worst second, and Locust's own CPU use. Every ratio is
taken within one run; the machine is shared, so compare runs only loosely.
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
from cautious.measure.availability import compute_availability
from cautious.measure.load import DEFAULT_LOCUSTFILE, recommended_users, run_load
from cautious.measure.requestlog import RequestRecord, read_request_log, write_request_log

__all__ = [
    "BenchResult",
    "LoadBench",
    "OverheadBench",
    "haproxy_target",
    "main",
    "render_bench",
    "run_bench",
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
_OVERHEAD_ROWS = 100_000
_OVERHEAD_REPEATS = 3


@dataclass(frozen=True)
class LoadBench:
    """One load run against the bench target, judged over its whole seconds."""

    user_class: str
    target_rate: float
    users: int
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


@dataclass(frozen=True)
class OverheadBench:
    """Seconds to parse a request log and compute availability, scaled to 100k rows."""

    rows: int
    file_bytes: int
    read_s: float
    compute_s: float
    per_100k_rows_s: float


@dataclass(frozen=True)
class BenchResult:
    """Everything one ``invoke bench`` measured, and where the JSON went."""

    path: Path
    started: str
    machine: dict[str, str | int | float | None]
    load: tuple[LoadBench, ...]
    overhead: OverheadBench


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
    port = _free_port()
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


def _bench_load(
    url: str, user_class: str, locustfile: Path, rate: float, duration_s: float, workdir: Path
) -> LoadBench:
    users = recommended_users(rate)
    out = workdir / f"{user_class}-{rate:g}"
    run = run_load(url, rate, duration_s, users, 2.0, out, locustfile=locustfile).check()
    records = read_request_log(run.request_log)
    availability = compute_availability(records, target_rate=rate)
    per_second = [row.sent for row in availability.per_second]
    if not per_second:
        raise SandboxError(f"{user_class} at {rate:g} req/s logged no whole second; see {out}")
    achieved = sum(per_second) / len(per_second)
    wall_s = max(run.ended - run.started, 1e-9)
    return LoadBench(
        user_class=user_class,
        target_rate=rate,
        users=users,
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
        locust_cpu_us_per_request=round(run.cpu_s / len(records) * 1e6, 1) if records else None,
        per_second_sent=tuple(per_second),
    )


def _synthetic_log(rows: int, rate: int) -> Iterator[RequestRecord]:
    """A request log shaped like a rollout: three instances, two releases, 1 % failures."""
    t0 = 1_700_000_000.0
    for i in range(rows):
        failed = i % 100 == 0
        yield RequestRecord(
            start=t0 + i / rate,
            latency_ms=5.0 + (i * 7919 % 300) / 10,
            status=0 if failed else 200,
            method="POST" if i % 7 == 0 else "GET",
            name="/items",
            error="[Errno 111] Connection refused" if failed else "",
            instance="" if failed else f"app-{i % 3 + 1}",
            release="" if failed else ("v1" if i < rows // 2 else "v2"),
        )


def _bench_overhead(workdir: Path) -> OverheadBench:
    """Best of a few repeats, so a neighbour's burst of CPU does not count as our cost."""
    path = workdir / "synthetic-requests.csv"
    write_request_log(path, _synthetic_log(_OVERHEAD_ROWS, rate=1_000))
    best_read = best_compute = math.inf
    for _ in range(_OVERHEAD_REPEATS):
        began = time.perf_counter()
        records = read_request_log(path)
        read_done = time.perf_counter()
        compute_availability(records, target_rate=1_000, slo=0.999)
        best_read = min(best_read, read_done - began)
        best_compute = min(best_compute, time.perf_counter() - read_done)
    scale = 100_000 / _OVERHEAD_ROWS
    return OverheadBench(
        rows=_OVERHEAD_ROWS,
        file_bytes=path.stat().st_size,
        read_s=round(best_read, 3),
        compute_s=round(best_compute, 3),
        per_100k_rows_s=round((best_read + best_compute) * scale, 3),
    )


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
    with tempfile.TemporaryDirectory(prefix="cautious-bench-") as tmp:
        workdir = Path(tmp)
        with haproxy_target(workdir) as url:
            for rate in rates:
                runs.append(
                    _bench_load(url, "FastHttpUser", DEFAULT_LOCUSTFILE, rate, duration_s, workdir)
                )
            if compare_http_user and rates:
                http_file = workdir / "http_user_locustfile.py"
                http_file.write_text(_HTTP_USER_LOCUSTFILE, encoding="utf-8")
                runs.append(
                    _bench_load(url, "HttpUser", http_file, max(rates), duration_s, workdir)
                )
        overhead = _bench_overhead(workdir)
    machine: dict[str, str | int | float | None] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "locust": version("locust"),
        "target": "haproxy http-request return, nbthread 1, 127.0.0.1",
        # The machine is shared: a high load average means the ratios understate the tool.
        "loadavg_1m_before": round(load_before, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
    }
    out_dir = Path(results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{started}.json"
    result = BenchResult(path, started, machine, tuple(runs), overhead)
    document = {
        "schema_version": 1,
        "started": started,
        "machine": machine,
        "load": [asdict(run) for run in runs],
        "measurement_overhead": asdict(overhead),
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
    overhead = result.overhead
    lines.append(
        f"measurement overhead: {overhead.per_100k_rows_s:.2f} s per 100k rows "
        f"(read {overhead.read_s:.2f} s + availability {overhead.compute_s:.2f} s "
        f"for {overhead.rows:,} rows)"
    )
    lines.append(
        f"load average (1 min) {result.machine['loadavg_1m_before']} before, "
        f"{result.machine['loadavg_1m_after']} after; results: {result.path}"
    )
    return "\n".join(lines)


def main() -> None:
    """``python -m cautious.bench``: run with defaults and print the table."""
    print(render_bench(run_bench()))


if __name__ == "__main__":
    main()
