"""Training: determinism, seed packing, checkpoints, divergence, and the literature's accuracy."""

import itertools
import math

import numpy as np
import pytest
import torch

from ibsweep.models.config import (
    BNN_ACTIVATIONS,
    DNN_ACTIVATIONS,
    PRECISIONS,
    ModelConfig,
    TrainConfig,
)
from ibsweep.models.datasets import load_dataset
from ibsweep.models.shuffle import _numpy_orders, epoch_orders
from ibsweep.models.training import Trainer, predicted_class


@pytest.fixture(scope="module")
def tishby():
    return load_dataset("tishby")


def _records(trainer, n=None):
    out = []
    for rec in trainer.run():
        out.append(rec)
        if n is not None and len(out) == n:
            break
    return out


def test_records_carry_every_layer_of_the_measurement_set(tishby):
    tr = Trainer(ModelConfig(), TrainConfig(epochs=3), tishby, [0, 1])
    recs = _records(tr)
    assert [r.epoch for r in recs] == [0, 1, 2, 3]
    assert [layer.shape for layer in recs[-1].layers] == [(2, 4096, w) for w in (10, 7, 5, 4, 3, 2)]
    assert tr.measure_labels.shape == (2, 4096)
    assert np.isnan(recs[0].grad_snr).all()
    assert (recs[-1].grad_snr > 0).all() and np.isfinite(recs[-1].grad_snr).all()
    for r in recs:
        assert ((r.train_acc >= 0) & (r.train_acc <= 1)).all()


def test_unmeasured_epochs_carry_no_layers(tishby):
    tr = Trainer(ModelConfig(), TrainConfig(epochs=4), tishby, [0])
    recs = list(tr.run(measure=lambda e: e % 2 == 0))
    assert [r.layers is not None for r in recs] == [True, False, True, False, True]


def test_measure_on_test_set(tishby):
    tr = Trainer(ModelConfig(), TrainConfig(epochs=1), tishby, [0, 1], measure_on="test")
    rec = next(iter(tr.run()))
    assert rec.layers[0].shape == (2, 819, 10)
    assert not np.array_equal(tr.measure_idx[0], tr.measure_idx[1])
    with pytest.raises(ValueError, match="allowed: full, train, test"):
        Trainer(ModelConfig(), TrainConfig(epochs=1), tishby, [0], measure_on="val")


def test_same_seed_same_numbers(tishby):
    a = _records(
        Trainer(ModelConfig(kind="bnn", activation="ste"), TrainConfig(epochs=5), tishby, [3])
    )
    b = _records(
        Trainer(ModelConfig(kind="bnn", activation="ste"), TrainConfig(epochs=5), tishby, [3])
    )
    for ra, rb in zip(a, b, strict=True):
        assert np.array_equal(ra.loss, rb.loss)
        assert all(np.array_equal(x, y) for x, y in zip(ra.layers, rb.layers, strict=True))
    c = _records(
        Trainer(ModelConfig(kind="bnn", activation="ste"), TrainConfig(epochs=5), tishby, [4])
    )
    assert not np.array_equal(a[-1].loss, c[-1].loss)


# identity with BatchNorm is left out: its backward pass is linear, so the next layer's
# BatchNorm removes every hidden shift's gradient; what is left is rounding noise, which Adam
# turns into full steps, so packing (other rounding) changes those steps
EVERY_ACTIVATION = [ModelConfig(kind="dnn", activation=a) for a in DNN_ACTIVATIONS] + [
    ModelConfig(kind="bnn", activation=a, bnn_norm="scale" if a == "identity" else "batchnorm")
    for a in BNN_ACTIVATIONS
]


BNN_OPTIONS = [
    ModelConfig(kind="bnn", activation=a, bnn_norm=n, bnn_first=f, bnn_last=la)
    for a, n, f, la in itertools.product(
        ("ste", "swish_sign"), ("scale", "batchnorm"), PRECISIONS, PRECISIONS
    )
]


@pytest.mark.parametrize(
    "model",
    [*EVERY_ACTIVATION, *BNN_OPTIONS],
    ids=lambda m: f"{m.kind}-{m.activation}-{m.bnn_norm}-{m.bnn_first}-{m.bnn_last}",
)
def test_packed_seeds_equal_separate_runs(tishby, model):
    """Seeds trained in one stack give each seed's separate run: every number, every epoch."""
    train = TrainConfig(epochs=6, schedule="cosine", lr=3e-3)
    seeds = [0, 5, 7]
    trainer = Trainer(model, train, tishby, seeds)
    packed = _records(trainer)
    buffers = {k: v for k, v in trainer.net.state_dict().items() if k.startswith("bn_")}
    if buffers:  # BatchNorm statistics are each seed's own
        assert not torch.equal(buffers["bn_mean0"][0], buffers["bn_mean0"][1])
    for i, seed in enumerate(seeds):
        single = Trainer(model, train, tishby, [seed])
        alone = _records(single)
        for key, value in single.net.state_dict().items():
            if key.startswith("bn_"):
                torch.testing.assert_close(buffers[key][i], value[0], atol=1e-5, rtol=1e-5)
        assert [r.epoch for r in packed] == [r.epoch for r in alone]
        for rp, ra in zip(packed, alone, strict=True):
            np.testing.assert_allclose(rp.loss[i], ra.loss[0], atol=1e-5)
            np.testing.assert_allclose(rp.train_acc[i], ra.train_acc[0], atol=1e-5)
            np.testing.assert_allclose(rp.test_acc[i], ra.test_acc[0], atol=1e-5)
            np.testing.assert_allclose(rp.grad_snr[i], ra.grad_snr[0], rtol=1e-4, atol=1e-5)
            for layer_p, layer_a in zip(rp.layers, ra.layers, strict=True):
                np.testing.assert_allclose(layer_p[i], layer_a[0], atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 100, 1024, 1025, 3277, 70000])
def test_epoch_orders_are_numpys_permutations(n):
    """Each seed's order is rows[np.random.default_rng([seed, epoch]).permutation(n)]."""
    rng = np.random.default_rng(n)
    rows = np.stack([rng.permutation(4 * n)[:n] for _ in range(6)]).astype(np.int64)
    for epoch in (0, 1, 2, 1499):
        seeds = [int(s) for s in rng.integers(0, 2**31, size=6)]
        expected = [
            rows[i][np.random.default_rng([s, epoch]).permutation(n)] for i, s in enumerate(seeds)
        ]
        np.testing.assert_array_equal(epoch_orders(rows, seeds, epoch), np.stack(expected))


def test_epoch_orders_fall_back_to_numpy_when_words_run_out(monkeypatch):
    """Too few words drawn for the rejections: numpy's own permutation, the same order."""
    from ibsweep.models import shuffle

    n = 1000
    rows = np.stack([np.arange(n)] * 3)
    expected = _numpy_orders(rows, [3, 4, 5], 7, range(3))
    monkeypatch.setattr(shuffle, "_SPARE_WORDS", -n)  # n words for n - 1 positions
    np.testing.assert_array_equal(epoch_orders(rows, [3, 4, 5], 7), expected)


class _TorchOptimiser:
    """A ``torch.optim`` optimiser behind the trainer's optimiser interface (``lr``, ``step``)."""

    def __init__(self, optimiser: torch.optim.Optimizer) -> None:
        self.optimiser = optimiser

    @property
    def lr(self) -> float:
        return self.optimiser.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimiser.param_groups[0]["lr"] = value

    def step(self) -> None:
        self.optimiser.step()


@pytest.mark.parametrize("model", [ModelConfig(), ModelConfig(kind="bnn", activation="ste")])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_training_equals_training_with_torch_optims_fused_optimiser(tishby, model, optimizer):
    """The trainer's own optimiser (``models.flat_optimizer``) trains bit for bit as
    ``torch.optim``'s fused Adam or SGD would, over a decaying learning rate."""
    train = TrainConfig(epochs=3, optimizer=optimizer, lr=1e-2, schedule="cosine",
                        momentum=0.9 if optimizer == "sgd" else 0.0)  # fmt: skip
    results = []
    for reference in (False, True):
        trainer = Trainer(model, train, tishby, [0, 4])
        if reference:
            flat, lr = trainer.net.flat, train.lr
            trainer.optimizer = _TorchOptimiser(
                torch.optim.Adam([flat], lr, fused=True)
                if optimizer == "adam"
                else torch.optim.SGD([flat], lr, momentum=0.9, fused=True)
            )
        losses = [r.loss for r in _records(trainer)]
        results.append((trainer.net.flat.detach().clone(), losses))
    (ours, our_losses), (theirs, their_losses) = results
    assert torch.equal(ours, theirs)
    assert all(np.array_equal(a, b) for a, b in zip(our_losses, their_losses, strict=True))


@pytest.mark.parametrize("n_classes", [1, 2, 3, 10])
def test_predicted_class_is_argmax_with_first_class_on_ties(n_classes):
    logits = np.random.default_rng(n_classes).normal(size=(4, n_classes, 300)).astype(np.float32)
    logits[:, :, :25] = 0.5  # ties
    np.testing.assert_array_equal(predicted_class(logits), np.argmax(logits, axis=1))


@pytest.mark.parametrize("schedule", ["constant", "exponential", "cosine"])
def test_checkpoint_continues_exactly(tishby, schedule):
    model = ModelConfig(kind="bnn", activation="ste")
    train = TrainConfig(epochs=6, schedule=schedule, lr=3e-3, final_lr_factor=0.1)
    full = _records(Trainer(model, train, tishby, [1]))
    first = Trainer(model, train, tishby, [1])
    _records(first, n=4)  # epochs 0..3
    state = first.state_dict()
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(train.lr_at(3))
    second = Trainer(model, train, tishby, [1])
    second.load_state_dict(state)
    assert second.optimizer.lr == pytest.approx(train.lr_at(3))
    rest = _records(second)
    assert [r.epoch for r in rest] == [4, 5, 6]
    for r, f in zip(rest, full[4:], strict=True):
        assert np.array_equal(r.loss, f.loss)


def test_learning_rate_schedules_follow_their_formulas():
    lr, f, n = 3e-3, 0.01, 11
    constant = TrainConfig(lr=lr, epochs=n)
    exponential = TrainConfig(lr=lr, epochs=n, schedule="exponential", final_lr_factor=f)
    cosine = TrainConfig(lr=lr, epochs=n, schedule="cosine", final_lr_factor=f)
    assert [constant.lr_at(e) for e in (1, 6, 11)] == [lr] * 3
    for sched in (exponential, cosine):
        assert sched.lr_at(1) == pytest.approx(lr) and sched.lr_at(n) == pytest.approx(lr * f)
        rates = [sched.lr_at(e) for e in range(1, n + 1)]
        assert all(a > b for a, b in itertools.pairwise(rates))
    ratios = [exponential.lr_at(e + 1) / exponential.lr_at(e) for e in range(1, n)]
    np.testing.assert_allclose(ratios, f ** (1 / (n - 1)))  # a constant factor per epoch
    assert cosine.lr_at(6) == pytest.approx(lr * (1 + f) / 2)  # halfway: the mean
    assert cosine.lr_at(3) == pytest.approx(lr * (f + (1 - f) * (1 + math.cos(math.pi / 5)) / 2))
    assert TrainConfig(epochs=1, schedule="cosine").lr_at(1) == TrainConfig().lr


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_trainer_trains_each_epoch_at_its_scheduled_rate(tishby, optimizer):
    train = TrainConfig(epochs=5, lr=1e-2, schedule="exponential", final_lr_factor=0.1,
                        optimizer=optimizer)  # fmt: skip
    trainer = Trainer(ModelConfig(), train, tishby, [0])
    seen = []
    for rec in trainer.run(measure=lambda _e: False):
        if rec.epoch:
            seen.append(trainer.optimizer.lr)
    np.testing.assert_allclose(seen, [train.lr_at(e) for e in range(1, 6)])
    constant = Trainer(ModelConfig(), train.model_copy(update={"schedule": "constant"}),
                       tishby, [0])  # fmt: skip
    decayed = _records(Trainer(ModelConfig(), train, tishby, [0]))
    assert not np.array_equal(_records(constant)[-1].loss, decayed[-1].loss)


def test_divergence_ends_with_status_not_exception(tishby):
    model = ModelConfig(activation="linear", widths=(50, 50, 50))
    tr = Trainer(model, TrainConfig(epochs=50, optimizer="sgd", lr=1e6), tishby, [0])
    recs = list(tr.run())
    assert not recs[-1].active[0]
    assert recs[-1].epoch < 50
    assert "diverged at epoch" in tr.failure[0]
    assert "nan" in tr.failure[0] or "inf" in tr.failure[0]
