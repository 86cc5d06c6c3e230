"""The data of every estimate's reliability: I(T;Y) under permuted labels (the plug-in bias
baseline), and a BNN's output counted exactly."""

import math

import numpy as np
import pytest

from ibsweep.analysis.estimators import estimate_stacked, make_estimator
from ibsweep.analysis.estimators import stacked as stacked_module
from ibsweep.models.config import ModelConfig, TrainConfig
from ibsweep.models.datasets import load_dataset
from ibsweep.models.training import Trainer
from ibsweep.sweep.training.meter import LayerMeter, permuted_labels

N_SEEDS = 3


def _tishby_labels() -> np.ndarray:
    return load_dataset("tishby").y


def _h(counts: np.ndarray) -> float:
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _partition_layer(n_states: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(S, n, width) +-1 rows: each sample in one of ``n_states`` distinct random patterns, at
    random (independently of anything else)."""
    n = 4096
    codes = np.stack([rng.permutation(1 << width)[:n_states] for _ in range(N_SEEDS)])
    which = np.take_along_axis(codes, rng.integers(0, n_states, size=(N_SEEDS, n)), axis=1)
    bits = (which[:, :, None] >> np.arange(width)) & 1
    return np.where(bits == 1, 1.0, -1.0).astype(np.float32)


def _all_paths(monkeypatch, t: np.ndarray, y: np.ndarray, perm: np.ndarray, est):
    """I(T;Y') by the kernel, by the numpy path and by the estimator seed by seed: all equal."""
    got = estimate_stacked([est], [t], y, perm)
    monkeypatch.setattr(stacked_module, "_USE_KERNEL", False)
    numpy_path = estimate_stacked([est], [t], y, perm)
    monkeypatch.setattr(stacked_module, "_USE_KERNEL", True)
    one_by_one = [est.estimate(t[s], perm[s]).i_ty for s in range(len(t))]
    np.testing.assert_allclose(got.i_ty_perm[:, 0], numpy_path.i_ty_perm[:, 0], atol=1e-12)
    np.testing.assert_allclose(got.i_ty_perm[:, 0], one_by_one, atol=1e-12)
    return got


def test_a_layer_that_ignores_the_labels_has_a_baseline_near_zero(monkeypatch):
    """Four random states: the plug-in bias is about (4 - 1)(2 - 1) / (2 n ln 2) = 5e-4 bits."""
    y = _tishby_labels()
    t = _partition_layer(4, 2, np.random.default_rng(0))
    perm = permuted_labels(np.tile(y, (N_SEEDS, 1)), range(N_SEEDS))
    got = _all_paths(monkeypatch, t, y, perm, make_estimator("exact"))
    assert (got.n_states[:, 0] == 4).all()
    bias = 3 / (2 * len(y) * math.log(2))
    assert (got.i_ty_perm < 10 * bias).all()
    assert (got.i_ty < 10 * bias).all()  # the states ignore the labels too


def test_a_layer_that_holds_the_label_still_has_a_baseline_near_zero(monkeypatch):
    """T = Y: I(T;Y) = H(Y), yet under permuted labels nothing: the baseline is bias only."""
    y = _tishby_labels()
    t = np.tile(np.where(y == 1, 1.0, -1.0)[None, :, None], (N_SEEDS, 1, 1)).astype(np.float32)
    perm = permuted_labels(np.tile(y, (N_SEEDS, 1)), range(N_SEEDS))
    got = _all_paths(monkeypatch, t, y, perm, make_estimator("exact"))
    h_y = _h(np.bincount(y))
    np.testing.assert_allclose(got.i_ty[:, 0], h_y, atol=1e-12)
    assert (got.i_ty_perm < 0.005).all()


def test_a_near_injective_random_partition_has_a_baseline_near_h_y(monkeypatch):
    """2^20 random patterns for 4096 samples: nearly every state a singleton, so plug-in
    I(T;Y) is about H(Y) whatever the labels: the bias the baseline measures."""
    y = _tishby_labels()
    t = _partition_layer(1 << 20, 20, np.random.default_rng(1))
    perm = permuted_labels(np.tile(y, (N_SEEDS, 1)), range(N_SEEDS))
    got = _all_paths(monkeypatch, t, y, perm, make_estimator("exact"))
    h_y = _h(np.bincount(y))
    assert (got.n_states[:, 0] > 4080).all()
    assert (got.i_ty_perm[:, 0] > 0.97 * h_y).all()
    assert (got.i_ty_perm[:, 0] <= h_y + 1e-12).all()


def test_an_injective_layer_has_every_information_equal_to_its_bound(monkeypatch):
    y = _tishby_labels()
    rng = np.random.default_rng(2)
    t = np.tanh(rng.normal(size=(N_SEEDS, len(y), 5))).astype(np.float32)
    perm = permuted_labels(np.tile(y, (N_SEEDS, 1)), range(N_SEEDS))
    for est in (make_estimator("exact"), make_estimator("binning", n_bins=1000)):
        got = _all_paths(monkeypatch, t, y, perm, est)
        if est.name == "exact":
            assert (got.n_states == len(y)).all()
            np.testing.assert_allclose(got.i_xt, 12.0, atol=1e-12)
            np.testing.assert_allclose(got.i_ty_perm, _h(np.bincount(y)), atol=1e-12)


def test_the_default_bnn_output_is_counted_exactly_and_obeys_the_dpi():
    """A BNN's softmax is a function of its last binary layer: counted exactly, it has the
    distinct softmax rows as states and never more information than that layer."""
    model = ModelConfig(kind="bnn", activation="ste")
    meter = LayerMeter(model)
    assert meter.describe()["default"][-1] == "exact()"
    trainer = Trainer(model, TrainConfig(epochs=40), load_dataset("tishby"), [0, 1, 2])
    labels = trainer.measure_labels
    checked = 0
    for record in trainer.run(measure=lambda e: e % 10 == 0):
        if record.layers is None:
            continue
        est = meter.estimate(record.layers, labels)["default"]
        softmax, last_binary = record.layers[-1], record.layers[-2]
        for s in range(3):
            _, counts = np.unique(softmax[s], axis=0, return_counts=True)
            assert est.n_states[s, -1] == len(counts)
            assert est.i_xt[s, -1] == pytest.approx(_h(counts), abs=1e-12)
            _, binary_counts = np.unique(last_binary[s], axis=0, return_counts=True)
            assert len(counts) <= len(binary_counts)
            assert est.i_xt[s, -1] <= est.i_xt[s, -2] + 1e-12
            assert est.i_ty[s, -1] <= est.i_ty[s, -2] + 1e-12
            checked += 1
    assert checked == 5 * 3
