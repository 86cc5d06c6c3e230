"""Compression and generalisation across runs: does a layer that compresses more generalise better?

Per configuration group (every param but the seed: the configuration), estimator and layer,
across its runs: the Spearman correlation of the layer's compression (bits, peak to end) with
the final test accuracy and with the generalisation gap (final train minus test accuracy),
each with a percentile bootstrap interval over runs and SciPy's p-value. A configuration with
fewer than `min_correlation_runs` usable runs is not correlated on its own: its runs enter a
row pooled over every configuration of the same model kind (`scope` says which); pooling mixes
differences between configurations into the correlation. Runs whose layer is `unreliable` are
left out (their compression is not information).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from ibsweep.analysis.configurations import KIND, model_label
from ibsweep.analysis.settings import AnalysisConfig
from ibsweep.analysis.statistics import with_estimator

TARGETS: dict[str, str] = {"test_acc": "final test accuracy", "gap": "train - test accuracy"}


def generalisation_points(phases: pd.DataFrame) -> pd.DataFrame:
    """Per reliable run, estimator and layer: compression, final test accuracy and the gap."""
    df = with_estimator(phases)
    reason = df["unreliable_reason"].fillna("") if "unreliable_reason" in df else ""
    df = df.assign(
        gap=df["train_acc_end"] - df["test_acc_end"],
        test_acc=df["test_acc_end"],
        model=model_label(df) if KIND in df else "",
        _reliable=~pd.Series(reason, index=df.index).astype(bool),
    )
    usable = df["_reliable"] & np.isfinite(df[["compression", "test_acc", "gap"]]).all(axis=1)
    return df[usable].drop(columns="_reliable")


def generalisation_table(
    phases: pd.DataFrame, config_cols: Sequence[str], config: AnalysisConfig | None = None
) -> pd.DataFrame:
    """One row per configuration (or pooled model kind), estimator and layer: the Spearman
    correlations of compression with test accuracy and with the gap, intervals, p-values."""
    config = config or AnalysisConfig()
    points = generalisation_points(phases)
    stats = [f"{p}{t}{s}" for t in TARGETS for p, s in
             (("rho_", ""), ("rho_", "_ci_low"), ("rho_", "_ci_high"), ("p_", ""))]  # fmt: skip
    columns = [*config_cols, "estimator", "layer", "scope", "n_runs", *stats]
    rng = np.random.default_rng(config.random_seed)
    rows, pooled = [], {}
    keys = [*config_cols, "estimator", "layer"]
    for key, group in points.groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, key, strict=True))
        if len(group) < config.min_correlation_runs:
            kind = row.get(KIND, "all")
            pooled.setdefault((kind, row["estimator"], row["layer"]), []).append(group)
            continue
        rows.append({**row, "scope": "configuration", **_correlations(group, config, rng)})
    for (kind, estimator, layer), small in pooled.items():
        mask = (points["estimator"] == estimator) & (points["layer"] == layer)
        if KIND in points:
            mask &= points[KIND] == kind
        group = points[mask]
        row = dict.fromkeys(config_cols)
        if KIND in row:
            row[KIND] = kind
        scope = (
            f"pooled over the {group.groupby(list(config_cols), dropna=False).ngroups} "
            f"configurations of kind {kind} ({', '.join(sorted(set(group['model'])))}): "
            f"{len(small)} of them have fewer than {config.min_correlation_runs} runs"
        )
        rows.append({**row, "estimator": estimator, "layer": layer, "scope": scope,
                     **_correlations(group, config, rng)})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _correlations(
    group: pd.DataFrame, config: AnalysisConfig, rng: np.random.Generator
) -> dict[str, float]:
    x = group["compression"].to_numpy(dtype=float)
    out: dict[str, float] = {"n_runs": len(group)}
    for target in TARGETS:
        y = group[target].to_numpy(dtype=float)
        rho, p, low, high = spearman_with_interval(x, y, config, rng)
        out.update({f"rho_{target}": rho, f"rho_{target}_ci_low": low,
                    f"rho_{target}_ci_high": high, f"p_{target}": p})  # fmt: skip
    return out


def spearman_with_interval(
    x: np.ndarray, y: np.ndarray, config: AnalysisConfig, rng: np.random.Generator
) -> tuple[float, float, float, float]:
    """Spearman's rho, its p-value, and a percentile bootstrap interval over pairs (NaN where
    either variable is constant)."""
    nan = math.nan
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan, nan, nan, nan
    res = sps.spearmanr(x, y)
    idx = rng.integers(0, len(x), size=(config.bootstrap_draws, len(x)))
    rx = sps.rankdata(x[idx], axis=1)
    ry = sps.rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return float(res.statistic), float(res.pvalue), nan, nan
    level = config.ci_level
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(res.statistic), float(res.pvalue), float(low), float(high)
