"""Estimators of I(X;T) and I(T;Y) for one layer's representation T and the labels Y, in bits.

from analysis.estimators import make_estimator
result = make_estimator("binning", n_bins=30, range="fixed", lo=-1.0, hi=1.0).estimate(t, y)
"""

from analysis.estimators.base import (
    Estimator,
    EstimatorError,
    EstimatorInputError,
    EstimatorParameterError,
    MIResult,
    NotFittedError,
)
from analysis.estimators.counting import KeyEntropies, entropies_of_keys, pack_rows
from analysis.estimators.defaults import default_estimator
from analysis.estimators.registry import available_estimators, make_estimator
from analysis.estimators.stacked import StackedEstimates, estimate_stacked

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
    "estimate_stacked",
    "make_estimator",
    "pack_rows",
]
