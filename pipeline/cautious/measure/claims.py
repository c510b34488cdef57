"""Claims turned into verdicts, each with the figure that decided it.

A claim declared in ``cautious.yaml`` (``claims:``) is checked against measured availability.
Too little data is its own verdict, ``not-enough-data``, never a silent pass: fewer requests
than ``min_requests`` (sent + missing), or not one full second measured, proves nothing.
The read-only claims (``read_success_ratio``, ``write_refused_max_s``, ``write_failures``) are
judged on the reads and writes counted apart; a run without a read-only window has no figures
for them (``not-enough-data``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from cautious.config import ClaimsConfig
from cautious.measure.availability import Availability
from cautious.measure.readwrite import ReadWriteStats
from cautious.verdict import Verdict, worst

__all__ = [
    "ClaimResult",
    "claim_label",
    "evaluate_claims",
    "format_figure",
    "format_target",
    "overall_verdict",
]


@dataclass(frozen=True)
class ClaimResult:
    """One claim's verdict; ``measured`` is None when there was nothing to measure."""

    name: str
    target: float
    measured: float | None
    verdict: Verdict
    detail: str

    @property
    def label(self) -> str:
        """What the claim is called in reports ("success ratio")."""
        return claim_label(self.name)

    def to_dict(self) -> dict[str, Any]:
        """The report.json form."""
        return asdict(self)


M = TypeVar("M")


@dataclass(frozen=True)
class _Rule(Generic[M]):
    """How one ClaimsConfig key is measured (from figures of type M), compared and written."""

    label: str
    at_least: bool
    measure: Callable[[M], float | None]
    show: Callable[[float], str]


def _percent(value: float) -> str:
    return f"{value * 100:.4f}".rstrip("0").rstrip(".") + " %"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _count(value: float) -> str:
    return f"{value:,.0f}"


_RULES: dict[str, _Rule[Availability]] = {
    "success_ratio": _Rule("success ratio", True, lambda a: a.success_ratio, _percent),
    "longest_error_window_s": _Rule(
        "longest error window", False, lambda a: a.longest_error_window_s, _seconds
    ),
    "p99_ms": _Rule("p99 latency", False, lambda a: a.p99_ms, _ms),
    "failed_requests": _Rule(
        "failed requests (failed + missing)", False, lambda a: a.failed + a.missing, _count
    ),
}
_READ_WRITE_RULES: dict[str, _Rule[ReadWriteStats]] = {
    "read_success_ratio": _Rule(
        "reads served (read-only mode)", True, lambda rw: rw.read_success_ratio, _percent
    ),
    "write_refused_max_s": _Rule(
        "writes refused for (read-only mode)", False, lambda rw: rw.write_refused_s, _seconds
    ),
    "write_failures": _Rule(
        "writes failed, not refused by design", False, lambda rw: rw.writes_failed, _count
    ),
}
_ALL_RULES: dict[str, _Rule[Any]] = {**_RULES, **_READ_WRITE_RULES}


def claim_label(name: str) -> str:
    """What a claim is called in reports ("success ratio"); unknown names are shown as is."""
    rule = _ALL_RULES.get(name)
    return rule.label if rule else name


def format_figure(name: str, value: float | None) -> str:
    """A measured or claimed figure in the claim's unit ("99.95 %", "1 s", "312.4 ms")."""
    if value is None:
        return "-"
    rule = _ALL_RULES.get(name)
    return rule.show(value) if rule else f"{value:g}"


def format_target(name: str, target: float) -> str:
    """The claim's bound with its direction ("≥ 99.9 %", "≤ 1 s")."""
    rule = _ALL_RULES.get(name)
    relation = "≥" if rule is not None and rule.at_least else "≤"
    return f"{relation} {format_figure(name, target)}"


def evaluate_claims(
    claims: ClaimsConfig, availability: Availability, read_write: ReadWriteStats | None = None
) -> list[ClaimResult]:
    """A result for every claim that is set (a claim set to None is not evaluated);
    ``read_write``: reads and writes counted apart, when the run had a read-only window."""
    total = availability.sent + availability.missing
    shortage: str | None = None
    if availability.seconds == 0:
        shortage = "no full second of load was measured"
    elif total < claims.min_requests:
        shortage = (
            f"only {total:,} requests (sent + missing) were measured; "
            f"min_requests is {claims.min_requests:,}"
        )
    results: list[ClaimResult] = []
    for name, rule in _RULES.items():
        target: float | None = getattr(claims, name)
        if target is None:
            continue
        measured = rule.measure(availability)
        results.append(_judge(name, rule, target, measured, _context(name, availability), shortage))
    for name, rw_rule in _READ_WRITE_RULES.items():
        target = getattr(claims, name)
        if target is None:
            continue
        if read_write is None:
            results.append(_judge(name, rw_rule, target, None, "", "no read-only window ran"))
            continue
        context = (
            f" ({read_write.reads:,} reads, {read_write.writes:,} writes: "
            f"{read_write.writes_refused:,} refused, {read_write.writes_failed:,} failed)"
        )
        results.append(
            _judge(name, rw_rule, target, rw_rule.measure(read_write), context, shortage)
        )
    return results


def overall_verdict(results: Sequence[ClaimResult]) -> Verdict:
    """The worst of the claims' verdicts (see :func:`cautious.verdict.worst`)."""
    return worst(result.verdict for result in results)


def _judge(
    name: str,
    rule: _Rule[Any],
    target: float,
    measured: float | None,
    context: str,
    shortage: str | None,
) -> ClaimResult:
    claimed = f"claimed {format_target(name, target)}"
    if shortage is not None or measured is None:
        reason = shortage or "nothing was measured (no request was sent)"
        return ClaimResult(name, target, measured, "not-enough-data", f"{reason}; {claimed}")
    holds = measured >= target if rule.at_least else measured <= target
    figure = f"measured {rule.show(measured)}{context}"
    return ClaimResult(
        name,
        target,
        measured,
        "pass" if holds else "fail",
        f"{figure}, {claimed}" if holds else f"{figure}, {claimed}: the claim does not hold",
    )


def _context(name: str, availability: Availability) -> str:
    """The counts behind a figure, so a reader can check it without opening report.json."""
    total = availability.sent + availability.missing
    if name == "success_ratio":
        return f" ({availability.good:,} good of {total:,} sent + missing)"
    if name == "longest_error_window_s":
        return f" ({availability.seconds_with_errors:,} of {availability.seconds:,} s had errors)"
    if name == "p99_ms":
        return f" (over {availability.sent:,} requests)"
    return f" ({availability.failed:,} failed + {availability.missing:,} missing)"
