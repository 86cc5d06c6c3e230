"""Verdicts on planted curves with noise (separate, simultaneous, late compression, no
compression, unreliable), and configuration verdicts with their reproducibility over seeds."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ibsweep.analysis.phases import layer_phases, run_phases
from ibsweep.analysis.settings import AnalysisConfig
from ibsweep.analysis.statistics import aggregate
from ibsweep.analysis.verdicts import (
    VERDICTS,
    VerdictInputError,
    classify,
    classify_runs,
    configuration_verdict,
)

EPOCHS = np.unique(np.round(np.logspace(0, 4, 120))).astype(float)
U = np.log10(EPOCHS)
CEILING = 12.0


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def planted(kind, rng):
    """(I(X;T), I(T;Y)) of one seed: shapes per kind with jittered timing and 0.1 bit noise."""
    fit = rng.uniform(1.6, 2.2)
    ity = 0.05 + 0.8 * sig((U - fit) / 0.25)
    if kind == "separate":
        # tanh-like: expands while fitting, compresses later, I(T;Y) creeps up meanwhile
        # (so t95 comes late and much compression falls before it: the science.md lesson).
        late = fit + rng.uniform(0.9, 1.3)
        ixt = 6.0 + 1.5 * sig((U - fit + 0.3) / 0.3) - 2.5 * sig((U - late) / 0.3)
        ity = ity + 0.12 * sig((U - late) / 0.3)
    elif kind == "simultaneous":
        ixt = 3.0 - 1.2 * sig((U - fit) / 0.3)
    elif kind == "no compression":
        ixt = 6.0 + 1.5 * sig((U - fit) / 0.3)
    elif kind == "saturated":
        ixt = np.full(U.size, CEILING)
    elif kind == "late compression":  # no rise, a fall only well after the fit
        ixt = 5.0 - 1.5 * sig((U - fit - 1.7) / 0.2)
    else:
        raise AssertionError(kind)
    ixt = ixt + rng.normal(0, 0.1, U.size)
    return np.minimum(ixt, CEILING), ity + rng.normal(0, 0.02, U.size)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("separate", "separate"),
        ("simultaneous", "simultaneous"),
        ("no compression", "no compression"),
        ("late compression", "late compression"),
    ],
)
def test_per_seed_verdicts_on_planted_curves(kind, expected):
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    verdicts = []
    for _ in range(10):
        ixt, ity = planted(kind, rng)
        stats = layer_phases(EPOCHS, ixt, ity)
        verdicts.append(classify(vars(stats)))
    assert verdicts.count(expected) >= 9, verdicts


def test_tanh_like_separate_curve_has_compression_before_a_late_t95():
    ixt, ity = planted("separate", np.random.default_rng(0))
    stats = layer_phases(EPOCHS, ixt, ity)
    assert stats.compression_before_t95 > 0.25
    assert stats.expansion > 1.0
    assert classify(vars(stats)) == "separate"


def test_no_fitting_is_undetermined():
    ixt = 5.0 - 1.5 * sig((U - 2.0) / 0.2)
    stats = layer_phases(EPOCHS, ixt, np.full(U.size, 0.4))
    assert classify(vars(stats)) == "undetermined"


def series(kinds, n_seeds, rng, train_acc=0.95):
    rows = []
    for act, kind in kinds.items():
        for seed in range(n_seeds):
            ixt, ity = planted(kind, rng)
            rows.append(
                pd.DataFrame(
                    {
                        "run_id": f"{act}-{seed}",
                        "model.activation": act,
                        "seed": seed,
                        "layer": 1,
                        "n_layers": 2,
                        "epoch": EPOCHS.astype(int),
                        "i_xt": ixt,
                        "i_ty": ity,
                        "grad_snr": np.nan,
                        "ceiling": CEILING,
                        "train_acc": train_acc,
                        "test_acc": train_acc - 0.02,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_configuration_verdicts_over_ten_seeds():
    kinds = {
        "tanh": "separate",
        "ste": "simultaneous",
        "relu": "no compression",
        "late": "late compression",
        "wide": "saturated",  # at the ceiling the whole run: unreliable
    }
    phases = run_phases(series(kinds, 10, np.random.default_rng(1)), ["model.activation"])
    config = AnalysisConfig(bootstrap_draws=200)
    summary = aggregate(phases, ["model.activation"], config=config).set_index("model.activation")
    expected = {**kinds, "wide": "unreliable"}
    for act, verdict in expected.items():
        assert summary.loc[act, "verdict"] == verdict
        assert summary.loc[act, "n_seeds"] == 10
        assert summary.loc[act, "reproducibility"] >= 0.9
        assert summary.loc[act, f"n_{verdict.replace(' ', '_')}"] >= 9
    assert "at the ceiling" in summary.loc["wide", "unreliable_reason"]
    assert summary.loc["tanh", "unreliable_reason"] == ""


def near_ceiling_table(n_states=None, perm=None, ixt_level=11.8, seeds=4):
    """A tanh-like layer whose estimate sits near log2 N = 12 (or wherever ixt_level puts it)
    while I(T;Y) rises to 0.95 bits; optional distinct-state and permutation-baseline columns."""
    rng = np.random.default_rng(2)
    epochs = np.r_[0.0, EPOCHS]
    u = np.log10(np.maximum(epochs, 1))
    frames = []
    for seed in range(seeds):
        ixt = ixt_level + 0.1 * sig((u - 1.5) / 0.3) - 0.1 + rng.normal(0, 0.02, u.size)
        ity = 0.3 + 0.65 * sig((u - 1.8) / 0.25) + rng.normal(0, 0.01, u.size)
        frame = pd.DataFrame(
            {"run_id": f"r{seed}", "seed": seed, "layer": 3, "n_layers": 6, "epoch": epochs,
             "i_xt": ixt, "i_ty": ity, "grad_snr": np.nan, "ceiling": 12.0, "cfg": "tanh"}
        )  # fmt: skip
        if n_states is not None:
            frame["n_states"] = n_states * 4096
        if perm is not None:
            frame["i_ty_perm"] = perm * ity
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_a_near_injective_layer_at_11_8_of_12_bits_is_unreliable_not_no_compression():
    for table, rule in (
        (near_ceiling_table(), "at the ceiling"),  # a table without n_states: I(X;T) alone
        (near_ceiling_table(n_states=0.95), "near-injective"),
    ):
        phases = run_phases(table, ["cfg"])
        assert (phases["compression"] < 0.25).all()  # by its shape it would be no compression
        assert set(classify_runs(phases)) == {"unreliable"}
        assert phases["unreliable_reason"].str.contains(rule).all()
    # the same shape 1.5 bits lower, with few states and no bias, is read: no compression
    reliable = run_phases(near_ceiling_table(n_states=0.3, perm=0.05, ixt_level=10.3), ["cfg"])
    assert (reliable["unreliable_reason"] == "").all()
    assert set(classify_runs(reliable)) == {"no compression"}


def test_a_layer_whose_label_information_is_mostly_bias_is_unreliable():
    base = dict(n_states=0.3, ixt_level=8.0)
    biased = run_phases(near_ceiling_table(perm=0.6, **base), ["cfg"])
    assert set(classify_runs(biased)) == {"unreliable"}
    assert biased["unreliable_reason"].str.startswith("I(T;Y) mostly bias").all()
    assert (biased["bias_share"] == 1.0).all()
    clean = run_phases(near_ceiling_table(perm=0.4, **base), ["cfg"])
    assert (clean["unreliable_reason"] == "").all() and (clean["bias_share"] == 0.0).all()


def test_reproducibility_of_planted_seed_splits():
    unanimous = configuration_verdict(["separate"] * 10, rng=0)
    assert unanimous["verdict"] == "separate" and unanimous["reproducibility"] == 1.0
    assert unanimous["split"] == "separate 10"
    split = configuration_verdict(["separate"] * 6 + ["simultaneous"] * 4, draws=20000, rng=0)
    assert split["plurality"] == "separate"
    assert split["verdict"] == "undetermined"  # below the default level of 0.8
    assert split["split"] == "separate 6, simultaneous 4"
    # a draw reproduces "separate" when it holds more than 5 of the 6/10: P(Bin(10, 0.6) >= 6)
    assert split["reproducibility"] == pytest.approx(sps.binom.sf(5, 10, 0.6), abs=0.01)
    strong = configuration_verdict(["simultaneous"] * 8 + ["late compression"] * 2, rng=0)
    assert strong["verdict"] == "simultaneous"
    assert strong["reproducibility"] == pytest.approx(sps.binom.sf(5, 10, 0.8), abs=0.02)
    assert configuration_verdict(["separate"] * 6 + ["simultaneous"] * 4, level=0.6, rng=0)[
        "verdict"
    ] == "separate"  # fmt: skip


def test_ties_empty_and_unknown_verdicts():
    tie = configuration_verdict(["separate", "simultaneous"] * 3, rng=0)
    assert tie["verdict"] == "undetermined" and tie["plurality"] == "undetermined"
    empty = configuration_verdict([])
    assert empty["verdict"] == "undetermined" and math.isnan(empty["reproducibility"])
    with pytest.raises(VerdictInputError, match="unknown verdict 'compressed'"):
        configuration_verdict(["compressed"])
    assert "saturated" not in VERDICTS
    assert {"late compression", "unreliable"} <= set(VERDICTS)


def test_undertrained_configurations_are_marked_and_keep_their_phase_verdict():
    kinds = {"ste": "simultaneous"}
    phases = run_phases(
        series(kinds, 5, np.random.default_rng(3), train_acc=0.62), ["model.activation"]
    )
    row = aggregate(phases, ["model.activation"], config=AnalysisConfig(bootstrap_draws=200)).iloc[
        0
    ]
    assert row["verdict"] == "undertrained" and bool(row["undertrained"])
    assert row["phase_verdict"] == "simultaneous" and row["train_acc"] == pytest.approx(0.62)
    lower = AnalysisConfig(bootstrap_draws=200, undertrained_floor=0.6)
    assert (
        aggregate(phases, ["model.activation"], config=lower).iloc[0]["verdict"] == "simultaneous"
    )


def test_classify_runs_needs_phase_columns():
    with pytest.raises(VerdictInputError, match="expansion"):
        classify_runs(pd.DataFrame({"compression": [1.0], "t50": [1.0]}))
