"""Binning estimator: discretise every unit into bins, then count distinct rows."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from ibsweep.analysis.estimators.base import (
    Count,
    Estimator,
    EstimatorInputError,
    EstimatorParameterError,
    EstimatorParams,
    Labels,
    MIResult,
    NotFittedError,
    counting_result,
    validate_layer,
)
from ibsweep.analysis.estimators.counting import layer_entropies

_BLOCK_ELEMENTS = 1 << 16  # rows are binned in blocks of about this many values (cache-sized)
DEFAULT_N_BINS = 30


class BinningParams(EstimatorParams):
    """Bins per unit (`n_bins` or `bin_width`) and the policy that sets the range they cover."""

    n_bins: Count | None = Field(default=None, ge=1)
    bin_width: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    range: Literal["fixed", "layer", "neuron", "global"] = "fixed"
    lo: float | None = Field(default=None, allow_inf_nan=False)
    hi: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("n_bins") is None and data.get("bin_width") is None:
            data["n_bins"] = DEFAULT_N_BINS
        if data.get("range", "fixed") == "fixed":
            data.setdefault("lo", -1.0)
            data.setdefault("hi", 1.0)
        return data

    @model_validator(mode="after")
    def _check(self) -> BinningParams:
        if self.n_bins is not None and self.bin_width is not None:
            raise ValueError("give n_bins or bin_width, not both")
        if self.range == "fixed":
            if self.lo is None or self.hi is None or not self.lo < self.hi:
                raise ValueError(f"range='fixed' needs lo < hi, got lo={self.lo}, hi={self.hi}")
        elif self.lo is not None or self.hi is not None:
            raise ValueError(f"lo and hi are only used with range='fixed', not {self.range!r}")
        return self


class BinningEstimator(Estimator):
    """Plug-in I(X;T) and I(T;Y) of a layer discretised unit by unit into bins.

    I(X;T) = H(T) of the binned patterns: the network is deterministic and every input distinct,
    so H(T|X) = 0; I(T;Y) = H(T) - H(T|Y). Bin k of a range [lo, hi] is
    [lo + k w, lo + (k + 1) w) with w = (hi - lo) / n_bins (or w = bin_width, with
    ceil((hi - lo) / w) bins); hi itself belongs to the last bin. Range policies:

    - `fixed`: the given [lo, hi] (default [-1, 1]); values outside go into the edge bins and the
      fraction of clipped values is reported. A fixed [-1, 1] puts every ReLU value above 1 into
      one bin, so use it only for bounded activations.
    - `layer`: this layer's min and max in this call.
    - `neuron`: each unit's own min and max in this call.
    - `global`: one range for the whole run, the min and max over every array given to
      `fit_range` (for instance this layer's activations at all epochs, or all layers for a
      network-wide range); `estimate` refuses to run before `fit_range`. Values outside the
      fitted range are clipped into the edge bins and reported, as with `fixed`.
    """

    name: ClassVar[str] = "binning"
    Params: ClassVar[type[EstimatorParams]] = BinningParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.global_range_: tuple[float, float] | None = None

    @property
    def requires_fit(self) -> bool:
        """A global range needs every array of the run (`fit_range`) before the first estimate."""
        return self.params.range == "global"

    def max_bits(self, width: int) -> float:
        """width x log2 of the bins per unit; unbounded for a bin width on a data-set range."""
        p = self.params
        if p.n_bins is not None:
            return width * math.log2(p.n_bins)
        if p.range == "fixed":
            return width * math.log2(max(math.ceil((p.hi - p.lo) / p.bin_width - 1e-9), 1))
        return math.inf

    def fit_range(self, layers: Iterable[Any]) -> BinningEstimator:
        """Set the global range to the min and max over all given arrays (one pass)."""
        if self.params.range != "global":
            raise EstimatorParameterError(
                f"fit_range is only used with range='global', this estimator has "
                f"range={self.params.range!r}"
            )
        lo, hi = math.inf, -math.inf
        for i, layer in enumerate(layers):
            arr = validate_layer(layer, what=f"layers[{i}]")
            lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
        if lo > hi:
            raise EstimatorInputError("fit_range needs at least one array")
        self.global_range_ = (lo, hi)
        return self

    def _estimate(self, t: np.ndarray, labels: Labels) -> MIResult:
        lo, hi = self._range(t)
        span = hi - lo
        width = (
            span / self.params.n_bins if self.params.bin_width is None else self.params.bin_width
        )
        width = np.where(span > 0, width, 1.0)  # a range of zero width gets one bin
        n_bins = np.maximum(np.ceil(span / width - 1e-9), 1).astype(np.int64)
        codes, n_clipped = _digitize(t, lo, hi, 1.0 / width, n_bins)
        ent = layer_entropies(codes, np.broadcast_to(n_bins, t.shape[1]).tolist(), labels)
        return counting_result(
            self, ent, labels, t.shape[0], n_clipped / t.size, self._used_params(lo, hi, n_bins)
        )

    def _range(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        if p.range == "fixed":
            lo, hi = p.lo, p.hi
        elif p.range == "layer":
            lo, hi = float(t.min()), float(t.max())
        elif p.range == "neuron":
            return t.min(axis=0).astype(np.float64), t.max(axis=0).astype(np.float64)
        else:
            if self.global_range_ is None:
                raise NotFittedError(
                    f"{self.describe()}: call fit_range(...) with the activations of the whole "
                    "run before estimate()"
                )
            lo, hi = self.global_range_
        return np.float64(lo), np.float64(hi)

    def _used_params(self, lo: np.ndarray, hi: np.ndarray, n_bins: np.ndarray) -> dict[str, Any]:
        used = self.params.model_dump()
        if lo.ndim == 0:
            used.update(lo=float(lo), hi=float(hi), n_bins=int(n_bins))
        return used


def _digitize(
    t: np.ndarray, lo: np.ndarray, hi: np.ndarray, inv_width: np.ndarray, n_bins: np.ndarray
) -> tuple[np.ndarray, int]:
    """Bin codes floor((t - lo) / w) clipped to [0, n_bins - 1], and the number outside [lo, hi].

    Works in float64 (float32 arithmetic could move values near an edge across it) on
    cache-sized blocks of rows, which avoids full-size temporaries.
    """
    n, d = t.shape
    top = (n_bins - 1).astype(np.float64)
    codes = np.empty((n, d), dtype=np.min_scalar_type(int(np.max(n_bins)) - 1))
    step = max(1, _BLOCK_ELEMENTS // d)
    buf = np.empty((min(step, n), d))
    n_clipped = 0
    for i in range(0, n, step):
        block = t[i : i + step]
        b = buf[: block.shape[0]]
        b[...] = block
        b -= lo
        # Only a scalar range can clip: a per-unit range is each unit's own min and max.
        if lo.ndim == 0 and (block.min() < lo or block.max() > hi):
            n_clipped += int(np.count_nonzero((block < lo) | (block > hi)))
        np.multiply(b, inv_width, out=b)
        np.clip(b, 0, top, out=b)
        codes[i : i + step] = b  # truncation is floor here: b >= 0
    return codes, n_clipped
