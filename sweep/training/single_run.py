"""One configuration trained in-process (no Ray, no MLflow), as a tidy table."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ibsweep.analysis.estimators import StackedEstimates
from ibsweep.models.config import ModelConfig, TrainConfig
from ibsweep.models.datasets import Dataset
from ibsweep.models.training import EpochRecord, Trainer
from ibsweep.sweep.config.schedule import measured_epochs
from ibsweep.sweep.training.meter import LayerMeter

COLUMNS = (
    "seed", "epoch", "layer", "loss", "train_acc", "test_acc",
    "i_xt", "i_ty", "n_states", "saturated", "grad_snr",
)  # fmt: skip


@dataclass
class RunResult:
    """The tidy table of a finished single run and each seed's final status."""

    table: pa.Table
    status: list[str]
    seconds: float
    estimators: list[str] = field(default_factory=list)


def record_columns(
    record: EpochRecord, seeds: Sequence[int], mi: StackedEstimates | None, n_layers: int
) -> dict[str, np.ndarray]:
    """One epoch's rows, one per live seed and layer, as columns.

    ``mi`` holds the live seeds' estimates, or None on epochs not measured (NaN there; the
    table makes them null).
    """
    live = np.flatnonzero(record.active)
    per_row = functools.partial(np.repeat, repeats=n_layers)
    shape = (len(live), n_layers)
    missing = np.full(shape, np.nan)
    return {
        "seed": per_row(np.asarray(seeds, dtype=np.int64)[live]),
        "epoch": np.full(len(live) * n_layers, record.epoch, dtype=np.int64),
        "layer": np.tile(np.arange(1, n_layers + 1), len(live)),
        "loss": per_row(record.loss[live]),
        "train_acc": per_row(record.train_acc[live]),
        "test_acc": per_row(record.test_acc[live]),
        "i_xt": (missing if mi is None else mi.i_xt).ravel(),
        "i_ty": (missing if mi is None else mi.i_ty).ravel(),
        "n_states": (np.full(shape, -1) if mi is None else mi.n_states).ravel(),
        "saturated": (np.zeros(shape, dtype=bool) if mi is None else mi.saturated).ravel(),
        "grad_snr": record.grad_snr[live].ravel(),
    }


def train_single(
    model: ModelConfig,
    train: TrainConfig,
    data: Dataset,
    seeds: Sequence[int],
    meter: LayerMeter,
    measure_on: str | None = None,
    mi_every: int = 1,
    progress: Callable[[EpochRecord], None] | None = None,
) -> RunResult:
    """Train, measure MI on the schedule, and collect the tidy table."""
    start = time.perf_counter()
    trainer = Trainer(model, train, data, seeds, measure_on)
    schedule = measured_epochs(train.epochs, every=mi_every)
    labels = trainer.measure_labels
    parts: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    for record in trainer.run(measure=schedule.__contains__):
        mi = None
        if record.layers is not None:
            if record.active.all():
                mi = meter.estimate(record.layers, labels)
            else:
                live = record.active
                mi = meter.estimate([rep[live] for rep in record.layers], labels[live])
        for key, values in record_columns(record, seeds, mi, trainer.n_layers).items():
            parts[key].append(values)
        if progress is not None:
            progress(record)
    status = [f or "finished" for f in trainer.failure]
    columns = {k: np.concatenate(v) for k, v in parts.items()}
    measured = ~np.isnan(columns["i_xt"])
    table = pa.table(
        {
            **{k: pa.array(columns[k]) for k in ("seed", "epoch", "layer")},
            **{k: pa.array(columns[k]) for k in ("loss", "train_acc", "test_acc")},
            "i_xt": pa.array(columns["i_xt"], mask=~measured),
            "i_ty": pa.array(columns["i_ty"], mask=~measured),
            "n_states": pa.array(columns["n_states"], mask=~measured),
            "saturated": pa.array(columns["saturated"], mask=~measured),
            "grad_snr": pa.array(columns["grad_snr"]),
        }
    )
    return RunResult(table, status, time.perf_counter() - start, meter.describe())
