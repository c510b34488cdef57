"""Shadow comparison (GitHub's Scientist, for a whole service): same request, two releases.

While the candidate runs out of rotation, the load generator mirrors a sample of idempotent
requests (GET, HEAD) to it and writes both answers to the shadow log, one JSON line a pair
(``cautious/measure/locust_shadow.py``; it mirrors while the target file names a URL, so the
load can start before the candidate exists). This module compares them after the run: the status,
and the body after normalisation —

- a JSON body is compared as data (key order and spacing do not matter), without the fields
  named by ``ignore_fields`` (dotted paths; ``*`` stands for any key or list index, e.g.
  ``release`` or ``users.*.updated``);
- every string (or a non-JSON body) has the matches of ``ignore_patterns`` masked (timestamps,
  generated ids).

The result is a mismatch ratio per endpoint (method and request name) with a few examples, and
a verdict against ``shadow_max_mismatch_ratio``: a release that answers one endpoint
differently fails, however healthy its error ratio and latency look. Too few comparisons is
``not-enough-data``, never a silent pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cautious.verdict import Verdict

__all__ = [
    "SHADOW_LOG_ENV",
    "SHADOW_LOG_NAME",
    "SHADOW_PLUGIN",
    "SHADOW_SAMPLE_ENV",
    "SHADOW_TARGET_ENV",
    "SHADOW_TARGET_NAME",
    "EndpointComparison",
    "ShadowPair",
    "ShadowReport",
    "ShadowRules",
    "compare",
    "normalise",
    "read_shadow_log",
]

SHADOW_LOG_NAME = "shadow.jsonl"
# The Locust plugin that mirrors, and the environment it reads (a subprocess loads it by path:
# importing it here would monkey-patch this process with gevent).
SHADOW_PLUGIN = Path(__file__).resolve().with_name("locust_shadow.py")
SHADOW_TARGET_ENV = "CAUTIOUS_SHADOW_TARGET"  # a file holding the candidate's URL, or nothing
SHADOW_TARGET_NAME = "shadow-target"
SHADOW_LOG_ENV = "CAUTIOUS_SHADOW_LOG"
SHADOW_SAMPLE_ENV = "CAUTIOUS_SHADOW_SAMPLE"
_EXAMPLES = 3
_MASK = "<ignored>"


@dataclass(frozen=True)
class ShadowRules:
    """What may differ between the two answers without counting as a mismatch."""

    ignore_fields: tuple[str, ...] = ()
    ignore_patterns: tuple[str, ...] = ()

    def patterns(self) -> list[re.Pattern[str]]:
        return [re.compile(pattern) for pattern in self.ignore_patterns]


@dataclass(frozen=True)
class ShadowPair:
    """One mirrored request: what the serving release and the candidate answered."""

    t: float
    method: str
    name: str
    path: str
    status: int
    body: str
    shadow_status: int  # 0: the candidate gave no answer (refused, reset, timed out)
    shadow_body: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShadowPair:
        return cls(
            t=float(data["t"]),
            method=str(data["method"]),
            name=str(data["name"]),
            path=str(data["path"]),
            status=int(data["status"]),
            body=str(data.get("body", "")),
            shadow_status=int(data["shadow_status"]),
            shadow_body=str(data.get("shadow_body", "")),
        )


@dataclass(frozen=True)
class EndpointComparison:
    """The pairs of one endpoint: how many, how many differed, and a few that did."""

    endpoint: str
    compared: int
    mismatched: int
    examples: tuple[dict[str, Any], ...] = ()

    @property
    def mismatch_ratio(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class ShadowReport:
    """Every endpoint's comparison and the verdict against the gate."""

    endpoints: tuple[EndpointComparison, ...]
    max_mismatch_ratio: float
    min_compared: int
    verdict: Verdict
    reason: str
    rules: ShadowRules = field(default_factory=ShadowRules)

    @property
    def compared(self) -> int:
        return sum(item.compared for item in self.endpoints)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "compared": self.compared,
            "max_mismatch_ratio": self.max_mismatch_ratio,
            "min_compared": self.min_compared,
            "ignore_fields": list(self.rules.ignore_fields),
            "ignore_patterns": list(self.rules.ignore_patterns),
            "endpoints": [
                {
                    "endpoint": item.endpoint,
                    "compared": item.compared,
                    "mismatched": item.mismatched,
                    "mismatch_ratio": item.mismatch_ratio,
                    "examples": list(item.examples),
                }
                for item in self.endpoints
            ],
        }


def read_shadow_log(path: Path) -> list[ShadowPair]:
    """Every pair in the shadow log (absent log: none; a torn last line is skipped)."""
    if not path.is_file():
        return []
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            pairs.append(ShadowPair.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return pairs


def normalise(body: str, rules: ShadowRules) -> Any:
    """The body as compared: JSON as data without ignored fields, strings with masks."""
    patterns = rules.patterns()
    try:
        document = json.loads(body)
    except ValueError:
        return _mask(body, patterns)
    for path in rules.ignore_fields:
        document = _drop(document, path.split("."))
    return _mask_all(document, patterns)


def compare(
    pairs: Iterable[ShadowPair],
    rules: ShadowRules,
    *,
    max_mismatch_ratio: float,
    min_compared: int,
) -> ShadowReport:
    """Compare every pair; fail when any endpoint's mismatch ratio is above the gate."""
    grouped: dict[str, list[ShadowPair]] = {}
    for pair in pairs:
        grouped.setdefault(f"{pair.method} {pair.name}", []).append(pair)
    endpoints = tuple(
        _compare_endpoint(endpoint, items, rules) for endpoint, items in sorted(grouped.items())
    )
    compared = sum(item.compared for item in endpoints)
    worst = max(endpoints, key=lambda item: item.mismatch_ratio, default=None)
    if worst is not None and worst.mismatch_ratio > max_mismatch_ratio:
        verdict: Verdict = "fail"
        reason = (
            f"{worst.endpoint} answered differently in {worst.mismatched} of {worst.compared} "
            f"mirrored requests ({worst.mismatch_ratio:.1%} > {max_mismatch_ratio:.1%})"
        )
    elif compared < min_compared:
        verdict = "not-enough-data"
        reason = f"{compared} mirrored requests compared, {min_compared} needed"
    else:
        verdict = "pass"
        reason = (
            f"{compared} mirrored requests over {len(endpoints)} endpoints, no endpoint above "
            f"{max_mismatch_ratio:.1%} mismatches"
        )
    return ShadowReport(endpoints, max_mismatch_ratio, min_compared, verdict, reason, rules)


def _compare_endpoint(
    endpoint: str, pairs: Sequence[ShadowPair], rules: ShadowRules
) -> EndpointComparison:
    mismatched = [pair for pair in pairs if not _same(pair, rules)]
    examples = tuple(
        {
            "path": pair.path,
            "status": pair.status,
            "shadow_status": pair.shadow_status,
            "body": pair.body[:300],
            "shadow_body": pair.shadow_body[:300],
        }
        for pair in mismatched[:_EXAMPLES]
    )
    return EndpointComparison(endpoint, len(pairs), len(mismatched), examples)


def _same(pair: ShadowPair, rules: ShadowRules) -> bool:
    if pair.status != pair.shadow_status:
        return False
    return bool(normalise(pair.body, rules) == normalise(pair.shadow_body, rules))


def _drop(node: Any, path: list[str]) -> Any:
    """``node`` without the field at ``path`` (``*``: every key or index at that level)."""
    if not path:
        return node
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        if not rest:
            return {key: value for key, value in node.items() if head not in ("*", key)}
        return {
            key: _drop(value, rest) if head in ("*", key) else value for key, value in node.items()
        }
    if isinstance(node, list):
        if not rest:
            return node if head != "*" else []
        return [
            _drop(value, rest) if head in ("*", str(index)) else value
            for index, value in enumerate(node)
        ]
    return node


def _mask(text: str, patterns: Sequence[re.Pattern[str]]) -> str:
    for pattern in patterns:
        text = pattern.sub(_MASK, text)
    return text


def _mask_all(node: Any, patterns: Sequence[re.Pattern[str]]) -> Any:
    if not patterns:
        return node
    if isinstance(node, str):
        return _mask(node, patterns)
    if isinstance(node, dict):
        return {key: _mask_all(value, patterns) for key, value in node.items()}
    if isinstance(node, list):
        return [_mask_all(value, patterns) for value in node]
    return node
