"""The stacked fully connected classifier: shapes, layers, initialisation, BNN specifics."""

import math

import pytest
import torch

from ibsweep.models.config import ModelConfig
from ibsweep.models.network import StackedMLP, UnitsPass

WIDTHS = (10, 7, 5, 4, 3)
NORMS = ("scale", "batchnorm")


def _net(kind="dnn", activation="tanh", seeds=(0,), **kw):
    cfg = ModelConfig(kind=kind, activation=activation, **kw)
    return StackedMLP(cfg, 12, 2, seeds, binary_inputs=True)


@pytest.mark.parametrize(
    "kind,activation",
    [("dnn", a) for a in ("tanh", "relu", "sigmoid", "hardtanh", "linear")]
    + [("bnn", a) for a in ("ste", "approx_sign", "swish_sign", "identity")],
)
def test_every_layer_in_one_pass(kind, activation):
    net = _net(kind, activation, seeds=(0, 1, 2))
    x = torch.randint(0, 2, (17, 12)).float()
    logits, layers = net(x, return_layers=True)
    assert logits.shape == (3, 17, 2)
    assert [t.shape for t in layers] == [(3, 17, w) for w in (*WIDTHS, 2)]
    torch.testing.assert_close(layers[-1], torch.softmax(logits, -1))
    torch.testing.assert_close(net(x), logits)
    if kind == "bnn":
        for t in layers[:-1]:
            assert set(t.unique().tolist()) <= {-1.0, 1.0}


def test_activation_ranges():
    x = torch.randint(0, 2, (64, 12)).float()
    for act, lo, hi in [("tanh", -1, 1), ("sigmoid", 0, 1), ("hardtanh", -1, 1), ("relu", 0, None)]:
        _, layers = _net("dnn", act)(x, return_layers=True)
        for t in layers[:-1]:
            assert t.min() >= lo
            if hi is not None:
                assert t.max() <= hi


def test_any_widths():
    cfg = ModelConfig(kind="dnn", activation="relu", widths=(64,))
    net = StackedMLP(cfg, 784, 10, [3])
    logits, layers = net(torch.rand(5, 784), return_layers=True)
    assert logits.shape == (1, 5, 10) and len(layers) == 2 and net.n_layers == 2


def test_initialisation_follows_literature():
    big = ModelConfig(kind="dnn", activation="tanh", widths=(2000,))
    w = StackedMLP(big, 400, 2, [0]).weights[0].detach()
    std = 1 / math.sqrt(400)
    assert w.abs().max() <= 2 * std + 1e-7  # truncated at two standard deviations
    # std of a normal truncated at +-2 sd is 0.8796 sd
    assert w.std().item() == pytest.approx(0.8796 * std, rel=0.02)
    relu = ModelConfig(kind="dnn", activation="relu", widths=(2000,))
    w = StackedMLP(relu, 400, 2, [0]).weights[0].detach()
    assert w.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.02)  # He
    for b in StackedMLP(big, 400, 2, [0]).biases:
        assert torch.count_nonzero(b) == 0


def test_seed_stack_equals_separate_nets():
    stacked = _net(seeds=(4, 9))
    alone = _net(seeds=(9,))
    torch.testing.assert_close(stacked.weights[2][1], alone.weights[2][0])
    assert not torch.equal(stacked.weights[0][0], stacked.weights[0][1])


BINARY_ENDS = {"bnn_first": "binary", "bnn_last": "binary"}


def test_bnn_binary_input_mapping_and_scaled_preactivation():
    net = _net("bnn", "ste", bnn_norm="scale", **BINARY_ENDS)
    x = torch.tensor([[0.0] * 12, [1.0] * 12])
    w = torch.where(net.weights[0][0] >= 0, 1.0, -1.0)
    pre = (2 * x - 1) @ w / math.sqrt(12) + net.biases[0][0]
    _, layers = net(x, return_layers=True)
    assert torch.equal(layers[0][0], torch.where(pre >= 0, 1.0, -1.0))


def test_bnn_binary_output_is_real_logits_with_learnable_scale():
    net = _net("bnn", "ste", bnn_last="binary")
    assert net.out_scale.requires_grad and net.out_scale.shape == (1, 1, 2)
    logits = net(torch.randint(0, 2, (50, 12)).float())
    assert logits.dtype == torch.float32
    assert logits.abs().min() > 0 and not torch.allclose(logits.abs(), torch.ones_like(logits))


def test_real_first_layer_has_real_weights_and_gradients():
    """Its output depends on the weights' magnitudes, its gradient reaches them, and clipping
    leaves it alone; a binary first layer only sees the weights' signs."""
    x = torch.rand(64, 12)
    for first, sees_magnitudes in (("real", True), ("binary", False)):
        net = _net("bnn", "ste", bnn_norm="scale", bnn_first=first)
        _, before = net(x, return_layers=True)
        with torch.no_grad():
            net.weights[0].mul_(1.5)  # same signs, other magnitudes
        _, after = net(x, return_layers=True)
        assert (not torch.equal(before[0], after[0])) == sees_magnitudes, first
        assert set(after[0].unique().tolist()) <= {-1.0, 1.0}  # still a binary layer
        with torch.no_grad():
            net.weights[0][0, 0, 0] = 3.0
        net.clip_latent_()
        assert (net.weights[0][0, 0, 0].item() == 3.0) == (first == "real")
        assert net.weights[1].abs().max() <= 1.0  # the hidden layers stay binary
        logits = net(x)
        (grad,) = torch.autograd.grad(logits.square().sum(), [net.weights[0]])
        assert torch.count_nonzero(grad) > 0


def test_real_last_layer_is_an_affine_map_of_the_last_binary_layer():
    net = _net("bnn", "ste")
    assert not hasattr(net, "out_scale")
    x = torch.randint(0, 2, (30, 12)).float()
    logits, layers = net(x, return_layers=True)
    expected = layers[-2] @ net.weights[-1] + net.biases[-1]
    torch.testing.assert_close(logits, expected)
    binary = _net("bnn", "ste", bnn_last="binary")
    assert binary.n_weight_values == net.n_weight_values
    assert binary.flat.numel() == net.flat.numel() + 2  # the per-output logit scale


def test_layer_types_name_every_hidden_layer_binary_whatever_the_weights():
    for first in PRECISIONS:
        for last in PRECISIONS:
            cfg = ModelConfig(kind="bnn", activation="ste", bnn_first=first, bnn_last=last)
            assert cfg.layer_types() == ("binary",) * 5 + ("binary_logits",)
            assert cfg.binary_weights() == (
                first == "binary",
                True,
                True,
                True,
                True,
                last == "binary",
            )
    assert ModelConfig().binary_weights() == (False,) * 6


def _hidden_preactivations(net, x):
    """Every hidden pre-activation of the first training step's forward pass, flattened."""
    net.train()
    kept = UnitsPass()
    net.forward_units(net.model_inputs(x).t().contiguous(), kept)
    return torch.cat([p.flatten() for p in kept.pre])


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("dataset", ["tishby", "digits"])
def test_swish_sign_preactivations_sit_where_its_gradient_is_positive(dataset, norm, monkeypatch):
    """At initialisation, under 5% of hidden pre-activations get a negative surrogate gradient
    (SwishSign's turns negative beyond 2.40/beta); at unit scale it would be most of them."""
    from ibsweep.models import network, surrogates
    from ibsweep.models.datasets import load_dataset

    data = load_dataset(dataset)
    x = torch.as_tensor(data.x[:1024])
    seeds = tuple(range(5))

    def negative_share():
        cfg = ModelConfig(kind="bnn", activation="swish_sign", widths=(10, 7, 5, 4, 3),
                          bnn_norm=norm)  # fmt: skip
        net = StackedMLP(cfg, data.n_features, data.n_classes, seeds, data.binary_inputs)
        pre = _hidden_preactivations(net, x)
        return (surrogates.swish_sign_grad(pre, cfg.beta) < 0).float().mean().item()

    assert negative_share() < 0.05
    monkeypatch.setattr(network, "preactivation_scale", lambda surrogate, beta: 1.0)
    assert negative_share() > 0.3


@pytest.mark.parametrize("norm", NORMS)
def test_few_preactivations_are_exactly_zero_at_initialisation(norm, monkeypatch):
    """Binary weights on +-1 inputs of even fan-in sum to exactly 0 often; the small random
    bias breaks those ties (with zero biases and a fixed scale, a sixth of them would be 0)."""
    from ibsweep.models import network

    x = torch.as_tensor(
        ((torch.arange(4096)[:, None] >> torch.arange(11, -1, -1)) & 1).float()
    )  # every 12-bit pattern
    cfg = {"bnn_norm": norm, **BINARY_ENDS}
    pre = _hidden_preactivations(_net("bnn", "ste", seeds=(0, 1, 2), **cfg), x)
    assert (pre == 0).float().mean().item() < 0.01
    if norm == "scale":
        monkeypatch.setattr(network, "_BNN_BIAS_SPREAD", 0.0)
        pre = _hidden_preactivations(_net("bnn", "ste", seeds=(0, 1, 2), **cfg), x)
        assert (pre == 0).float().mean().item() > 0.15


def test_bnn_biases_are_random_per_seed_and_unit_and_dnn_biases_zero():
    net = _net("bnn", "ste", seeds=(0, 1))
    hidden = torch.cat([b.detach().flatten(1) for b in net.biases[:-1]], dim=1)
    assert torch.count_nonzero(hidden) == hidden.numel()
    assert not torch.equal(hidden[0], hidden[1])
    assert hidden.std().item() == pytest.approx(0.1, rel=0.3)
    assert torch.count_nonzero(net.biases[-1]) == 0
    alone = _net("bnn", "ste", seeds=(1,))
    torch.testing.assert_close(alone.biases[0][0], net.biases[0][1])
    assert all(torch.count_nonzero(b) == 0 for b in _net("dnn", "tanh").biases)


def test_batchnorm_running_statistics_start_at_the_data_statistics():
    net = _net("bnn", "ste", seeds=(0, 1))
    x = torch.randint(0, 2, (500, 12)).float()
    h = net.model_inputs(x).t().contiguous()
    net.eval()
    net.init_batchnorm_(h)
    assert not net.training
    pre = torch.bmm(net.weights[0].detach().transpose(1, 2), h.expand(2, -1, -1))
    torch.testing.assert_close(net.bn_mean0.squeeze(1), pre.mean(dim=2))
    torch.testing.assert_close(net.bn_var0.squeeze(1), pre.var(dim=2, unbiased=False))
    assert not torch.equal(net.bn_mean0[0], net.bn_mean0[1])  # each seed its own
    assert net.bn_momentum == 0.1


def test_bnn_batchnorm_option_trains_and_uses_running_stats():
    net = _net("bnn", "ste", bnn_norm="batchnorm")
    x = torch.randint(0, 2, (256, 12)).float()
    net.train()
    net(x)
    assert not torch.equal(net.bn_mean0, torch.zeros_like(net.bn_mean0))
    net.eval()
    a = net(x[:5])
    b = net(x[:5])
    torch.testing.assert_close(a, b)


def test_latent_weight_clipping():
    net = _net("bnn", "ste", **BINARY_ENDS)
    with torch.no_grad():
        net.weights[0].mul_(10)
    net.clip_latent_()
    assert net.weights[0].abs().max() == 1.0


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"does not fit kind 'dnn'.*allowed for dnn: tanh"):
        ModelConfig(kind="dnn", activation="ste")
    with pytest.raises(ValueError, match="at least one hidden layer"):
        ModelConfig(widths=())
    with pytest.raises(ValueError, match="positive integer"):
        ModelConfig(widths=(3, 0))


# the hand-written units-first training path against the autograd reference

PRECISIONS = ("binary", "real")
BNN_OPTIONS = [
    {"bnn_norm": n, "bnn_first": f, "bnn_last": la}
    for n in NORMS
    for f in PRECISIONS
    for la in PRECISIONS
]
ALL_KINDS = [
    *[("dnn", a, {}) for a in ("tanh", "relu", "sigmoid", "hardtanh", "linear")],
    *[("bnn", a, o) for a in ("ste", "approx_sign", "swish_sign", "identity") for o in BNN_OPTIONS],
]


def _flat_reference_grad(net, loss):
    """Autograd's gradient of ``loss``, laid out like ``net.flat``."""
    named = dict(net.named_parameters())
    grads = dict(zip(named, torch.autograd.grad(loss, list(named.values())), strict=True))
    order = [f"weights.{i}" for i in range(len(net.weights))]
    order += [f"biases.{i}" for i in range(len(net.biases))]
    order += ["out_scale"] if "out_scale" in named else []
    order += sorted(n for n in named if n.startswith("bn_gamma"))
    return torch.cat([grads[n].flatten() for n in order])


@pytest.mark.parametrize("kind,activation,options", ALL_KINDS, ids=str)
def test_units_path_gives_the_autograd_outputs_and_gradient(kind, activation, options):
    net = _net(kind, activation, seeds=(0, 1, 2), **options)
    with torch.no_grad():  # biases away from zero, so that no pre-activation sits on 0
        for b in net.biases:
            b.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2, (3, 64, 12), generator=gen).float()
    y = torch.randint(0, 2, (3, 64), generator=gen)
    bn_before = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("bn_")}
    net.train()
    logits, layers = net(x, return_layers=True)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
    reference = _flat_reference_grad(net, loss.view(3, 64).mean(dim=1).sum())
    net.load_state_dict({**net.state_dict(), **bn_before})
    kept = UnitsPass()
    fast = net.forward_units(net.model_inputs(x).transpose(1, 2), kept)
    torch.testing.assert_close(fast.transpose(1, 2), logits.detach(), atol=1e-5, rtol=1e-5)
    for mine, ref in zip(kept.outputs[:-1], layers[:-1], strict=True):
        torch.testing.assert_close(mine.transpose(1, 2), ref.detach(), atol=1e-5, rtol=1e-5)
    # d(sum over seeds of the batch-mean cross-entropy) / d logits = (softmax - onehot) / B
    onehot = torch.nn.functional.one_hot(y, 2).transpose(1, 2).float()
    grad_logits = (torch.softmax(fast, dim=1) - onehot) / 64
    grad = torch.zeros_like(net.flat)
    net.backward_units(kept, grad_logits, net.views_of(grad))
    # float32 sums: an entry that cancels to ~0 keeps an error relative to the largest entries
    scale = max(1.0, reference.abs().max().item())
    torch.testing.assert_close(grad, reference, atol=1e-6 * scale, rtol=1e-4)


@pytest.mark.parametrize("kind,activation,options", ALL_KINDS[:1] + ALL_KINDS[-8:], ids=str)
def test_units_path_in_eval_mode_writes_each_layer_where_asked(kind, activation, options):
    net = _net(kind, activation, seeds=(0, 1), **options)
    x = torch.randint(0, 2, (40, 12)).float()
    net.train()
    net(x[None].expand(2, -1, -1))  # BatchNorm: running statistics away from their start
    net.eval()
    with torch.no_grad():
        logits, layers = net(x, return_layers=True)
    out = [torch.full((2, w, 40), torch.nan) for w in WIDTHS]
    fast = net.forward_units(net.model_inputs(x).t().contiguous(), out=out)
    torch.testing.assert_close(fast.transpose(1, 2), logits, atol=1e-5, rtol=1e-5)
    for mine, ref in zip(out, layers[:-1], strict=True):
        torch.testing.assert_close(mine.transpose(1, 2), ref, atol=1e-5, rtol=1e-5)


def test_parameters_are_views_of_one_flat_tensor():
    net = _net("bnn", "ste", seeds=(0, 1), bnn_norm="batchnorm", **BINARY_ENDS)
    n_params = sum(p.numel() for p in net.parameters())
    assert net.flat.numel() == n_params
    with torch.no_grad():
        net.flat.zero_()
    assert all(torch.count_nonzero(p) == 0 for p in net.parameters())
    views = net.views_of(torch.arange(float(n_params)))
    assert [v.shape for v in views.weights] == [w.shape for w in net.weights]
    assert views.out_scale.shape == net.out_scale.shape
    assert len(views.bn_gamma) == len(WIDTHS)
    with torch.no_grad():
        net.flat.fill_(5.0)
    net.clip_latent_()  # clips the latent weights only
    assert all(w.max() == 1.0 for w in net.weights)
    assert all(b.min() == 5.0 for b in net.biases)


def test_identity_with_batchnorm_gives_hidden_shifts_no_gradient():
    """Why the packing test leaves identity + BatchNorm out: a linear backward pass into the
    next layer's BatchNorm cancels the gradient of every shift before it (up to rounding)."""
    net = _net("bnn", "identity", seeds=(0,), bnn_norm="batchnorm")
    draw = torch.Generator().manual_seed(0)  # the global generator's state depends on test order
    x = torch.randint(0, 2, (64, 12), generator=draw).float()
    y = torch.randint(0, 2, (64,), generator=draw)
    net.train()
    loss = torch.nn.functional.cross_entropy(net(x)[0], y)
    grads = torch.autograd.grad(loss, list(net.biases))
    assert all(g.abs().max() < 1e-6 for g in grads[:-2])  # shifts followed by a BatchNorm
    assert grads[-2].abs().max() > 1e-3  # the last hidden layer feeds the real logits (0.068)
