"""Drive load with Locust in a subprocess, at loopback only, and hand back the request log.

Locust runs as ``python -m locust`` in its own session, never imported here: importing it
monkey-patches the interpreter with gevent. The request log plugin
(``cautious/measure/locust_request_logger.py``) rides along as a second, comma-separated
locustfile and writes ``requests.csv``; Locust's own stats and log land next to it. Every run
has a hard deadline, so a wedged Locust is killed rather than waited on forever.

One Locust process holds about 1,000 req/s on one core. Beyond that, ``workers`` > 1 runs
Locust's own distributed mode on this machine: a master (which sends no requests) bound to
127.0.0.1 and that many worker processes connected to it. Each worker logs its own
``requests-worker-N.csv``, and a thread here appends their rows to ``requests.csv`` as they
come, so whoever follows the request log live (the progress line, a canary gate, a chaos
probe) and whatever reads it afterwards sees one log, however many processes wrote it.

Load may only go to loopback (127.0.0.0/8, ``localhost``, ``::1``): the sandbox publishes its
load balancer there, and Cautious must never become a load generator aimed at someone else.
"""

from __future__ import annotations

import contextlib
import csv
import ipaddress
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ParamSpec
from urllib.parse import urlsplit

from cautious.exceptions import ConfigError, PrerequisiteError, SandboxError
from cautious.files import LineFollower
from cautious.measure.requestlog import FIELDS

__all__ = [
    "DEFAULT_LOCUSTFILE",
    "MAX_WORKERS",
    "REQUEST_LOG_NAME",
    "LoadHandle",
    "LoadProgress",
    "LoadRun",
    "check_loopback_url",
    "free_loopback_port",
    "locust_command",
    "recommended_users",
    "run_load",
    "start_load",
    "worker_command",
]

_P = ParamSpec("_P")

DEFAULT_LOCUSTFILE = Path(__file__).resolve().parents[3] / "sandbox" / "locustfile.py"
REQUEST_LOG_NAME = "requests.csv"
_PLUGIN = Path(__file__).resolve().with_name("locust_request_logger.py")
_STATS_PREFIX = "locust"  # Locust writes locust_stats.csv, locust_stats_history.csv, ...
_LOG_NAME = "locust.log"
# Locust needs ~1-2 s to import and start, and a moment to write its summary at the end.
_DEADLINE_MARGIN_S = 20.0
_POLL_S = 0.1
_STDERR_TAIL_CHARS = 2_000
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_MASTER_HOST = "127.0.0.1"  # the master listens on loopback only, like every other port here
_WORKERS_CONNECT_S = 30  # the master gives up (and fails the run) if workers are not in by then
_WORKERS_QUIT_S = 10.0
_FIRST_REQUEST_S = 60.0  # start-up plus the workers' connection, with room for a busy machine
_MERGE_EVERY_S = 0.25
_MERGE_JOIN_S = 10.0
_MERGE_CHUNK_BYTES = 4 << 20
MAX_WORKERS = 32


def check_loopback_url(url: str) -> str:
    """Return ``url`` without a trailing slash if it is http(s) to loopback; else ConfigError."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"load URL {url!r} must look like http://127.0.0.1:PORT")
    try:
        parts.port  # noqa: B018 - urlsplit validates the port lazily, on access
    except ValueError:
        raise ConfigError(f"load URL {url!r} has an invalid port") from None
    host = parts.hostname.lower()
    if host not in _LOOPBACK_NAMES and not _is_loopback_address(host):
        raise ConfigError(
            f"load URL {url!r}: host {host!r} is not loopback; load goes only to "
            "127.0.0.0/8, localhost or ::1 (publish the service on 127.0.0.1)"
        )
    return url.strip().rstrip("/")


def _is_loopback_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost: never resolved, never trusted
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def recommended_users(rate: float) -> int:
    """Users for ``rate`` req/s with the default mix: each user paces at ``rate / users``, so
    its period (users / rate) must cover a 200 ms slow request, or the rate falls short."""
    return max(50, math.ceil(rate / 4))


def locust_command(
    url: str,
    users: int,
    duration_s: int,
    stop_timeout_s: int,
    out_dir: Path,
    locustfile: Path,
    *,
    workers: int = 1,
    master_port: int = 0,
    plugins: Sequence[Path] = (),
) -> list[str]:
    """The Locust command line: headless, every user spawned at once (the default locustfile
    staggers their first requests), in-flight requests allowed ``stop_timeout_s`` to finish,
    and no exit code 1 on request failures (failures are data, judged later by the claims).

    With ``workers`` > 1 it is the master's: bound to 127.0.0.1:``master_port``, starting the
    run once every worker has connected (and failing it if they do not within 30 s).
    """
    distributed = (
        [
            "--master",
            "--master-bind-host",
            _MASTER_HOST,
            "--master-bind-port",
            str(master_port),
            "--expect-workers",
            str(workers),
            "--expect-workers-max-wait",
            str(_WORKERS_CONNECT_S),
        ]
        if workers > 1
        else []
    )
    return [
        *_locust(locustfile, plugins),
        "--headless",
        *distributed,
        "--host",
        url,
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{duration_s}s",
        "--stop-timeout",
        str(stop_timeout_s),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--csv",
        str(out_dir / _STATS_PREFIX),
        "--logfile",
        str(out_dir / _LOG_NAME),
    ]


def worker_command(
    locustfile: Path, master_port: int, out_dir: Path, index: int, plugins: Sequence[Path] = ()
) -> list[str]:
    """A worker's command line: it takes users, rate and run time from the master."""
    return [
        *_locust(locustfile, plugins),
        "--worker",
        "--master-host",
        _MASTER_HOST,
        "--master-port",
        str(master_port),
        "--logfile",
        str(out_dir / f"locust-worker-{index}.log"),
    ]


def _locust(locustfile: Path, plugins: Sequence[Path] = ()) -> list[str]:
    files = ",".join(str(path) for path in (locustfile, _PLUGIN, *plugins))
    return [sys.executable, "-m", "locust", "-f", files]


@dataclass(frozen=True)
class LoadRun:
    """One finished Locust run: where its files are and how it ended.

    ``overran`` means the hard deadline killed Locust; ``stopped`` means :meth:`LoadHandle.stop`
    ended it early. ``cpu_s`` is the CPU time Locust used (every process of it), i.e. the load
    generator's own load. ``request_log`` holds every request, from every worker.
    """

    url: str
    target_rate: float
    duration_s: int
    users: int
    workers: int
    timeout_s: float
    out_dir: Path
    request_log: Path
    stats_csv: Path
    locust_log: Path
    command: tuple[str, ...]
    started: float
    ended: float
    returncode: int
    cpu_s: float
    overran: bool
    stopped: bool
    stderr_tail: str

    @property
    def ok(self) -> bool:
        """Locust ran to its end (or to a requested stop) without crashing."""
        return self.returncode == 0 and not self.overran

    def check(self) -> LoadRun:
        """Return self, or raise SandboxError with Locust's last words when it did not run."""
        if not self.ok:
            why = "ran past its deadline and was killed" if self.overran else "failed"
            raise SandboxError(
                f"Locust {why} (exit code {self.returncode}); see {self.out_dir}. "
                f"stderr: {self.stderr_tail.strip()[-500:] or '(empty)'}"
            )
        return self


@dataclass(frozen=True)
class LoadProgress:
    """The request log so far: enough for a live progress line."""

    sent: int
    failed: int
    elapsed_s: float
    rate: float  # requests per second between the first and the latest request start

    def line(self, target_rate: float) -> str:
        """``load 12.0 s: 1,180 sent, 3 failed, 99.1 req/s (target 100)``."""
        return (
            f"load {self.elapsed_s:.1f} s: {self.sent:,} sent, {self.failed:,} failed, "
            f"{self.rate:.1f} req/s (target {target_rate:g})"
        )


class _LogFollower:
    """Counts the growing request log's rows as they come, whole lines only (the plugin keeps
    every row on one line and flushes about once a second)."""

    def __init__(self, path: Path) -> None:
        self._lines = LineFollower(path)
        self._header_seen = False
        self.sent = 0
        self.failed = 0
        self.first_start: float | None = None
        self.last_start: float | None = None

    def poll(self) -> None:
        lines = self._lines.new_lines()
        if lines and not self._header_seen:
            self._header_seen = True
            lines = lines[1:]
        for row in csv.reader(lines):
            self._count(row)

    def _count(self, row: list[str]) -> None:
        try:
            start, status, error = float(row[0]), int(row[2]), row[5]
        except (IndexError, ValueError):
            return  # a malformed row is the availability module's to report, not ours
        self.sent += 1
        if error or not 200 <= status < 400:
            self.failed += 1
        self.first_start = start if self.first_start is None else min(self.first_start, start)
        self.last_start = start if self.last_start is None else max(self.last_start, start)


class _LogMerger:
    """Appends the rows of every worker's log to the one request log while they are written.

    Every ``_MERGE_EVERY_S`` a thread copies the whole lines each worker log gained (the
    plugin writes one line per row, flushed about once a second); rows land in the order they
    were copied, not sorted, just as one Locust process logs them in the order requests
    finish. :meth:`close` copies the rest and removes the worker logs, so every request is in
    the request log exactly once.
    """

    def __init__(self, parts: list[Path], merged: Path) -> None:
        self._parts = parts
        self._followers = [LineFollower(part, max_bytes=_MERGE_CHUNK_BYTES) for part in parts]
        self._header = (",".join(FIELDS) + "\n").encode()
        self._merged = merged.open("wb")  # closed by close(), which the handle always calls
        self._merged.write(self._header)
        self._merged.flush()
        self._stop = threading.Event()
        self._failure: OSError | SandboxError | None = None
        self._thread = threading.Thread(target=self._run, name="cautious-log-merge", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop copying in the background, copy what is left, remove the worker logs."""
        if self._merged.closed:
            return
        self._stop.set()
        self._thread.join(timeout=_MERGE_JOIN_S)
        try:
            if self._thread.is_alive():
                raise SandboxError(f"merging the workers' request logs hung for {_MERGE_JOIN_S} s")
            if self._failure is not None:
                raise SandboxError(f"merging the workers' request logs failed: {self._failure}")
            while self._copy():  # bounded: each pass consumes what the dead workers left
                pass
        finally:
            self._merged.close()
        for part in self._parts:
            part.unlink(missing_ok=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(_MERGE_EVERY_S):
                self._copy()
        except (OSError, SandboxError) as exc:
            self._failure = exc

    def _copy(self) -> bool:
        """Copy each worker log's new whole lines; True if any were copied."""
        copied = False
        for follower in self._followers:
            first = follower.handed_out == 0
            whole = follower.new_bytes()  # nothing until the worker starts logging
            if not whole:
                continue
            rows = whole
            if first:
                header, _, rows = whole.partition(b"\n")
                if header + b"\n" != self._header:
                    raise SandboxError(
                        f"{follower.path}: not a request log (header {header[:200]!r})"
                    )
            self._merged.write(rows)
            copied = True
        self._merged.flush()
        return copied


class _Process:
    """One Locust process, reaped with its own CPU time (os.wait4, not Popen.poll)."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: Path) -> None:
        self.popen = process
        self.stderr = stderr
        self.returncode: int | None = None
        self.cpu_s = 0.0

    def reaped(self) -> bool:
        if self.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.popen.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.popen.returncode = self.returncode  # so Popen does not think it still runs
        return True

    def signal(self, sig: signal.Signals) -> None:
        """Signal the process's whole session (it runs in one of its own)."""
        if not self.reaped():
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.killpg(self.popen.pid, sig)


class LoadHandle:
    """A Locust run in the background, e.g. while a rollout goes on.

    Use it as a context manager so an exception in the caller still stops Locust::

        with start_load(url, ...) as load:
            ...  # roll out; print(load.progress().line(load.target_rate))
            run = load.stop()
    """

    def __init__(
        self,
        locust: _Process,
        workers: list[_Process],
        merger: _LogMerger | None,
        run: LoadRun,
        deadline: float,
    ) -> None:
        self._locust = locust  # the only process in a plain run; the master in a distributed one
        self._process = locust.popen
        self._workers = workers
        self._merger = merger
        self._template = run
        self._deadline = deadline
        self._follower = _LogFollower(run.request_log)
        self._result: LoadRun | None = None

    @property
    def target_rate(self) -> float:
        return self._template.target_rate

    @property
    def request_log(self) -> Path:
        return self._template.request_log

    @property
    def running(self) -> bool:
        return not self._locust.reaped()

    def progress(self) -> LoadProgress:
        """Count the rows written so far (lags the truth by up to about a second)."""
        self._follower.poll()
        follower = self._follower
        span = (
            follower.last_start - follower.first_start
            if follower.first_start is not None and follower.last_start is not None
            else 0.0
        )
        return LoadProgress(
            sent=follower.sent,
            failed=follower.failed,
            elapsed_s=time.time() - self._template.started,
            rate=follower.sent / span if span > 0 else 0.0,
        )

    def wait_until_sending(self, within_s: float = _FIRST_REQUEST_S) -> None:
        """Return once the first request is logged, so a warm-up or a measured window that
        starts now is all load: Locust needs seconds to start, a distributed run more.

        Raises SandboxError (after stopping Locust) when Locust ends or nothing is logged
        within ``within_s``.
        """
        deadline = time.monotonic() + within_s
        while self.progress().sent == 0:
            if not self.running or time.monotonic() >= deadline:
                run = self.stop()
                raise SandboxError(
                    f"Locust logged no request within {within_s:g} s (exit code "
                    f"{run.returncode}); see {run.out_dir}. "
                    f"stderr: {run.stderr_tail.strip()[-500:] or '(empty)'}"
                )
            time.sleep(_POLL_S)

    def wait(self) -> LoadRun:
        """Wait for Locust to finish its run; kill it if it overruns the hard deadline."""
        if self._poll_until([self._locust], self._deadline):
            # A master that ended has told its workers to quit: they get a moment to do so.
            if not self._poll_until(self._workers, time.monotonic() + _WORKERS_QUIT_S):
                self._kill(self._workers, grace_s=5.0)
            return self._finish(overran=False, stopped=False)
        self._kill(self._processes(), grace_s=5.0)
        return self._finish(overran=True, stopped=False)

    def stop(self, grace_s: float = 10.0) -> LoadRun:
        """End the run now: SIGTERM (Locust flushes the log and quits), SIGKILL after grace_s."""
        if self._result is not None:
            return self._result
        stopped = not self._locust.reaped()
        self._kill(self._processes(), grace_s=grace_s)
        return self._finish(overran=False, stopped=stopped)

    def __enter__(self) -> LoadHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _processes(self) -> list[_Process]:
        return [self._locust, *self._workers]

    @staticmethod
    def _poll_until(processes: list[_Process], deadline: float) -> bool:
        """True once every process has exited; False at the deadline."""
        while not all([process.reaped() for process in processes]):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True

    def _kill(self, processes: list[_Process], grace_s: float) -> None:
        """SIGTERM the processes, then SIGKILL whatever outlives grace_s."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            for process in processes:
                process.signal(sig)
            if self._poll_until(processes, time.monotonic() + wait_s):
                return
        alive = [str(process.popen.pid) for process in processes if not process.reaped()]
        raise SandboxError(f"Locust (pid {', '.join(alive)}) survived SIGKILL")

    def _finish(self, *, overran: bool, stopped: bool) -> LoadRun:
        if self._result is None:
            template = self._template
            if self._merger is not None:
                self._merger.close()
            tails = [_tail(self._locust.stderr, _STDERR_TAIL_CHARS)]
            tails += [
                f"worker {i} (exit code {worker.returncode}): "
                + _tail(worker.stderr, _STDERR_TAIL_CHARS)
                for i, worker in enumerate(self._workers, start=1)
                if worker.returncode not in (0, None)
            ]
            self._result = replace(
                template,
                ended=time.time(),
                returncode=self._locust.returncode if self._locust.returncode is not None else -1,
                cpu_s=sum(process.cpu_s for process in self._processes()),
                overran=overran,
                stopped=stopped,
                stderr_tail="\n".join(tail for tail in tails if tail),
            )
        return self._result


def _tail(path: Path, chars: int) -> str:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - chars))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def start_load(
    url: str,
    rate: float,
    duration_s: float,
    users: int,
    timeout_s: float,
    out_dir: str | os.PathLike[str],
    locustfile: str | os.PathLike[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    workers: int = 1,
    plugins: Sequence[Path] = (),
) -> LoadHandle:
    """Start Locust in the background against loopback ``url`` at ``rate`` req/s.

    ``duration_s`` is rounded up to whole seconds (Locust's ``-t``); the locustfile reads
    ``CAUTIOUS_RATE``, ``CAUTIOUS_USERS`` and ``CAUTIOUS_TIMEOUT_S`` (``extra_env`` adds more,
    but cannot override those), and in a distributed run (``workers`` > 1, the users shared
    among them) ``CAUTIOUS_WORKERS`` and ``CAUTIOUS_WORKER_INDEX`` (0-based). Raises
    ConfigError for bad input, PrerequisiteError when a locustfile is missing.
    """
    url = check_loopback_url(url)
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"load rate must be > 0 req/s, got {rate!r}")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ConfigError(f"load duration must be > 0 s, got {duration_s!r}")
    if users < 1:
        raise ConfigError(f"load users must be >= 1, got {users!r}")
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ConfigError(f"load timeout must be > 0 s, got {timeout_s!r}")
    if not 1 <= workers <= min(users, MAX_WORKERS):
        raise ConfigError(
            f"load workers must be between 1 and {MAX_WORKERS} and at most the users "
            f"({users}), got {workers!r}"
        )
    user_file = Path(locustfile).resolve() if locustfile is not None else DEFAULT_LOCUSTFILE
    if "," in str(user_file):
        raise ConfigError(f"locustfile path {user_file} contains a comma, which Locust splits on")
    for needed in (user_file, _PLUGIN, *plugins):
        if not needed.is_file():
            raise PrerequisiteError(f"locustfile {needed} not found")

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    whole_s = math.ceil(duration_s)
    stop_timeout_s = math.ceil(timeout_s)
    port = free_loopback_port() if workers > 1 else 0
    command = locust_command(
        url,
        users,
        whole_s,
        stop_timeout_s,
        out,
        user_file,
        workers=workers,
        master_port=port,
        plugins=plugins,
    )
    env = {
        **os.environ,
        **(extra_env or {}),
        "CAUTIOUS_RATE": repr(float(rate)),
        "CAUTIOUS_USERS": str(users),
        "CAUTIOUS_TIMEOUT_S": repr(float(timeout_s)),
        "CAUTIOUS_WORKERS": str(workers),
        # Locust runs in sessions of its own, so nothing else would stop it if we died (even
        # by SIGKILL): the plugin quits when its parent is no longer this process.
        "CAUTIOUS_ORCHESTRATOR_PID": str(os.getpid()),
    }
    started = time.time()
    request_log = out / REQUEST_LOG_NAME
    locust = _spawn(command, out, "locust", {**env, "CAUTIOUS_REQUEST_LOG": str(request_log)})
    spawned: list[_Process] = []
    merger: _LogMerger | None = None
    if workers > 1:
        parts = [out / f"requests-worker-{i}.csv" for i in range(1, workers + 1)]
        merger = _LogMerger(parts, request_log)
        for i, log in enumerate(parts, start=1):
            worker_env = {
                **env,
                "CAUTIOUS_REQUEST_LOG": str(log),
                "CAUTIOUS_WORKER_INDEX": str(i - 1),
            }
            command_i = worker_command(user_file, port, out, i, plugins)
            spawned.append(_spawn(command_i, out, f"locust-worker-{i}", worker_env))
    template = LoadRun(
        url=url,
        target_rate=float(rate),
        duration_s=whole_s,
        users=users,
        workers=workers,
        timeout_s=float(timeout_s),
        out_dir=out,
        request_log=request_log,
        stats_csv=out / f"{_STATS_PREFIX}_stats.csv",
        locust_log=out / _LOG_NAME,
        command=tuple(command),
        started=started,
        ended=started,
        returncode=-1,
        cpu_s=0.0,
        overran=False,
        stopped=False,
        stderr_tail="",
    )
    connect_s = _WORKERS_CONNECT_S if workers > 1 else 0
    deadline = time.monotonic() + connect_s + whole_s + stop_timeout_s + _DEADLINE_MARGIN_S
    return LoadHandle(locust, spawned, merger, template, deadline)


def _spawn(command: list[str], out: Path, name: str, env: Mapping[str, str]) -> _Process:
    """Start one Locust process in a session of its own, its output in ``out``.

    ``cwd=out`` keeps a stray locust.conf in the caller's directory out of the run.
    """
    stderr_path = out / f"{name}-stderr.txt"
    with (out / f"{name}-stdout.txt").open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=out,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    return _Process(process, stderr_path)


def free_loopback_port() -> int:
    """A port on 127.0.0.1 free right now (whoever binds it next fails if it was taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_MASTER_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _to_the_end(start: Callable[_P, LoadHandle]) -> Callable[_P, LoadRun]:
    """``start``'s run, waited for to the end (bounded by its hard deadline)."""

    def run(*args: _P.args, **kwargs: _P.kwargs) -> LoadRun:
        with start(*args, **kwargs) as handle:
            return handle.wait()

    run.__doc__ = "Run Locust to the end (bounded by its hard deadline); see :func:`start_load`."
    return run


run_load = _to_the_end(start_load)
