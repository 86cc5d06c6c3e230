"""Adaptive binning estimator: equal-mass bins per unit, then distinct-row counting."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from pydantic import Field

from ibsweep.analysis.estimators.base import (
    Count,
    Estimator,
    EstimatorParams,
    Labels,
    MIResult,
    counting_result,
)
from ibsweep.analysis.estimators.counting import layer_entropies


class AdaptiveParams(EstimatorParams):
    """Number of equal-mass bins per unit."""

    n_bins: Count = Field(default=30, ge=1)


class AdaptiveEstimator(Estimator):
    """Plug-in I(X;T) and I(T;Y) after binning each unit into `n_bins` equal-mass bins.

    The sample of rank r (0-based, in increasing order of the unit's value) goes to bin
    floor(r * n_bins / n), so each bin holds n / n_bins samples; tied values all go to the bin of
    the first of them, so equal values never split (a saturated unit fills one bin). The result is
    unchanged by any strictly increasing transform of a unit. I(X;T) = H(T) assumes a
    deterministic network fed distinct inputs (H(T|X) = 0).
    """

    name: ClassVar[str] = "adaptive"
    Params: ClassVar[type[EstimatorParams]] = AdaptiveParams

    def max_bits(self, width: int) -> float:
        """width x log2 of the bins per unit."""
        return width * math.log2(self.params.n_bins)

    def _estimate(self, t: np.ndarray, labels: Labels) -> MIResult:
        n_bins = self.params.n_bins
        ent = layer_entropies(equal_mass_codes(t, n_bins), [n_bins] * t.shape[1], labels)
        return counting_result(self, ent, labels, t.shape[0])


def equal_mass_codes(t: np.ndarray, n_bins: int) -> np.ndarray:
    """Per-column bin codes floor(rank * n_bins / n); tied values share their lowest rank."""
    n = t.shape[0]
    order = np.argsort(t, axis=0, kind="stable")
    ordered = np.take_along_axis(t, order, axis=0)
    position = np.arange(n)[:, None]
    starts = np.ones(t.shape, dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first_rank = np.maximum.accumulate(np.where(starts, position, 0), axis=0)
    codes = np.empty(t.shape, dtype=np.int64)
    np.put_along_axis(codes, order, first_rank * n_bins // n, axis=0)
    return codes
