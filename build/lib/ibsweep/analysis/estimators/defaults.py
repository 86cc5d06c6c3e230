"""Default estimator for each kind of layer, so that a sweep needs no estimator settings."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from ibsweep.analysis.estimators.base import Estimator, EstimatorParameterError
from ibsweep.analysis.estimators.registry import make_estimator

DEFAULTS: MappingProxyType[str, tuple[str, MappingProxyType[str, Any]]] = MappingProxyType(
    {
        layer: (name, MappingProxyType(params))
        for layer, name, params in (
            ("binary", "exact", {}),
            ("tanh", "binning", {"n_bins": 30, "range": "fixed", "lo": -1.0, "hi": 1.0}),
            ("hardtanh", "binning", {"n_bins": 30, "range": "fixed", "lo": -1.0, "hi": 1.0}),
            ("sigmoid", "binning", {"n_bins": 30, "range": "fixed", "lo": 0.0, "hi": 1.0}),
            ("softmax", "binning", {"n_bins": 30, "range": "fixed", "lo": 0.0, "hi": 1.0}),
            # Unbounded: a fixed grid would lump every large value into the top bin.
            ("relu", "binning", {"n_bins": 30, "range": "layer"}),
            ("linear", "binning", {"n_bins": 30, "range": "layer"}),
        )
    }
)


def default_estimator(layer_type: str) -> Estimator:
    """A new instance of the default estimator for `layer_type` (see DEFAULTS)."""
    try:
        name, params = DEFAULTS[layer_type]
    except (KeyError, TypeError):
        raise EstimatorParameterError(
            f"unknown layer type {layer_type!r}; allowed: {', '.join(DEFAULTS)}"
        ) from None
    return make_estimator(name, **params)
