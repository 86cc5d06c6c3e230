"""Whether a layer's estimate can carry phase information, per run, estimator and layer.

A plug-in estimate on N samples says nothing about phases when the partition it counts is
near-injective (I(X;T) pinned at log2 N, I(T;Y) near H(Y) whatever the labels) or when its
I(T;Y) is mostly the plug-in bias (science.md, "Reliability regime"). Three rules, each over a
share of training measured on a log10(epoch + 1) axis (every measured epoch weighs half the
distance to its neighbours, epoch 0 included), with thresholds from PhaseConfig:
- near-injective: distinct states >= `injective_share` x N over at least `unreliable_share`
  of training (needs the `n_states` column);
- at the ceiling: I(X;T) >= log2 N - `ceiling_margin_bits` over at least `unreliable_share`
  of training (from `ceiling` and I(X;T) alone: what a table without `n_states` allows; a
  tanh layer at 11.8 of 12 bits falls here). This replaces the earlier `saturated` verdict;
- I(T;Y) mostly bias: the I(T;Y) of one fixed permutation of the labels is >= `bias_share` x
  I(T;Y) and >= `bias_floor_bits` over at least `unreliable_share` of training (needs
  `i_ty_perm`).
A layer that meets any rule is `unreliable`; the reason names the rules it meets. A layer that
sits at its own capacity (width x log2 levels, below log2 N) is not unreliable: its count is
sound, it only has nowhere to go (its verdict then says `no compression`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ibsweep.analysis import run_schema as rs
from ibsweep.analysis.settings import PhaseConfig

KEYS: tuple[str, ...] = ("run_id", "estimator", "layer")
SHARES: tuple[str, ...] = ("near_injective_share", "near_ceiling_share", "bias_share")
COLUMNS: tuple[str, ...] = (*KEYS, *SHARES, "layer_ceiling", "unreliable_reason")
DEFAULT_ESTIMATOR = rs.DEFAULT_ESTIMATOR
# Columns of the series table that older sweeps (one estimator per layer) do not have.
OPTIONAL_SERIES: dict[str, object] = {
    "estimator": DEFAULT_ESTIMATOR,
    "i_ty_perm": np.nan,
    "n_states": np.nan,
    "layer_ceiling": np.nan,
    "train_acc": np.nan,
    "test_acc": np.nan,
}


def with_optional_columns(series_df: pd.DataFrame) -> pd.DataFrame:
    """The series table with the columns of a newer table filled in where it lacks them."""
    missing = {c: v for c, v in OPTIONAL_SERIES.items() if c not in series_df.columns}
    return series_df.assign(**missing) if missing else series_df


def reasons(shares: pd.DataFrame, config: PhaseConfig) -> list[str]:
    """The reason each row (with the SHARES columns) is unreliable; '' where it is reliable."""
    share = config.unreliable_share
    rules = (
        (
            "near_injective_share",
            f"near-injective: n_states >= {config.injective_share:g} N over >= {share:.0%} "
            "of training",
        ),
        (
            "near_ceiling_share",
            f"at the ceiling: I(X;T) within {config.ceiling_margin_bits:g} bits of log2 N "
            f"over >= {share:.0%} of training",
        ),
        (
            "bias_share",
            f"I(T;Y) mostly bias: i_ty_perm >= {config.bias_share:g} I(T;Y) over >= "
            f"{share:.0%} of training",
        ),
    )
    met = [shares[col].to_numpy(dtype=float) >= share for col, _ in rules]
    return [
        "; ".join(text for (_, text), hit in zip(rules, row, strict=True) if hit)
        for row in zip(*met, strict=True)
    ]


def owners(series_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the code of its (run, estimator) pair, sorted by run id then estimator; and per
    code the run id and the estimator (text)."""
    run_codes, run_ids = pd.factorize(series_df["run_id"], sort=True)
    est_codes, estimators = pd.factorize(series_df["estimator"], sort=True)
    pair = run_codes.astype(np.int64) * max(len(estimators), 1) + est_codes
    present, codes = np.unique(pair, return_inverse=True)
    run_of = np.asarray(run_ids.astype(str), dtype=object)[present // max(len(estimators), 1)]
    est_of = np.asarray(estimators.astype(str), dtype=object)[present % max(len(estimators), 1)]
    return codes.astype(np.int64), run_of, est_of


def reliability(series_df: pd.DataFrame, config: PhaseConfig | None = None) -> pd.DataFrame:
    """One row per (run, estimator, layer): the share of training each rule holds, the layer's
    ceiling and the reason it is unreliable ('' if it is not). Shares are NaN without data."""
    config = config or PhaseConfig()
    df = with_optional_columns(series_df)
    if df.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    owner, run_of, est_of = owners(df)
    layer = df["layer"].to_numpy(dtype=np.int64)
    epoch = df["epoch"].to_numpy(dtype=float)
    order = np.lexsort((epoch, layer, owner))
    owner, layer, epoch = owner[order], layer[order], epoch[order]
    new = np.r_[True, (owner[1:] != owner[:-1]) | (layer[1:] != layer[:-1])]
    group = np.cumsum(new) - 1
    weight = _cell_widths(np.log10(epoch + 1.0), group)

    def column(name: str) -> np.ndarray:
        return df[name].to_numpy(dtype=float)[order]

    ceiling, i_xt, i_ty = column("ceiling"), column("i_xt"), column("i_ty")
    perm, states = column("i_ty_perm"), column("n_states")
    with np.errstate(invalid="ignore", over="ignore"):
        n_samples = np.exp2(ceiling)
        rules = {
            "near_injective_share": (states >= config.injective_share * n_samples, states),
            "near_ceiling_share": (i_xt >= ceiling - config.ceiling_margin_bits, i_xt + ceiling),
            "bias_share": (
                (perm >= config.bias_share * i_ty) & (perm >= config.bias_floor_bits),
                perm + i_ty,
            ),
        }
    n = int(group[-1]) + 1
    heads = np.flatnonzero(new)
    out = pd.DataFrame(
        {"run_id": run_of[owner[heads]], "estimator": est_of[owner[heads]], "layer": layer[heads]}
    )
    for name, (hit, inputs) in rules.items():
        known = np.isfinite(inputs) & np.isfinite(weight)
        total = np.bincount(group, np.where(known, weight, 0.0), n)
        held = np.bincount(group, np.where(known & hit, weight, 0.0), n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[name] = np.where(total > 0, held / total, np.nan)
    top = np.full(n, -np.inf)
    np.fmax.at(top, group, column("layer_ceiling"))
    out["layer_ceiling"] = np.where(np.isfinite(top), top, np.nan)
    out["unreliable_reason"] = reasons(out, config)
    return out[list(COLUMNS)]


def _cell_widths(u: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per point, half the distance between its neighbours within its group (log axis)."""
    first = np.r_[True, group[1:] != group[:-1]]
    last = np.r_[group[1:] != group[:-1], True]
    left = np.where(first, u, np.r_[u[:1], u[:-1]])
    right = np.where(last, u, np.r_[u[1:], u[-1:]])
    width = (right - left) / 2.0
    return np.where(first & last, 1.0, width)  # a single point stands for the whole run
