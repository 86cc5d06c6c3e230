"""Phase verdicts: per seed from its phase statistics, per configuration by vote over seeds.

Per seed and layer, in this order (thresholds from PhaseConfig):
- `saturated`: I(X;T) sits at the estimator's ceiling; the layer carries no phase information.
- `undetermined`: the statistics needed are missing, or I(T;Y) never rises (no fitting).
- `no compression`: I(X;T) never falls by `min_compression_bits` from its peak.
- `separate`: I(X;T) rises by `min_expansion_bits` up to t50 (expansion while fitting), then
  falls. The sign and size of this early change is what tells tanh from BNN (science.md):
  the lag from the peak to t95 does not, since tanh's I(T;Y) keeps creeping up.
- `simultaneous`: no expansion, and I(X;T) has fallen by `min_compression_bits` by t95.
- otherwise `separate`: no expansion, but the fall comes after the fit, one phase after the other.

Per configuration and layer the verdict is the plurality over seeds (a tie is `undetermined`);
its confidence is the share of seeds that agree, with a Wilson score interval for that share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ibsweep.analysis.phases import PhaseConfig

VERDICTS: tuple[str, ...] = (
    "separate",
    "simultaneous",
    "no compression",
    "saturated",
    "undetermined",
)
_NEEDED = ("saturated", "compression", "t50", "expansion", "compression_before_t95")


class VerdictInputError(ValueError):
    """Raised when a phase table lacks the columns that verdicts are made from."""


def classify(stats: Mapping[str, Any], config: PhaseConfig | None = None) -> str:
    """Verdict for one seed and layer from its phase statistics (a PhaseStats dict or row)."""
    config = config or PhaseConfig()
    if bool(stats["saturated"]):
        return "saturated"
    compression = stats["compression"]
    if not np.isfinite(compression):
        return "undetermined"
    if compression < config.min_compression_bits:
        return "no compression"
    if not (np.isfinite(stats["t50"]) and np.isfinite(stats["expansion"])):
        return "undetermined"
    if stats["expansion"] >= config.min_expansion_bits:
        return "separate"
    if stats["compression_before_t95"] >= config.min_compression_bits:
        return "simultaneous"
    return "separate"


def classify_runs(phase_df: pd.DataFrame, config: PhaseConfig | None = None) -> pd.Series:
    """Verdict of every row (run and layer) of a phase table from run_phases."""
    missing = [c for c in _NEEDED if c not in phase_df.columns]
    if missing:
        raise VerdictInputError(f"phase table lacks columns {missing}; make it with run_phases")
    verdicts = [classify(row, config) for row in phase_df[list(_NEEDED)].to_dict("records")]
    return pd.Series(verdicts, index=phase_df.index, name="verdict", dtype=object)


def vote(verdicts: Sequence[str], level: float = 0.95) -> dict[str, Any]:
    """Plurality verdict of seeds with the share that agrees and its Wilson interval."""
    n = len(verdicts)
    counts = {v: 0 for v in VERDICTS}
    for v in verdicts:
        if v not in counts:
            raise VerdictInputError(f"unknown verdict {v!r}; allowed: {VERDICTS}")
        counts[v] += 1
    result: dict[str, Any] = {f"n_{v.replace(' ', '_')}": c for v, c in counts.items()}
    if n == 0:
        return {
            "verdict": "undetermined",
            "verdict_confidence": math.nan,
            "verdict_ci_low": math.nan,
            "verdict_ci_high": math.nan,
            **result,
        }
    top = max(counts.values())
    winners = [v for v, c in counts.items() if c == top]
    verdict = winners[0] if len(winners) == 1 else "undetermined"
    ci = sps.binomtest(top, n).proportion_ci(confidence_level=level, method="wilson")
    return {
        "verdict": verdict,
        "verdict_confidence": top / n,
        "verdict_ci_low": float(ci.low),
        "verdict_ci_high": float(ci.high),
        **result,
    }
