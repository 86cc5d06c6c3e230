"""One-sided tests of a location shift, its Hodges-Lehmann estimate and interval, and power.

- Paired (by seed): the differences d_i. The effect is the Hodges-Lehmann estimate, the median
  of the Walsh averages (d_i + d_j) / 2, i <= j; its interval is the exact distribution-free
  one from the Wilcoxon signed-rank distribution (the a-th smallest and a-th largest Walsh
  averages, a the largest with P(T+ <= a - 1) <= (1 - level) / 2). The p-value is that of the
  sign-flip permutation test of the mean difference (H1: shift > 0): all 2^n sign flips up to
  ``exact_max`` pairs, else Monte Carlo flips. Under H0 each difference is symmetric about 0,
  so flipping signs leaves its distribution unchanged: the test is exact at any n, and its
  smallest p-value is 2^-n. (The mean, not the Hodges-Lehmann estimate, is the test
  statistic: a median of Walsh averages ties under many flips, which makes the test coarse;
  at n = 5 it could never reach 0.05.)
- Unpaired (no common seeds): the two-sample Hodges-Lehmann shift, the median of all x_i - y_j,
  with a percentile bootstrap interval (each group resampled); a one-sided permutation test
  of the difference of means over the assignment of runs to the two groups (exact where the
  count of assignments is at most the Monte Carlo draws).
- Seeds for 80% power: a normal approximation from the observed effect and spread, for a
  one-sided level-alpha test: n = ((z_(1-alpha) + z_power) sd / mean)^2 paired (mean and sd of
  the differences), 2 ((z_(1-alpha) + z_power) sd_pooled / (mean_x - mean_y))^2 per group
  unpaired; never fewer than the exact permutation test needs to reach alpha at all
  (2^n > 1 / alpha paired, C(2n, n) > 1 / alpha unpaired); NaN when the observed effect is
  not positive (no n gives power against it). It is as noisy as the effect and spread it uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

_BATCH = 4096  # resamples evaluated at once by scipy.stats.permutation_test


@dataclass(frozen=True)
class ShiftTest:
    """A one-sided test of a positive location shift: estimate, interval, p-value, method."""

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str


def hodges_lehmann(d: np.ndarray, axis: int = -1) -> np.ndarray:
    """Median of the Walsh averages (d_i + d_j) / 2, i <= j, along ``axis``."""
    d = np.moveaxis(np.asarray(d, dtype=float), axis, -1)
    i, j = np.triu_indices(d.shape[-1])
    return np.median((d[..., i] + d[..., j]) / 2.0, axis=-1)


def hodges_lehmann_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The exact distribution-free interval of the paired shift (from the signed-rank law)."""
    d = np.asarray(d, dtype=float)
    n = d.size
    if n == 0:
        return math.nan, math.nan
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2.0)
    cdf = np.cumsum(signed_rank_distribution(n))
    a = int(np.searchsorted(cdf, (1 - level) / 2 * (1 + 1e-12), side="right"))
    if a == 0:  # too few pairs: no interval at this level
        return -math.inf, math.inf
    return float(walsh[a - 1]), float(walsh[walsh.size - a])


def signed_rank_distribution(n: int) -> np.ndarray:
    """P(T+ = t), t = 0..n(n+1)/2, of the Wilcoxon signed-rank statistic under H0."""
    p = np.zeros(n * (n + 1) // 2 + 1)
    p[0] = 1.0
    for k in range(1, n + 1):  # rank k enters with sign + or - at probability 1/2 each
        p[k:] = 0.5 * p[k:] + 0.5 * p[:-k].copy()
        p[:k] *= 0.5
    return p


def paired_shift_test(
    d: np.ndarray,
    level: float = 0.95,
    exact_max: int = 16,
    draws: int = 20000,
    rng: np.random.Generator | int | None = None,
) -> ShiftTest:
    """Hodges-Lehmann shift of the paired differences, its interval, and the one-sided
    sign-flip permutation p-value of their mean (H1: shift > 0)."""
    d = np.asarray(d, dtype=float)
    n = d.size
    if n == 0:
        return ShiftTest(math.nan, math.nan, math.nan, math.nan, "no pairs")
    low, high = hodges_lehmann_interval(d, level)
    method = "paired sign-flip, exact"
    if n == 1:  # two flips, d and -d: only d itself is as large, unless d <= 0
        return ShiftTest(float(d[0]), low, high, 0.5 if d[0] > 0 else 1.0, method)
    exact = n <= exact_max
    res = sps.permutation_test(
        (d,),
        _mean,
        permutation_type="samples",
        vectorized=True,
        n_resamples=2**n if exact else draws,
        alternative="greater",
        batch=_BATCH,
        rng=np.random.default_rng(rng),
    )
    if not exact:
        method = f"paired sign-flip, {draws} random flips"
    return ShiftTest(float(hodges_lehmann(d)), low, high, float(res.pvalue), method)


def _mean(d: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(d, axis=axis)


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def two_sample_shift(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """The two-sample Hodges-Lehmann shift: the median of all x_i - y_j, along ``axis``."""
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    y = np.moveaxis(np.asarray(y, dtype=float), axis, -1)
    diffs = x[..., :, None] - y[..., None, :]
    return np.median(diffs.reshape(*diffs.shape[:-2], -1), axis=-1)


def unpaired_shift_test(
    x: np.ndarray,
    y: np.ndarray,
    level: float = 0.95,
    draws: int = 20000,
    boot: int = 2000,
    rng: np.random.Generator | int | None = None,
) -> ShiftTest:
    """Two-sample Hodges-Lehmann shift of x over y, a bootstrap interval, and the one-sided
    permutation p-value of the difference of means (H1: x is shifted above y)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or y.size < 2:
        return ShiftTest(math.nan, math.nan, math.nan, math.nan, "none: fewer than 2 runs a side")
    rng = np.random.default_rng(rng)
    effect = float(two_sample_shift(x, y))
    bx = x[rng.integers(0, x.size, size=(boot, x.size))]
    by = y[rng.integers(0, y.size, size=(boot, y.size))]
    low, high = np.quantile(two_sample_shift(bx, by), [(1 - level) / 2, (1 + level) / 2])
    res = sps.permutation_test(
        (x, y),
        _mean_difference,
        permutation_type="independent",
        vectorized=True,
        n_resamples=draws,
        alternative="greater",
        batch=_BATCH,
        rng=rng,
    )
    exact = math.comb(x.size + y.size, x.size) <= draws
    method = "two-sample permutation (unpaired), " + ("exact" if exact else f"{draws} draws")
    return ShiftTest(effect, float(low), float(high), float(res.pvalue), method)


def seeds_for_power(
    x: np.ndarray, y: np.ndarray | None = None, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Seeds (pairs, or runs per group when ``y`` is given) for ``power`` against the observed
    effect, by the normal approximation; NaN when the effect is not positive."""
    z = sps.norm.ppf(1 - alpha) + sps.norm.ppf(power)
    if y is None:
        d = np.asarray(x, dtype=float)
        if d.size < 2 or not d.mean() > 0:
            return math.nan
        n = (z * d.std(ddof=1) / d.mean()) ** 2
        least = math.floor(math.log2(1 / alpha)) + 1
    else:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.size < 2 or y.size < 2 or not x.mean() > y.mean():
            return math.nan
        pooled = ((x.size - 1) * x.var(ddof=1) + (y.size - 1) * y.var(ddof=1)) / (
            x.size + y.size - 2
        )
        n = 2 * (z * math.sqrt(pooled) / (x.mean() - y.mean())) ** 2
        least = next(k for k in range(1, 64) if math.comb(2 * k, k) > 1 / alpha)
    return float(max(math.ceil(n), least))
