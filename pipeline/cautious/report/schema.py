"""What a ``report.json`` from outside must look like before it is rendered again.

``invoke report PATH`` reads a file anyone may have edited. Before a renderer sees it, the
document is checked against the keys and types ``docs/report-schema.md`` promises (unknown keys
are allowed: readers ignore them), every number must be finite and of a sensible size (a chart
axis of 1e300 seconds never ends), and the collections a chart grows with are bounded. A
document that fails is bad input: one line naming the key path, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cautious.exceptions import UsageError
from cautious.inputs import invalid_value, shorten

__all__ = ["MAX_NUMBER", "check_report"]

MAX_NUMBER = 1e15  # larger than any epoch second, count or latency a real run records
_MAX_LANES = 256  # instances in the timeline: the chart grows one lane per instance

Verdict = Literal["pass", "fail", "not-enough-data"]
Number = float | int
Context = str | int | float | bool | None


class _Part(BaseModel):
    """Known keys are typed strictly (no booleans for numbers); unknown keys are kept."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class _Claim(_Part):
    name: str
    target: Number | None
    measured: Number | None
    verdict: Verdict
    detail: str = ""


class _Figures(_Part):
    """The figures of a whole measurement or of one phase."""

    start: int | None = None
    end: int | None = None
    seconds: int = 0
    sent: int
    good: int
    failed: int
    missing: int
    success_ratio: Number | None
    longest_error_window_s: Number = 0
    seconds_with_errors: int = 0
    error_budget_used: Number | None = None
    p50_ms: Number | None = None
    p95_ms: Number | None = None
    p99_ms: Number | None = None


class _Second(_Part):
    t: int
    sent: int
    good: int
    failed: int
    missing: int
    p50_ms: Number | None = None
    p95_ms: Number | None = None
    p99_ms: Number | None = None


class _Breakdown(_Part):
    sent: int
    good: int
    failed: int
    success_ratio: Number | None = None
    p50_ms: Number | None = None
    p99_ms: Number | None = None


class _Availability(_Figures):
    target_rate: Number | None = None
    slo: Number | None = None
    per_second: list[_Second]
    phases: dict[str, _Figures] = Field(default_factory=dict)
    per_instance: dict[str, _Breakdown] = Field(default_factory=dict)
    per_release: dict[str, _Breakdown] = Field(default_factory=dict)


class _Step(_Part):
    name: str
    instance: str | None = None
    started: Number
    ended: Number | None
    outcome: str
    detail: str = ""


class _Rollout(_Part):
    strategy: str
    from_release: str
    to_release: str
    outcome: str
    reason: str = ""
    started: Number | None = None
    ended: Number | None = None
    steps: list[_Step]
    canary: list[dict[str, Any]] | None = None


class _Event(_Part):
    t: Number
    instance: str
    state: str
    release: str = ""


class _Instance(_Part):
    name: str
    release: str


class _Experiment(_Part):
    name: str
    title: str = ""
    status: str = ""
    deviated: bool
    verdict: Verdict | None = None
    reasons: list[str] = Field(default_factory=list)
    duration_s: Number | None = None
    figures: dict[str, Any] = Field(default_factory=dict)
    rollout: dict[str, Any] = Field(default_factory=dict)
    cleanup: dict[str, Any] = Field(default_factory=dict)
    events: list[str | None] = Field(default_factory=list)
    folder: str | None = None
    journal: str | None = None
    report: str | None = None
    report_html: str | None = None


class _Report(_Part):
    schema_version: Literal[1]
    tool: dict[str, str]
    command: str
    created: str
    verdict: Verdict
    verdict_reason: str
    context: dict[str, Context]
    claims: list[_Claim]
    availability: _Availability | None
    rollout: _Rollout | None
    timeline: list[_Event]
    instances: list[_Instance]
    experiments: list[_Experiment] | None = None


def check_report(report: Mapping[str, Any], source: str) -> None:
    """Refuse a document the renderers cannot trust (UsageError, one line)."""
    huge = _first_huge_number(report)
    if huge is not None:
        where, value = huge
        raise UsageError(
            f"{source}: {where} = {shorten(value)} is not allowed: "
            f"numbers in a report are at most {MAX_NUMBER:g} in size"
        )
    try:
        checked = _Report.model_validate(report)
    except ValidationError as exc:
        problem = invalid_value(exc.errors()[0])
        raise UsageError(f"{source}: {problem} (see docs/report-schema.md)") from None
    lanes = {event.instance for event in checked.timeline}
    if len(lanes) > _MAX_LANES:
        raise UsageError(
            f"{source}: timeline names {len(lanes)} instances; a report shows at most {_MAX_LANES}"
        )


def _first_huge_number(document: Any) -> tuple[str, float] | None:
    """The key path and value of the first number too large (or not finite), if any."""
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        where, node = pending.pop()
        if isinstance(node, bool):
            continue
        if isinstance(node, int | float):
            if not (math.isfinite(node) and abs(node) <= MAX_NUMBER):
                return where or "the document", node
        elif isinstance(node, Mapping):
            pending.extend((f"{where}.{key}".lstrip("."), value) for key, value in node.items())
        elif isinstance(node, list):
            pending.extend(
                (f"{where}.{index}".lstrip("."), item) for index, item in enumerate(node)
            )
    return None
