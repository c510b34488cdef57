"""The control every Cautious experiment declares: setup, phases, and loud failures.

::

    "controls": [{"name": "cautious", "provider": {"type": "python",
        "module": "chaoscautious.controls",
        "arguments": {"baseline_release": "v1", "load": true}}}]

It closes three gaps where Chaos Toolkit (chaostoolkit-lib 1.44) would let a broken experiment
pass:

- *Before the experiment* it takes the cluster's experiment lock, stops what a crashed earlier
  run left running, restores the cluster (faults undone, every slot on ``baseline_release``,
  healthy — the sandbox is started if it is not running) and starts the load, so the
  hypothesis before the method judges a real warm-up. Any failure interrupts the experiment.
- A hypothesis that does not hold *before* the method makes chaoslib skip the method and end
  ``completed`` — exit code 0 for ``chaos run``. This control interrupts instead (exit 1).
- An action that raises is only a "failed activity" to chaoslib: the experiment goes on and
  may end ``completed``. During the method this control interrupts the experiment instead.

It also records the phases in the run state (probes use them: a probe about what the method did
must not pass before it, nor after it when nothing happened). After the experiment it stops the
load and any rollout still running, looks for faults the experiment's rollbacks left behind
(and clears them, so the next experiment starts clean), records that as ``cleanup``, and copies
the run state into the run folder (``chaos-run.json``, which ``invoke chaos.run`` /
``invoke gameday`` read: the game day fails an experiment that left a fault behind).

Controls only propagate ``InterruptExecution``; everything else raised here is turned into one.
"""

import fcntl
import json
import os
import time
import uuid
from typing import IO, Any

from chaoslib.exceptions import InterruptExecution

from chaoscautious.context import RunState, Target, default_out_dir, log, suppressed, target

__all__ = [
    "after_activity_control",
    "after_experiment_control",
    "after_hypothesis_control",
    "after_method_control",
    "before_experiment_control",
    "before_hypothesis_control",
    "before_method_control",
]

_lock: IO[str] | None = None


def _acquire(tgt: Target) -> None:
    """One experiment per cluster at a time (an flock: released even if the process dies)."""
    global _lock
    tgt.chaos_dir.mkdir(parents=True, exist_ok=True)
    handle = (tgt.chaos_dir / "experiment.lock").open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise InterruptExecution(
            f"cautious: an experiment already runs on cluster {tgt.cluster!r} ({holder})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}")
    handle.flush()
    _lock = handle


def _release() -> None:
    global _lock
    if _lock is not None:
        with suppressed("releasing the experiment lock"):
            _lock.truncate(0)
            fcntl.flock(_lock, fcntl.LOCK_UN)
            _lock.close()
        _lock = None


def before_experiment_control(
    context: dict[str, Any],
    configuration: dict[str, Any] | None = None,
    baseline_release: str | None = None,
    load: bool = True,
    rate: float | None = None,
    users: int | None = None,
    **_: Any,
) -> None:
    """Lock, clean up, restore the cluster to ``baseline_release``, start the load."""
    from chaoscautious import background, cluster

    try:
        tgt = target(configuration)
        _acquire(tgt)
        state = RunState(tgt)
        stale = background.stop_background(state)
        title = str(context.get("title") or "experiment")
        out_dir = tgt.out_dir or default_out_dir(tgt, title)
        out_dir.mkdir(parents=True, exist_ok=True)
        state.write(
            {
                "control": True,
                "run_id": f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}",
                "experiment": title,
                "cluster": tgt.cluster,
                "config": str(tgt.config_path),
                "out_dir": str(out_dir),
                "baseline_release": baseline_release or None,
                "started": time.time(),
                "method_started": None,
                "method_ended": None,
                "hypotheses": [],
                "events": [],
                "faults": [],
                "rollouts": [],
                "load": None,
                "stale": stale,
            }
        )
        log.info("cautious: run folder %s", out_dir)
        restored = cluster.restore(tgt, state, release=baseline_release or None)
        log.info("cautious: cluster ready on %s (%s)", restored["release"], restored["done"])
        if load:
            background.start_load(tgt, state, rate=rate, users=users)
    except InterruptExecution:
        raise
    except Exception as exc:
        raise InterruptExecution(f"cautious: cannot start the experiment: {exc}") from exc


def before_hypothesis_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    """Note which hypothesis this is: before or after the method."""
    with suppressed("recording the hypothesis phase"):
        state = RunState(target(configuration))
        phase = "after-method" if state.read().get("method_started") else "before-method"
        state.append("hypotheses", {"phase": phase, "started": time.time()})


def after_hypothesis_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Record the verdict; interrupt when the steady state did not hold *before* the method."""
    outcome = state or {}
    met = outcome.get("steady_state_met")
    failing = next(
        (probe for probe in outcome.get("probes") or [] if not probe.get("tolerance_met")), None
    )
    name = (failing or {}).get("activity", {}).get("name", "?")
    detail = _short((failing or {}).get("output")) or _short((failing or {}).get("exception"))
    phase = "before-method"
    with suppressed("recording the hypothesis verdict"):
        run = RunState(target(configuration))

        def note(data: dict[str, Any]) -> None:
            nonlocal phase
            entries = data.setdefault("hypotheses", [{}])
            entry = entries[-1]
            phase = entry.get("phase", phase)
            entry.update(met=met, failing_probe=None if met else name, detail=detail)

        run.update(note)
    if phase == "before-method" and met is False:
        raise InterruptExecution(
            f"cautious: the steady state did not hold before the method (probe {name!r}: "
            f"{detail}); nothing was injected"
        )


def before_method_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    _stamp(configuration, "method_started")


def after_method_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    _stamp(configuration, "method_ended")


def _stamp(configuration: dict[str, Any] | None, moment: str) -> None:
    """Record when ``moment`` happened; probes read it to tell before from after the method."""
    with suppressed(f"recording {moment}"):
        RunState(target(configuration)).update(lambda data: data.__setitem__(moment, time.time()))


def after_activity_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """A failed action during the method interrupts the experiment (rollbacks still run)."""
    run = state or {}
    if run.get("status") != "failed":
        return
    data = RunState(target(configuration)).read()
    if not data.get("method_started") or data.get("method_ended"):
        return  # hypothesis probes are judged by their tolerance; rollbacks must all run
    name = context.get("name", "?")
    error = (run.get("exception") or ["?"])[-1].strip()
    kind = context.get("type", "activity")
    raise InterruptExecution(f"cautious: {kind} {name!r} failed: {error}")


def after_experiment_control(
    context: dict[str, Any],
    state: dict[str, Any] | None = None,
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Stop what still runs, check for leftover faults, record how chaoslib ended, copy the
    run state, unlock."""
    from chaoscautious import background

    journal = state or {}
    try:
        tgt = target(configuration)
        run = RunState(tgt)
        stopped: list[str] = []
        with suppressed("stopping background work"):
            stopped = background.stop_background(run)
        cleanup = _cleanup(tgt, run, stopped)
        data = run.update(
            lambda data: data.update(
                ended=time.time(),
                status=journal.get("status"),
                deviated=journal.get("deviated"),
                cleanup=cleanup,
            )
        )
        if data.get("out_dir"):
            with suppressed("copying the run state"):
                target_file = f"{data['out_dir']}/chaos-run.json"
                with open(target_file, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, indent=2, sort_keys=True)
    except Exception as exc:
        log.warning("cautious: after-experiment cleanup failed: %s", exc)
    finally:
        _release()


def _cleanup(tgt: Target, run: RunState, stopped: list[str]) -> dict[str, Any]:
    """What the experiment left behind, checked on the cluster itself; found faults are cleared.

    ``leftovers`` counts them (``left`` names them); ``error`` says why they could not be
    checked. The game day reads this from ``chaos-run.json``.
    """
    from chaoscautious import faults

    try:
        left = faults.leftovers(tgt)
        cleared = faults.clear(tgt, run) if left["count"] else []
    except Exception as exc:
        return {"stopped": stopped, "error": f"cannot check for leftover faults: {exc}"}
    return {
        "stopped": stopped,
        "leftovers": left["count"],
        "left": _leftover_text(left),
        "cleared": cleared,
    }


def _leftover_text(left: dict[str, Any]) -> str:
    """``qdiscs sample-1; paused sample-3``: each kind of leftover and the instances it is on."""
    kinds = ("helpers", "qdiscs", "lb_redirects", "paused", "disconnected")
    return "; ".join(f"{key} {', '.join(map(str, left[key]))}" for key in kinds if left.get(key))


def _short(value: Any, limit: int = 300) -> str:
    """A probe's output or exception in one line, for messages."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = "".join(str(item) for item in value).strip().splitlines()[-1:]
        value = value[0] if value else ""
    if isinstance(value, dict):
        keys = (
            "verdict",
            "outcome",
            "unhealthy",
            "not_up",
            "missed",
            "count",
            "success_ratio",
            "longest_error_window_s",
            "p99_ms",
            "failed",
            "missing",
        )
        value = {key: value[key] for key in keys if key in value} or value
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
