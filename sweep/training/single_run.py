"""One configuration trained in-process (no Ray, no MLflow), as a tidy table."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ibsweep.analysis.estimators import StackedEstimates
from ibsweep.models.config import ModelConfig, TrainConfig
from ibsweep.models.datasets import Dataset
from ibsweep.models.training import EpochRecord, Trainer
from ibsweep.sweep.config.schedule import measured_epochs
from ibsweep.sweep.training.meter import LayerMeter, permuted_labels

COLUMNS = (
    "seed", "epoch", "layer", "estimator", "loss", "train_acc", "test_acc",
    "i_xt", "i_ty", "i_ty_perm", "n_states", "saturated", "layer_ceiling", "grad_snr",
)  # fmt: skip
_MI_COLUMNS = ("i_xt", "i_ty", "i_ty_perm", "n_states", "saturated")


@dataclass
class RunResult:
    """The tidy table of a finished single run, each seed's final status, and each panel
    member's estimator per layer (``default`` without a panel)."""

    table: pa.Table
    status: list[str]
    seconds: float
    estimators: dict[str, list[str]] = field(default_factory=dict)


def record_columns(
    record: EpochRecord,
    seeds: Sequence[int],
    mi: Mapping[str, StackedEstimates] | None,
    members: Sequence[str],
    ceilings: np.ndarray,
) -> dict[str, np.ndarray]:
    """One epoch's rows, one per live seed, member and layer (in that order), as columns.

    ``mi`` holds each member's estimates of the live seeds, or None on epochs not measured
    (NaN there; the table makes them null); ``ceilings`` (members, layers) each member's
    ceiling of each layer in bits.
    """
    live = np.flatnonzero(record.active)
    n_members, n_layers = ceilings.shape
    per_row = functools.partial(np.repeat, repeats=n_members * n_layers)
    shape = (len(live), n_members, n_layers)
    out = {
        "seed": per_row(np.asarray(seeds, dtype=np.int64)[live]),
        "epoch": np.full(np.prod(shape), record.epoch, dtype=np.int64),
        "layer": np.tile(np.arange(1, n_layers + 1), len(live) * n_members),
        "estimator": np.tile(np.repeat(np.asarray(members, dtype=object), n_layers), len(live)),
        "loss": per_row(record.loss[live]),
        "train_acc": per_row(record.train_acc[live]),
        "test_acc": per_row(record.test_acc[live]),
        "layer_ceiling": np.tile(ceilings.ravel(), len(live)),
        "grad_snr": np.repeat(record.grad_snr[live][:, None, :], n_members, axis=1).ravel(),
    }
    for name in _MI_COLUMNS:
        if mi is None:
            fill = {"n_states": (-1, np.int64), "saturated": (False, bool)}.get(
                name, (np.nan, float)
            )
            out[name] = np.full(np.prod(shape), fill[0], dtype=fill[1])
        else:
            out[name] = np.stack([getattr(mi[m], name) for m in members], axis=1).ravel()
    return out


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
    """Train, measure MI (every member of the meter's panel, and I(T;Y) under permuted labels)
    on the schedule, and collect the tidy table."""
    start = time.perf_counter()
    trainer = Trainer(model, train, data, seeds, measure_on)
    schedule = measured_epochs(train.epochs, every=mi_every)
    labels = trainer.measure_labels
    perm = permuted_labels(labels, seeds)
    members = meter.members
    n = labels.shape[1]
    bits = meter.max_bits((*model.widths, data.n_classes))
    ceilings = np.minimum(math.log2(n), np.array([bits[m] for m in members]))
    parts: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    for record in trainer.run(measure=schedule.__contains__):
        mi = None
        if record.layers is not None:
            if record.active.all():
                mi = meter.estimate(record.layers, labels, perm)
            elif record.active.any():
                live = record.active
                mi = meter.estimate([rep[live] for rep in record.layers], labels[live], perm[live])
        for key, values in record_columns(record, seeds, mi, members, ceilings).items():
            parts[key].append(values)
        if progress is not None:
            progress(record)
    status = [f or "finished" for f in trainer.failure]
    columns = {k: np.concatenate(v) for k, v in parts.items()}
    measured = ~np.isnan(columns["i_xt"])
    table = pa.table(
        {
            **{k: pa.array(columns[k]) for k in ("seed", "epoch", "layer")},
            "estimator": pa.array(columns["estimator"].astype(str)),
            **{k: pa.array(columns[k]) for k in ("loss", "train_acc", "test_acc")},
            **{k: pa.array(columns[k], mask=~measured) for k in _MI_COLUMNS},
            **{k: pa.array(columns[k]) for k in ("layer_ceiling", "grad_snr")},
        }
    )
    return RunResult(table, status, time.perf_counter() - start, meter.describe())
