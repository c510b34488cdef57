"""Probes: what a steady-state hypothesis of a Cautious experiment checks.

Each probe returns a flat mapping, so one tolerance can pick one figure out of it:
``{"type": "range", "target": "unhealthy", "range": [0, 0]}`` or
``{"type": "regex", "target": "verdict", "pattern": "^pass$"}``. A range tolerance needs a
number — a bare float tolerance fails validation, and ``null`` would crash chaoslib's range
check — so a figure that could not be measured is reported as ``-1``, which fails any sensible
range instead of passing it.

A hypothesis runs before *and* after the method with the same arguments. Probes about what the
method did (``rollout_state``, ``faults_caught``) ask the run state whether the method has
started: before it they answer ``not-started`` / nothing injected; after it, "nothing happened"
is a failure, never a quiet pass. They need the ``chaoscautious.controls`` control, which
tracks the phases.

Every probe is bounded in time (chaoslib does not enforce ``timeout`` on Python providers).
"""

import time
from pathlib import Path
from typing import Any

from chaoscautious.context import ChaosError, RunState, deadline_loop, target

__all__ = [
    "availability",
    "fault_leftovers",
    "faults_caught",
    "healthy_instances",
    "lb_server_states",
    "rollout_state",
]

_MEASURE_MARGIN_S = 20.0
_FLUSH_LAG_S = 2.0  # the request log plugin flushes about once a second


def _number(value: float | int | None) -> float | int:
    return -1 if value is None else value


def availability(
    claims: dict[str, Any] | None = None,
    min_seconds: float | None = None,
    window_s: float | None = None,
    since_method: bool = False,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Availability of the load so far (as cautious.measure.availability defines it) and its claims.

    ``claims`` overrides keys of ``cautious.yaml``'s ``claims`` (``null`` switches one off).
    Waits (bounded) until ``min_seconds`` full seconds (default: the config's ``load.warmup_s``)
    and the claims' ``min_requests`` are measured, so the check before the method judges a real
    warm-up instead of failing on too little data. While load runs,
    the last ``timeout + 2`` seconds are left out: their slow requests are not logged yet and
    would count as missing. ``window_s`` keeps only the last seconds; ``since_method`` only
    what happened since the method started. ``verdict`` is pass / fail / not-enough-data.
    """
    from cautious.config import ClaimsConfig
    from cautious.measure.availability import compute_availability
    from cautious.measure.claims import evaluate_claims, overall_verdict
    from pydantic import ValidationError

    from chaoscautious.background import alive, read_records

    tgt = target(configuration)
    state = RunState(tgt)
    try:
        judged = ClaimsConfig.model_validate({**tgt.config.claims.model_dump(), **(claims or {})})
    except ValidationError as exc:
        raise ChaosError(f"bad claims override {claims}: {exc.errors()[0]['msg']}") from None
    info = state.read().get("load") or {}
    if not info.get("request_log"):
        raise ChaosError(
            "no load was started in this experiment: declare the chaoscautious control "
            "(it starts load) or call the start_load action first"
        )
    path = Path(info["request_log"])
    rate = float(info["rate"])
    need = max(1.0, tgt.config.load.warmup_s if min_seconds is None else min_seconds)
    method_started = state.read().get("method_started")
    measured: Any = None
    for _ in deadline_loop(need + _MEASURE_MARGIN_S, 0.5):
        running = not info.get("stopped") and alive(int(info["pid"]))
        cutoff = time.time() - float(info.get("timeout_s", 2.0)) - _FLUSH_LAG_S if running else None
        records = read_records(path, before=cutoff)
        if since_method and method_started:
            records = [record for record in records if record.start >= method_started]
        if window_s and records:
            last = max(record.start for record in records)
            records = [record for record in records if record.start >= last - window_s]
        measured = compute_availability(records, target_rate=rate, slo=judged.success_ratio)
        enough = measured.sent + measured.missing >= judged.min_requests
        if (measured.seconds >= need and enough) or not running:
            break
    results = evaluate_claims(judged, measured)
    verdict = overall_verdict(results)
    return {
        "verdict": verdict,
        "claims_failed": sum(1 for result in results if result.verdict == "fail"),
        "claims_lacking_data": sum(1 for result in results if result.verdict == "not-enough-data"),
        "claims": [result.to_dict() for result in results],
        "claims_config": judged.model_dump(),
        "phase": "after-method" if method_started else "before-method",
        "seconds": measured.seconds,
        "start": _number(measured.start),
        "end": _number(measured.end),
        "sent": measured.sent,
        "good": measured.good,
        "failed": measured.failed,
        "missing": measured.missing,
        "success_ratio": _number(measured.success_ratio),
        "longest_error_window_s": measured.longest_error_window_s,
        "seconds_with_errors": measured.seconds_with_errors,
        "p50_ms": _number(measured.p50_ms),
        "p95_ms": _number(measured.p95_ms),
        "p99_ms": _number(measured.p99_ms),
        "target_rate": rate,
        "request_log": str(path),
    }


def healthy_instances(
    settle_s: float = 10.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """How many instances are running, ready and UP at the LB, against ``cluster.instances``.

    ``unhealthy`` is 0 only when exactly the configured number are fully healthy. Polls up to
    ``settle_s`` for that, so an instance a moment from its second health check is not a
    failure, while one that stays down is.
    """
    from chaoscautious.cluster import wait_healthy

    return wait_healthy(target(configuration), timeout_s=min(max(settle_s, 0.0), 300.0))


def lb_server_states(
    settle_s: float = 5.0, configuration: dict[str, Any] | None = None
) -> dict[str, Any]:
    """HAProxy's view of every instance slot in use: status and weight; ``not_up`` counts
    the ones out of rotation (or missing at the LB). Polls up to ``settle_s`` for all UP."""
    tgt = target(configuration)
    result: dict[str, Any] = {}
    for _ in deadline_loop(min(max(settle_s, 0.0), 300.0), 0.25):
        slots = {instance.name for instance in tgt.instances(running_only=False)}
        stats = tgt.runtime().stats()
        servers = {name: stats[name].status for name in sorted(slots) if name in stats}
        not_up = sum(1 for status in servers.values() if status != "UP") + len(slots - set(servers))
        result = {
            "servers": servers,
            "weights": {name: stats[name].weight for name in servers},
            "up": len(servers) - sum(1 for status in servers.values() if status != "UP"),
            "not_up": not_up,
        }
        if not_up == 0:
            break
    return result


def _p99(latencies: list[float]) -> float | None:
    """Nearest-rank p99, as cautious.measure.availability computes it."""
    if not latencies:
        return None
    ranked = sorted(latencies)
    return ranked[-(-99 * len(ranked) // 100) - 1]


def _starts_per_instance(tgt: Any, since: float) -> dict[str, int]:
    """Instance starts recorded in the journal by rollouts begun since ``since``: forward
    start steps and rollback restarts. More than two per slot in one rollout is a restart storm."""

    starts: dict[str, int] = {}
    journal = tgt.sandbox().journal
    for record in journal.rollouts():
        if record.begin["time"] < since:
            continue
        for step in record.steps:
            slots: list[str] = []
            if step.get("kind") == "start":
                slots = list(step.get("instances") or [])
            elif step.get("phase") == "rollback" and str(step.get("name", "")).startswith("start "):
                slots = [str(step["name"]).split()[1]]
            for slot in slots:
                starts[slot] = starts.get(slot, 0) + 1
    return starts


def rollout_state(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The rollout this experiment started: ``outcome`` is ``not-started`` before the method,
    ``none`` if the method started none, else running / succeeded / rolled-back / aborted /
    unchanged / failed. Also the instance starts per slot (``max_starts_per_instance``) and the
    engine's own restart count of the instances (``restarts``), to tell a clean failure from a
    restart storm (a watchdog restarting slow starters makes start-up worse)."""
    from chaoscautious.background import rollout_outcome

    tgt = target(configuration)
    state = RunState(tgt)
    phase = state.method_started()
    if phase is None:
        raise ChaosError(
            "rollout_state needs the chaoscautious control in the experiment "
            '("controls": [{"name": "cautious", "provider": {"type": "python", '
            '"module": "chaoscautious.controls"}}]) to tell before from after the method'
        )
    data = state.read()
    restarts = sum(instance.restarts for instance in tgt.instances(running_only=False))
    result: dict[str, Any] = {
        "outcome": "not-started",
        "release": None,
        "reason": "",
        "rollouts": 0,
        "starts": {},
        "max_starts_per_instance": 0,
        "restarts": restarts,
    }
    if not phase:
        return result
    rollouts = data.get("rollouts") or []
    starts = _starts_per_instance(tgt, float(data["method_started"]))
    result.update(
        rollouts=len(rollouts),
        starts=starts,
        max_starts_per_instance=max(starts.values(), default=0),
    )
    if not rollouts:
        result["outcome"] = "none"
        return result
    last = rollouts[-1]
    result.update(
        outcome=rollout_outcome(last), release=last["release"], reason=last.get("reason", "")
    )
    return result


def faults_caught(
    expect: int = 1,
    latency_threshold_ms: float | None = None,
    configuration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Were the injected latency/loss faults noticed — by the LB or by the measurement?

    A fault is caught by the LB when HAProxy took the instance out of rotation by itself while
    the fault was on (``add_latency(watch_lb_s=…)`` records it), and by the claims when the p99
    latency of the requests that instance answered during the fault exceeds
    ``latency_threshold_ms`` (default: the ``p99_ms`` claim). ``missed`` counts faults caught by
    neither, plus any of the ``expect`` faults that were never injected. Before the method:
    nothing injected, nothing missed.
    """
    from chaoscautious.background import read_records

    tgt = target(configuration)
    state = RunState(tgt)
    phase = state.method_started()
    if phase is None:
        raise ChaosError("faults_caught needs the chaoscautious control in the experiment")
    if not phase:
        return {"injected": 0, "caught": 0, "missed": 0, "faults": []}
    data = state.read()
    threshold = latency_threshold_ms or tgt.config.claims.p99_ms
    injected = [f for f in data.get("faults") or [] if f["kind"] in {"latency", "loss"}]
    records = []
    if (data.get("load") or {}).get("request_log"):
        records = read_records(Path(data["load"]["request_log"]))
    rows = []
    for fault in injected:
        until = fault["removed"] or time.time()
        served = [
            record
            for record in records
            if record.instance == fault["instance"] and fault["added"] <= record.start <= until
        ]
        p99 = _p99([record.latency_ms for record in served])
        by_claims = threshold is not None and p99 is not None and p99 > threshold
        by_lb = fault.get("lb_down_after_s") is not None
        rows.append(
            {
                "instance": fault["instance"],
                "spec": fault["spec"],
                "mechanism": fault["mechanism"],
                "lb_down_after_s": _number(fault.get("lb_down_after_s")),
                "requests_during": len(served),
                "p99_ms_during": _number(p99),
                "caught_by_lb": by_lb,
                "caught_by_claims": by_claims,
            }
        )
    caught = sum(1 for row in rows if row["caught_by_lb"] or row["caught_by_claims"])
    return {
        "injected": len(rows),
        "caught": caught,
        "missed": len(rows) - caught + max(0, expect - len(rows)),
        "faults": rows,
    }


def fault_leftovers(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """What faults left on the cluster right now: helper containers, netem qdiscs, LB servers
    pointed elsewhere, paused or disconnected instances; ``count`` is their total."""
    from chaoscautious.faults import leftovers

    return leftovers(target(configuration))
