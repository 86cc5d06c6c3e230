"""Fully connected DNN/BNN classifiers, stacked on a seed axis (one independent net per seed).

Two ways through the same network. ``forward`` works with autograd on (S, B, features) tensors:
the reference. ``forward_units`` and ``backward_units`` are the training path: tensors are laid
out units first, (S, features, B), so that every matmul runs along the long sample axis, and the
gradient is written by hand into one flat buffer without building an autograd graph. For the
small networks of the Information-Bottleneck literature this cuts the cost of a step several
times (framework overhead and tiny-matrix matmuls dominate otherwise); a test checks that both
ways give the same outputs and gradients.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ibsweep.models.config import ModelConfig
from ibsweep.models.surrogates import (
    SURROGATE_GRADS,
    binarize_weights,
    binary_sign,
    preactivation_scale,
    sign_activation,
)

_DNN_ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "hardtanh": nn.functional.hardtanh,
    "linear": lambda x: x,
}
_BN_MOMENTUM = 0.1
_BN_EPS = 1e-5
_BNN_BIAS_SPREAD = 0.1  # std of a BNN's hidden biases at init, in units of the pre-activation scale
_aten = torch.ops.aten


def _tanh_(z: torch.Tensor) -> None:
    # numpy's tanh is several times faster than torch's on CPU; z is a plain CPU tensor here
    a = z.numpy()
    np.tanh(a, out=a)


# In-place activations of the training path, and their backward given the activation's output
# (the functions autograd itself uses for these activations).
_ACTIVATE_ = {
    "tanh": _tanh_,
    "relu": torch.relu_,
    "sigmoid": torch.sigmoid_,
    "hardtanh": lambda z: z.clamp_(-1.0, 1.0),
    "linear": lambda z: None,
}
_ACTIVATION_BACKWARD = {
    "tanh": lambda g, y: _aten.tanh_backward(g, y),
    "relu": lambda g, y: _aten.threshold_backward(g, y, 0),
    "sigmoid": lambda g, y: _aten.sigmoid_backward(g, y),
    # y = clamp(z, -1, 1) lies strictly inside (-1, 1) exactly where z does
    "hardtanh": lambda g, y: _aten.hardtanh_backward(g, y, -1.0, 1.0),
    "linear": lambda g, y: g,
}


def _init_weight(shape: tuple[int, int], rule: str, gen: torch.Generator) -> torch.Tensor:
    """Literature initialisation: truncated normal std 1/sqrt(fan_in), or He for ReLU."""
    fan_in = shape[0]
    w = torch.empty(shape)
    if rule == "he":
        return nn.init.normal_(w, 0.0, math.sqrt(2.0 / fan_in), generator=gen)
    std = 1.0 / math.sqrt(fan_in)
    return nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std, generator=gen)


@dataclass
class ParamViews:
    """Views of one flat tensor shaped like the network's parameters (or their gradients)."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    out_scale: torch.Tensor | None = None
    bn_gamma: list[torch.Tensor] = field(default_factory=list)


@dataclass
class UnitsPass:
    """What the training forward pass keeps for the backward, units first: (S, features, B).

    ``inputs[l]`` is layer l's input, ``outputs[l]`` its output (activations; the logits last),
    ``pre[l]`` a BNN layer's pre-activation (the surrogate gradient needs it), ``bn[l]`` the
    normalised values and 1/std of a BatchNorm layer, ``logit_core`` the unscaled logits of a
    BNN's binary output layer and ``weights`` a BNN's effective weights (sign(W) of its binary
    layers, W of its real ones).
    """

    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    pre: list[torch.Tensor] = field(default_factory=list)
    bn: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    logit_core: torch.Tensor | None = None
    weights: list[torch.Tensor] = field(default_factory=list)


class StackedMLP(nn.Module):
    """S independent copies of one classifier, one per seed, trained by batched matmuls.

    Weights have shape (S, fan_in, fan_out); seed s is initialised from its own generator, so
    a stack's seed s equals a stack of that seed alone. ``forward`` returns logits (S, B, C)
    and, on request, every layer's representation: each hidden layer's activations and the
    output layer's softmax probabilities. All parameters are views of one flat tensor ``flat``,
    so that one optimiser step over ``flat`` updates every parameter of every seed.
    """

    def __init__(
        self,
        config: ModelConfig,
        n_inputs: int,
        n_classes: int,
        seeds: Sequence[int],
        binary_inputs: bool = False,
    ) -> None:
        super().__init__()
        if not seeds:
            raise ValueError("seeds must hold at least one seed")
        self.config = config
        self.seeds = tuple(int(s) for s in seeds)
        self.binary_inputs = binary_inputs
        self.dims = (n_inputs, *config.widths, n_classes)
        rule = "he" if config.kind == "dnn" and config.activation == "relu" else "trunc_normal"
        per_seed, per_seed_bias_gens = [], []
        for seed in self.seeds:
            gen = torch.Generator().manual_seed(seed)
            layers = []
            for i, (fan_in, fan_out) in enumerate(zip(self.dims[:-1], self.dims[1:], strict=True)):
                is_out = i == len(self.dims) - 2
                layers.append(
                    _init_weight((fan_in, fan_out), "trunc_normal" if is_out else rule, gen)
                )
            per_seed.append(layers)
            per_seed_bias_gens.append(gen)  # BNN biases are drawn after every weight
        n_seeds = len(self.seeds)
        shapes = self._param_shapes(n_seeds)
        self.flat = torch.empty(sum(math.prod(s) for group in shapes.values() for s in group))
        views = self.views_of(self.flat)
        for i, w in enumerate(views.weights):
            w.copy_(torch.stack([layers[i] for layers in per_seed]))
        for b in views.biases:
            b.zero_()
        self.weights = nn.ParameterList(nn.Parameter(w) for w in views.weights)
        self.biases = nn.ParameterList(nn.Parameter(b) for b in views.biases)
        # plain lists: indexing a ParameterList costs more than a small layer's matmul
        self._w = list(self.weights)
        self._b = list(self.biases)
        self.n_weight_values = sum(w.numel() for w in views.weights)
        self.bn_momentum = _BN_MOMENTUM
        self.binary = config.binary_weights()
        sizes = [w.numel() for w in views.weights]
        binary_layers = [i for i, b in enumerate(self.binary) if b]  # consecutive layers
        start = sum(sizes[: binary_layers[0]]) if binary_layers else 0
        self._binary_span = (start, start + sum(sizes[i] for i in binary_layers))
        if config.kind == "bnn":
            self.preact_scale = preactivation_scale(config.activation, config.beta)
            self._init_bnn(views, per_seed_bias_gens)
            if config.bnn_norm == "batchnorm":
                self.bn_gamma = nn.ParameterList(nn.Parameter(g) for g in views.bn_gamma)
                for i, w in enumerate(config.widths):
                    self.register_buffer(f"bn_mean{i}", torch.zeros(n_seeds, 1, w))
                    self.register_buffer(f"bn_var{i}", torch.ones(n_seeds, 1, w))

    def _init_bnn(self, views: ParamViews, gens: list[torch.Generator]) -> None:
        """Hidden biases drawn small and random, BatchNorm scales and the logit scale set.

        With binary weights and inputs, a pre-activation is a sum of +-1 terms: with even
        fan-in a quarter or more of them are exactly 0 at initialisation, where sign() gives
        +1 and the first step would flip them all together. A bias of spread 0.1 times the
        pre-activations' scale breaks those ties, each unit its own way, while moving
        hardly any other pre-activation across zero.
        """
        c = self.preact_scale
        for i, b in enumerate(views.biases[:-1]):
            draws = [torch.randn(b.shape[1:], generator=g) for g in gens]
            b.copy_(torch.stack(draws).mul_(_BNN_BIAS_SPREAD * c))
            if views.bn_gamma:
                views.bn_gamma[i].fill_(c)
        if views.out_scale is not None:
            views.out_scale.fill_(1.0 / math.sqrt(self.dims[-2]))
            self.out_scale = nn.Parameter(views.out_scale)

    def _param_shapes(self, n_seeds: int) -> dict[str, list[tuple[int, ...]]]:
        dims, cfg = self.dims, self.config
        shapes = {
            "weights": [(n_seeds, i, o) for i, o in itertools.pairwise(dims)],
            "biases": [(n_seeds, 1, d) for d in dims[1:]],
        }
        if cfg.kind == "bnn":
            if cfg.bnn_last == "binary":
                shapes["out_scale"] = [(n_seeds, 1, dims[-1])]
            if cfg.bnn_norm == "batchnorm":
                shapes["bn_gamma"] = [(n_seeds, 1, w) for w in cfg.widths]
        return shapes

    def views_of(self, flat: torch.Tensor) -> ParamViews:
        """Views of a tensor laid out like ``flat`` (e.g. its gradient), shaped per parameter."""
        views: dict[str, list[torch.Tensor]] = {}
        offset = 0
        for name, group in self._param_shapes(self.n_seeds).items():
            views[name] = []
            for shape in group:
                size = math.prod(shape)
                views[name].append(flat[offset : offset + size].view(shape))
                offset += size
        return ParamViews(
            views["weights"],
            views["biases"],
            views["out_scale"][0] if "out_scale" in views else None,
            views.get("bn_gamma", []),
        )

    def _effective_weights(self) -> list[torch.Tensor]:
        """The weights each layer multiplies by: sign(W) of a binary layer (from one pass over
        the flat binary weights), W of a real one."""
        start, stop = self._binary_span
        signs = binary_sign(self.flat[start:stop])
        out, offset = [], 0
        for w, binary in zip(self._w, self.binary, strict=True):
            if binary:
                out.append(signs[offset : offset + w.numel()].view(w.shape))
                offset += w.numel()
            else:
                out.append(w)
        return out

    def _hidden_scale(self, i: int) -> float:
        """The fixed factor of hidden layer i's pre-activation in scale mode (no BatchNorm):
        1/sqrt(fan_in) on binary weights (a sum of +-1 terms), 1 on real ones (initialised
        with std 1/sqrt(fan_in)), times the surrogate's scale."""
        fan = 1.0 / math.sqrt(self.dims[i]) if self.binary[i] else 1.0
        return fan * self.preact_scale

    @property
    def n_seeds(self) -> int:
        """Number of stacked seeds."""
        return len(self.seeds)

    @property
    def n_layers(self) -> int:
        """Number of measured layers (hidden layers plus the output layer)."""
        return len(self.dims) - 1

    def forward(
        self, x: torch.Tensor, return_layers: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (S, B, C) for inputs (B, d) shared by all seeds or (S, B, d) per seed."""
        if self.config.kind == "bnn":
            logits, layers = self._forward_bnn(x, return_layers)
        else:
            logits, layers = self._forward_dnn(x, return_layers)
        if not return_layers:
            return logits
        layers.append(torch.softmax(logits, dim=-1))
        return logits, layers

    def _forward_dnn(self, x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        act = _DNN_ACTIVATIONS[self.config.activation]
        layers: list[torch.Tensor] = []
        h = x
        for w, b in zip(self._w[:-1], self._b[:-1], strict=True):
            h = act(torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b)
            if keep:
                layers.append(h)
        w, b = self._w[-1], self._b[-1]
        return (torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b), layers

    def _forward_bnn(self, x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        cfg = self.config
        layers: list[torch.Tensor] = []
        h = 2 * x - 1 if self.binary_inputs else x
        for i, (w, b) in enumerate(zip(self._w[:-1], self._b[:-1], strict=True)):
            pre = torch.matmul(h, binarize_weights(w) if self.binary[i] else w)
            if cfg.bnn_norm == "batchnorm":
                pre = self._batchnorm(pre, i) * self.bn_gamma[i] + b
            else:
                pre = pre * self._hidden_scale(i) + b
            h = sign_activation(pre, cfg.activation, cfg.beta)
            if keep:
                layers.append(h)
        if not self.binary[-1]:
            return torch.matmul(h, self._w[-1]) + self._b[-1], layers
        logits = torch.matmul(h, binarize_weights(self._w[-1])) * self.out_scale
        return logits + self._b[-1], layers

    def _batchnorm(self, pre: torch.Tensor, i: int) -> torch.Tensor:
        mean_buf = getattr(self, f"bn_mean{i}")
        var_buf = getattr(self, f"bn_var{i}")
        if self.training:
            mean = pre.mean(dim=-2, keepdim=True)
            var = pre.var(dim=-2, unbiased=False, keepdim=True)
            with torch.no_grad():
                mean_buf.lerp_(mean.expand_as(mean_buf), self.bn_momentum)
                var_buf.lerp_(var.expand_as(var_buf), self.bn_momentum)
        else:
            mean, var = mean_buf, var_buf
        return (pre - mean) * torch.rsqrt(var + _BN_EPS)

    @torch.no_grad()
    def init_batchnorm_(self, h: torch.Tensor) -> None:
        """Set every BatchNorm layer's running statistics to those of model inputs h (d, n).

        Otherwise they start at mean 0 and variance 1, and the untrained network measured at
        epoch 0 (in eval mode) would differ from the one the first step trains by its
        normalisation alone; I(X;T) would jump between epochs 0 and 1 for that reason only.
        """
        if self.config.kind != "bnn" or self.config.bnn_norm != "batchnorm":
            return
        training, self.bn_momentum = self.training, 1.0
        self.train()
        try:
            self.forward_units(h)
        finally:
            self.bn_momentum = _BN_MOMENTUM
            self.train(training)

    @torch.no_grad()
    def clip_latent_(self) -> None:
        """Clip the latent weights of binary layers to [-1, 1] (after every optimiser step)."""
        start, stop = self._binary_span
        if stop > start:
            self.flat[start:stop].clamp_(-1.0, 1.0)

    def model_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's input for raw inputs x (a BNN maps binary inputs to +-1)."""
        return 2 * x - 1 if self.config.kind == "bnn" and self.binary_inputs else x

    @torch.no_grad()
    def forward_units(
        self,
        h: torch.Tensor,
        keep: UnitsPass | None = None,
        out: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits (S, C, B) for model inputs (d, B) shared by all seeds or (S, d, B), no autograd.

        Inputs come from ``model_inputs``. In training mode ``keep`` collects what
        ``backward_units`` needs. ``out``, if given, holds one (S, width, B) tensor per hidden
        layer that receives its activations (without ``keep``: values are overwritten in place).
        """
        cfg, n_hidden = self.config, len(self.dims) - 2
        bnn = cfg.kind == "bnn"
        wb = self._effective_weights() if bnn else []
        if keep is not None:
            keep.weights = wb
        for i in range(n_hidden):
            dest = out[i] if out is not None else None
            if keep is not None:
                keep.inputs.append(h)
            if not bnn:
                h = self._affine_units(self._w[i], self._b[i], h, dest)
                _ACTIVATE_[cfg.activation](h)
            else:
                z = self._matmul_units(wb[i], h, dest)
                if cfg.bnn_norm == "batchnorm":
                    z = self._batchnorm_units(z, i, keep)
                else:
                    scale = self._hidden_scale(i)
                    z = torch.add(self._b[i].transpose(1, 2), z, alpha=scale, out=z)
                if keep is not None:
                    keep.pre.append(z)
                    h = binary_sign(z)
                else:  # only the sign is needed: written over z, or into dest
                    h = torch.sign(z, out=z if dest is None else dest).add_(0.5).sign_()
            if keep is not None:
                keep.outputs.append(h)
        if keep is not None:
            keep.inputs.append(h)
        if not bnn or not self.binary[-1]:
            logits = self._affine_units(self._w[-1], self._b[-1], h)
        else:
            core = self._matmul_units(wb[-1], h)
            logits = torch.addcmul(
                self._b[-1].transpose(1, 2), core, self.out_scale.transpose(1, 2)
            )
            if keep is not None:
                keep.logit_core = core
        if keep is not None:
            keep.outputs.append(logits)
        return logits

    @staticmethod
    def _matmul_units(
        w: torch.Tensor, h: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        s, fan_in, fan_out = w.shape
        if h.dim() == 2:  # shared inputs: one matmul for all seeds
            flat_out = out.view(s * fan_out, -1) if out is not None else None
            wt = w.transpose(1, 2).reshape(s * fan_out, fan_in)
            return torch.mm(wt, h, out=flat_out).view(s, fan_out, -1)
        return torch.bmm(w.transpose(1, 2), h, out=out)

    @staticmethod
    def _affine_units(
        w: torch.Tensor, b: torch.Tensor, h: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        if h.dim() == 2:  # addmm's broadcast of the bias is slow: add it afterwards
            return StackedMLP._matmul_units(w, h, out).add_(b.transpose(1, 2))
        return torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), h, out=out)

    def _batchnorm_units(self, z: torch.Tensor, i: int, keep: UnitsPass | None) -> torch.Tensor:
        mean_buf = getattr(self, f"bn_mean{i}").transpose(1, 2)
        var_buf = getattr(self, f"bn_var{i}").transpose(1, 2)
        if self.training:  # two passes: several times faster than var_mean along this axis
            mean = z.mean(dim=2, keepdim=True)
            centred = z - mean
            var = centred.square().mean(dim=2, keepdim=True)
            mean_buf.lerp_(mean, self.bn_momentum)
            var_buf.lerp_(var, self.bn_momentum)
        else:
            mean, var = mean_buf, var_buf
            centred = z - mean
        inv_std = torch.rsqrt(var + _BN_EPS)
        zhat = centred.mul_(inv_std)
        if keep is not None:
            keep.bn.append((zhat, inv_std))
        gamma = self.bn_gamma[i].transpose(1, 2)
        return torch.addcmul(self._b[i].transpose(1, 2), zhat, gamma)

    @torch.no_grad()
    def backward_units(self, kept: UnitsPass, grad_logits: torch.Tensor, grad: ParamViews) -> None:
        """Write the gradient of the loss into ``grad`` (views of a flat buffer, all overwritten).

        ``grad_logits`` (S, C, B) is d loss / d logits; ``kept`` comes from ``forward_units``.
        """
        cfg, n_hidden = self.config, len(self.dims) - 2
        bnn = cfg.kind == "bnn"
        g = grad_logits
        _sum_units(g, grad.biases[-1])
        if bnn and self.binary[-1]:
            _sum_units(g * kept.logit_core, grad.out_scale)
            g = g * self.out_scale.transpose(1, 2)
        for i in range(n_hidden, -1, -1):
            w = kept.weights[i] if bnn else self._w[i]
            h_in = kept.inputs[i]
            if i < n_hidden:  # g is d loss / d pre-activation of hidden layer i
                if not bnn:
                    _sum_units(g, grad.biases[i])
                elif cfg.bnn_norm == "batchnorm":
                    zhat, inv_std = kept.bn[i]
                    _sum_units(g, grad.biases[i])
                    _sum_units(g * zhat, grad.bn_gamma[i])
                    g = g * self.bn_gamma[i].transpose(1, 2)
                    g = (
                        g - g.mean(2, keepdim=True) - zhat * (g * zhat).mean(2, keepdim=True)
                    ).mul_(inv_std)
                else:
                    _sum_units(g, grad.biases[i])
                    g = g * self._hidden_scale(i)
            torch.bmm(h_in, g.transpose(1, 2), out=grad.weights[i])
            if i == 0:
                break
            dh = torch.bmm(w, g)
            if bnn:
                g = dh.mul_(SURROGATE_GRADS[cfg.activation](kept.pre[i - 1], cfg.beta))
            else:
                g = _ACTIVATION_BACKWARD[cfg.activation](dh, kept.outputs[i - 1])


def _sum_units(g: torch.Tensor, out: torch.Tensor) -> None:
    """Sum (S, n, B) over the sample axis into a parameter-shaped (S, 1, n) gradient."""
    torch.sum(g, dim=2, out=out.view(out.shape[0], -1))
