"""The Python API's functions that span the layers: sweep files, runs, analysis, one training.

Re-exported by ``ibsweep`` (see its ``__all__``). They return values and raise typed errors
(``ibsweep.IbsweepError`` and its subclasses); they print nothing and leave the process's
settings alone (the ``ibsweep`` command line does both).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ibsweep.analysis.fetch import FetchError
from ibsweep.analysis.fetch import fetch_series as fetch_sweep_series
from ibsweep.analysis.sweep_analysis import SweepAnalysis, analyze_sweep
from ibsweep.models.config import ModelConfig, TrainConfig
from ibsweep.models.datasets import DatasetError, load_dataset
from ibsweep.models.training import MEASURE_SETS
from ibsweep.sweep.config.grid import Plan, expand
from ibsweep.sweep.config.spec import SweepSpec, load_spec, sweep_file
from ibsweep.sweep.errors import UsageError
from ibsweep.sweep.tracking.uri import resolve_tracking_uri
from ibsweep.sweep.training.meter import LayerMeter, parse_estimator_spec
from ibsweep.sweep.training.single_run import train_single


def load_sweep(path: str | Path) -> SweepSpec:
    """A sweep file (or a shipped example by name: 'quick', 'paper', ...), validated."""
    return load_spec(sweep_file(path))


def plan_sweep(sweep: SweepSpec | str | Path) -> Plan:
    """The trials, configurations and skipped combinations a sweep expands to."""
    return expand(sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep))


def _store(tracking_uri: str | None) -> str:
    uri = resolve_tracking_uri(tracking_uri, None)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        raise UsageError(f"no MLflow store at {uri}; give tracking_uri (sweeps write one)")
    return uri


def analyze(
    name: str,
    tracking_uri: str | None = None,
    out_dir: str | Path | None = None,
    log_to_mlflow: bool = False,
) -> SweepAnalysis:
    """Phases, verdicts and comparisons of sweep ``name``, as DataFrames and files in ``out_dir``
    (default ``./ibsweep-results/NAME``); MLflow is only read unless ``log_to_mlflow``."""
    uri = _store(tracking_uri)
    out = Path(out_dir) if out_dir is not None else Path("ibsweep-results") / name
    try:
        return analyze_sweep(uri, name, out, log_to_mlflow=log_to_mlflow)
    except FetchError as err:
        raise UsageError(str(err)) from None


def fetch_series(name: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """The tidy per-epoch series of every run of sweep ``name`` (one row per run, layer, epoch)."""
    try:
        return fetch_sweep_series(_store(tracking_uri), name).table
    except FetchError as err:
        raise UsageError(str(err)) from None


def train(
    model: ModelConfig | None = None,
    train: TrainConfig | None = None,
    dataset: str = "tishby",
    seeds: Sequence[int] = (0,),
    estimator: str | None = None,
    mi_every: int = 1,
    measure_on: str | None = None,
    data_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Train one configuration in this process (no Ray, no MLflow), its seeds packed; the tidy
    table, one row per (seed, epoch, layer). ``estimator`` is a spec such as
    'binning:n_bins=30' for every layer (default: each layer type's own)."""
    model, train = model or ModelConfig(), train or TrainConfig()
    if mi_every <= 0:
        raise UsageError(f"mi_every must be a positive integer, got {mi_every}")
    if measure_on not in (None, *MEASURE_SETS):
        raise UsageError(f"unknown measure_on {measure_on!r}; allowed: {', '.join(MEASURE_SETS)}")
    meter = LayerMeter(model, parse_estimator_spec(estimator) if estimator else None)
    try:
        data = load_dataset(dataset, data_dir)
    except DatasetError as err:
        raise UsageError(str(err)) from None
    result = train_single(model, train, data, list(seeds), meter, measure_on, mi_every)
    return result.table.to_pandas()
