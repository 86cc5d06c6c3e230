"""The sensitivity table: a planted borderline verdict moves when its threshold is halved or
doubled; a clear one does not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ibsweep.analysis.phases import run_phases
from ibsweep.analysis.sensitivity import sensitivity_table
from ibsweep.analysis.settings import AnalysisConfig

EPOCHS = np.r_[0.0, np.unique(np.round(np.logspace(0, 3.5, 100)))]
U = np.log10(np.maximum(EPOCHS, 1))
COLS = ["model.activation"]


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def series(rng):
    """tanh: expansion 1.5 bits, then compression (clearly separate); edge: expansion 0.35
    bits (separate at 0.25, not at 0.5); high: at 11.8 of 12 bits (at the ceiling within 0.3
    bits, not within 0.15)."""
    frames = []
    for act in ("tanh", "edge", "high"):
        for seed in range(8):
            fit = rng.uniform(1.4, 1.6)
            ity = 0.05 + 0.8 * sig((U - fit) / 0.2)
            rise = {"tanh": 1.5, "edge": 0.35, "high": 0.0}[act]
            ixt = 6.0 + rise * sig((U - fit + 0.4) / 0.15) - 1.5 * sig((U - fit - 1.2) / 0.2)
            if act == "high":
                ixt = np.full(U.size, 11.8)
            frames.append(
                pd.DataFrame(
                    {"run_id": f"{act}{seed}", "model.activation": act, "seed": seed,
                     "layer": 1, "n_layers": 2, "epoch": EPOCHS,
                     "i_xt": ixt + rng.normal(0, 0.02, U.size),
                     "i_ty": ity + rng.normal(0, 0.005, U.size), "grad_snr": np.nan,
                     "ceiling": 12.0, "train_acc": 0.95}
                )
            )  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_a_borderline_verdict_moves_and_a_clear_one_does_not():
    table = series(np.random.default_rng(0))
    config = AnalysisConfig(reproducibility_draws=500)
    phases = run_phases(table, COLS, config)
    out, summary = sensitivity_table(table, phases, COLS, config)
    out = out.set_index("model.activation")
    assert out.loc["tanh", "verdict"] == "separate" and out.loc["tanh", "moved_by"] == ""
    assert out.loc["edge", "verdict"] == "separate"
    assert out.loc["edge", "min_expansion_bits x0.5"] == "separate"
    assert out.loc["edge", "min_expansion_bits x2"] == "late compression"
    assert "min_expansion_bits x2 -> late compression" in out.loc["edge", "moved_by"]
    assert out.loc["high", "verdict"] == "unreliable"
    assert out.loc["high", "ceiling_margin_bits x0.5"] == "no compression"
    assert out.loc["high", "ceiling_margin_bits x2"] == "unreliable"
    by = summary.set_index(["threshold", "factor"])
    assert by.loc[("min_expansion_bits", 2.0), "configuration_verdicts_moved"] == 1
    assert by.loc[("min_expansion_bits", 2.0), "seed_verdicts_moved"] == 8 / 24
    assert by.loc[("min_expansion_bits", 0.5), "configuration_verdicts_moved"] == 0
    assert by.loc[("ceiling_margin_bits", 0.5), "value"] == 0.15
    assert set(summary["threshold"]) >= {"min_rise_bits", "min_compression_bits", "bias_share"}
