"""Exact estimator: plug-in entropies of the distinct activation patterns of a discrete layer."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ibsweep.analysis.estimators.base import (
    Estimator,
    EstimatorParams,
    Labels,
    MIResult,
    counting_result,
)
from ibsweep.analysis.estimators.counting import KeyEntropies, layer_entropies, unique_row_ids

_MAX_INTEGER_LEVELS = 1 << 16


class ExactParams(EstimatorParams):
    """The exact estimator has no parameters."""


class ExactEstimator(Estimator):
    """Count the distinct patterns of a discrete layer (BNN +-1, quantised); no estimator error.

    I(X;T) = H(T) assumes a deterministic network fed distinct inputs, so H(T|X) = 0; then
    I(T;Y) = H(T) - H(T|Y). Any real values are accepted and compared exactly, so on a
    continuous layer every distinct row is its own state. Binary layers (two values) and
    integer-valued layers with a small range are coded per unit and packed into one key per row;
    others are compared as bytes (with -0.0 read as 0.0).
    """

    name: ClassVar[str] = "exact"
    Params: ClassVar[type[EstimatorParams]] = ExactParams

    def _estimate(self, t: np.ndarray, labels: Labels) -> MIResult:
        ent = _pattern_entropies(t, labels)
        return counting_result(self, ent, labels, t.shape[0])


def _pattern_entropies(t: np.ndarray, labels: Labels) -> KeyEntropies:
    """Entropies of the distinct rows of t, coded per unit where the values allow it."""
    n, d = t.shape
    lo, hi = t.min(), t.max()
    if lo == hi:
        return layer_entropies(np.zeros((n, 1), dtype=np.uint8), [1], labels)
    upper = t == hi
    if np.count_nonzero(upper) + np.count_nonzero(t == lo) == t.size:  # two values, e.g. +-1
        return layer_entropies(upper, [2] * d, labels)
    if np.issubdtype(t.dtype, np.integer):
        n_levels = int(hi) - int(lo) + 1
        if n_levels <= _MAX_INTEGER_LEVELS:
            # Unsigned values cannot overflow when shifted; signed ones are widened first.
            unsigned = np.issubdtype(t.dtype, np.unsignedinteger)
            codes = t - lo if unsigned else t.astype(np.int64) - int(lo)
            return layer_entropies(codes, [n_levels] * d, labels)
        ids, _ = unique_row_ids(t)
    else:
        if hi - lo < _MAX_INTEGER_LEVELS:
            levels = t - lo
            if np.array_equal(levels, np.floor(levels)):  # integer-valued, e.g. quantised
                return layer_entropies(levels.astype(np.int64), [int(hi - lo) + 1] * d, labels)
        ids, _ = unique_row_ids(t + 0.0)  # + 0.0 turns -0.0 into 0.0
    return layer_entropies(ids[:, None], [int(ids.max()) + 1], labels)
