"""Phase verdicts: per seed from its phase statistics, per configuration with its reproducibility.

Per seed, estimator and layer, in this order (thresholds from PhaseConfig):
- `unreliable`: the estimate cannot carry phase information (analysis.reliability: near-
  injective, at the ceiling, or I(T;Y) mostly bias); the reason is in `unreliable_reason`.
- `undetermined`: the statistics needed are missing, or I(T;Y) never rises (no fitting).
- `no compression`: I(X;T) never falls by `min_compression_bits` from its peak.
- `separate`: I(X;T) rises by `min_expansion_bits` up to t50 (expansion while fitting), then
  falls. The sign and size of this early change is what tells tanh from BNN (science.md):
  the lag from the peak to t95 does not, since tanh's I(T;Y) keeps creeping up.
- `simultaneous`: no expansion, and I(X;T) has fallen by `min_compression_bits` by t95.
- `late compression`: no expansion, and the fall comes only after the fit (no rise, then a
  fall after t95): its own pattern, not the classic rise-then-fall.

Per configuration, estimator and layer: the plurality of its seeds' verdicts (a tie has none),
and the probability that it reproduces, estimated by a bootstrap over seeds: draw n seeds with
replacement (the counts of a draw are multinomial with the observed shares), take the draw's
plurality, and count the share of draws that give the same verdict. Below
`reproducibility_level` the configuration verdict is `undetermined`; `split` says how the
seeds voted (e.g. "separate 6, simultaneous 4": such a split reproduces in about 63% of draws).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ibsweep.analysis.settings import PhaseConfig

VERDICTS: tuple[str, ...] = (
    "separate",
    "simultaneous",
    "late compression",
    "no compression",
    "unreliable",
    "undetermined",
)
# Configuration verdicts add this to VERDICTS (analysis.statistics: below the accuracy floor).
UNDERTRAINED = "undertrained"
_NEEDED = ("compression", "t50", "expansion", "compression_before_t95")


class VerdictInputError(ValueError):
    """Raised when a phase table lacks the columns that verdicts are made from."""


def classify(stats: Mapping[str, Any], config: PhaseConfig | None = None) -> str:
    """Verdict for one seed and layer from its phase statistics (a PhaseStats dict or row)."""
    config = config or PhaseConfig()
    reason = stats.get("unreliable_reason")
    if isinstance(reason, str) and reason:
        return "unreliable"
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
    return "late compression"


def classify_runs(phase_df: pd.DataFrame, config: PhaseConfig | None = None) -> pd.Series:
    """Verdict of every row (run, estimator and layer) of a phase table from run_phases."""
    missing = [c for c in _NEEDED if c not in phase_df.columns]
    if missing:
        raise VerdictInputError(f"phase table lacks columns {missing}; make it with run_phases")
    cols = [*_NEEDED, *(["unreliable_reason"] if "unreliable_reason" in phase_df else [])]
    verdicts = [classify(row, config) for row in phase_df[cols].to_dict("records")]
    return pd.Series(verdicts, index=phase_df.index, name="verdict", dtype=object)


def configuration_verdict(
    verdicts: Sequence[str],
    level: float = 0.8,
    draws: int = 2000,
    rng: np.random.Generator | int | None = None,
) -> dict[str, Any]:
    """The seeds' plurality verdict if it reproduces in at least ``level`` of bootstrap draws
    of the seeds, else `undetermined`; with the reproducibility, the split and the counts."""
    counts = np.zeros(len(VERDICTS), dtype=np.int64)
    for v in verdicts:
        if v not in VERDICTS:
            raise VerdictInputError(f"unknown verdict {v!r}; allowed: {', '.join(VERDICTS)}")
        counts[VERDICTS.index(v)] += 1
    result: dict[str, Any] = {
        f"n_{v.replace(' ', '_')}": int(c) for v, c in zip(VERDICTS, counts, strict=True)
    }
    n = int(counts.sum())
    split = ", ".join(
        f"{VERDICTS[i]} {counts[i]}" for i in np.argsort(-counts, kind="stable") if counts[i]
    )
    if n == 0:
        return {"verdict": "undetermined", "plurality": "undetermined",
                "reproducibility": np.nan, "split": "", **result}  # fmt: skip
    plurality = _plurality(counts[None, :])[0]
    rng = np.random.default_rng(rng)
    drawn = _plurality(rng.multinomial(n, counts / n, size=draws))
    reproducibility = float(np.mean(drawn == plurality))
    return {
        "verdict": VERDICTS[plurality] if reproducibility >= level else "undetermined",
        "plurality": VERDICTS[plurality],
        "reproducibility": reproducibility,
        "split": split,
        **result,
    }


def _plurality(counts: np.ndarray) -> np.ndarray:
    """Per row of verdict counts, the index of the verdict most seeds give (undetermined on a
    tie)."""
    top = counts.max(axis=1, keepdims=True)
    tied = (counts == top).sum(axis=1) > 1
    return np.where(tied, VERDICTS.index("undetermined"), counts.argmax(axis=1))
