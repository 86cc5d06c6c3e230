"""``ibsweep train``: one configuration in-process (no Ray, no MLflow), as a tidy table."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from models.config import ModelConfig, TrainConfig
from models.datasets import Dataset
from models.training import EpochRecord, Trainer
from sweep.measure import LayerMeter, measured_epochs

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


def records_to_rows(
    record: EpochRecord, seeds: Sequence[int], info: list | None, n_layers: int
) -> dict[str, list]:
    """One row per (seed, layer) of one epoch; MI columns null where not measured."""
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    for s, seed in enumerate(seeds):
        if not record.active[s]:
            continue
        for layer in range(n_layers):
            li = info[s][layer] if info is not None else None
            rows["seed"].append(seed)
            rows["epoch"].append(record.epoch)
            rows["layer"].append(layer + 1)
            rows["loss"].append(float(record.loss[s]))
            rows["train_acc"].append(float(record.train_acc[s]))
            rows["test_acc"].append(float(record.test_acc[s]))
            rows["i_xt"].append(li.i_xt if li else None)
            rows["i_ty"].append(li.i_ty if li else None)
            rows["n_states"].append(li.n_states if li else None)
            rows["saturated"].append(li.saturated if li else None)
            rows["grad_snr"].append(float(record.grad_snr[s, layer]))
    return rows


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
    columns: dict[str, list] = {c: [] for c in COLUMNS}
    for record in trainer.run(measure=schedule.__contains__):
        info = None
        if record.layers is not None:
            live = [s for s in range(len(seeds)) if record.active[s]]
            measured = meter.measure(
                [rep[live] for rep in record.layers], labels[live], [seeds[s] for s in live]
            )
            info = [None] * len(seeds)
            for s, row in zip(live, measured, strict=True):
                info[s] = row
        for key, values in records_to_rows(record, seeds, info, trainer.n_layers).items():
            columns[key].extend(values)
        if progress is not None:
            progress(record)
    status = [f or "finished" for f in trainer.failure]
    table = pa.table(
        {
            "seed": pa.array(columns["seed"], pa.int64()),
            "epoch": pa.array(columns["epoch"], pa.int64()),
            "layer": pa.array(columns["layer"], pa.int64()),
            **{k: pa.array(columns[k], pa.float64()) for k in ("loss", "train_acc", "test_acc")},
            "i_xt": pa.array(columns["i_xt"], pa.float64()),
            "i_ty": pa.array(columns["i_ty"], pa.float64()),
            "n_states": pa.array(columns["n_states"], pa.int64()),
            "saturated": pa.array(columns["saturated"], pa.bool_()),
            "grad_snr": pa.array(columns["grad_snr"], pa.float64()),
        }
    )
    return RunResult(table, status, time.perf_counter() - start, meter.describe())


class ProgressLine:
    """A one-line progress display on stderr (rewritten in place on a terminal)."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.stream = total, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.step = max(1, total // 10)

    def __call__(self, record: EpochRecord) -> None:
        """Show epoch, loss and accuracy (seed mean) and the time left."""
        e = record.epoch
        if not (self.tty or e % self.step == 0 or e == self.total):
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / e * (self.total - e) if e else float("nan")
        act = record.active
        line = (
            f"epoch {e:>5}/{self.total}  loss {np.mean(record.loss[act]):.4f}  "
            f"train {np.mean(record.train_acc[act]):.3f}  test {np.mean(record.test_acc[act]):.3f}"
            f"  {elapsed:6.1f}s elapsed, ~{eta:5.1f}s left"
        )
        end = "\r" if self.tty and e < self.total else "\n"
        print(line, end=end, file=self.stream, flush=True)
