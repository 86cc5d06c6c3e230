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


def test_bnn_binary_input_mapping_and_scaled_preactivation():
    net = _net("bnn", "ste")
    x = torch.tensor([[0.0] * 12, [1.0] * 12])
    w = torch.where(net.weights[0][0] >= 0, 1.0, -1.0)
    pre = (2 * x - 1) @ w / math.sqrt(12) + net.biases[0][0]
    _, layers = net(x, return_layers=True)
    assert torch.equal(layers[0][0], torch.where(pre >= 0, 1.0, -1.0))


def test_bnn_output_is_real_logits_with_learnable_scale():
    net = _net("bnn", "ste")
    assert net.out_scale.requires_grad and net.out_scale.shape == (1, 1, 2)
    logits = net(torch.randint(0, 2, (50, 12)).float())
    assert logits.dtype == torch.float32
    assert logits.abs().min() > 0 and not torch.allclose(logits.abs(), torch.ones_like(logits))


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
    net = _net("bnn", "ste")
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

ALL_KINDS = [
    *[("dnn", a, "scale") for a in ("tanh", "relu", "sigmoid", "hardtanh", "linear")],
    *[("bnn", a, n) for a in ("ste", "approx_sign", "swish_sign", "identity") for n in NORMS],
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


@pytest.mark.parametrize("kind,activation,norm", ALL_KINDS)
def test_units_path_gives_the_autograd_outputs_and_gradient(kind, activation, norm):
    net = _net(kind, activation, seeds=(0, 1, 2), bnn_norm=norm)
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
    torch.testing.assert_close(grad, reference, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("kind,activation,norm", ALL_KINDS[:1] + ALL_KINDS[-4:])
def test_units_path_in_eval_mode_writes_each_layer_where_asked(kind, activation, norm):
    net = _net(kind, activation, seeds=(0, 1), bnn_norm=norm)
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
    net = _net("bnn", "ste", seeds=(0, 1), bnn_norm="batchnorm")
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
