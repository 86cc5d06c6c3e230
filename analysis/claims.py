"""The claim, tested directly: DNN against BNN configurations that differ only in the model kind.

Pairs: every DNN configuration with every BNN configuration whose other settings (widths,
dataset, training, measurement) are all equal; the activation (surrogate) differs by nature.
Per pair, hidden layer (layer < n_layers) and estimator, two pre-specified one-sided tests:
- `expansion`: DNN expansion > BNN expansion (the effect is DNN minus BNN);
- `compression_before_t95`: BNN compression before t95 > DNN's (the effect is BNN minus DNN).
So a positive effect, in bits, always points the way the claim says. Paired by seed where the
two configurations share seeds (models of one seed share the split and the batch order), else
a two-sample test (the `test` column says which); analysis.shift_tests holds the tests, the
Hodges-Lehmann effect with its interval and the seeds needed for 80% power. p-values are
Holm-adjusted within each statistic (over every pair, layer and estimator).
Left out, and said so in `excluded`: a pair in which either configuration is `undertrained`
(median final train accuracy below the floor), and a layer whose seeds are mostly `unreliable`
under that estimator in either configuration. Seeds unreliable in a layer that is tested are
dropped from it (`dropped_unreliable`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ibsweep.analysis.configurations import KIND, model_label, setting_columns
from ibsweep.analysis.settings import AnalysisConfig
from ibsweep.analysis.shift_tests import (
    ShiftTest,
    paired_shift_test,
    seeds_for_power,
    unpaired_shift_test,
)
from ibsweep.analysis.statistics import holm, with_estimator


@dataclass(frozen=True)
class Claim:
    """One pre-specified directional hypothesis about a phase statistic."""

    statistic: str
    greater: str  # the model kind whose statistic the claim says is larger
    hypothesis: str


CLAIMS: tuple[Claim, ...] = (
    Claim("expansion", "dnn", "DNN expansion > BNN expansion"),
    Claim(
        "compression_before_t95",
        "bnn",
        "BNN compression before t95 > DNN compression before t95",
    ),
)
RESULT_COLUMNS: tuple[str, ...] = (
    "layer", "estimator", "statistic", "hypothesis", "test", "n_pairs", "n_dnn", "n_bnn",
    "dropped_unreliable", "effect", "effect_ci_low", "effect_ci_high", "p_value", "p_adjusted",
    "seeds_for_80pct_power", "supported", "note", "excluded",
)  # fmt: skip


def claim_tests(
    phases: pd.DataFrame,
    verdicts: pd.DataFrame,
    config_cols: Sequence[str],
    config: AnalysisConfig | None = None,
) -> pd.DataFrame:
    """One row per (DNN-BNN pair, hidden layer, estimator, claim): the test and its reading.

    ``phases`` is the per-run table (run_phases), ``verdicts`` the configuration table
    (statistics.configuration_verdicts or aggregate) over the same config columns.
    """
    config = config or AnalysisConfig()
    settings = setting_columns(config_cols)
    columns = ["dnn_model", "bnn_model", *settings, *RESULT_COLUMNS]
    if KIND not in config_cols or phases.empty:
        return pd.DataFrame(columns=columns)
    phases = with_estimator(phases).assign(_model=model_label)
    groups = {_key(k): g for k, g in phases.groupby(list(config_cols), dropna=False, sort=True)}
    keys = [*config_cols, "estimator", "layer"]
    lookup = {_key(tuple(r[c] for c in keys)): r for r in verdicts.to_dict("records")}
    kind_at = list(config_cols).index(KIND)
    setting_at = [list(config_cols).index(c) for c in settings]
    by_setting: dict[tuple, dict[str, list[tuple]]] = {}
    for cfg in groups:
        sides = by_setting.setdefault(tuple(cfg[i] for i in setting_at), {"dnn": [], "bnn": []})
        if cfg[kind_at] in sides:
            sides[cfg[kind_at]].append(cfg)
    rng = np.random.default_rng(config.random_seed)
    rows = []
    for setting, sides in by_setting.items():
        for dnn, bnn in ((d, b) for d in sides["dnn"] for b in sides["bnn"]):
            g = {"dnn": groups[dnn], "bnn": groups[bnn]}
            base = {
                "dnn_model": g["dnn"]["_model"].iloc[0],
                "bnn_model": g["bnn"]["_model"].iloc[0],
                **dict(zip(settings, setting, strict=True)),
            }
            estimators = sorted(set(g["dnn"]["estimator"]) & set(g["bnn"]["estimator"]))
            for estimator in estimators:
                for layer in _hidden_layers(g, estimator):
                    sel = {k: _layer_rows(g[k], estimator, layer) for k in g}
                    v = {k: lookup.get((*cfg, estimator, layer)) for k, cfg in
                         (("dnn", dnn), ("bnn", bnn))}  # fmt: skip
                    excluded = _exclusion(v, base, estimator, layer, config)
                    for claim in CLAIMS:
                        row = {
                            **base,
                            "layer": layer,
                            "estimator": estimator,
                            "statistic": claim.statistic,
                            "hypothesis": claim.hypothesis,
                        }
                        row.update(_test(sel, claim, excluded, config, rng))
                        rows.append(row)
    out = pd.DataFrame(rows, columns=columns)
    out["p_adjusted"] = np.nan
    for _, idx in out.groupby("statistic").groups.items():
        p = out.loc[idx, "p_value"].to_numpy(dtype=float)
        finite = np.isfinite(p)
        if finite.any():
            adjusted = np.full(p.size, np.nan)
            adjusted[finite] = holm(p[finite])
            out.loc[idx, "p_adjusted"] = adjusted
    readings = [_reading(r, config.alpha) for r in out.to_dict("records")]
    out["supported"] = [s for s, _ in readings]
    out["note"] = [n for _, n in readings]
    return out


def _hidden_layers(groups: Mapping[str, pd.DataFrame], estimator: str) -> list[int]:
    layers = None
    for g in groups.values():
        rows = g[g["estimator"] == estimator]
        hidden = set(rows.loc[rows["layer"] < rows["n_layers"].astype(int), "layer"].astype(int))
        layers = hidden if layers is None else layers & hidden
    return sorted(layers or ())


def _layer_rows(group: pd.DataFrame, estimator: str, layer: int) -> pd.DataFrame:
    return group[(group["estimator"] == estimator) & (group["layer"] == layer)]


def _exclusion(
    verdicts: Mapping[str, Mapping[str, Any] | None],
    base: Mapping[str, Any],
    estimator: str,
    layer: int,
    config: AnalysisConfig,
) -> str:
    """Why a layer of a pair is left out of the tests ('' if it is not)."""
    why = []
    for kind, v in verdicts.items():
        label = base[f"{kind}_model"]
        if v is None:
            why.append(f"{label} has no verdict for layer {layer} under {estimator}")
        elif v["undertrained"]:
            why.append(
                f"{label} undertrained (median final train accuracy {v['train_acc']:.3g} < "
                f"{config.undertrained_floor:g})"
            )
        elif v["plurality"] == "unreliable":
            why.append(
                f"{label} layer {layer} unreliable under {estimator}: {v['unreliable_reason']}"
            )
    return "; ".join(why)


def _test(
    rows: Mapping[str, pd.DataFrame],
    claim: Claim,
    excluded: str,
    config: AnalysisConfig,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The test of one claim on one layer: sample sizes, effect, interval, p-value, power."""
    nan = math.nan
    result: dict[str, Any] = {
        "test": "", "n_pairs": 0, "n_dnn": 0, "n_bnn": 0, "dropped_unreliable": 0,
        "effect": nan, "effect_ci_low": nan, "effect_ci_high": nan, "p_value": nan,
        "seeds_for_80pct_power": nan, "excluded": excluded,
    }  # fmt: skip
    if excluded:
        return result
    values = {}
    for kind, r in rows.items():
        reason = r["unreliable_reason"] if "unreliable_reason" in r else pd.Series("", r.index)
        reliable = ~reason.fillna("").astype(bool)
        result["dropped_unreliable"] += int((~reliable).sum())
        x = r.loc[reliable].set_index("seed")[claim.statistic].astype(float)
        values[kind] = x[np.isfinite(x.to_numpy())]
        result[f"n_{kind}"] = len(values[kind])
    other = "bnn" if claim.greater == "dnn" else "dnn"
    high, low = values[claim.greater], values[other]
    common = high.index.intersection(low.index)
    test: ShiftTest
    if len(common):
        d = (high.loc[common] - low.loc[common]).to_numpy()
        test = paired_shift_test(
            d, config.ci_level, config.exact_max_pairs, config.permutation_draws, rng
        )
        result["n_pairs"] = len(common)
        result["seeds_for_80pct_power"] = seeds_for_power(d, alpha=config.alpha)
    elif len(high) and len(low):
        x, y = high.to_numpy(), low.to_numpy()
        test = unpaired_shift_test(
            x, y, config.ci_level, config.permutation_draws, config.bootstrap_draws, rng
        )
        result["seeds_for_80pct_power"] = seeds_for_power(x, y, alpha=config.alpha)
    else:
        result["test"] = "none: no reliable seed with a value on both sides"
        return result
    result.update(
        test=test.method, effect=test.effect, effect_ci_low=test.ci_low,
        effect_ci_high=test.ci_high, p_value=test.p_value,
    )  # fmt: skip
    return result


def _reading(row: Mapping[str, Any], alpha: float) -> tuple[str, str]:
    """(supported, note): the plain-words reading of one row."""
    if row["excluded"]:
        return "not tested", f"excluded: {row['excluded']}"
    if not math.isfinite(row["p_value"]):
        return "not tested", row["test"] or "no test"
    effect, p_adj = row["effect"], row["p_adjusted"]
    shift = f"shift {effect:+.2f} bits [{row['effect_ci_low']:.2f}, {row['effect_ci_high']:.2f}]"
    n80 = row["seeds_for_80pct_power"]
    power = f"about {n80:.0f} seeds for 80% power" if math.isfinite(n80) else "no power estimate"
    if effect > 0 and p_adj < alpha:
        return "yes", f"{row['hypothesis']}: {shift}, adjusted p {p_adj:.3g}"
    if effect <= 0:
        return "no", f"the shift points the other way or is nil ({shift}), adjusted p {p_adj:.3g}"
    return "no", (
        f"not significant at {alpha:g} after Holm ({shift}, adjusted p {p_adj:.3g}); {power}"
    )


def _key(key: tuple) -> tuple:
    # NaN never equals NaN: normalise missing config values so keys compare and look up.
    return tuple(None if pd.isna(v) else v for v in key)
