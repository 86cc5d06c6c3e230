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
CLASSIC_WIDTHS: tuple[int, ...] = (10, 7, 5, 4, 3)


class ModelConfig(BaseModel):
    """A fully connected classifier: kind, activation (or BNN surrogate) and hidden widths."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["dnn", "bnn"] = "dnn"
    activation: str = "tanh"
    widths: tuple[int, ...] = CLASSIC_WIDTHS
    beta: float = Field(5.0, gt=0, description="SwishSign sharpness (bnn, swish_sign only)")
    bnn_norm: Literal["scale", "batchnorm"] = Field(
        "scale", description="BNN pre-activation scaling: 1/sqrt(fan_in) with bias, or BatchNorm"
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

    def layer_types(self) -> tuple[str, ...]:
        """What each measured layer holds: the hidden layers' activation ('binary' in a BNN),
        then the output's softmax.

        A BNN's output is 'binary_logits': real logits computed from the last binary layer, so
        a deterministic function of at most 2^width of its states, which an estimator should
        count exactly rather than bin like a DNN's softmax.
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
    """Optimiser and schedule; defaults are the literature's (Adam, lr 4e-4, batch 256)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(4e-4, gt=0)
    batch_size: int = Field(256, gt=0)
    epochs: int = Field(1500, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum")


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
