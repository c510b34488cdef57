"""Calibration of the canary judge by simulation (``invoke bench --judge``).

A judge that claims "at most 1 % of good canaries are rolled back" must show it. This runs
thousands of simulated canary rollouts through the same bounds the runner's judge uses, on the
default schedule: requests arrive at the configured rate (Poisson), each goes to the canary with
the step's share, fails with the release's error ratio, and a good one takes a lognormal
latency. The judge looks once a second, exactly as the runner does; the rollout fails at the
first failing look, promotes at the first all-pass look after the last step's bake, extends up
to ``canary.max_extension_s``, and otherwise ends not-enough-data.

- A/A: canary and baseline identical, at 0, 0.5, 2 and 5 % errors: how often a good release is
  rolled back (must stay ≤ the false-rollback rate), and how often it passes in time.
- A/B: +1, +2, +5 points of errors, +20 % and +50 % p99 (a slower release), and a change of
  variance only (same median, p99 +50 %): how often each is caught within the schedule.

Every ratio comes with its exact 95 % (Clopper-Pearson) interval. Runs are vectorised with numpy
and processed in chunks, so a full calibration takes a few minutes on two cores.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest, norm

from cautious.config import CanaryConfig
from cautious.judges.bounds import error_bound, latency_bounds
from cautious.judges.planner import metric_alphas, timeline
from cautious.judges.samples import bin_index

__all__ = [
    "DEFAULT_STEPS",
    "Calibration",
    "Scenario",
    "ScenarioResult",
    "default_scenarios",
    "render_calibration",
    "run_calibration",
    "simulate",
]

DEFAULT_STEPS = (5, 25, 50, 100)
MEDIAN_MS = 50.0
SIGMA = 0.5  # spread of log-latency (ms): p99 ≈ 3.2 × the median
_LOOK_S = 1  # the runner judges once a second
_CHUNK_RUNS = 250
_BLOCK_S = 15  # seconds simulated at once: small enough to stop soon after the last decision
_P99_Z = float(norm.ppf(0.99))

Kind = Literal["A/A", "A/B"]


@dataclass(frozen=True)
class Scenario:
    """One simulated release pair: the baseline's behaviour and the canary's."""

    name: str
    kind: Kind
    rate: float
    baseline_error: float
    canary_error: float
    latency_scale: float = 1.0  # the canary's latencies, multiplied
    latency_sigma: float = SIGMA  # the canary's spread of log-latency


@dataclass(frozen=True)
class ScenarioResult:
    """How the simulated rollouts of one scenario ended."""

    scenario: Scenario
    runs: int
    failed: int
    passed: int
    not_enough_data: int
    failed_within_schedule: int
    fail_ratio: float
    fail_ci95: tuple[float, float]
    within_schedule_ratio: float
    within_schedule_ci95: tuple[float, float]
    pass_ratio: float
    failed_on: dict[str, int]
    median_fail_s: float | None
    p95_fail_s: float | None
    median_pass_s: float | None


@dataclass(frozen=True)
class Calibration:
    """Every scenario's result and the settings they ran under."""

    started: str
    seconds: float
    settings: dict[str, object]
    results: tuple[ScenarioResult, ...]
    json_path: Path | None = None
    plot_path: Path | None = field(default=None)


def default_scenarios(rates: Sequence[float] = (100.0, 200.0)) -> list[Scenario]:
    """The issue's calibration set: A/A at four baselines, A/B for six regressions per rate."""
    scenarios = [
        Scenario(f"A/A {p:.1%} errors", "A/A", rate, p, p)
        for rate in rates
        for p in (0.0, 0.005, 0.02, 0.05)
    ]
    variance_only = SIGMA + float(np.log(1.5)) / _P99_Z  # same median, p99 × 1.5
    for rate in rates:
        scenarios += [
            Scenario(f"errors 1% → {1 + d}%", "A/B", rate, 0.01, 0.01 + d / 100) for d in (1, 2, 5)
        ]
        scenarios += [
            Scenario("p99 +20 % (slower)", "A/B", rate, 0.01, 0.01, latency_scale=1.2),
            Scenario("p99 +50 % (slower)", "A/B", rate, 0.01, 0.01, latency_scale=1.5),
            Scenario(
                "p99 +50 % (variance only)", "A/B", rate, 0.01, 0.01, latency_sigma=variance_only
            ),
        ]
    return scenarios


def _window(scenario: Scenario) -> tuple[int, int]:
    """The bins either side's latencies can reach (±6 σ), so the histograms stay small."""
    widest = max(scenario.latency_sigma, SIGMA)
    low = MEDIAN_MS * min(scenario.latency_scale, 1.0) * np.exp(-6 * widest)
    high = MEDIAN_MS * max(scenario.latency_scale, 1.0) * np.exp(6 * widest)
    first, last = bin_index(np.array([low, high]))
    return int(first), int(last - first + 1)


class _Runs:
    """A chunk of simulated rollouts, advanced a block of seconds at a time.

    Keeps only the running totals (counts and each side's latency histogram), so a chunk's
    memory is its runs × the block's seconds × the histogram's bins.
    """

    def __init__(
        self, scenario: Scenario, canary: CanaryConfig, runs: int, rng: np.random.Generator
    ) -> None:
        self.scenario = scenario
        self.canary = canary
        self.rng = rng
        self.floors = canary.detect.latency_floors()
        self.alphas = metric_alphas(canary.false_rollback_rate, len(self.floors))
        self.window = _window(scenario)
        self.counts = np.zeros((4, runs, 1), dtype=np.int64)  # c_err, c_req, b_err, b_req
        self.histograms = np.zeros((2, runs, 1, self.window[1]), dtype=np.int64)

    def _latencies(
        self, good: npt.NDArray[np.int64], scale: float, sigma: float
    ) -> npt.NDArray[np.int64]:
        """Per-second latency histograms of ``good`` answers, shape (runs, seconds, bins)."""
        runs, seconds = good.shape
        first, width = self.window
        values = MEDIAN_MS * scale * np.exp(sigma * self.rng.standard_normal(int(good.sum())))
        bins = np.clip(bin_index(values) - first, 0, width - 1)
        cell = np.repeat(np.arange(runs * seconds), good.ravel())
        flat = np.bincount(cell * width + bins, minlength=runs * seconds * width)
        return flat.reshape(runs, seconds, width)

    def advance(
        self, shares: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], dict[str, npt.NDArray[np.bool_]]]:
        """Simulate one block of seconds; per run and look: failing, passing, each metric's fail."""
        scenario, canary = self.scenario, self.canary
        runs = self.counts.shape[1]
        total = self.rng.poisson(scenario.rate, size=(runs, shares.size))
        n_c = self.rng.binomial(total, shares / 100)
        n_b = total - n_c
        x_c = self.rng.binomial(n_c, scenario.canary_error)
        x_b = self.rng.binomial(n_b, scenario.baseline_error)
        block = np.stack([x_c, n_c, x_b, n_b])
        cum = self.counts[:, :, -1:] + np.cumsum(block, axis=2)
        self.counts = cum[:, :, -1:]
        counts = (cum[0], cum[1], cum[2], cum[3])
        error_alpha, latency_alpha = self.alphas
        fails = {"error_ratio": error_bound(*counts, error_alpha, "lower") > 0}
        passing = error_bound(*counts, 1 - canary.power, "upper") < canary.detect.error_ratio
        if self.floors:
            fresh = (
                self._latencies(n_c - x_c, scenario.latency_scale, scenario.latency_sigma),
                self._latencies(n_b - x_b, 1.0, SIGMA),
            )
            hist_c, hist_b = (
                np.cumsum(self.histograms[i][:, -1:] + np.cumsum(fresh[i], axis=1), axis=2)
                for i in (0, 1)
            )
            self.histograms = np.stack(
                [np.diff(h[:, -1:], axis=2, prepend=0) for h in (hist_c, hist_b)]
            )
            for level, floor in self.floors.items():
                low, _ = latency_bounds(hist_c, hist_b, level, latency_alpha, self.window[0])
                _, high = latency_bounds(hist_c, hist_b, level, 1 - canary.power, self.window[0])
                fails[f"latency_p{level * 100:g}"] = low > 0
                passing &= high < floor
        failing = np.logical_or.reduce(list(fails.values()))
        return failing, passing, fails


def simulate(
    scenario: Scenario,
    canary: CanaryConfig,
    runs: int,
    rng: np.random.Generator,
    steps: Sequence[int] = DEFAULT_STEPS,
) -> ScenarioResult:
    """Run ``runs`` simulated canary rollouts of ``scenario`` under ``canary``'s judge.

    Time advances in blocks; a chunk stops as soon as every one of its rollouts is decided.
    """
    line = timeline(scenario.rate, steps, canary.bake_s, canary.max_extension_s)
    ticks = round(_LOOK_S / float(line.seconds[0]))
    shares = line.percent[ticks - 1 :: ticks]
    scheduled = round(line.scheduled_s / _LOOK_S)  # looks 0 .. scheduled-1 are the bakes
    kinds = np.zeros(runs, dtype=np.int64)  # 1 fail, 2 pass, 0 not-enough-data
    seconds = np.full(runs, np.nan)
    fail_metric: dict[str, int] = {}
    for first in range(0, runs, _CHUNK_RUNS):
        chunk = slice(first, min(first + _CHUNK_RUNS, runs))
        stream = _Runs(scenario, canary, chunk.stop - first, rng)
        for start in range(0, shares.size, _BLOCK_S):
            failing, passing, fails = stream.advance(shares[start : start + _BLOCK_S])
            looks = start + np.arange(failing.shape[1])
            passing &= looks >= scheduled - 1  # promotion waits for the last step's bake
            open_ = kinds[chunk] == 0
            never = failing.shape[1]
            first_fail = np.where(failing.any(axis=1), failing.argmax(axis=1), never)
            first_pass = np.where(passing.any(axis=1), passing.argmax(axis=1), never)
            kind = np.where(first_fail < first_pass, 1, np.where(first_pass < never, 2, 0))
            kind = np.where(open_, kind, 0)
            at = np.minimum(first_fail, first_pass)
            seconds[chunk] = np.where(kind > 0, (start + at + 1) * _LOOK_S, seconds[chunk])
            for name, metric in fails.items():
                hit = metric[np.arange(at.size), np.minimum(at, never - 1)] & (kind == 1)
                fail_metric[name] = fail_metric.get(name, 0) + int(hit.sum())
            kinds[chunk] = np.where(kind > 0, kind, kinds[chunk])
            if (kinds[chunk] > 0).all():
                break
    failed, passed = int((kinds == 1).sum()), int((kinds == 2).sum())
    early = int(((kinds == 1) & (seconds <= line.scheduled_s)).sum())
    fail_s, pass_s = seconds[kinds == 1], seconds[kinds == 2]
    return ScenarioResult(
        scenario=scenario,
        runs=runs,
        failed=failed,
        passed=passed,
        not_enough_data=runs - failed - passed,
        failed_within_schedule=early,
        fail_ratio=failed / runs,
        fail_ci95=_ci(failed, runs),
        within_schedule_ratio=early / runs,
        within_schedule_ci95=_ci(early, runs),
        pass_ratio=passed / runs,
        failed_on=fail_metric,
        median_fail_s=float(np.median(fail_s)) if fail_s.size else None,
        p95_fail_s=float(np.percentile(fail_s, 95)) if fail_s.size else None,
        median_pass_s=float(np.median(pass_s)) if pass_s.size else None,
    )


def _ci(hits: int, runs: int) -> tuple[float, float]:
    interval = binomtest(hits, runs).proportion_ci(confidence_level=0.95, method="exact")
    return round(float(interval.low), 5), round(float(interval.high), 5)


def run_calibration(
    results_dir: str | os.PathLike[str] = "bench/results",
    *,
    canary: CanaryConfig | None = None,
    aa_runs: int = 1_000,
    ab_runs: int = 1_000,
    rates: Sequence[float] = (100.0, 200.0),
    seed: int = 20_220_529,
    write: bool = True,
) -> Calibration:
    """Simulate every default scenario; write ``judge-<UTC timestamp>.json`` and ``.png``."""
    settings = canary or CanaryConfig()
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    results = tuple(
        simulate(item, settings, aa_runs if item.kind == "A/A" else ab_runs, rng)
        for item in default_scenarios(rates)
    )
    described: dict[str, object] = {
        "canary": settings.model_dump(),
        "steps": list(DEFAULT_STEPS),
        "latency": f"lognormal, median {MEDIAN_MS:g} ms, sigma {SIGMA:g}",
        "looks_per_s": 1 / _LOOK_S,
        "seed": seed,
    }
    calibration = Calibration(started, round(time.perf_counter() - began, 1), described, results)
    if not write:
        return calibration
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"judge-{started}.json"
    document = {
        "schema_version": 1,
        "started": started,
        "seconds": calibration.seconds,
        "settings": described,
        "results": [asdict(result) for result in results],
    }
    json_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    plot_path = _plot(results, settings, out / f"judge-{started}.png")
    return Calibration(started, calibration.seconds, described, results, json_path, plot_path)


def _plot(results: Sequence[ScenarioResult], settings: CanaryConfig, path: Path) -> Path:
    """A/A false rollbacks against the declared rate; A/B detection against the power."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(13, 5))
    for axis, kind, value, target, title in (
        (left, "A/A", "fail_ratio", settings.false_rollback_rate, "A/A: good canaries rolled back"),
        (right, "A/B", "within_schedule_ratio", settings.power, "A/B: regressions caught in time"),
    ):
        chosen = [item for item in results if item.scenario.kind == kind]
        rates = sorted({item.scenario.rate for item in chosen})
        names = list(dict.fromkeys(item.scenario.name for item in chosen))
        width = 0.8 / len(rates)
        for i, rate in enumerate(rates):
            rows = [item for item in chosen if item.scenario.rate == rate]
            heights = [getattr(item, value) for item in rows]
            cis = [
                item.fail_ci95 if value == "fail_ratio" else item.within_schedule_ci95
                for item in rows
            ]
            errors = np.array(
                [
                    [h - lo for h, (lo, _) in zip(heights, cis, strict=True)],
                    [hi - h for h, (_, hi) in zip(heights, cis, strict=True)],
                ]
            )
            positions = np.arange(len(rows)) + i * width
            axis.bar(positions, heights, width, yerr=errors, capsize=3, label=f"{rate:g} req/s")
        axis.axhline(target, color="black", linestyle="--", linewidth=1)
        axis.set_xticks(np.arange(len(names)) + width * (len(rates) - 1) / 2)
        axis.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        axis.set_title(title)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def render_calibration(calibration: Calibration) -> str:
    """A plain-text table for the terminal and CI logs."""
    lines = [
        f"{'scenario':<28} {'rate':>5} {'runs':>5} {'fail':>7} {'95 % CI':>17} "
        f"{'in time':>7} {'pass':>6} {'fail s (med/p95)':>17}"
    ]
    for item in calibration.results:
        lo, hi = item.fail_ci95
        timing = (
            f"{item.median_fail_s:.0f}/{item.p95_fail_s:.0f}"
            if item.median_fail_s is not None and item.p95_fail_s is not None
            else "-"
        )
        lines.append(
            f"{item.scenario.name:<28} {item.scenario.rate:>5g} {item.runs:>5} "
            f"{item.fail_ratio:>7.2%} {f'[{lo:.2%}, {hi:.2%}]':>17} "
            f"{item.within_schedule_ratio:>7.1%} {item.pass_ratio:>6.1%} {timing:>17}"
        )
    where = f"; results: {calibration.json_path}" if calibration.json_path else ""
    lines.append(f"{calibration.seconds:.0f} s of simulation{where}")
    return "\n".join(lines)
