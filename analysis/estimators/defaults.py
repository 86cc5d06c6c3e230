"""Default estimator for each kind of layer, so that a sweep needs no estimator settings, and the
defaults that adapt any named estimator to a layer type (its binning range)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ibsweep.analysis.estimators.base import Estimator, EstimatorParameterError
from ibsweep.analysis.estimators.registry import make_estimator

_FIXED_PM1 = {"range": "fixed", "lo": -1.0, "hi": 1.0}
_FIXED_01 = {"range": "fixed", "lo": 0.0, "hi": 1.0}
# Unbounded: a fixed grid would lump every large value into the top bin.
_LAYER = {"range": "layer"}

# Per layer type: its default estimator, and the range policy any binning of it takes where the
# sweep file does not give one. "binary_logits" is a BNN's output (softmax of real logits
# computed from the last binary layer): a deterministic function of at most 2^width states of
# that layer, so counted exactly; binned at 30 levels, the grid would resolve, as "expansion",
# states that exist from the start.
_TYPES = (
    ("binary", ("exact", {}), _FIXED_PM1),
    ("binary_logits", ("exact", {}), _FIXED_01),
    ("tanh", ("binning", {"n_bins": 30, **_FIXED_PM1}), _FIXED_PM1),
    ("hardtanh", ("binning", {"n_bins": 30, **_FIXED_PM1}), _FIXED_PM1),
    ("sigmoid", ("binning", {"n_bins": 30, **_FIXED_01}), _FIXED_01),
    ("softmax", ("binning", {"n_bins": 30, **_FIXED_01}), _FIXED_01),
    ("relu", ("binning", {"n_bins": 30, **_LAYER}), _LAYER),
    ("linear", ("binning", {"n_bins": 30, **_LAYER}), _LAYER),
)
DEFAULTS: MappingProxyType[str, tuple[str, MappingProxyType[str, Any]]] = MappingProxyType(
    {layer: (name, MappingProxyType(params)) for layer, (name, params), _ in _TYPES}
)
BINNING_RANGES: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType(
    {layer: MappingProxyType(policy) for layer, _, policy in _TYPES}
)
_RANGE_KEYS = ("range", "lo", "hi")


def default_estimator(layer_type: str) -> Estimator:
    """A new instance of the default estimator for `layer_type` (see DEFAULTS)."""
    name, params = DEFAULTS[_known(layer_type)]
    return make_estimator(name, **params)


def layer_estimator(layer_type: str, name: str, params: Mapping[str, Any]) -> Estimator:
    """The estimator `name` for a layer of `layer_type`: binning without a range policy takes
    the layer type's (fixed [-1, 1] for tanh, the layer's own range for relu, [0, 1] for a
    softmax, ...); range, lo and hi are one setting, taken whole from `params` if any is given.
    """
    policy = BINNING_RANGES[_known(layer_type)]
    if name == "binning" and not any(k in params for k in _RANGE_KEYS):
        params = {**policy, **params}
    return make_estimator(name, **params)


def _known(layer_type: str) -> str:
    if not isinstance(layer_type, str) or layer_type not in DEFAULTS:
        raise EstimatorParameterError(
            f"unknown layer type {layer_type!r}; allowed: {', '.join(DEFAULTS)}"
        )
    return layer_type
