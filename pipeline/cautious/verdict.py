"""The one verdict of a run — ``pass``, ``fail`` or ``not-enough-data`` — and why.

Every report takes its verdict from :func:`judge_run`, whatever produced the run (deploy,
rollback, load, one experiment, a game day), and the exit code follows the verdict. It weighs:

- the claims, each already judged against the measurement: any failed claim fails the run; a
  claim without enough data, or no claim at all, proves nothing (``not-enough-data``, never a
  silent pass);
- the rollout's outcome: one that was rolled back or aborted fails the run, because a deploy
  that did not happen must fail the pipeline — unless the gate that stopped it said it had too
  little data to judge, which is a verdict of its own;
- on a game day, the experiments: they decide alone, because a rollback can be exactly what an
  experiment expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from cautious.measure.claims import ClaimResult
    from cautious.rollout.records import RolloutSummary

__all__ = ["Experiment", "Judgement", "Verdict", "judge_run", "worst"]

Verdict = Literal["pass", "fail", "not-enough-data"]


class Experiment(Protocol):
    """What the verdict needs of an experiment a game day ran."""

    @property
    def name(self) -> str: ...

    @property
    def held(self) -> bool: ...

    @property
    def reasons(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Judgement:
    """A verdict and the one sentence a reader needs to believe it."""

    verdict: Verdict
    reason: str


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """``fail`` if any failed, else ``not-enough-data`` if any lacked data or there were none
    (a pass must mean something was checked), else ``pass``."""
    found = set(verdicts)
    if "fail" in found:
        return "fail"
    if "not-enough-data" in found or not found:
        return "not-enough-data"
    return "pass"


def judge_run(
    claims: Sequence[ClaimResult],
    rollout: RolloutSummary | None = None,
    experiments: Sequence[Experiment] | None = None,
) -> Judgement:
    """The run's verdict (see the module docstring); ``experiments`` is None outside game days."""
    if experiments is not None:
        return _judge_experiments(experiments)
    judgement = _judge_claims(claims)
    if rollout is None or rollout.outcome == "succeeded":
        return judgement
    why = f": {rollout.reason}" if rollout.reason else ""
    stopped = f"the rollout was {rollout.outcome.replace('-', ' ')}{why}"
    gate = rollout.stopping_gate()
    if gate is not None and gate.verdict == "not-enough-data" and judgement.verdict != "fail":
        return Judgement("not-enough-data", f"{stopped}; {judgement.reason}")
    return Judgement("fail", f"{stopped}; {judgement.reason}")


def _judge_claims(claims: Sequence[ClaimResult]) -> Judgement:
    verdict = worst(claim.verdict for claim in claims)
    if verdict == "fail":
        failed = [claim.label for claim in claims if claim.verdict == "fail"]
        plural = "s" if len(failed) > 1 else ""
        return Judgement(verdict, f"claim{plural} not holding: {', '.join(failed)}")
    if verdict == "not-enough-data":
        lacking = [claim.label for claim in claims if claim.verdict == "not-enough-data"]
        if not lacking:
            return Judgement(verdict, "no claim was evaluated, so nothing was proven")
        return Judgement(verdict, f"not enough data to judge: {', '.join(lacking)}")
    if len(claims) == 1:
        return Judgement(verdict, "the one claim holds")
    return Judgement(verdict, f"all {len(claims)} claims hold")


def _judge_experiments(experiments: Sequence[Experiment]) -> Judgement:
    if not experiments:
        return Judgement("fail", "no experiment ran")
    failed = [experiment for experiment in experiments if not experiment.held]
    if len(experiments) == 1:
        if failed:
            return Judgement("fail", "; ".join(failed[0].reasons) or "the experiment did not hold")
        return Judgement(
            "pass",
            "the experiment held: its steady-state hypothesis was met before and after the "
            "method, every action and rollback succeeded, the cluster was left healthy",
        )
    if failed:
        names = ", ".join(experiment.name for experiment in failed)
        return Judgement(
            "fail", f"{len(failed)} of {len(experiments)} experiment(s) did not hold: {names}"
        )
    return Judgement("pass", f"all {len(experiments)} experiment(s) held")
