"""Fully connected DNN/BNN classifiers, stacked on a seed axis (one independent net per seed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from models.config import ModelConfig
from models.surrogates import binarize_weights, sign_activation

_DNN_ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "hardtanh": nn.functional.hardtanh,
    "linear": lambda x: x,
}
_BN_MOMENTUM = 0.1
_BN_EPS = 1e-5


def _init_weight(shape: tuple[int, int], rule: str, gen: torch.Generator) -> torch.Tensor:
    """Literature initialisation: truncated normal std 1/sqrt(fan_in), or He for ReLU."""
    fan_in = shape[0]
    w = torch.empty(shape)
    if rule == "he":
        return nn.init.normal_(w, 0.0, math.sqrt(2.0 / fan_in), generator=gen)
    std = 1.0 / math.sqrt(fan_in)
    return nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std, generator=gen)


class StackedMLP(nn.Module):
    """S independent copies of one classifier, one per seed, trained by batched matmuls.

    Weights have shape (S, fan_in, fan_out); seed s is initialised from its own generator, so
    a stack's seed s equals a stack of that seed alone. ``forward`` returns logits (S, B, C)
    and, on request, every layer's representation: each hidden layer's activations and the
    output layer's softmax probabilities.
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
        per_seed = []
        for seed in self.seeds:
            gen = torch.Generator().manual_seed(seed)
            layers = []
            for i, (fan_in, fan_out) in enumerate(zip(self.dims[:-1], self.dims[1:], strict=True)):
                is_out = i == len(self.dims) - 2
                layers.append(
                    _init_weight((fan_in, fan_out), "trunc_normal" if is_out else rule, gen)
                )
            per_seed.append(layers)
        n_seeds = len(self.seeds)
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([layers[i] for layers in per_seed]))
            for i in range(len(self.dims) - 1)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(n_seeds, 1, d)) for d in self.dims[1:]
        )
        # plain lists: indexing a ParameterList costs more than a small layer's matmul
        self._w = list(self.weights)
        self._b = list(self.biases)
        if config.kind == "bnn":
            self.out_scale = nn.Parameter(
                torch.full((n_seeds, 1, n_classes), 1.0 / math.sqrt(self.dims[-2]))
            )
            if config.bnn_norm == "batchnorm":
                self.bn_gamma = nn.ParameterList(
                    nn.Parameter(torch.ones(n_seeds, 1, w)) for w in config.widths
                )
                for i, w in enumerate(config.widths):
                    self.register_buffer(f"bn_mean{i}", torch.zeros(n_seeds, 1, w))
                    self.register_buffer(f"bn_var{i}", torch.ones(n_seeds, 1, w))

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
            pre = torch.matmul(h, binarize_weights(w))
            if cfg.bnn_norm == "batchnorm":
                pre = self._batchnorm(pre, i) * self.bn_gamma[i] + b
            else:
                pre = pre / math.sqrt(w.shape[1]) + b
            h = sign_activation(pre, cfg.activation, cfg.beta)
            if keep:
                layers.append(h)
        logits = torch.matmul(h, binarize_weights(self._w[-1])) * self.out_scale
        return logits + self._b[-1], layers

    def _batchnorm(self, pre: torch.Tensor, i: int) -> torch.Tensor:
        mean_buf = getattr(self, f"bn_mean{i}")
        var_buf = getattr(self, f"bn_var{i}")
        if self.training:
            mean = pre.mean(dim=-2, keepdim=True)
            var = pre.var(dim=-2, unbiased=False, keepdim=True)
            with torch.no_grad():
                mean_buf.lerp_(mean.expand_as(mean_buf), _BN_MOMENTUM)
                var_buf.lerp_(var.expand_as(var_buf), _BN_MOMENTUM)
        else:
            mean, var = mean_buf, var_buf
        return (pre - mean) / torch.sqrt(var + _BN_EPS)

    @torch.no_grad()
    def clip_latent_(self) -> None:
        """Clip a BNN's latent real weights to [-1, 1] (call after every optimiser step)."""
        if self.config.kind == "bnn":
            torch._foreach_clamp_min_(self._w, -1.0)
            torch._foreach_clamp_max_(self._w, 1.0)
