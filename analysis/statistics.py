"""Statistics across seeds: bootstrap intervals, configuration verdicts and summaries, comparisons.

Every statistic is computed per seed first (analysis.phases.run_phases) and aggregated here,
never from seed-averaged curves, which blur boundaries (science.md). Seeds where a statistic
is undefined (NaN) are left out of its summary; `<stat>_n` says how many seeds it rests on.
A configuration (every config column, per estimator and layer) whose median final train
accuracy lies below `undertrained_floor` gets the verdict `undertrained`: phases are not read
into a network that has not learnt its task; `phase_verdict` keeps what its seeds say. A
configuration without a measured train accuracy is not marked.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from ibsweep.analysis.phases import PHASE_STATS
from ibsweep.analysis.reliability import DEFAULT_ESTIMATOR
from ibsweep.analysis.settings import AnalysisConfig
from ibsweep.analysis.verdicts import UNDERTRAINED, classify_runs, configuration_verdict

# The statistics that carry the phase picture: compared by default and shown in the report.
KEY_STATS: tuple[str, ...] = (
    "expansion",
    "compression",
    "compression_before_t95",
    "t50",
    "t95",
    "boundary_peak",
    "boundary_segments",
    "boundary_changepoint",
    "snr_transition",
)


class StatisticsInputError(ValueError):
    """Raised on unusable input to the across-seed statistics."""


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[..., np.ndarray] = np.median,
    n_boot: int = 2000,
    level: float = 0.95,
    rng: np.random.Generator | int | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` (called with axis=1) over the finite values."""
    if not 0 < level < 1:
        raise StatisticsInputError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise StatisticsInputError(f"n_boot must be >= 1, got {n_boot}")
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(rng)
    boot = stat(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def with_estimator(phase_df: pd.DataFrame) -> pd.DataFrame:
    """The table with an ``estimator`` column (``default`` where it has none)."""
    if "estimator" in phase_df.columns:
        return phase_df
    return phase_df.assign(estimator=DEFAULT_ESTIMATOR)


def configuration_verdicts(
    phase_df: pd.DataFrame, config_cols: Sequence[str], config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """One row per configuration, estimator and layer: verdict, reproducibility, split,
    the reasons of unreliable seeds, median final accuracy and the `undertrained` mark."""
    config = config or AnalysisConfig()
    phase_df = with_estimator(phase_df).reset_index(drop=True)
    _check_columns(phase_df, [*config_cols, "layer"])
    verdicts = classify_runs(phase_df, config)
    keys = [*config_cols, "estimator", "layer"]
    rows = []
    for key, group in phase_df.groupby(keys, dropna=False, sort=True):
        row = {**dict(zip(keys, key, strict=True)), "n_seeds": len(group)}
        # Each configuration draws with the same seed: its verdict depends on its seeds alone.
        row.update(
            configuration_verdict(
                list(verdicts.loc[group.index]),
                config.reproducibility_level,
                config.reproducibility_draws,
                config.random_seed,
            )
        )
        row["phase_verdict"] = row["verdict"]
        reasons = Counter(r for r in group.get("unreliable_reason", ()) if isinstance(r, str) and r)
        row["unreliable_reason"] = " | ".join(
            f"{r} ({k} of {len(group)} seeds)" for r, k in reasons.most_common()
        )
        for name in ("train_acc", "test_acc"):
            finite = _finite(group[f"{name}_end"]) if f"{name}_end" in group else np.array([])
            row[name] = float(np.median(finite)) if finite.size else math.nan
        row["undertrained"] = bool(row["train_acc"] < config.undertrained_floor)
        if row["undertrained"]:
            row["verdict"] = UNDERTRAINED
        rows.append(row)
    first = [*keys, "n_seeds", "verdict", "phase_verdict", "reproducibility", "split",
             "plurality", "unreliable_reason", "train_acc", "test_acc", "undertrained"]  # fmt: skip
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=first)
    return out[first + [c for c in out.columns if c not in first]]


def aggregate(
    phase_df: pd.DataFrame,
    config_cols: Sequence[str],
    stats: Sequence[str] = PHASE_STATS,
    config: AnalysisConfig | None = None,
) -> pd.DataFrame:
    """One row per configuration, estimator and layer: the configuration verdict with its
    reproducibility, and the median with a bootstrap interval of every statistic."""
    config = config or AnalysisConfig()
    phase_df = with_estimator(phase_df).reset_index(drop=True)
    _check_columns(phase_df, [*config_cols, "layer", *stats])
    verdicts = configuration_verdicts(phase_df, config_cols, config)
    rng = np.random.default_rng(config.random_seed)
    keys = [*config_cols, "estimator", "layer"]
    rows = []
    for _, group in phase_df.groupby(keys, dropna=False, sort=True):
        row = {}
        for name in stats:
            finite = _finite(group[name])
            low, high = bootstrap_ci(
                finite, np.median, config.bootstrap_draws, config.ci_level, rng
            )
            row[f"{name}_median"] = float(np.median(finite)) if finite.size else math.nan
            row[f"{name}_ci_low"] = low
            row[f"{name}_ci_high"] = high
            row[f"{name}_n"] = finite.size
        rows.append(row)
    return pd.concat([verdicts, pd.DataFrame(rows, index=verdicts.index)], axis=1)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def cliffs_delta(a: np.ndarray, b: np.ndarray) -> float:
    """Cliff's delta P(b > a) - P(b < a), the rank-biserial effect size of b against a."""
    return float(np.sign(np.subtract.outer(b, a)).mean())


def compare(
    phase_df: pd.DataFrame,
    config_cols: Sequence[str],
    stats: Sequence[str] = KEY_STATS,
    fixed_cols: Sequence[str] = (),
    test: Literal["mannwhitney", "permutation"] = "mannwhitney",
    correction: Literal["holm", "bh"] = "holm",
    family: Literal["stat", "all"] = "stat",
    alpha: float = 0.05,
    n_resamples: int = 9999,
    seed: int = 0,
) -> pd.DataFrame:
    """Test every statistic between configurations that differ in exactly one config column.

    Columns in ``fixed_cols`` (such as the estimator) are held equal within a pair and are
    never an axis. Pairs are compared layer by layer across seeds (b against a: median_diff =
    median_b - median_a, Cliff's delta of b against a). p-values are adjusted within each
    statistic's family of tests (every pair and layer; ``family="stat"``, one question per
    statistic) or over all rows together (``family="all"``, stricter).
    """
    if test not in ("mannwhitney", "permutation"):
        raise StatisticsInputError(f"test must be 'mannwhitney' or 'permutation', got {test!r}")
    if correction not in ("holm", "bh"):
        raise StatisticsInputError(f"correction must be 'holm' or 'bh', got {correction!r}")
    if family not in ("stat", "all"):
        raise StatisticsInputError(f"family must be 'stat' or 'all', got {family!r}")
    _check_columns(phase_df, [*fixed_cols, *config_cols, "layer", *stats])
    rng = np.random.default_rng(seed)
    fixed = len(fixed_cols)
    all_cols = [*fixed_cols, *config_cols]
    groups = {
        _key(k): g for k, g in phase_df.groupby([*all_cols, "layer"], dropna=False, sort=False)
    }
    configs = sorted({k[:-1] for k in groups}, key=lambda k: tuple(map(str, k)))
    layers = sorted({k[-1] for k in groups})
    rows = []
    deferred = []  # (row, a, b): Mann-Whitney tests, done together below
    for a, b in itertools.combinations(configs, 2):
        differ = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(differ) != 1 or differ[0] < fixed:
            continue
        axis = differ[0]
        shared = {c: (None if i == axis else a[i]) for i, c in enumerate(all_cols)}
        for layer, name in itertools.product(layers, stats):
            if (*a, layer) not in groups or (*b, layer) not in groups:
                continue
            xa = _finite(groups[(*a, layer)][name])
            xb = _finite(groups[(*b, layer)][name])
            if test == "mannwhitney" and xa.size >= 2 and xb.size >= 2:
                deferred.append((len(rows), xa, xb))
            rows.append(
                {
                    "axis": all_cols[axis],
                    "value_a": a[axis],
                    "value_b": b[axis],
                    **shared,
                    "layer": layer,
                    "stat": name,
                    "n_a": xa.size,
                    "n_b": xb.size,
                    **_two_sample(xa, xb, test, n_resamples, rng),
                }
            )
    for row, p_value in _mann_whitney(deferred).items():
        rows[row]["p_value"] = p_value
    columns = [
        "axis", "value_a", "value_b", *all_cols, "layer", "stat", "n_a", "n_b",
        "median_a", "median_b", "median_diff", "cliffs_delta", "p_value",
    ]  # fmt: skip
    out = pd.DataFrame(rows, columns=columns)
    p_values = out["p_value"].to_numpy(dtype=float)
    adjusted = np.full(len(out), np.nan)
    families = out["stat"].to_numpy() if family == "stat" else np.zeros(len(out))
    for member in pd.unique(families):
        rows_in = (families == member) & np.isfinite(p_values)
        if rows_in.any():
            p = p_values[rows_in]
            adjusted[rows_in] = holm(p) if correction == "holm" else sps.false_discovery_control(p)
    out["p_adjusted"] = adjusted
    out["significant"] = out["p_adjusted"] < alpha
    return out


def _two_sample(
    a: np.ndarray, b: np.ndarray, test: str, n_resamples: int, rng: np.random.Generator
) -> dict[str, float]:
    median_a = float(np.median(a)) if a.size else math.nan
    median_b = float(np.median(b)) if b.size else math.nan
    result = {
        "median_a": median_a,
        "median_b": median_b,
        "median_diff": median_b - median_a,
        "cliffs_delta": math.nan,
        "p_value": math.nan,
    }
    if a.size < 2 or b.size < 2:
        return result
    result["cliffs_delta"] = cliffs_delta(a, b)
    if test == "permutation":  # Mann-Whitney p-values: compare() computes them together
        res = sps.permutation_test(
            (a, b),
            lambda x, y, axis: np.median(y, axis=axis) - np.median(x, axis=axis),
            permutation_type="independent",
            vectorized=True,
            n_resamples=n_resamples,
            rng=rng,
        )
        result["p_value"] = float(res.pvalue)
    return result


def _mann_whitney(tests: Sequence[tuple[int, np.ndarray, np.ndarray]]) -> dict[int, float]:
    """Two-sided Mann-Whitney p-value of b against a for each (key, a, b).

    Tests with the same sample sizes, both above 8, go to SciPy as one array (SciPy's "auto"
    method is the asymptotic one for them, ties or not, so the numbers are those of one call
    per test, without its fixed cost of about a millisecond); the others one by one.
    """
    out: dict[int, float] = {}
    by_size: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for key, a, b in tests:
        if a.size > 8 and b.size > 8:
            by_size.setdefault((a.size, b.size), []).append((key, a, b))
        else:
            out[key] = float(sps.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    for same in by_size.values():
        a = np.stack([t[1] for t in same])
        b = np.stack([t[2] for t in same])
        p = sps.mannwhitneyu(b, a, alternative="two-sided", axis=1, method="asymptotic").pvalue
        out.update(zip((t[0] for t in same), map(float, p), strict=True))
    return out


def _check_columns(df: pd.DataFrame, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise StatisticsInputError(f"phase table lacks columns {missing}; make it with run_phases")


def _finite(series: pd.Series) -> np.ndarray:
    x = series.to_numpy(dtype=float)
    return x[np.isfinite(x)]


def _key(key: tuple) -> tuple:
    # NaN never equals NaN: normalise missing config values so keys compare and look up.
    return tuple(None if pd.isna(v) else v for v in key)
