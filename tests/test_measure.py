"""MI of all seeds and layers in one pass: each layer's estimator's numbers, seed by seed."""

import math

import numpy as np
import pytest

from ibsweep.analysis.estimators import (
    EstimatorInputError,
    default_estimator,
    estimate_panel,
    estimate_stacked,
    make_estimator,
)
from ibsweep.models.config import ModelConfig, TrainConfig
from ibsweep.models.datasets import load_dataset
from ibsweep.models.training import Trainer
from ibsweep.sweep.training.meter import LayerMeter, permuted_labels

N_SEEDS, N = 3, 600


def _stack(layer_type: str, width: int, seed: int = 0) -> np.ndarray:
    """(S, n, width) float32 values typical of a layer type, different for every seed."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(N_SEEDS, N, width))
    values = {
        "tanh": np.tanh(z),
        "hardtanh": np.clip(z, -1, 1),  # many values exactly on the range's ends
        "sigmoid": 1 / (1 + np.exp(-z)),
        "relu": np.maximum(z, 0) * 3,
        "linear": z * 4,
        "binary": np.where(z >= 0, 1.0, -1.0),
        "softmax": np.exp(z) / np.exp(z).sum(axis=2, keepdims=True),
    }[layer_type]
    return values.astype(np.float32)


def _labels(per_seed: bool) -> np.ndarray:
    rng = np.random.default_rng(1)
    if per_seed:
        return rng.integers(0, 3, size=(N_SEEDS, N))
    return np.broadcast_to(rng.integers(0, 2, size=N), (N_SEEDS, N))


def _assert_same_as_each_estimator(estimators, layers, y):
    got = estimate_stacked(estimators, layers, y)
    for s in range(N_SEEDS):
        for li, (est, t) in enumerate(zip(estimators, layers, strict=True)):
            ref = est.estimate(t[s], y[s])
            assert got.i_xt[s, li] == pytest.approx(ref.i_xt, abs=1e-9)
            assert got.i_ty[s, li] == pytest.approx(ref.i_ty, abs=1e-9)
            assert got.n_states[s, li] == ref.n_states
            assert got.saturated[s, li] == ref.saturated


LAYER_TYPES = ["binary", "tanh", "hardtanh", "sigmoid", "softmax", "relu", "linear"]


@pytest.mark.parametrize("layer_type", LAYER_TYPES)
@pytest.mark.parametrize("per_seed_labels", [False, True], ids=["shared-y", "own-y"])
@pytest.mark.parametrize("units_first", [False, True], ids=["rows", "units-first"])
def test_every_default_layer_type_equals_its_estimator(layer_type, per_seed_labels, units_first):
    widths = [2] if layer_type == "softmax" else [1, 3, 10]
    layers = [_stack(layer_type, w, seed=w) for w in widths]
    if units_first:  # as the trainer hands them out: views of (S, width, n) arrays
        layers = [np.ascontiguousarray(t.transpose(0, 2, 1)).transpose(0, 2, 1) for t in layers]
    estimators = [default_estimator(layer_type) for _ in widths]
    _assert_same_as_each_estimator(estimators, layers, _labels(per_seed_labels))


@pytest.mark.parametrize(
    "name,params",
    [
        ("binning", {"n_bins": 7, "range": "neuron"}),
        ("binning", {"bin_width": 0.25, "range": "layer"}),
        ("binning", {"n_bins": 12, "range": "fixed", "lo": -2.0, "hi": 0.5}),
        ("exact", {}),  # real values: every distinct row is a state (the estimator itself runs)
        ("adaptive", {"n_bins": 5}),
        ("kde", {"noise_var": 0.05}),
    ],
)
def test_override_estimators_equal_the_estimator(name, params):
    est = make_estimator(name, **params)
    layers = [_stack("tanh", 4), _stack("linear", 2, seed=5)]
    _assert_same_as_each_estimator([est, est], layers, _labels(True))


def test_edge_cases_constant_seeds_wide_keys_and_integer_layers():
    constant = _stack("binary", 4)
    constant[1] = 1.0  # one seed's layer never changes: a single state
    wide = _stack("tanh", 14)  # 30^14 states do not fit a float64 key: the estimator runs
    integer = np.random.default_rng(3).integers(0, 2, size=(N_SEEDS, N, 6))
    estimators = [default_estimator("binary"), default_estimator("tanh"), make_estimator("exact")]
    _assert_same_as_each_estimator(estimators, [constant, wide, integer], _labels(False))


def test_analytic_values_per_seed():
    """Seed 0 copies the label, seed 1 is constant, seed 2 holds 4 equiprobable states."""
    y = np.arange(N) % 2
    t = np.zeros((3, N, 2), dtype=np.float32)
    t[0, :, 0] = y * 2 - 1
    t[1] = -1.0
    t[2, :, 0] = (np.arange(N) // 2) % 2 * 2 - 1
    t[2, :, 1] = y * 2 - 1
    got = estimate_stacked([default_estimator("binary")], [t], y)
    np.testing.assert_allclose(got.i_xt[:, 0], [1.0, 0.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(got.i_ty[:, 0], [1.0, 0.0, 1.0], atol=1e-12)
    assert got.n_states[:, 0].tolist() == [2, 1, 4]
    assert not got.saturated.any()
    assert math.log2(N) - 0.1 > 2.0


def test_bad_input_raises_the_estimators_error():
    t = _stack("tanh", 3)
    t[2, 5, 1] = np.nan
    with pytest.raises(EstimatorInputError, match="NaN or infinite"):
        estimate_stacked([default_estimator("tanh")], [t], _labels(False))
    with pytest.raises(EstimatorInputError, match="one per layer"):
        estimate_stacked([default_estimator("tanh")] * 2, [t], _labels(False))
    with pytest.raises(EstimatorInputError, match="same S, n"):
        estimate_stacked([default_estimator("tanh")] * 2, [t, t[:2]], _labels(False))


@pytest.mark.parametrize(
    "model,measure_on",
    [
        (ModelConfig(), "full"),
        (ModelConfig(activation="relu"), "test"),
        (ModelConfig(kind="bnn", activation="ste"), "full"),
    ],
)
def test_layer_meter_on_a_training_run(model, measure_on):
    trainer = Trainer(model, TrainConfig(epochs=2), load_dataset("tishby"), [0, 1], measure_on)
    record = list(trainer.run())[-1]
    panel = {"bin30": ("binning", {}), "sign": ("binning", {"n_bins": 2}), "exact": ("exact", {})}
    labels = trainer.measure_labels
    perm = permuted_labels(labels, trainer.seeds)
    for meter in (LayerMeter(model), LayerMeter(model, panel=panel)):
        got = meter.estimate(record.layers, labels, perm)
        assert list(got) == list(meter.members)
        for member, ests in meter.estimators.items():
            for s in range(2):
                for li, est in enumerate(ests):
                    ref = est.estimate(record.layers[li][s], labels[s])
                    one = got[member]
                    assert one.i_xt[s, li] == pytest.approx(ref.i_xt, abs=1e-9)
                    assert one.i_ty[s, li] == pytest.approx(ref.i_ty, abs=1e-9)
                    assert (one.n_states[s, li], one.saturated[s, li]) == (
                        ref.n_states,
                        ref.saturated,
                    )
                    shuffled = est.estimate(record.layers[li][s], perm[s])
                    assert one.i_ty_perm[s, li] == pytest.approx(shuffled.i_ty, abs=1e-9)


def test_panel_members_take_the_layer_types_range_policy():
    panel = {"sign": ("binning", {"n_bins": 2}), "wide": ("binning", {"range": "layer"})}
    tanh = LayerMeter(ModelConfig(), panel=panel).describe()
    assert tanh["sign"][0] == "binning(n_bins=2,range=fixed,lo=-1,hi=1)"
    assert tanh["sign"][-1] == "binning(n_bins=2,range=fixed,lo=0,hi=1)"  # the softmax
    assert tanh["wide"][0] == "binning(n_bins=30,range=layer)"  # range given: taken whole
    relu = LayerMeter(ModelConfig(activation="relu"), panel=panel).describe()
    assert relu["sign"][0] == "binning(n_bins=2,range=layer)"
    bnn = LayerMeter(ModelConfig(kind="bnn", activation="ste"))
    assert bnn.describe()["default"] == ["exact()"] * 6  # the output counted exactly too
    assert bnn.max_bits((10, 7, 5, 4, 3, 2))["default"] == [10, 7, 5, 4, 3, 3]
    assert LayerMeter(ModelConfig(), panel=panel).max_bits((10, 7, 5, 4, 3, 2))["sign"] == [
        10, 7, 5, 4, 3, 2,
    ]  # fmt: skip


def test_the_permutation_is_fixed_per_seed():
    labels = np.tile(np.arange(50) % 3, (2, 1))
    a, b = permuted_labels(labels, [4, 5]), permuted_labels(labels, [4, 5])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # each seed its own permutation
    np.testing.assert_array_equal(np.sort(a, axis=1), np.sort(labels, axis=1))
    np.testing.assert_array_equal(permuted_labels(labels[1:], [5]), a[1:])


def test_a_panel_gives_each_members_numbers_alone():
    """Members share a layer's pass (and exact counting learns from a binning that already
    told every row apart) without changing any member's numbers."""
    rng = np.random.default_rng(9)
    wide = np.tanh(rng.normal(scale=2, size=(N_SEEDS, N, 12))).astype(np.float32)  # injective
    narrow = np.round(_stack("tanh", 3), 1)  # few distinct rows
    mixed = wide.copy()
    mixed[1, : N // 2] = mixed[1, 0]  # one seed with a repeated row
    layers = [wide, narrow, mixed]
    y = _labels(True)
    perm = _labels(False)
    panel = {
        "exact": [make_estimator("exact")] * 3,
        "bin30": [default_estimator("tanh")] * 3,
        "same": [default_estimator("tanh")] * 3,  # the same estimator: shared numbers
        "sign": [make_estimator("binning", n_bins=2)] * 3,
    }
    got = estimate_panel(panel, layers, y, perm)
    assert list(got) == list(panel)
    for member, ests in panel.items():
        alone = estimate_stacked(ests, layers, y, perm)
        for field in ("i_xt", "i_ty", "i_ty_perm", "n_states", "saturated"):
            np.testing.assert_array_equal(getattr(got[member], field), getattr(alone, field))
    assert (got["exact"].n_states[:, 0] == N).all()
    assert got["exact"].n_states[1, 2] < N


def test_epoch_metrics_name_every_members_value():
    """The trial's MLflow points: each member's numbers under its own keys, seed by seed."""
    from ibsweep.analysis.estimators import StackedEstimates
    from ibsweep.models.training import EpochRecord
    from ibsweep.sweep.tuning.trainable import epoch_metrics, mi_values

    def estimates(offset: float) -> StackedEstimates:
        grid = offset + np.arange(2 * 3).reshape(2, 3)  # seed s, layer l: offset + 3 s + l
        return StackedEstimates(grid, grid + 0.1, grid + 0.2, (grid * 10).astype(int), grid > 0)

    mi = {"sign": estimates(0.0), "exact": estimates(100.0)}
    record = EpochRecord(
        epoch=4, loss=np.array([0.5, 0.6]), train_acc=np.array([0.7, 0.8]),
        test_acc=np.array([0.9, 1.0]), grad_snr=np.arange(6.0).reshape(2, 3), layers=None,
        active=np.ones(2, dtype=bool),
    )  # fmt: skip
    values = mi_values(mi)
    got = epoch_metrics(record, 1, values[1], ("sign", "exact"))
    assert len(got) == 3 + 3 + 2 * 4 * 3
    assert got["loss"] == 0.6 and got["grad_snr/layer3"] == 5.0
    assert got["I_XT/sign/layer2"] == 4.0
    assert got["I_TY/exact/layer1"] == pytest.approx(103.1)
    assert got["I_TY_perm/sign/layer3"] == pytest.approx(5.2)
    assert got["states/exact/layer3"] == 1050.0
    plain = epoch_metrics(record, 0, mi_values({"default": estimates(0.0)})[0], ("default",))
    assert plain["I_TY_perm/layer2"] == pytest.approx(1.2) and plain["states/layer1"] == 0.0
    assert "grad_snr/layer1" not in epoch_metrics(
        EpochRecord(0, *(getattr(record, f) for f in ("loss", "train_acc", "test_acc")),
                    record.grad_snr, None, record.active), 0)  # fmt: skip


def test_binnings_of_a_binary_layer_share_its_exact_count_where_they_keep_its_values_apart():
    binary = _stack("binary", 6)
    binary[2] = 1.0  # a constant seed
    zeros = np.where(_stack("binary", 6, seed=4) > 0, 1.0, 0.0).astype(np.float32)  # 0/1 values
    layers = [binary, zeros]
    y, perm = _labels(True), _labels(False)
    panel = {
        "exact": [make_estimator("exact")] * 2,
        "bin30": [make_estimator("binning", n_bins=30)] * 2,
        "one_bin": [make_estimator("binning", n_bins=1)] * 2,  # both values in one bin
        "merged": [make_estimator("binning", n_bins=2, lo=0.0, hi=4.0)] * 2,  # -1, 0, 1: bin 0
        "layer": [make_estimator("binning", bin_width=0.4, range="layer")] * 2,
        "neuron": [make_estimator("binning", n_bins=3, range="neuron")] * 2,
    }
    got = estimate_panel(panel, layers, y, perm)
    for member, ests in panel.items():
        alone = estimate_stacked(ests, layers, y, perm)
        for field in ("i_xt", "i_ty", "i_ty_perm"):
            np.testing.assert_allclose(
                getattr(got[member], field), getattr(alone, field), atol=1e-12
            )
        np.testing.assert_array_equal(got[member].n_states, alone.n_states)
        for s in range(N_SEEDS):
            for li, (est, t) in enumerate(zip(ests, layers, strict=True)):
                assert got[member].n_states[s, li] == est.estimate(t[s], y[s]).n_states
    np.testing.assert_array_equal(got["bin30"].n_states, got["exact"].n_states)
    assert (got["one_bin"].n_states == 1).all()
    assert (got["merged"].n_states == 1).all()  # the two values share a bin: one state
    assert (got["exact"].n_states[:2] > 30).all()
