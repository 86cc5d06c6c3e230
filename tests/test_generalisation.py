"""Compression and generalisation across runs: planted monotone relations are found, a
configuration with few runs is pooled over its model kind (and says so), unreliable layers
are left out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ibsweep.analysis.generalisation import generalisation_table
from ibsweep.analysis.settings import AnalysisConfig

COLS = ["model.kind", "model.activation"]


def rows(kind, activation, n, rng, slope, unreliable=0):
    compression = rng.uniform(0, 2, n)
    test = 0.8 + slope * compression + rng.normal(0, 0.005, n)
    train = test + 0.1 - 0.04 * compression + rng.normal(0, 0.002, n)
    return pd.DataFrame(
        {"model.kind": kind, "model.activation": activation, "seed": range(n),
         "estimator": "sign", "layer": 2, "compression": compression, "test_acc_end": test,
         "train_acc_end": train, "unreliable_reason": ["near-injective"] * unreliable
         + [""] * (n - unreliable)}
    )  # fmt: skip


def test_planted_relations_pooling_and_reliability():
    rng = np.random.default_rng(0)
    phases = pd.concat(
        [rows("dnn", "tanh", 12, rng, 0.05, unreliable=2), rows("bnn", "ste", 4, rng, 0.05),
         rows("bnn", "approx_sign", 4, rng, 0.05)]
    )  # fmt: skip
    out = generalisation_table(phases, COLS, AnalysisConfig(bootstrap_draws=500))
    tanh = out[out["model.activation"] == "tanh"].iloc[0]
    assert tanh["scope"] == "configuration" and tanh["n_runs"] == 10  # 2 unreliable left out
    assert tanh["rho_test_acc"] > 0.9 and tanh["rho_test_acc_ci_low"] > 0.5
    assert tanh["rho_gap"] < -0.9 and tanh["rho_gap_ci_high"] < -0.5
    assert tanh["p_test_acc"] < 0.01
    pooled = out[out["model.kind"] == "bnn"]
    assert len(pooled) == 1 and pooled["model.activation"].isna().all()
    row = pooled.iloc[0]
    assert row["n_runs"] == 8 and "pooled over the 2 configurations of kind bnn" in row["scope"]
    assert "bnn-approx_sign, bnn-ste" in row["scope"]
    assert row["rho_test_acc"] > 0.8


def test_no_relation_gives_an_interval_around_zero():
    rng = np.random.default_rng(1)
    phases = rows("dnn", "tanh", 30, rng, 0.0)
    row = generalisation_table(phases, COLS, AnalysisConfig(bootstrap_draws=500)).iloc[0]
    assert row["rho_test_acc_ci_low"] < 0 < row["rho_test_acc_ci_high"]
