"""Across-seed statistics: bootstrap intervals, aggregation, comparisons and their error rates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ibsweep.analysis.settings import AnalysisConfig
from ibsweep.analysis.statistics import (
    StatisticsInputError,
    aggregate,
    bootstrap_ci,
    cliffs_delta,
    compare,
    holm,
)
from tests.rates import binomial_band

ALPHA = 0.05


def phase_table(groups, rng, stats=("expansion",), layer=1):
    """Phase-table rows: {(activation, widths): (location of every stat, n seeds)}."""
    rows = []
    for (activation, widths), (loc, n) in groups.items():
        for seed in range(n):
            row = {
                "model.activation": activation,
                "model.widths": widths,
                "seed": seed,
                "layer": layer,
                "saturated": False,
                "compression": 1.0,
                "t50": 100.0,
                "compression_before_t95": 0.0,
            }
            row.update({s: loc + rng.normal() for s in stats})
            row.setdefault("expansion", 1.0)
            rows.append(row)
    return pd.DataFrame(rows)


def test_bootstrap_ci_covers_the_true_median_at_about_its_level():
    rng = np.random.default_rng(0)
    reps = 300
    hits = 0
    for _ in range(reps):
        low, high = bootstrap_ci(rng.normal(size=25), n_boot=1000, rng=rng)
        hits += low <= 0.0 <= high
    # Percentile intervals of a median from 25 points run a little narrow or wide.
    assert 0.88 <= hits / reps <= 0.99


def test_bootstrap_ci_ignores_nan_and_needs_two_values():
    low, high = bootstrap_ci([1.0, np.nan, 3.0, 2.0, np.nan], rng=0)
    assert 1.0 <= low <= high <= 3.0
    assert all(math.isnan(v) for v in bootstrap_ci([1.0, np.nan]))
    with pytest.raises(StatisticsInputError):
        bootstrap_ci([1.0, 2.0], level=1.5)


def test_holm_matches_the_step_down_definition():
    # sorted p: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_cliffs_delta_on_small_examples():
    assert cliffs_delta(np.array([1.0, 2.0]), np.array([2.0, 3.0])) == pytest.approx(0.75)
    assert cliffs_delta(np.array([1.0, 2.0]), np.array([5.0, 6.0])) == 1.0
    assert cliffs_delta(np.array([5.0, 6.0]), np.array([1.0, 2.0])) == -1.0
    assert cliffs_delta(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0


def test_aggregate_gives_median_interval_and_counts_per_configuration():
    df = pd.DataFrame(
        {
            "model.activation": ["tanh"] * 10 + ["ste"] * 4,
            "seed": list(range(10)) + list(range(4)),
            "layer": 2,
            "saturated": False,
            "compression": 1.0,
            "t50": 50.0,
            "compression_before_t95": 0.0,
            "expansion": [*range(1, 11), 0.0, 0.1, np.nan, 0.2],
        }
    )
    config = AnalysisConfig(bootstrap_draws=500)
    out = aggregate(df, ["model.activation"], stats=["expansion"], config=config)
    tanh = out.set_index("model.activation").loc["tanh"]
    assert tanh["expansion_median"] == 5.5
    assert tanh["expansion_ci_low"] <= 5.5 <= tanh["expansion_ci_high"]
    assert tanh["expansion_ci_low"] >= 1 and tanh["expansion_ci_high"] <= 10
    assert tanh["expansion_n"] == 10 and tanh["n_seeds"] == 10
    assert tanh["verdict"] == "separate"
    ste = out.set_index("model.activation").loc["ste"]
    assert ste["expansion_median"] == pytest.approx(0.1)
    assert ste["expansion_n"] == 3 and ste["n_seeds"] == 4
    # 3 of 4 seeds: compression after the fit, no expansion; the fourth is undetermined (no
    # expansion read), and a 3/1 split reproduces in P(Bin(4, 0.75) >= 3) = 0.74 < 0.8 of draws
    assert (
        ste["plurality"] == "late compression"
        and ste["split"] == "late compression 3, undetermined 1"
    )
    assert ste["reproducibility"] == pytest.approx(0.738, abs=0.03)
    assert ste["verdict"] == "undetermined"
    assert (out["estimator"] == "default").all()


def test_compare_finds_a_planted_difference_between_ten_seeds_each():
    rng = np.random.default_rng(1)
    stats = ("expansion", "compression", "t50")
    df = pd.concat(
        [
            phase_table({("tanh", "10x7"): (0.0, 10)}, rng, stats),
            phase_table({("ste", "10x7"): (0.0, 10)}, rng, ("compression", "t50")),
        ]
    )
    df.loc[df["model.activation"] == "ste", "expansion"] = rng.normal(2.0, 1.0, 10)
    out = compare(df, ["model.activation", "model.widths"], stats=stats)
    assert len(out) == 3
    assert set(out["axis"]) == {"model.activation"}
    row = out.set_index("stat").loc["expansion"]
    assert {row["value_a"], row["value_b"]} == {"ste", "tanh"}
    assert row["p_adjusted"] < ALPHA and row["significant"]
    sign = 1.0 if row["value_b"] == "ste" else -1.0
    assert sign * row["median_diff"] > 1.0
    assert sign * row["cliffs_delta"] > 0.6
    assert (out["p_adjusted"] >= out["p_value"]).all()


def test_compare_adjusts_within_each_statistic_or_over_all_rows():
    rng = np.random.default_rng(5)
    stats = ("expansion", "compression", "t50")
    df = phase_table(
        {("tanh", "10x7"): (0.0, 8), ("ste", "10x7"): (0.5, 8), ("ste", "12x8"): (1.0, 8)},
        rng,
        stats,
    )
    cols = ["model.activation", "model.widths"]
    per_stat = compare(df, cols, stats=stats)
    overall = compare(df, cols, stats=stats, family="all")
    assert len(per_stat) == 6
    np.testing.assert_allclose(overall["p_adjusted"], holm(overall["p_value"]))
    for _, rows in per_stat.groupby("stat"):
        assert len(rows) == 2
        np.testing.assert_allclose(rows["p_adjusted"], holm(rows["p_value"]))
    assert (per_stat["p_adjusted"] <= overall["p_adjusted"]).all()
    assert (per_stat["p_adjusted"] < overall["p_adjusted"]).any()
    with pytest.raises(StatisticsInputError, match="family must be 'stat' or 'all'"):
        compare(df, cols, stats=stats, family="layer")


def test_compare_holds_fixed_columns_equal_and_never_an_axis():
    rng = np.random.default_rng(6)
    df = pd.concat(
        [
            phase_table({("tanh", "w"): (0.0, 6), ("ste", "w"): (1.0, 6)}, rng).assign(
                estimator=name
            )
            for name in ("bin30", "sign")
        ]
    )
    out = compare(df, ["model.activation", "model.widths"], ["expansion"], ["estimator"])
    assert len(out) == 2 and set(out["axis"]) == {"model.activation"}
    assert sorted(out["estimator"]) == ["bin30", "sign"]
    pooled = compare(df, ["estimator", "model.activation", "model.widths"], ["expansion"])
    assert "estimator" in set(pooled["axis"])  # without fixed_cols it would be an axis


def test_compare_pairs_only_configurations_that_differ_in_one_column():
    rng = np.random.default_rng(2)
    df = phase_table(
        {
            ("tanh", "10x7"): (0.0, 5),
            ("ste", "10x7"): (0.0, 5),
            ("ste", "12x8"): (0.0, 5),
            (np.nan, "3x3"): (0.0, 5),
            (np.nan, "12x8"): (0.0, 5),
        },
        rng,
    )
    out = compare(df, ["model.activation", "model.widths"], stats=["expansion"])

    def name(v):
        return "missing" if pd.isna(v) else v

    pairs = {(r.axis, frozenset({name(r.value_a), name(r.value_b)})) for r in out.itertuples()}
    assert pairs == {
        ("model.activation", frozenset({"tanh", "ste"})),
        ("model.widths", frozenset({"10x7", "12x8"})),
        ("model.activation", frozenset({"ste", "missing"})),
        ("model.widths", frozenset({"3x3", "12x8"})),
    }


@pytest.mark.parametrize("test", ["mannwhitney", "permutation"])
def test_false_positive_rate_under_the_null_stays_near_alpha(test):
    rng = np.random.default_rng(3)
    reps = 400 if test == "mannwhitney" else 200
    rejections = 0
    family_rejections = 0
    for _ in range(reps):
        stats = ("expansion", "compression", "t50")
        df = phase_table({("tanh", "w"): (0.0, 10), ("ste", "w"): (0.0, 10)}, rng, stats)
        out = compare(
            df,
            ["model.activation", "model.widths"],
            stats=stats,
            test=test,
            family="all",
            n_resamples=499,
        )
        rejections += out.set_index("stat").loc["expansion", "p_value"] < ALPHA
        family_rejections += out["significant"].any()
    low, high = binomial_band(ALPHA, reps)
    assert low <= rejections / reps <= high
    # Holm over all rows keeps the chance of any false rejection among the three tests at
    # most alpha (per statistic, each family here is one test: the first assertion).
    assert family_rejections / reps <= high


def test_compare_rejects_unknown_methods():
    df = phase_table({("tanh", "w"): (0.0, 3)}, np.random.default_rng(4))
    with pytest.raises(StatisticsInputError, match="test"):
        compare(df, ["model.activation", "model.widths"], test="t-test")
    with pytest.raises(StatisticsInputError, match="lacks columns"):
        compare(df, ["model.activation", "model.kind"])
