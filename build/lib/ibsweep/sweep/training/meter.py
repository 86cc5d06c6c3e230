"""Information per layer for one epoch's representations, for every seed of a stack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ibsweep.analysis.estimators import (
    StackedEstimates,
    default_estimator,
    estimate_stacked,
    make_estimator,
)
from ibsweep.models.config import ModelConfig
from ibsweep.sweep.errors import UsageError


def parse_estimator_spec(spec: str) -> tuple[str, dict[str, object]]:
    """Split 'name' or 'name:key=value,key=value' into a registry name and parameters."""
    name, _, rest = spec.partition(":")
    params: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(
                f"estimator parameter '{item}' must be key=value, e.g. binning:n_bins=30"
            )
        params[key.strip()] = _parse_scalar(value.strip())
    return name.strip(), params


def _parse_scalar(value: str) -> object:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


@dataclass(frozen=True)
class LayerInfo:
    """MI of one layer of one seed at one epoch."""

    i_xt: float
    i_ty: float
    n_states: int
    saturated: bool


class LayerMeter:
    """Estimates I(X;T) and I(T;Y) of every layer with the per-layer default estimators.

    ``override`` (a registry name and its parameters) replaces the defaults for every layer.
    """

    def __init__(self, model: ModelConfig, override: tuple[str, dict] | None = None) -> None:
        try:
            if override is None:
                self.estimators = [default_estimator(t) for t in model.layer_types()]
            else:
                est = make_estimator(override[0], **override[1])
                self.estimators = [est] * len(model.layer_types())
        except ValueError as err:
            raise UsageError(str(err).splitlines()[0]) from err

    def describe(self) -> list[str]:
        """The estimator of each layer, as logged (layer 1 first)."""
        return [est.describe() for est in self.estimators]

    def estimate(self, layers: Sequence[np.ndarray], labels: np.ndarray) -> StackedEstimates:
        """MI of every seed and layer as (S, L) arrays; ``layers[l]`` is (S, n, width).

        All seeds and layers in one vectorised pass (``estimate_stacked``), with the same
        numbers as each layer's estimator applied seed by seed.
        """
        return estimate_stacked(self.estimators, layers, labels)

    def measure(
        self, layers: Sequence[np.ndarray], labels: np.ndarray, seeds: Sequence[int]
    ) -> list[list[LayerInfo]]:
        """MI per seed (outer) and layer (inner); ``layers[l]`` is (S, n, width)."""
        if len(seeds) == 0:
            return []
        return self.infos(self.estimate(layers, labels))

    @staticmethod
    def infos(est: StackedEstimates) -> list[list[LayerInfo]]:
        """The (S, L) estimates as rows of LayerInfo, seed by seed."""
        columns = (a.tolist() for a in (est.i_xt, est.i_ty, est.n_states, est.saturated))
        return [
            [LayerInfo(*values) for values in zip(*seed_rows, strict=True)]
            for seed_rows in zip(*columns, strict=True)
        ]
