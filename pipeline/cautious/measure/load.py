"""Drive load with Locust in a subprocess, at loopback only, and hand back the request log.

Locust runs as ``python -m locust`` in its own process group, never imported here: importing
it monkey-patches the interpreter with gevent (FIELD-NOTES). The request log plugin
(``cautious/measure/locust_request_logger.py``) rides along as a second, comma-separated
locustfile and
writes ``requests.csv``; Locust's own stats and log land next to it. Every run has a hard
deadline, so a wedged Locust is killed rather than waited on forever.

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
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ParamSpec
from urllib.parse import urlsplit

from cautious.exceptions import ConfigError, PrerequisiteError, SandboxError
from cautious.files import LineFollower

__all__ = [
    "DEFAULT_LOCUSTFILE",
    "REQUEST_LOG_NAME",
    "LoadHandle",
    "LoadProgress",
    "LoadRun",
    "check_loopback_url",
    "locust_command",
    "recommended_users",
    "run_load",
    "start_load",
]

_P = ParamSpec("_P")

DEFAULT_LOCUSTFILE = Path(__file__).resolve().parents[3] / "sandbox" / "locustfile.py"
REQUEST_LOG_NAME = "requests.csv"
_PLUGIN = Path(__file__).resolve().with_name("locust_request_logger.py")
_STATS_PREFIX = "locust"  # Locust writes locust_stats.csv, locust_stats_history.csv, ...
_LOG_NAME = "locust.log"
_STDOUT_NAME = "locust-stdout.txt"
_STDERR_NAME = "locust-stderr.txt"
# Locust needs ~1-2 s to import and start, and a moment to write its summary at the end.
_DEADLINE_MARGIN_S = 20.0
_POLL_S = 0.1
_STDERR_TAIL_CHARS = 2_000
_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


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
) -> list[str]:
    """The Locust command line: headless, every user spawned at once (the default locustfile
    staggers their first requests), in-flight requests allowed ``stop_timeout_s`` to finish,
    and no exit code 1 on request failures (failures are data, judged later by the claims)."""
    return [
        sys.executable,
        "-m",
        "locust",
        "--headless",
        "-f",
        f"{locustfile},{_PLUGIN}",
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


@dataclass(frozen=True)
class LoadRun:
    """One finished Locust run: where its files are and how it ended.

    ``overran`` means the hard deadline killed Locust; ``stopped`` means :meth:`LoadHandle.stop`
    ended it early. ``cpu_s`` is the CPU time Locust used, i.e. the load generator's own load.
    """

    url: str
    target_rate: float
    duration_s: int
    users: int
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


class LoadHandle:
    """A Locust run in the background, e.g. while a rollout goes on.

    Use it as a context manager so an exception in the caller still stops Locust::

        with start_load(url, ...) as load:
            ...  # roll out; print(load.progress().line(load.target_rate))
            run = load.stop()
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        run: LoadRun,
        deadline: float,
    ) -> None:
        self._process = process
        self._template = run
        self._deadline = deadline
        self._follower = _LogFollower(run.request_log)
        self._result: LoadRun | None = None
        self._returncode: int | None = None
        self._cpu_s = 0.0

    @property
    def target_rate(self) -> float:
        return self._template.target_rate

    @property
    def request_log(self) -> Path:
        return self._template.request_log

    @property
    def running(self) -> bool:
        return not self._reaped()

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

    def wait(self) -> LoadRun:
        """Wait for Locust to finish its run; kill it if it overruns the hard deadline."""
        if self._poll_until(self._deadline):
            return self._finish(overran=False, stopped=False)
        self._kill(grace_s=5.0)
        return self._finish(overran=True, stopped=False)

    def stop(self, grace_s: float = 10.0) -> LoadRun:
        """End the run now: SIGTERM (Locust flushes the log and quits), SIGKILL after grace_s."""
        if self._result is not None:
            return self._result
        stopped = not self._reaped()
        if stopped:
            self._kill(grace_s=grace_s)
        return self._finish(overran=False, stopped=stopped)

    def __enter__(self) -> LoadHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _reaped(self) -> bool:
        """Reap Locust if it exited, keeping its own CPU usage (os.wait4, not Popen.poll)."""
        if self._returncode is not None:
            return True
        pid, status, usage = os.wait4(self._process.pid, os.WNOHANG)
        if pid == 0:
            return False
        self._returncode = os.waitstatus_to_exitcode(status)
        self._cpu_s = usage.ru_utime + usage.ru_stime
        self._process.returncode = self._returncode  # so Popen does not think it still runs
        return True

    def _poll_until(self, deadline: float) -> bool:
        while not self._reaped():
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)
        return True

    def _kill(self, grace_s: float) -> None:
        """SIGTERM the process group, then SIGKILL it if it outlives grace_s."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.killpg(self._process.pid, sig)
            if self._poll_until(time.monotonic() + wait_s):
                return
        raise SandboxError(f"Locust (pid {self._process.pid}) survived SIGKILL")

    def _finish(self, *, overran: bool, stopped: bool) -> LoadRun:
        if self._result is None:
            template = self._template
            stderr = template.out_dir / _STDERR_NAME
            self._result = replace(
                template,
                ended=time.time(),
                returncode=self._returncode if self._returncode is not None else -1,
                cpu_s=self._cpu_s,
                overran=overran,
                stopped=stopped,
                stderr_tail=_tail(stderr, _STDERR_TAIL_CHARS),
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
) -> LoadHandle:
    """Start Locust in the background against loopback ``url`` at ``rate`` req/s.

    ``duration_s`` is rounded up to whole seconds (Locust's ``-t``); the locustfile reads
    ``CAUTIOUS_RATE``, ``CAUTIOUS_USERS`` and ``CAUTIOUS_TIMEOUT_S`` (``extra_env`` adds more,
    but cannot override those). Raises ConfigError for bad input, PrerequisiteError when a
    locustfile is missing.
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
    user_file = Path(locustfile).resolve() if locustfile is not None else DEFAULT_LOCUSTFILE
    if "," in str(user_file):
        raise ConfigError(f"locustfile path {user_file} contains a comma, which Locust splits on")
    for needed in (user_file, _PLUGIN):
        if not needed.is_file():
            raise PrerequisiteError(f"locustfile {needed} not found")

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    whole_s = math.ceil(duration_s)
    stop_timeout_s = math.ceil(timeout_s)
    command = locust_command(url, users, whole_s, stop_timeout_s, out, user_file)
    env = {
        **os.environ,
        **(extra_env or {}),
        "CAUTIOUS_REQUEST_LOG": str(out / REQUEST_LOG_NAME),
        "CAUTIOUS_RATE": repr(float(rate)),
        "CAUTIOUS_USERS": str(users),
        "CAUTIOUS_TIMEOUT_S": repr(float(timeout_s)),
        # Locust runs in its own session, so nothing else would stop it if we died (even by
        # SIGKILL): the plugin quits when its parent is no longer this process.
        "CAUTIOUS_ORCHESTRATOR_PID": str(os.getpid()),
    }
    started = time.time()
    # cwd=out keeps a stray locust.conf in the caller's directory out of the run.
    with (out / _STDOUT_NAME).open("wb") as stdout, (out / _STDERR_NAME).open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=out,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    template = LoadRun(
        url=url,
        target_rate=float(rate),
        duration_s=whole_s,
        users=users,
        timeout_s=float(timeout_s),
        out_dir=out,
        request_log=out / REQUEST_LOG_NAME,
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
    deadline = time.monotonic() + whole_s + stop_timeout_s + _DEADLINE_MARGIN_S
    return LoadHandle(process, template, deadline)


def _to_the_end(start: Callable[_P, LoadHandle]) -> Callable[_P, LoadRun]:
    """``start``'s run, waited for to the end (bounded by its hard deadline)."""

    def run(*args: _P.args, **kwargs: _P.kwargs) -> LoadRun:
        with start(*args, **kwargs) as handle:
            return handle.wait()

    run.__doc__ = "Run Locust to the end (bounded by its hard deadline); see :func:`start_load`."
    return run


run_load = _to_the_end(start_load)
