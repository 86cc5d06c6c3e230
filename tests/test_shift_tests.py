"""One-sided shift tests: Hodges-Lehmann and its interval on known cases, the sign-flip test's
false-positive rate under the null (near alpha) and its power on planted shifts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from ibsweep.analysis.shift_tests import (
    hodges_lehmann,
    hodges_lehmann_interval,
    paired_shift_test,
    seeds_for_power,
    signed_rank_distribution,
    two_sample_shift,
    unpaired_shift_test,
)
from tests.rates import binomial_band

ALPHA = 0.05


def test_hodges_lehmann_on_known_cases():
    assert hodges_lehmann(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == 3.0
    # Walsh averages of (-1, 0, 2, 7), sorted: -1, -.5, 0, .5, 1, 2, 3, 3.5, 4.5, 7
    assert hodges_lehmann(np.array([-1.0, 0.0, 2.0, 7.0])) == 1.5
    assert two_sample_shift(np.array([3.0, 5.0]), np.array([1.0, 2.0])) == 2.5  # 2, 1, 4, 3
    rows = np.array([[-1.0, 0.0, 2.0, 7.0], [1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(hodges_lehmann(rows, axis=1), [1.5, 2.5])


def test_signed_rank_distribution_equals_enumeration():
    n = 6
    sums = [sum(k for k, s in zip(range(1, n + 1), signs, strict=True) if s)
            for signs in itertools.product([0, 1], repeat=n)]  # fmt: skip
    counts = np.bincount(sums) / 2**n
    np.testing.assert_allclose(signed_rank_distribution(n), counts)


def test_hodges_lehmann_interval_is_the_inversion_of_the_exact_signed_rank_test():
    d = np.array([0.3, -0.8, 1.9, 0.55, 1.2, -0.1, 2.4, 0.95, 0.7, 1.6])
    low, high = hodges_lehmann_interval(d, 0.95)
    walsh = np.sort([(d[i] + d[j]) / 2 for i in range(10) for j in range(i, 10)])
    # n = 10: P(T+ <= 8) = 0.0244 <= 0.025 < P(T+ <= 9): the 9th smallest and 9th largest
    assert (low, high) == (walsh[8], walsh[-9])
    for delta, inside in ((low + 1e-9, True), (high - 1e-9, True), (low - 1e-9, False),
                          (high + 1e-9, False)):  # fmt: skip
        p = sps.wilcoxon(d - delta, method="exact").pvalue
        assert (p > 0.05) == inside
    assert hodges_lehmann_interval(d[:3]) == (-math.inf, math.inf)  # 3 pairs: no 95% interval


def test_hodges_lehmann_interval_covers_the_true_shift_at_its_level():
    rng = np.random.default_rng(0)
    hits = sum(
        low <= 0.7 <= high
        for low, high in (hodges_lehmann_interval(rng.normal(0.7, 1.0, 12)) for _ in range(1000))
    )
    # exact distribution-free interval: coverage at least the level (discreteness: a little more)
    assert 0.94 <= hits / 1000 <= 0.975


@pytest.mark.parametrize(("n", "reps", "noise"), [(10, 1500, "normal"), (10, 1500, "laplace"),
                                                  (20, 400, "normal")])  # fmt: skip
def test_paired_test_false_positive_rate_under_the_null_is_near_alpha(n, reps, noise):
    rng = np.random.default_rng(n)
    draw = rng.normal if noise == "normal" else rng.laplace
    # n = 20 > exact_max: Monte Carlo flips
    p = np.array([paired_shift_test(draw(0, 1, n), draws=2000, rng=rng).p_value
                  for _ in range(reps)])  # fmt: skip
    low, high = binomial_band(ALPHA, reps)
    assert low <= (p < ALPHA).mean() <= high
    low, high = binomial_band(2 * ALPHA, reps)
    assert low <= (p <= 2 * ALPHA).mean() <= high


def test_paired_test_is_exact_for_small_n_and_has_power_on_a_planted_shift():
    rng = np.random.default_rng(1)
    test = paired_shift_test(rng.normal(0, 1, 10))
    assert test.method == "paired sign-flip, exact"
    assert (test.p_value * 2**10) == pytest.approx(round(test.p_value * 2**10))
    all_positive = paired_shift_test(np.arange(1.0, 11.0))
    assert all_positive.p_value == pytest.approx(2**-10)  # only the identity is as large
    assert paired_shift_test(np.arange(1.0, 6.0)).p_value < ALPHA  # 2^-5: reachable at n = 5
    assert paired_shift_test(np.array([0.4])).p_value == 0.5  # one pair: two flips
    assert paired_shift_test(np.array([-0.4])).p_value == 1.0
    reps = 400
    strong = np.mean([paired_shift_test(rng.normal(1.5, 1, 10)).p_value < ALPHA
                      for _ in range(reps)])  # fmt: skip
    assert strong > 0.95
    wrong_way = np.mean([paired_shift_test(rng.normal(-0.5, 1, 10)).p_value < ALPHA
                         for _ in range(reps)])  # fmt: skip
    assert wrong_way < ALPHA  # one-sided: a shift the other way is not evidence


def test_seeds_for_power_matches_simulated_power():
    rng = np.random.default_rng(2)
    sample = rng.normal(0.8, 1.0, 2000)
    n = int(seeds_for_power(sample))
    assert n == math.ceil(((sps.norm.ppf(0.95) + sps.norm.ppf(0.8)) * sample.std(ddof=1)
                           / sample.mean()) ** 2)  # fmt: skip
    assert 9 <= n <= 12  # (2.49 / 0.8)^2 = 9.7 for the population
    reps = 600
    power = np.mean([paired_shift_test(rng.normal(0.8, 1, n)).p_value < ALPHA
                     for _ in range(reps)])  # fmt: skip
    # The approximation is for a z test; the exact permutation test at n = 10 (its null
    # distribution wider than the normal's) comes a little below it.
    assert 0.65 <= power <= 0.9
    assert math.isnan(seeds_for_power(rng.normal(-0.2, 1, 10)))
    assert seeds_for_power(np.full(10, 0.5)) == 5  # no spread: the least n that reaches alpha


def test_unpaired_test_false_positive_rate_and_power():
    rng = np.random.default_rng(3)
    reps = 600
    null = np.array([unpaired_shift_test(rng.normal(0, 1, 6), rng.normal(0, 1, 6), boot=200,
                                         rng=rng).p_value for _ in range(reps)])  # fmt: skip
    low, high = binomial_band(ALPHA, reps)
    assert low <= (null < ALPHA).mean() <= high
    shifted = unpaired_shift_test(rng.normal(2, 1, 8), rng.normal(0, 1, 8), rng=rng)
    assert shifted.p_value < 0.01 and shifted.ci_low > 0 and "unpaired" in shifted.method
    assert shifted.ci_low <= shifted.effect <= shifted.ci_high
    assert math.isnan(unpaired_shift_test(np.array([1.0]), np.array([0.0, 0.1])).p_value)
    assert seeds_for_power(rng.normal(1, 1, 50), rng.normal(0, 1, 50)) == pytest.approx(13, abs=5)
