"""Validated parameter objects for a model and its training."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

KINDS: tuple[str, ...] = ("dnn", "bnn")
DNN_ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "sigmoid", "hardtanh", "linear")
BNN_ACTIVATIONS: tuple[str, ...] = ("ste", "approx_sign", "swish_sign", "identity")
ACTIVATIONS: dict[str, tuple[str, ...]] = {"dnn": DNN_ACTIVATIONS, "bnn": BNN_ACTIVATIONS}
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
BNN_NORMS: tuple[str, ...] = ("scale", "batchnorm")
PRECISIONS: tuple[str, ...] = ("binary", "real")
LR_SCHEDULES: tuple[str, ...] = ("constant", "exponential", "cosine")
CLASSIC_WIDTHS: tuple[int, ...] = (10, 7, 5, 4, 3)


class ModelConfig(BaseModel):
    """A fully connected classifier: kind, activation (or BNN surrogate) and hidden widths.

    BNN options (ignored by a dnn): ``bnn_norm``, how a hidden layer's pre-activation is
    brought into the surrogate's window before sign(): BatchNorm (default, the literature's
    standard) or a fixed 1/sqrt(fan_in) scale with a learnable bias. ``bnn_first`` and
    ``bnn_last``: whether the first layer (on the input) and the last (the logits) have
    binary or real weights. Every hidden layer's output is sign() whatever the precision of
    the weights that feed it, so every hidden layer is binary and counted exactly; a real
    first layer only sees the real-valued input without binarising its weights. The defaults,
    BatchNorm with real first and last layers, train best of the combinations measured on
    tishby and digits (bench/README.md, "BNN options"); the literature does the same
    (XNOR-Net, Bi-Real Net, Larq's models).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["dnn", "bnn"] = "dnn"
    activation: str = "tanh"
    widths: tuple[int, ...] = CLASSIC_WIDTHS
    beta: float = Field(5.0, gt=0, description="SwishSign sharpness (bnn, swish_sign only)")
    bnn_norm: Literal["scale", "batchnorm"] = Field(
        "batchnorm", description="BNN pre-activation: BatchNorm, or 1/sqrt(fan_in) with a bias"
    )
    bnn_first: Literal["binary", "real"] = Field(
        "real", description="BNN first layer's weights (on the input): binary or real"
    )
    bnn_last: Literal["binary", "real"] = Field(
        "real", description="BNN output layer's weights (the logits): binary or real"
    )

    @field_validator("widths")
    @classmethod
    def _positive_widths(cls, widths: tuple[int, ...]) -> tuple[int, ...]:
        if not widths:
            raise ValueError("widths must list at least one hidden layer, e.g. 10,7,5,4,3")
        if any(w <= 0 for w in widths):
            raise ValueError(f"every width must be a positive integer, got {list(widths)}")
        return widths

    @model_validator(mode="after")
    def _activation_fits_kind(self) -> ModelConfig:
        allowed = ACTIVATIONS[self.kind]
        if self.activation not in allowed:
            other = "bnn" if self.kind == "dnn" else "dnn"
            hint = f" ('{self.activation}' is a {other} activation)" * (
                self.activation in ACTIVATIONS[other]
            )
            raise ValueError(
                f"activation '{self.activation}' does not fit kind '{self.kind}'{hint}; "
                f"allowed for {self.kind}: {', '.join(allowed)}"
            )
        return self

    @property
    def widths_label(self) -> str:
        """Widths as a compact label, e.g. '10x7x5x4x3'."""
        return "x".join(str(w) for w in self.widths)

    def binary_weights(self) -> tuple[bool, ...]:
        """Per weight layer (hidden layers, then the output): whether its weights are binary."""
        n = len(self.widths) + 1
        if self.kind != "bnn":
            return (False,) * n
        inner = (True,) * (n - 2)
        return (self.bnn_first == "binary", *inner, self.bnn_last == "binary")

    def layer_types(self) -> tuple[str, ...]:
        """What each measured layer holds: the hidden layers' activation ('binary' in a BNN),
        then the output's softmax.

        A BNN's hidden layers are 'binary' whatever the precision of the weights that feed
        them (a real first layer's output goes through sign() too). Its output is
        'binary_logits': real logits (from binary or real weights) computed from the last
        binary layer, so a deterministic function of at most 2^width of its states, which an
        estimator should count exactly rather than bin like a DNN's softmax.
        """
        if self.kind == "bnn":
            return ("binary",) * len(self.widths) + ("binary_logits",)
        return (self.activation,) * len(self.widths) + ("softmax",)

    def state_bits(self) -> tuple[float, ...]:
        """Per measured layer, log2 of the most distinct states it can take whatever the data:
        width bits for a binary layer, the last binary layer's width for a BNN's output, and
        inf for real-valued layers."""
        if self.kind != "bnn":
            return (math.inf,) * (len(self.widths) + 1)
        return (*map(float, self.widths), float(self.widths[-1]))


class TrainConfig(BaseModel):
    """Optimiser and learning-rate schedule; defaults are the literature's (Adam, lr 4e-4,
    batch 256, constant lr).

    ``schedule`` sets the lr of each epoch e = 1..epochs from ``lr`` and ``final_lr_factor``
    (f, the last epoch's lr as a fraction of ``lr``), with t = (e - 1) / (epochs - 1):
    constant: lr; exponential: lr * f**t (a factor of f**(1 / (epochs - 1)) per epoch);
    cosine: lr * (f + (1 - f) * (1 + cos(pi t)) / 2). The first epoch trains at ``lr``, the
    last at ``lr * f``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(4e-4, gt=0)
    batch_size: int = Field(256, gt=0)
    epochs: int = Field(1500, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum")
    schedule: Literal["constant", "exponential", "cosine"] = "constant"
    final_lr_factor: float = Field(
        0.01, gt=0, le=1, description="last epoch's lr / lr (exponential and cosine)"
    )

    def lr_at(self, epoch: int) -> float:
        """The learning rate of training epoch ``epoch`` (1..epochs)."""
        t = (epoch - 1) / (self.epochs - 1) if self.epochs > 1 else 0.0
        f = self.final_lr_factor
        if self.schedule == "exponential":
            return self.lr * f**t
        if self.schedule == "cosine":
            return self.lr * (f + (1 - f) * (1 + math.cos(math.pi * t)) / 2)
        return self.lr


def describe_validation_error(
    err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """One line naming each invalid field, what was given and what is allowed."""
    parts = []
    for e in err.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            allowed = _fields_at(model, e["loc"][:-1]) if model else ()
            msg = "unknown field" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif e["type"] == "literal_error":
            msg = f"got {e['input']!r}; {msg.lower()}"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def _fields_at(model: type[BaseModel], loc: tuple) -> tuple[str, ...]:
    """Field names of the (nested) pydantic model found at ``loc``, if any."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        sub = getattr(field, "annotation", None) if field else None
        candidates = [sub, *getattr(sub, "__args__", ())]
        found = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not found:
            return ()
        model = found[0]
    return tuple(model.model_fields)
