"""What an experiment keeps running while it injects faults: Locust load and a rollout.

Both are subprocesses in their own session (process group), recorded in the run state with
their pid and files, so a later activity — or the game day, or the next experiment after a
crash — can find, wait for and stop them. Every wait is bounded; a process that outlives its
deadline is sent SIGTERM (Locust flushes its log; a rollout rolls back), then SIGKILL.

The rollout runs ``python -m chaoscautious.worker``, which calls the same library chain as
``invoke deploy`` (``DeployPipeline.deploy``) but *without* its Locust load: the experiment's
own load measures the whole experiment, and a second Locust on a 2-core machine would skew both.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cautious.files import read_json_object

from chaoscautious.context import ChaosError, RunState, Target, deadline_loop, log

if TYPE_CHECKING:
    from cautious.measure.load import LoadHandle
    from cautious.measure.requestlog import RequestRecord

__all__ = [
    "alive",
    "read_records",
    "rollout_outcome",
    "start_load",
    "start_rollout",
    "stop_background",
    "stop_load",
    "wait_for_rollout",
    "wait_for_rollout_progress",
]

_LOADS: dict[int, LoadHandle] = {}
_WORKERS: dict[int, subprocess.Popen[bytes]] = {}
_FIRST_REQUEST_TIMEOUT_S = 30.0
_ROLLBACK_GRACE_S = 120.0
_LONGEST_LOAD_S = 3_600.0


# -- processes ----------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a finished child of ours is reaped on the way)."""
    worker = _WORKERS.get(pid)
    if worker is not None:
        return worker.poll() is None
    load = _LOADS.get(pid)
    if load is not None:
        return load.running  # LoadHandle reaps its own child (it keeps Locust's CPU time)
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(pid: int, marker: str) -> bool:
    """Only signal a recorded pid if it is still the process we started (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


def _terminate(pid: int, grace_s: float) -> bool:
    """SIGTERM the process group, SIGKILL it after ``grace_s``; True when it is gone."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        for _ in deadline_loop(wait_s, 0.1):
            if not alive(pid):
                return True
    return not alive(pid)


# -- load ---------------------------------------------------------------------------------------


def start_load(
    target: Target,
    state: RunState,
    *,
    rate: float | None = None,
    users: int | None = None,
    duration_s: float = _LONGEST_LOAD_S,
) -> dict[str, Any]:
    """Start Locust against the cluster; return once the first requests are in the log."""
    from cautious.exceptions import CautiousError
    from cautious.measure.load import start_load as start_locust

    previous = state.read().get("load") or {}
    if previous.get("pid") and not previous.get("stopped") and alive(int(previous["pid"])):
        raise ChaosError(f"load is already running (pid {previous['pid']}); stop it first")
    load = target.config.load
    rate = float(rate or load.rate)
    users = int(users or load.users)
    url = target.frontend_url()
    out = state.out_dir() / "load"
    try:
        handle = start_locust(
            url,
            rate=rate,
            duration_s=min(max(duration_s, 1.0), _LONGEST_LOAD_S),
            users=users,
            timeout_s=load.timeout_s,
            out_dir=out,
            locustfile=target.config.path(load.locustfile),
        )
    except CautiousError as exc:
        raise ChaosError(f"cannot start load: {exc}") from None
    # LoadHandle keeps its Popen private; the pid is what lets a later process (the game day,
    # the next experiment after a crash) find and stop a stray Locust.
    pid = handle._process.pid
    _LOADS[pid] = handle
    record = {
        "pid": pid,
        "url": url,
        "rate": rate,
        "users": users,
        "timeout_s": load.timeout_s,
        "out_dir": str(out),
        "request_log": str(handle.request_log),
        "started": time.time(),
        "stopped": None,
    }
    state.update(lambda data: data.__setitem__("load", record))
    for _ in deadline_loop(_FIRST_REQUEST_TIMEOUT_S, 0.25):
        if handle.progress().sent > 0 or not handle.running:
            break
    if handle.progress().sent == 0:
        run = handle.stop()
        _LOADS.pop(pid, None)
        state.update(lambda data: data["load"].__setitem__("stopped", time.time()))
        raise ChaosError(
            f"Locust sent no request within {_FIRST_REQUEST_TIMEOUT_S:g} s "
            f"(exit code {run.returncode}); see {out}: {run.stderr_tail.strip()[-300:]}"
        )
    state.event(f"load started: {rate:g} req/s with {users} users against {url}")
    return {key: record[key] for key in ("pid", "url", "rate", "users", "request_log")}


def stop_load(target: Target, state: RunState, *, tail_s: float = 0.0) -> dict[str, Any]:
    """Stop the load (after ``tail_s`` more seconds of it); a no-op when none is running."""
    info = state.read().get("load") or {}
    if not info.get("pid") or info.get("stopped"):
        return {"stopped": False, "reason": "no load was running"}
    pid = int(info["pid"])
    if tail_s > 0 and alive(pid):
        time.sleep(min(tail_s, 600.0))
    handle = _LOADS.pop(pid, None)
    returncode: int | None = None
    if handle is not None:
        run = handle.stop(grace_s=10.0)
        returncode = run.returncode
        ok = run.ok
    elif alive(pid) and _ours(pid, "locust"):
        ok = _terminate(pid, 10.0)
    else:
        ok = True
    state.update(lambda data: data["load"].update(stopped=time.time(), returncode=returncode))
    records = read_records(Path(info["request_log"]))
    failed = sum(1 for record in records if not record.ok)
    state.event(f"load stopped: {len(records)} requests, {failed} failed")
    if not ok:
        raise ChaosError(
            f"Locust did not end cleanly (exit code {returncode}); see {info['out_dir']}"
        )
    return {
        "stopped": True,
        "sent": len(records),
        "failed": failed,
        "request_log": info["request_log"],
    }


def read_records(path: Path, *, before: float | None = None) -> list[RequestRecord]:
    """The request log so far; ``before`` drops requests that started at or after it."""
    from cautious.exceptions import CautiousError
    from cautious.measure.requestlog import read_request_log

    try:
        records = read_request_log(path)
    except CautiousError as exc:
        if not path.exists():
            return []
        raise ChaosError(str(exc)) from None
    if before is not None:
        records = [record for record in records if record.start < before]
    return records


# -- rollouts -----------------------------------------------------------------------------------


def start_rollout(
    target: Target,
    state: RunState,
    release: str,
    *,
    run_tests: bool = False,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start ``deploy --release`` in the background (see the module docstring)."""
    from cautious.exceptions import CautiousError

    try:
        target.config.release(release)
    except CautiousError as exc:
        raise ChaosError(str(exc)) from None
    rollouts = state.read().get("rollouts") or []
    for previous in rollouts:
        if previous.get("ended") is None and alive(int(previous["pid"])):
            raise ChaosError(f"a rollout is already running (pid {previous['pid']})")
    folder = state.out_dir() / "rollouts"
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"rollout-{len(rollouts) + 1}-{release}"
    command = [
        sys.executable,
        "-m",
        "chaoscautious.worker",
        "--config",
        str(target.config_path),
        "--cluster",
        target.cluster,
        "--release",
        release,
        "--result",
        f"{stem}.json",
    ]
    if run_tests:
        command.append("--tests")
    for key, value in sorted((settings or {}).items()):
        command += ["--set", f"{key}={json.dumps(value)}"]
    with open(f"{stem}.log", "wb") as output:
        worker = subprocess.Popen(
            command,
            cwd=target.config.root,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _WORKERS[worker.pid] = worker
    record = {
        "release": release,
        "pid": worker.pid,
        "log": f"{stem}.log",
        "result": f"{stem}.json",
        "settings": settings or {},
        "started": time.time(),
        "ended": None,
    }
    state.append("rollouts", record)
    state.event(f"rollout to {release} started in the background (pid {worker.pid})")
    return {key: record[key] for key in ("release", "pid", "log", "settings")}


def _last_rollout(state: RunState) -> dict[str, Any]:
    rollouts = state.read().get("rollouts") or []
    if not rollouts:
        raise ChaosError("no rollout was started in this experiment; call start_rollout first")
    last: dict[str, Any] = rollouts[-1]
    return last


def _result(record: dict[str, Any]) -> dict[str, Any]:
    """The worker's result file (see ``chaoscautious.worker``); empty until it is written."""
    return read_json_object(Path(record["result"])) or {}


def rollout_outcome(record: dict[str, Any]) -> str:
    """running | succeeded | rolled-back | aborted | unchanged | failed (worker error/killed)."""
    if alive(int(record["pid"])):
        return "running"
    return str(_result(record).get("outcome") or "failed")


def wait_for_rollout(state: RunState, *, timeout_s: float = 600.0) -> dict[str, Any]:
    """Wait (bounded) for the background rollout; stop it and fail past ``timeout_s``."""
    record = _last_rollout(state)
    pid = int(record["pid"])
    timed_out = False
    for _ in deadline_loop(timeout_s, 0.25):
        if not alive(pid):
            break
    else:
        timed_out = True
    if timed_out and alive(pid):
        log.warning("cautious: rollout pid %s still runs after %g s; stopping it", pid, timeout_s)
        _terminate(pid, _ROLLBACK_GRACE_S)
    outcome = rollout_outcome(record)
    result = _result(record)
    ended = time.time()

    def finish(data: dict[str, Any]) -> None:
        for item in data.get("rollouts") or []:
            if item["pid"] == pid:
                item.update(ended=ended, outcome=outcome, reason=result.get("reason", ""))

    state.update(finish)
    state.event(f"rollout to {record['release']} ended: {outcome}")
    if timed_out:
        raise ChaosError(f"the rollout ran past {timeout_s:g} s and was stopped ({outcome})")
    return {
        "release": record["release"],
        "outcome": outcome,
        "reason": result.get("reason", ""),
        "rollout_id": (result.get("rollout") or {}).get("id"),
        "duration_s": round(ended - float(record["started"]), 1),
        "log": record["log"],
    }


def wait_for_rollout_progress(
    target: Target, state: RunState, *, instances: int = 1, timeout_s: float = 120.0
) -> dict[str, Any]:
    """Wait (bounded) until the running rollout has brought ``instances`` new instances in.

    Read from the journal, so "mid-rollout" is a state of the rollout, not a guess in seconds.
    """

    record = _last_rollout(state)
    journal = target.sandbox().journal
    pid = int(record["pid"])
    for elapsed in deadline_loop(timeout_s, 0.2):
        mine = [r for r in journal.rollouts() if r.begin["time"] >= record["started"] - 1]
        if mine:
            ready = sum(
                len(step.get("ready_s") or [])
                for step in mine[-1].steps
                if step.get("phase") == "forward" and step.get("outcome") == "ok"
            )
            if ready >= instances:
                state.event(f"rollout {mine[-1].id}: {ready} new instance(s) in rotation")
                return {"rollout_id": mine[-1].id, "ready": ready, "after_s": round(elapsed, 1)}
            if mine[-1].end is not None:
                raise ChaosError(
                    f"the rollout ended ({mine[-1].outcome}) before {instances} new instance(s) "
                    "were in rotation"
                )
        if not alive(pid):
            reason = _result(record).get("reason") or f"see {record['log']}"
            raise ChaosError(f"the rollout process ended before it got going: {reason}")
    raise ChaosError(f"the rollout did not bring {instances} instance(s) in within {timeout_s:g} s")


def stop_background(state: RunState, *, grace_s: float = _ROLLBACK_GRACE_S) -> list[str]:
    """Stop whatever this run (or a crashed earlier run) left running; return what it did."""
    done = []
    data = state.read()
    load = data.get("load") or {}
    if load.get("pid") and not load.get("stopped"):
        pid = int(load["pid"])
        handle = _LOADS.pop(pid, None)
        if handle is not None:
            handle.stop(grace_s=10.0)
            done.append(f"stopped load (pid {pid})")
        elif alive(pid) and _ours(pid, "locust"):
            _terminate(pid, 10.0)
            done.append(f"stopped stray load (pid {pid})")
        state.update(lambda data: data["load"].__setitem__("stopped", time.time()))
    for record in data.get("rollouts") or []:
        pid = int(record["pid"])
        if alive(pid) and (pid in _WORKERS or _ours(pid, "chaoscautious.worker")):
            _terminate(pid, grace_s)  # SIGTERM: the runner rolls back what it did
            done.append(f"stopped rollout to {record['release']} (pid {pid})")
    return done
