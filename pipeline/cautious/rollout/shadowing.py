"""The shadow gate: the candidate answers mirrored reads out of rotation before it serves.

For a :class:`~cautious.rollout.plan.Shadow` step the gate writes the candidate's address into
the load's shadow target file; the load generator's mirror plugin (which re-reads that file)
then sends a sample of GET and HEAD requests to it as well and logs both answers. After the
step's time the file is emptied and the pairs logged since the step began are compared
(:func:`cautious.measure.shadow.compare`, with the ``canary.shadow_*`` rules): any endpoint
above ``canary.shadow_max_mismatch_ratio`` fails the gate, too few pairs is not-enough-data.
Both stop the rollout, which rolls back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cautious.backends.base import Backend
from cautious.config import CanaryConfig
from cautious.exceptions import GateFailed
from cautious.measure.shadow import (
    SHADOW_LOG_NAME,
    SHADOW_TARGET_NAME,
    ShadowRules,
    compare,
    read_shadow_log,
)
from cautious.rollout.plan import Shadow

__all__ = ["shadow_gate"]

_FLUSH_S = 2.5  # the mirror's answers arrive after the requests; give the last ones time


def shadow_gate(
    step: Shadow,
    *,
    canary: CanaryConfig,
    backend: Backend,
    load_dir: Path | None,
    check_alive: Callable[[Sequence[str]], None],
    poll_s: float,
) -> dict[str, Any]:
    """Mirror to the step's first candidate for ``step.seconds``, then judge the pairs."""
    if load_dir is None:
        raise GateFailed("shadow: no load is running to mirror", verdict="not-enough-data")
    candidate = step.candidates[0]
    url = backend.instance(candidate).local_url
    if url is None:
        raise GateFailed(f"shadow: {candidate} has no address this machine reaches")
    target = load_dir / SHADOW_TARGET_NAME
    started = time.time()
    target.write_text(url, encoding="utf-8")
    try:
        deadline = time.monotonic() + step.seconds
        while time.monotonic() < deadline:
            check_alive(step.candidates)
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
    finally:
        target.write_text("", encoding="utf-8")
    time.sleep(_FLUSH_S)
    pairs = [pair for pair in read_shadow_log(load_dir / SHADOW_LOG_NAME) if pair.t >= started]
    report = compare(
        pairs,
        ShadowRules(tuple(canary.shadow_ignore_fields), tuple(canary.shadow_ignore_patterns)),
        max_mismatch_ratio=canary.shadow_max_mismatch_ratio,
        min_compared=canary.shadow_min_compared,
    )
    if report.verdict != "pass":
        raise GateFailed(f"shadow: {report.reason}", verdict=report.verdict)
    return {"shadow": report.to_dict()}
