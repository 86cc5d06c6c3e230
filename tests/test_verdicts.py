"""Verdicts on planted separate / simultaneous / no-compression / saturated curves with noise."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest

from ibsweep.analysis.phases import layer_phases, run_phases
from ibsweep.analysis.statistics import aggregate
from ibsweep.analysis.verdicts import VERDICTS, VerdictInputError, classify, classify_runs, vote

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
    elif kind == "fit then compress":
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
        ("saturated", "saturated"),
        ("fit then compress", "separate"),
    ],
)
def test_per_seed_verdicts_on_planted_curves(kind, expected):
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    verdicts = []
    for _ in range(10):
        ixt, ity = planted(kind, rng)
        stats = layer_phases(EPOCHS, ixt, ity, None, CEILING)
        verdicts.append(classify(vars(stats)))
    assert verdicts.count(expected) >= 9, verdicts


def test_tanh_like_separate_curve_has_compression_before_a_late_t95():
    ixt, ity = planted("separate", np.random.default_rng(0))
    stats = layer_phases(EPOCHS, ixt, ity, None, CEILING)
    assert stats.compression_before_t95 > 0.25
    assert stats.expansion > 1.0
    assert classify(vars(stats)) == "separate"


def test_no_fitting_is_undetermined():
    ixt = 5.0 - 1.5 * sig((U - 2.0) / 0.2)
    stats = layer_phases(EPOCHS, ixt, np.full(U.size, 0.4), None, CEILING)
    assert classify(vars(stats)) == "undetermined"


def series(kinds, n_seeds, rng):
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
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_configuration_verdicts_over_ten_seeds():
    kinds = {
        "tanh": "separate",
        "ste": "simultaneous",
        "relu": "no compression",
        "wide": "saturated",
    }
    phases = run_phases(series(kinds, 10, np.random.default_rng(1)), ["model.activation"])
    summary = aggregate(phases, ["model.activation"], n_boot=200).set_index("model.activation")
    for act, kind in kinds.items():
        assert summary.loc[act, "verdict"] == kind
        assert summary.loc[act, "n_seeds"] == 10
        assert summary.loc[act, "verdict_confidence"] >= 0.9
        assert summary.loc[act, f"n_{kind.replace(' ', '_')}"] >= 9


def test_vote_is_a_plurality_with_a_wilson_interval():
    result = vote(["separate"] * 7 + ["simultaneous"] * 2 + ["no compression"])
    assert result["verdict"] == "separate"
    assert result["verdict_confidence"] == pytest.approx(0.7)
    assert result["n_separate"] == 7 and result["n_simultaneous"] == 2
    # Wilson score interval at 95%: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    z, n, p = 1.959963984540054, 10, 0.7
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert result["verdict_ci_low"] == pytest.approx((centre - half) / (1 + z * z / n))
    assert result["verdict_ci_high"] == pytest.approx((centre + half) / (1 + z * z / n))


def test_vote_tie_and_empty_and_unknown():
    assert vote(["separate", "simultaneous"])["verdict"] == "undetermined"
    assert vote([])["verdict"] == "undetermined"
    assert math.isnan(vote([])["verdict_confidence"])
    with pytest.raises(VerdictInputError, match="unknown verdict"):
        vote(["compressed"])
    assert set(VERDICTS) >= {"separate", "simultaneous", "no compression", "saturated"}


def test_classify_runs_needs_phase_columns():
    with pytest.raises(VerdictInputError, match="expansion"):
        classify_runs(pd.DataFrame({"saturated": [False], "compression": [1.0], "t50": [1.0]}))
