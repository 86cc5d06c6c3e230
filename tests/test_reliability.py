"""Reliability rules: shares of training on a log(epoch + 1) axis, tables with and without the
newer columns, and a layer at its own capacity (below log2 N) is not unreliable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ibsweep.analysis.reliability import reliability
from ibsweep.analysis.settings import PhaseConfig


def table(epochs, i_xt, **extra):
    n = len(epochs)
    return pd.DataFrame(
        {"run_id": "r", "layer": 1, "epoch": epochs, "i_xt": i_xt, "i_ty": np.full(n, 0.9),
         "ceiling": 12.0, **extra}
    )  # fmt: skip


def test_shares_are_of_training_on_a_log_axis_whatever_the_schedule():
    def at_ceiling_late(epochs):  # at the ceiling from epoch 31 on: half of log10(1 + epoch)
        return np.where(epochs >= 31, 11.95, 9.0)

    every = np.arange(0, 1000, dtype=float)
    sparse = np.r_[0.0, np.unique(np.round(np.logspace(0, np.log10(999), 60)))]
    shares = [
        reliability(table(e, at_ceiling_late(e)))["near_ceiling_share"].item()
        for e in (every, sparse)
    ]
    assert shares[0] == pytest.approx(1 - np.log10(32) / np.log10(1000), abs=0.01)
    assert shares[1] == pytest.approx(shares[0], abs=0.03)
    # most epochs of the every-epoch schedule are late: an unweighted share would be 0.97
    assert (at_ceiling_late(every) > 11).mean() > 0.95


def test_old_tables_judge_by_the_ceiling_alone_and_new_ones_by_every_rule():
    epochs = np.arange(0, 200, dtype=float)
    old = reliability(table(epochs, np.full(200, 11.8)))
    assert old["near_injective_share"].isna().all() and old["bias_share"].isna().all()
    assert old["estimator"].item() == "default"
    assert old["unreliable_reason"].item().startswith("at the ceiling")
    rows = table(epochs, np.full(200, 10.0), n_states=np.full(200, 3900.0),
                 i_ty_perm=np.full(200, 0.6), estimator="bin30")  # fmt: skip
    new = reliability(rows)
    reason = new["unreliable_reason"].item()
    assert "near-injective: n_states >= 0.9 N" in reason and "I(T;Y) mostly bias" in reason
    assert "at the ceiling" not in reason
    looser = PhaseConfig(injective_share=0.99, bias_share=0.7)
    assert reliability(rows, looser)["unreliable_reason"].item() == ""


def test_a_small_permutation_baseline_is_never_bias():
    epochs = np.arange(0, 100, dtype=float)
    rows = table(epochs, np.full(100, 3.0), i_ty_perm=np.full(100, 0.03))
    rows["i_ty"] = 0.04  # a layer that knows little about the labels: share 0.75, 0.03 bits
    assert reliability(rows)["unreliable_reason"].item() == ""
    assert reliability(rows, PhaseConfig(bias_floor_bits=0.01))["bias_share"].item() == 1.0


def test_a_layer_at_its_own_capacity_below_log2_n_is_reliable():
    epochs = np.arange(0, 100, dtype=float)
    rows = table(epochs, np.full(100, 3.0), n_states=np.full(100, 8.0), layer_ceiling=3.0,
                 i_ty_perm=np.full(100, 0.001))  # fmt: skip
    out = reliability(rows)
    assert out["unreliable_reason"].item() == "" and out["layer_ceiling"].item() == 3.0
