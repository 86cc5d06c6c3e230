"""Registry of the estimators by name, so that a sweep file can name one with its parameters."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from ibsweep.analysis.estimators.adaptive import AdaptiveEstimator
from ibsweep.analysis.estimators.base import Estimator, EstimatorParameterError
from ibsweep.analysis.estimators.binning import BinningEstimator
from ibsweep.analysis.estimators.exact import ExactEstimator
from ibsweep.analysis.estimators.kde import KDEEstimator

ESTIMATORS: MappingProxyType[str, type[Estimator]] = MappingProxyType(
    {cls.name: cls for cls in (ExactEstimator, BinningEstimator, AdaptiveEstimator, KDEEstimator)}
)


def available_estimators() -> tuple[str, ...]:
    """Names accepted by `make_estimator`."""
    return tuple(ESTIMATORS)


def make_estimator(name: str, **params: Any) -> Estimator:
    """Build the estimator registered as `name` with validated `params`."""
    try:
        cls = ESTIMATORS[name]
    except (KeyError, TypeError):
        raise EstimatorParameterError(
            f"unknown estimator {name!r}; available: {', '.join(ESTIMATORS)}"
        ) from None
    return cls(**params)
