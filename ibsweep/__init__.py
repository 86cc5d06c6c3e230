"""ibsweep: information-plane sweeps of DNNs and BNNs on Ray Tune, tracked in MLflow.

The Python API, every public name in one place::

    import ibsweep

    spec = ibsweep.load_sweep("quick")          # a sweep file, or a shipped example by name
    result = ibsweep.run_sweep("quick")         # local Ray, MLflow in ./mlflow.db
    analysis = ibsweep.analyze("quick")         # DataFrames; MLflow is only read

Names load on first use, so ``import ibsweep`` stays fast (Ray, MLflow and torch are heavy).
Errors raised on purpose derive from ``ibsweep.IbsweepError``; bad input is a ``UsageError``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ibsweep.analysis.estimators import (
        Estimator,
        EstimatorError,
        MIResult,
        available_estimators,
        default_estimator,
        estimate_stacked,
        make_estimator,
    )
    from ibsweep.analysis.fetch import FetchError
    from ibsweep.analysis.phases import PhaseConfig, layer_phases, run_phases
    from ibsweep.analysis.statistics import aggregate, compare
    from ibsweep.analysis.sweep_analysis import SweepAnalysis
    from ibsweep.examples import example_path, examples
    from ibsweep.models.config import ModelConfig, TrainConfig
    from ibsweep.models.datasets import DATASETS, Dataset, DatasetError, load_dataset
    from ibsweep.models.network import StackedMLP
    from ibsweep.models.training import Trainer
    from ibsweep.sweep.api import analyze, fetch_series, load_sweep, plan_sweep, train
    from ibsweep.sweep.config.grid import Plan
    from ibsweep.sweep.config.spec import SweepSpec
    from ibsweep.sweep.errors import IbsweepError, UsageError
    from ibsweep.sweep.execution.outcome import SweepResult
    from ibsweep.sweep.execution.run import run_sweep
    from ibsweep.sweep.tracking.retry import TrackingUnavailable

_WHERE = {
    "ibsweep.sweep.api": ("analyze", "fetch_series", "load_sweep", "plan_sweep", "train"),
    "ibsweep.sweep.execution.run": ("run_sweep",),
    "ibsweep.sweep.execution.outcome": ("SweepResult",),
    "ibsweep.sweep.config.spec": ("SweepSpec",),
    "ibsweep.sweep.config.grid": ("Plan",),
    "ibsweep.sweep.errors": ("IbsweepError", "UsageError"),
    "ibsweep.sweep.tracking.retry": ("TrackingUnavailable",),
    "ibsweep.analysis.sweep_analysis": ("SweepAnalysis",),
    "ibsweep.analysis.fetch": ("FetchError",),
    "ibsweep.analysis.phases": ("PhaseConfig", "layer_phases", "run_phases"),
    "ibsweep.analysis.statistics": ("aggregate", "compare"),
    "ibsweep.analysis.estimators": (
        "Estimator", "EstimatorError", "MIResult", "available_estimators",
        "default_estimator", "estimate_stacked", "make_estimator",
    ),
    "ibsweep.models.config": ("ModelConfig", "TrainConfig"),
    "ibsweep.models.datasets": ("DATASETS", "Dataset", "DatasetError", "load_dataset"),
    "ibsweep.models.network": ("StackedMLP",),
    "ibsweep.models.training": ("Trainer",),
    "ibsweep.examples": ("example_path", "examples"),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "Estimator",
    "EstimatorError",
    "FetchError",
    "IbsweepError",
    "MIResult",
    "ModelConfig",
    "PhaseConfig",
    "Plan",
    "StackedMLP",
    "SweepAnalysis",
    "SweepResult",
    "SweepSpec",
    "TrackingUnavailable",
    "TrainConfig",
    "Trainer",
    "UsageError",
    "__version__",
    "aggregate",
    "analyze",
    "available_estimators",
    "compare",
    "default_estimator",
    "estimate_stacked",
    "example_path",
    "examples",
    "fetch_series",
    "layer_phases",
    "load_dataset",
    "load_sweep",
    "make_estimator",
    "plan_sweep",
    "run_phases",
    "run_sweep",
    "train",
]

try:
    __version__ = version("ibsweep")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "unknown"


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'ibsweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
