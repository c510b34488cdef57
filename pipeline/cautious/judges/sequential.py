"""Anytime-valid confidence sequences for proportions and quantiles, vectorised with numpy.

A canary is looked at on every poll of every step, so an ordinary confidence interval (valid
for one look) would be wrong most of the time over a whole rollout. These are *confidence
sequences*: with probability at least ``1 - alpha`` they cover the truth at every look at once,
however many looks there are and whenever the looking stops (Ville's inequality on a
nonnegative martingale). This is the standard of Lindon, Sanden and Shirikian, "Rapid Regression
Detection in Software Deployments through Sequential Testing" (KDD 2022).

The martingale is the beta-binomial mixture of Bernoulli likelihood ratios (Robbins' method of
mixtures; equivalently the prior-to-posterior ratio of a Beta prior):

    M_n(p) = B(k + a, n - k + b) / B(a, b) / (p^k (1 - p)^(n - k))

for ``k`` successes in ``n`` Bernoulli(p) trials. ``{p : M_n(p) < 1/alpha}`` is a confidence
sequence for an unknown proportion (errors); for a known ``p`` the same set read in ``k`` bounds
how many of ``n`` samples fall below the p-quantile, which brackets the quantile between two
order statistics (latency). Every function accepts arrays, so the calibration simulates a
thousand rollouts with the same code the runner uses for one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import elementwise
from scipy.special import betaln, xlog1py, xlogy

__all__ = [
    "ERROR_PRIOR",
    "ArrayLike",
    "BetaPrior",
    "FloatArray",
    "log_mixture_ratio",
    "proportion_bound",
    "proportion_bounds",
    "quantile_prior",
    "rank_bounds",
]

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | int | npt.NDArray[np.float64] | npt.NDArray[np.int64]


@dataclass(frozen=True)
class BetaPrior:
    """The mixing distribution Beta(a, b): where it puts its mass is where the test is sharpest."""

    a: float
    b: float


# Error ratios of interest lie between 0 and a few percent: a prior with its mean near 2 % is
# sharpest there, and still valid (only wider) for any true ratio.
ERROR_PRIOR = BetaPrior(0.5, 20.0)

# A quantile test knows its level p; a prior centred on p, worth this many samples, is sharpest
# around a few thousand samples — what a canary step collects at 100-200 req/s.
_QUANTILE_PRIOR_SAMPLES = 400.0


def quantile_prior(level: float) -> BetaPrior:
    """The mixing distribution for a test of the ``level`` quantile."""
    return BetaPrior(_QUANTILE_PRIOR_SAMPLES * level, _QUANTILE_PRIOR_SAMPLES * (1.0 - level))


def log_mixture_ratio(k: ArrayLike, n: ArrayLike, p: ArrayLike, prior: BetaPrior) -> FloatArray:
    """log M_n(p): the evidence against "success probability p" after k successes in n trials.

    Continuous in k and n (the planner evaluates expected counts); convex in p and in k.
    """
    k_ = np.asarray(k, dtype=np.float64)
    n_ = np.asarray(n, dtype=np.float64)
    p_ = np.asarray(p, dtype=np.float64)
    mixture = betaln(k_ + prior.a, n_ - k_ + prior.b) - betaln(prior.a, prior.b)
    likelihood = xlogy(k_, p_) + xlog1py(n_ - k_, -p_)
    return np.asarray(mixture - likelihood, dtype=np.float64)


# Bounds are reported to a few significant digits and ranks are integers: a relative precision
# of 1e-7 is ample and needs a third of the iterations of full machine precision.
_TOLERANCES = {"xrtol": 1e-7, "xatol": 1e-12}


def _root_or_edge(
    excess: Callable[..., FloatArray],
    inner: FloatArray,
    outer: FloatArray,
    args: tuple[FloatArray | float, ...],
) -> FloatArray:
    """Where ``excess`` (convex, negative at ``inner``) crosses zero between the two ends.

    Returns ``outer`` where it never does (the bound is the edge of the parameter space).
    ``args`` are arrays shaped like ``inner``, passed on to ``excess`` after the abscissa.
    """
    crosses = excess(outer, *args) >= 0
    if not np.any(crosses):
        return outer.copy()
    lo, hi = np.minimum(inner, outer), np.maximum(inner, outer)
    result = elementwise.find_root(excess, (lo, hi), args=args, tolerances=_TOLERANCES)
    return np.asarray(np.where(crosses, result.x, outer), dtype=np.float64)


def _excess_in_p(
    p: FloatArray, k: FloatArray, n: FloatArray, threshold: FloatArray, a: float, b: float
) -> FloatArray:
    return log_mixture_ratio(k, n, p, BetaPrior(a, b)) - threshold


def _excess_in_k(
    k: FloatArray, n: FloatArray, level: FloatArray, threshold: FloatArray, a: float, b: float
) -> FloatArray:
    return log_mixture_ratio(k, n, level, BetaPrior(a, b)) - threshold


def _distinct(*arrays: ArrayLike) -> tuple[tuple[FloatArray, ...], npt.NDArray[np.intp]]:
    """The distinct combinations of the broadcast arrays, and how to spread results back.

    A simulated rollout repeats the same counts in many runs; solving each once is what keeps
    the calibration fast.
    """
    columns = np.broadcast_arrays(*(np.asarray(item, dtype=np.float64) for item in arrays))
    stacked = np.stack([column.ravel() for column in columns], axis=1)
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    return tuple(unique[:, i] for i in range(unique.shape[1])), inverse.reshape(columns[0].shape)


def proportion_bounds(
    successes: ArrayLike, trials: ArrayLike, alpha: ArrayLike, prior: BetaPrior = ERROR_PRIOR
) -> tuple[FloatArray, FloatArray]:
    """A (1 - alpha) confidence sequence for a proportion: (lower, upper), elementwise.

    With no trials the bounds are (0, 1): nothing is known.
    """
    return (
        proportion_bound(successes, trials, alpha, "lower", prior),
        proportion_bound(successes, trials, alpha, "upper", prior),
    )


def proportion_bound(
    successes: ArrayLike,
    trials: ArrayLike,
    alpha: ArrayLike,
    side: Literal["lower", "upper"],
    prior: BetaPrior = ERROR_PRIOR,
) -> FloatArray:
    """One side of :func:`proportion_bounds` (a simulation needs only one side per decision)."""
    (k, n, a), spread = _distinct(successes, trials, alpha)
    threshold = np.log(1.0 / a)
    estimate = np.divide(k, n, out=np.full(k.shape, 0.5), where=n > 0)
    tiny = 1e-15
    edge = np.full_like(estimate, tiny if side == "lower" else 1.0 - tiny)
    bound = _root_or_edge(_excess_in_p, estimate, edge, (k, n, threshold, prior.a, prior.b))
    if side == "lower":
        bound = np.where(bound <= tiny, 0.0, bound)
    else:
        bound = np.where(bound >= 1.0 - tiny, 1.0, bound)
    return np.asarray(bound[spread], dtype=np.float64)


def rank_bounds(
    samples: ArrayLike, level: float, alpha: ArrayLike, prior: BetaPrior | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Ranks (lo, hi) such that, at every n at once with probability 1 - alpha, the ``level``
    quantile q satisfies X_(lo) <= q < X_(hi) (1-based order statistics of n samples).

    ``lo`` is 0 when no order statistic bounds q from below, ``hi`` is n + 1 when none bounds it
    from above: then there are too few samples to bound that side of the quantile.
    """
    chosen = prior or quantile_prior(level)
    (n, a), spread = _distinct(samples, alpha)
    threshold = np.log(1.0 / a)
    centre = n * level
    args = (n, np.full_like(n, level), threshold, chosen.a, chosen.b)
    # The count of samples at or below q is Binomial(n, level); the set of counts the martingale
    # has not rejected is an interval [k_lo, k_hi] around n * level.
    k_lo = _root_or_edge(_excess_in_k, centre, np.zeros_like(centre), args)
    k_hi = _root_or_edge(_excess_in_k, centre, n.copy(), args)
    below_ok = _excess_in_k(np.zeros_like(n), *args) < 0
    above_ok = _excess_in_k(n, *args) < 0
    lo = np.where(below_ok, 0, np.ceil(k_lo)).astype(np.int64)
    hi = np.where(above_ok, n + 1, np.floor(k_hi) + 1).astype(np.int64)
    return lo[spread], hi[spread]
