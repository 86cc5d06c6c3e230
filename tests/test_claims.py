"""Claim tests: which configurations pair, the direction of each test, Holm within statistic,
and what is left out (unreliable layers, undertrained configurations), said in the table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ibsweep.analysis.claims import claim_tests
from ibsweep.analysis.configurations import model_label
from ibsweep.analysis.robustness import robustness_table
from ibsweep.analysis.settings import AnalysisConfig
from ibsweep.analysis.statistics import configuration_verdicts, holm

COLS = ["model.kind", "model.activation", "model.widths", "data.name"]
CONFIG = AnalysisConfig()


def _reliable(seed, estimator, layer):
    return ""


def phases(models, rng, seeds=range(10), estimators=("bin30", "sign"), layers=(1, 2, 3)):
    """Phase-table rows: models maps (kind, activation, widths) to per-row overrides."""
    rows = []
    for (kind, activation, widths), extra in models.items():
        for seed, estimator, layer in (
            (s, e, k) for s in extra.get("seeds", seeds) for e in estimators for k in layers
        ):
            row = {
                "run_id": f"{kind}-{activation}-{widths}-{seed}",
                "model.kind": kind, "model.activation": activation, "model.widths": widths,
                "data.name": "tishby", "seed": seed, "n_layers": 3, "estimator": estimator,
                "layer": layer, "compression": 1.0, "t50": 50.0,
                "expansion": extra.get("expansion", 0.0) + rng.normal(0, 0.3),
                "compression_before_t95": extra.get("cbt95", 0.5) + rng.normal(0, 0.3),
                "unreliable_reason": extra.get("unreliable", _reliable)(seed, estimator, layer),
                "train_acc_end": extra.get("train_acc", 0.95), "test_acc_end": 0.9,
            }  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows)


def claims_of(df, config=CONFIG):
    return claim_tests(df, configuration_verdicts(df, COLS, config), COLS, config)


def test_pairs_differ_only_in_the_model_kind_and_cover_hidden_layers_and_estimators():
    rng = np.random.default_rng(0)
    df = phases(
        {("dnn", "tanh", "10x7"): {}, ("dnn", "relu", "10x7"): {}, ("bnn", "ste", "10x7"): {},
         ("bnn", "ste", "12x8"): {}},
        rng,
    )  # fmt: skip
    out = claims_of(df)
    assert len(out) == 2 * 2 * 2 * 2  # pairs (tanh, relu with ste 10x7) x layers x estimators x 2
    assert set(out["bnn_model"]) == {"bnn-ste"} and set(out["model.widths"]) == {"10x7"}
    assert set(out["layer"]) == {1, 2}  # layer 3 = n_layers is the output
    assert set(out["statistic"]) == {"expansion", "compression_before_t95"}
    assert (out["n_pairs"] == 10).all() and (out["test"] == "paired sign-flip, exact").all()
    for _, rows in out.groupby("statistic"):
        np.testing.assert_allclose(rows["p_adjusted"], holm(rows["p_value"]))


def test_a_planted_difference_supports_its_claim_and_none_does_not():
    rng = np.random.default_rng(1)
    df = phases({("dnn", "tanh", "10x7"): {"expansion": 1.2}, ("bnn", "ste", "10x7"): {}}, rng)
    out = claims_of(df).set_index(["statistic", "estimator", "layer"])
    expansion = out.loc["expansion"]
    assert (expansion["supported"] == "yes").all()
    assert ((expansion["effect"] > 0.8) & (expansion["effect"] < 1.6)).all()
    assert (expansion["effect_ci_low"] > 0).all() and (expansion["p_value"] < 0.01).all()
    assert expansion["note"].str.startswith("DNN expansion > BNN expansion").all()
    compression = out.loc["compression_before_t95"]  # the same 0.5 bits on both sides
    assert (compression["supported"] == "no").all()
    assert (compression["effect_ci_low"] < 0).all() and (compression["effect_ci_high"] > 0).all()
    # the effect always points the way the claim says: BNN minus DNN here
    flipped = phases({("dnn", "tanh", "10x7"): {}, ("bnn", "ste", "10x7"): {"cbt95": 1.5}}, rng)
    cbt = claims_of(flipped).query("statistic == 'compression_before_t95'")
    assert (cbt["supported"] == "yes").all() and (cbt["effect"] > 0.5).all()


def test_unreliable_layers_are_excluded_and_unreliable_seeds_dropped():
    rng = np.random.default_rng(2)

    def unreliable(seed, estimator, layer):
        if estimator == "bin30" and layer == 1:
            return "at the ceiling: I(X;T) within 0.3 bits of log2 N over >= 80% of training"
        return "near-injective" if (layer == 2 and seed < 2) else ""

    df = phases({("dnn", "tanh", "10x7"): {"unreliable": unreliable}, ("bnn", "ste", "10x7"): {}},
                rng)  # fmt: skip
    out = claims_of(df).set_index(["estimator", "layer", "statistic"])
    excluded = out.loc[("bin30", 1)]
    assert (excluded["supported"] == "not tested").all()
    assert excluded["excluded"].str.contains("dnn-tanh layer 1 unreliable under bin30").all()
    assert excluded["p_value"].isna().all()
    assert (out.loc[("sign", 1), "n_pairs"] == 10).all()  # only bin30's layer 1 is unreliable
    assert (out.loc[("sign", 2), "n_pairs"] == 8).all()
    assert (out.loc[("sign", 2), "dropped_unreliable"] == 2).all()


def test_undertrained_configurations_are_left_out_of_the_claims():
    rng = np.random.default_rng(3)
    df = phases(
        {("dnn", "tanh", "10x7"): {"expansion": 1.2}, ("bnn", "ste", "10x7"): {"train_acc": 0.62}},
        rng,
    )
    out = claims_of(df)
    assert (out["supported"] == "not tested").all() and out["p_value"].isna().all()
    assert (
        out["excluded"]
        .str.contains(r"bnn-ste undertrained \(median final train accuracy 0.62")
        .all()
    )
    lower = AnalysisConfig(undertrained_floor=0.5)
    assert (claims_of(df, lower).query("statistic == 'expansion'")["supported"] == "yes").all()


def test_configurations_without_common_seeds_fall_back_to_a_two_sample_test():
    rng = np.random.default_rng(4)
    df = phases(
        {("dnn", "tanh", "10x7"): {"expansion": 2.0, "seeds": range(0, 8)},
         ("bnn", "ste", "10x7"): {"seeds": range(8, 16)}},
        rng, estimators=("sign",),
    )  # fmt: skip
    out = claims_of(df)
    assert (out["n_pairs"] == 0).all() and (out["n_dnn"] == 8).all() and (out["n_bnn"] == 8).all()
    assert out["test"].str.startswith("two-sample permutation (unpaired)").all()
    row = out.set_index("statistic").loc["expansion"]
    assert row.query("layer == 1")["supported"].item() == "yes"
    assert row["seeds_for_80pct_power"].notna().all()


def test_robustness_says_whether_a_verdict_holds_under_every_estimator():
    verdicts = pd.DataFrame(
        {"model.kind": "dnn", "layer": [1, 1, 2, 2], "estimator": ["bin30", "sign"] * 2,
         "verdict": ["separate", "simultaneous", "no compression", "no compression"]}
    )  # fmt: skip
    out = robustness_table(verdicts, ["model.kind"]).set_index("layer")
    assert out.loc[1, "holds_under_all"] == "no" and out.loc[2, "holds_under_all"] == "yes"
    assert out.loc[1, "verdict[sign]"] == "simultaneous"
    assert out.loc[1, "verdicts"] == "bin30: separate; sign: simultaneous"
    one = robustness_table(verdicts[verdicts["estimator"] == "sign"], ["model.kind"])
    assert set(one["holds_under_all"]) == {"one estimator only"}


def test_no_pair_gives_an_empty_table_with_its_columns():
    df = phases({("dnn", "tanh", "10x7"): {}}, np.random.default_rng(5))
    out = claims_of(df)
    assert out.empty and {"effect", "p_adjusted", "supported"} <= set(out.columns)


def test_a_dnn_pairs_with_bnns_whatever_bnn_options_it_records():
    """A dnn records the BNN options' defaults as params; they name BNNs only, off-default."""
    table = pd.DataFrame(
        {
            "model.kind": ["dnn", "bnn", "bnn", "bnn"],
            "model.activation": ["tanh", "ste", "ste", "ste"],
            "model.bnn_norm": ["batchnorm", "batchnorm", "scale", "batchnorm"],
            "model.bnn_first": ["real", "real", "real", "binary"],
            "model.bnn_last": ["real", "real", "real", "real"],
        }
    )
    assert list(model_label(table)) == [
        "dnn-tanh",
        "bnn-ste",
        "bnn-ste-scale",
        "bnn-ste-first_binary",
    ]
