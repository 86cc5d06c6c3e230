"""How the configuration verdicts move when a threshold is halved or doubled.

Each threshold of SENSITIVITY_THRESHOLDS (analysis.settings) is set to half and to twice its
value, one at a time, everything else as configured; the per-seed and configuration verdicts
are made again (the trajectories are read again where the threshold enters the statistics or
the reliability rules). The table has the configuration verdict under each variant beside the
one as configured, and which variants move it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ibsweep.analysis.phases import run_phases
from ibsweep.analysis.reliability import KEYS, reliability
from ibsweep.analysis.settings import (
    RELIABILITY_SETTINGS,
    SENSITIVITY_THRESHOLDS,
    VERDICT_SETTINGS,
    AnalysisConfig,
)
from ibsweep.analysis.statistics import configuration_verdicts
from ibsweep.analysis.verdicts import classify_runs

FACTORS: tuple[float, ...] = (0.5, 2.0)


def variant_name(threshold: str, factor: float) -> str:
    """The column of one variant, e.g. ``min_compression_bits x0.5``."""
    return f"{threshold} x{factor:g}"


def sensitivity_table(
    series: pd.DataFrame,
    phases: pd.DataFrame,
    config_cols: Sequence[str],
    config: AnalysisConfig | None = None,
    thresholds: Sequence[str] = SENSITIVITY_THRESHOLDS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per configuration: verdicts under every variant and `moved_by`; per variant: its value,
    the share of per-seed verdicts and the count of configuration verdicts that move).

    ``phases`` is run_phases of ``series`` under ``config``; its config columns are those of
    ``series`` after any conversion the caller made (so the tables join)."""
    config = config or AnalysisConfig()
    keys = [*config_cols, "estimator", "layer"]
    base = configuration_verdicts(phases, config_cols, config)
    base_seed = classify_runs(phases, config)
    table = base[[*keys, "verdict"]].copy()
    summary = []
    for name in thresholds:
        for factor in FACTORS:
            value = getattr(config, name) * factor
            variant = config.model_copy(update={name: value})
            redone = _redo(series, phases, config_cols, name, variant)
            seeds = classify_runs(redone, variant)
            verdicts = configuration_verdicts(redone, config_cols, variant)
            column = variant_name(name, factor)
            table[column] = verdicts["verdict"].to_numpy()
            moved = (table[column] != table["verdict"]).sum()
            summary.append(
                {
                    "threshold": name,
                    "factor": factor,
                    "value": value,
                    "seed_verdicts_moved": float((seeds.to_numpy() != base_seed.to_numpy()).mean())
                    if len(seeds)
                    else float("nan"),
                    "configuration_verdicts_moved": int(moved),
                    "configuration_verdicts": len(table),
                }
            )
    variants = [c for c in table.columns if c not in (*keys, "verdict")]
    table["moved_by"] = [
        ", ".join(f"{v} -> {row[v]}" for v in variants if row[v] != row["verdict"])
        for _, row in table.iterrows()
    ]
    return table, pd.DataFrame(summary)


def _redo(
    series: pd.DataFrame,
    phases: pd.DataFrame,
    config_cols: Sequence[str],
    changed: str,
    variant: AnalysisConfig,
) -> pd.DataFrame:
    """The phase table under ``variant``, which differs from the configured one in ``changed``,
    in the row order and column types of ``phases``: the reliability columns made again, the
    whole table, or (a threshold only the verdicts read) the same table."""
    if changed in VERDICT_SETTINGS:
        return phases
    keys = list(KEYS)
    at = pd.MultiIndex.from_frame(phases[keys].astype({"run_id": str, "estimator": str}))
    if changed in RELIABILITY_SETTINGS:
        fresh = reliability(series, variant).astype({"run_id": str, "estimator": str})
        fresh = fresh.set_index(keys).loc[at]
        return phases.assign(**{c: fresh[c].to_numpy() for c in fresh.columns})
    redone = run_phases(series, config_cols, variant)
    redone = redone.astype({"run_id": str, "estimator": str}).set_index(keys).loc[at]
    redone = redone.reset_index()
    for col in phases.columns:
        if redone[col].dtype != phases[col].dtype:
            redone[col] = redone[col].astype(phases[col].dtype)
    return redone[phases.columns]
