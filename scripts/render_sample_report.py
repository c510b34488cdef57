"""Render a realistic sample report from a synthetic rolling rollout (for docs and demos).

The run is made up but shaped like a real one on the sandbox: 3 instances behind HAProxy at
100 req/s, a rolling v1 → v2 rollout (drain → maint → stop → start → ready → bake per
instance), start-up times that vary, a little extra latency while capacity is down, and one
second with a few connection errors when an instance stops with requests in flight.

    python scripts/render_sample_report.py OUT_DIR [--screenshot docs/report-screenshot.png]

Writes the request log (``requests.csv``) and the report folder into OUT_DIR; with
``--screenshot`` also renders report.html in headless Chromium to a PNG.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cautious.config import ClaimsConfig
from cautious.measure.availability import compute_availability
from cautious.measure.claims import evaluate_claims
from cautious.measure.requestlog import RequestRecord, read_request_log, write_request_log
from cautious.report.document import build_report, write_report
from cautious.rollout.records import InstanceRecord, RolloutSummary, StepRecord, TimelineEvent

RATE = 100
INSTANCES = ("sample-1", "sample-2", "sample-3")
T0 = 1_763_900_000.0  # load starts here (a fixed moment keeps the sample reproducible)
LOAD_S = 62.0
ROLLOUT_AT = T0 + 12.3


def synthetic_rollout(
    rng: random.Random,
) -> tuple[list[RequestRecord], RolloutSummary]:
    """Plan the rollout's steps and instance states, then the requests that flow through it."""
    steps: list[StepRecord] = []
    timeline = [TimelineEvent(T0 - 3.0, name, "v1", "ready") for name in INSTANCES]
    # When each instance is out of rotation: (instance, out_from, back_at, stopped_at).
    outages: list[tuple[str, float, float, float]] = []
    now = ROLLOUT_AT
    for name in INSTANCES:

        def step(label: str, seconds: float, detail: str = "", who: str = name) -> float:
            nonlocal now
            started, now = now, now + seconds
            steps.append(
                StepRecord(label, "forward", started, now, "ok", detail=detail, instances=(who,))
            )
            return started

        out_from = step("drain", 0.05, "LB drain")
        step("wait in-flight", rng.uniform(0.3, 0.8), "scur reached 0")
        step("maint", 0.05, "LB maint")
        timeline += [
            TimelineEvent(out_from, name, "v1", "draining"),
            TimelineEvent(now, name, "v1", "maint"),
        ]
        stopped_at = step("stop v1", rng.uniform(0.4, 0.9), "SIGTERM, exited 0")
        timeline.append(TimelineEvent(now, name, "v1", "stopped"))
        start_s = rng.lognormvariate(0.0, 0.4) + 0.3
        started = step("start v2", 0.2, "container started")
        timeline.append(TimelineEvent(started, name, "v2", "starting"))
        step("readiness", start_s, f"/ready answered 200 after {start_s:.1f} s")
        back_at = step("ready", 0.05, "LB ready")
        timeline.append(TimelineEvent(back_at, name, "v2", "ready"))
        step("bake", 2.0, "no regression in the request log")
        outages.append((name, out_from, back_at, stopped_at))
    rollout = RolloutSummary(
        id="20251123T121332-5a3c1e",
        strategy="rolling",
        from_release="v1",
        to_release="v2",
        outcome="succeeded",
        reason="every instance runs v2 and passed its bake",
        steps=tuple(steps),
        timeline=tuple(timeline),
        instances=tuple(InstanceRecord(name, "v2") for name in INSTANCES),
        started=ROLLOUT_AT,
        ended=now,
    )

    records: list[RequestRecord] = []
    release = {name: "v1" for name in INSTANCES}
    for n in range(int(LOAD_S * RATE)):
        t = T0 + n / RATE + rng.uniform(0, 0.4 / RATE)
        serving = [name for name, out_from, back_at, _ in outages if not out_from <= t < back_at]
        for name, _, back_at, _ in outages:
            release[name] = "v2" if t >= back_at else "v1"
        instance = serving[n % len(serving)]
        busy = 1.0 if len(serving) == len(INSTANCES) else 1.6
        latency = rng.lognormvariate(2.7, 0.35) * busy * (0.85 if release[instance] == "v2" else 1)
        # The second instance's old process drops three keep-alive requests as it stops.
        cut = outages[1][3]
        if cut <= t < cut + 0.05:
            records.append(RequestRecord(t, 2.4, 0, "GET", "/", "RemoteDisconnected", "", ""))
            continue
        records.append(RequestRecord(t, latency, 200, "GET", "/", "", instance, release[instance]))
    return records, rollout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--screenshot", type=Path, help="also write a PNG of report.html here")
    args = parser.parse_args()

    records, rollout = synthetic_rollout(random.Random(20261123))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    log = args.out_dir / "requests.csv"
    write_request_log(log, records)
    claims = ClaimsConfig(success_ratio=0.999, longest_error_window_s=1, p99_ms=300)
    availability = compute_availability(
        read_request_log(log),
        target_rate=RATE,
        slo=claims.success_ratio,
        rollout_start=rollout.started,
        rollout_end=rollout.ended,
    )
    document = build_report(
        command="invoke deploy --release v2",
        availability=availability,
        claims=evaluate_claims(claims, availability),
        rollout=rollout,
        context={"cluster": "sandbox", "lb_url": "http://127.0.0.1:8080/", "rate": RATE},
        created=datetime.fromtimestamp(rollout.ended or T0, UTC),
    )
    paths = write_report(document, args.out_dir)
    print(f"{document.verdict}: {document.judgement.reason}\n{paths['html']}")
    if args.screenshot:
        screenshot(paths["html"], args.screenshot)
        print(args.screenshot)
    return 0


def screenshot(page: Path, png: Path) -> None:
    """Headless Chromium's view of a page, 1280 px wide."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed; install it or drop --screenshot")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--screenshot={png.resolve()}",
                "--window-size=1280,1600",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


if __name__ == "__main__":
    sys.exit(main())
