"""Judging an experiment from its chaoslib journal, and the figures it recorded.

chaoslib's own status is not trusted alone: a hypothesis that fails during the method without
``--fail-fast`` does not set ``deviated``, and an action that raises is only recorded as a
failed activity while the experiment still ends ``completed`` and ``chaos run`` exits 0. So an
experiment *held* only when its journal says ``completed``, not deviated, the steady state was
met before and after the method (and during it, when checked), no action of the method failed,
and every rollback succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["ExperimentVerdict", "claims_config", "figures", "judge_journal"]

ExperimentVerdict = Literal["pass", "fail"]


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
) -> tuple[ExperimentVerdict, list[str]]:
    """``pass`` only if the experiment really held; else the reasons (see the module docstring).

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


def claims_config(journal: Mapping[str, Any] | None) -> dict[str, Any] | None:
    config = _availability_output(journal).get("claims_config")
    return config if isinstance(config, dict) else None


def figures(journal: Mapping[str, Any] | None) -> dict[str, Any]:
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
