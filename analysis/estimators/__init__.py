"""Estimators of I(X;T) and I(T;Y) for one layer's representation T and the labels Y, in bits.

from ibsweep.analysis.estimators import make_estimator
result = make_estimator("binning", n_bins=30, range="fixed", lo=-1.0, hi=1.0).estimate(t, y)
"""

from ibsweep.analysis.estimators.base import (
    Estimator,
    EstimatorError,
    EstimatorInputError,
    EstimatorParameterError,
    MIResult,
    NotFittedError,
)
from ibsweep.analysis.estimators.counting import KeyEntropies, entropies_of_keys, pack_rows
from ibsweep.analysis.estimators.defaults import default_estimator, layer_estimator
from ibsweep.analysis.estimators.registry import available_estimators, make_estimator
from ibsweep.analysis.estimators.stacked import StackedEstimates, estimate_panel, estimate_stacked

__all__ = [
    "Estimator",
    "EstimatorError",
    "EstimatorInputError",
    "EstimatorParameterError",
    "KeyEntropies",
    "MIResult",
    "NotFittedError",
    "StackedEstimates",
    "available_estimators",
    "default_estimator",
    "entropies_of_keys",
    "estimate_panel",
    "estimate_stacked",
    "layer_estimator",
    "make_estimator",
    "pack_rows",
]
