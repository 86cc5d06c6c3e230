"""Test accuracy of the BNN options and of the accuracy floors, with packed seeds, no MI.

Run from the repository root (one process, one thread; each case a few seconds to minutes):

    python bench/bench_accuracy.py [--only floors|options|mnist5k] [--seeds K] [--json PATH]

Three tables:

- ``options``: every BNN architecture option (bnn_norm x bnn_first x bnn_last) with the STE on
  tishby (the classic 10-7-5-4-3 widths) and digits (16-12-10-8), and swish_sign at each norm:
  the measurements behind ModelConfig's defaults;
- ``floors``: the accuracy floors of issue 14 at full length (the tests run shortened versions);
- ``mnist5k``: other widths considered for examples/mnist5k.yaml (the example's own are in
  ``floors``).

Each row trains K seeds (default 3; 5 for the floors) packed in one Trainer and reports the
test accuracy at the last epoch (mean, min over seeds), the best epoch's, and the final train
accuracy. The load average is printed with each row: other jobs may share the machine.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ibsweep.models.config import ModelConfig, TrainConfig  # noqa: E402
from ibsweep.models.datasets import load_dataset  # noqa: E402
from ibsweep.models.training import Trainer  # noqa: E402

TISHBY_WIDTHS = (10, 7, 5, 4, 3)
DIGITS_WIDTHS = (16, 12, 10, 8)
MNIST5K_WIDTHS = (128, 64, 10, 10)  # examples/mnist5k.yaml
# the training settings of the examples: paper.yaml (the defaults), digits.yaml, mnist5k.yaml
TISHBY_TRAIN = TrainConfig(epochs=1500)
DIGITS_TRAIN = TrainConfig(epochs=500, lr=3e-3, batch_size=32, schedule="cosine")
MNIST5K_TRAIN = TrainConfig(epochs=100, lr=3e-3, batch_size=64, schedule="cosine")


@dataclass(frozen=True)
class Case:
    """One row: a dataset, a model and its training settings."""

    table: str
    dataset: str
    model: ModelConfig
    train: TrainConfig

    @property
    def name(self) -> str:
        """A readable row name."""
        m, t = self.model, self.train
        bnn = f" {m.bnn_norm}, first {m.bnn_first}, last {m.bnn_last}" if m.kind == "bnn" else ""
        sched = f" {t.schedule}" if t.schedule != "constant" else ""
        return (
            f"{self.dataset} {m.kind}-{m.activation} {m.widths_label}{bnn}; "
            f"lr {t.lr:g}{sched}, batch {t.batch_size}, {t.epochs} epochs"
        )


def _bnn(activation: str, widths: tuple[int, ...], **kw) -> ModelConfig:
    return ModelConfig(kind="bnn", activation=activation, widths=widths, **kw)


def cases() -> list[Case]:
    """Every row of the three tables."""
    out = []
    options = list(
        itertools.product(("scale", "batchnorm"), ("binary", "real"), ("binary", "real"))
    )
    for dataset, widths, train in (
        ("tishby", TISHBY_WIDTHS, TISHBY_TRAIN),
        ("digits", DIGITS_WIDTHS, DIGITS_TRAIN),
    ):
        for norm, first, last in options:
            m = _bnn("ste", widths, bnn_norm=norm, bnn_first=first, bnn_last=last)
            out.append(Case("options", dataset, m, train))
        for norm in ("scale", "batchnorm"):
            out.append(Case("options", dataset, _bnn("swish_sign", widths, bnn_norm=norm), train))
    for act in ("ste", "approx_sign", "swish_sign"):
        out.append(Case("floors", "tishby", _bnn(act, TISHBY_WIDTHS), TISHBY_TRAIN))
    out.append(Case("floors", "tishby", ModelConfig(), TISHBY_TRAIN))
    for act in ("ste", "approx_sign"):
        out.append(Case("floors", "digits", _bnn(act, DIGITS_WIDTHS), DIGITS_TRAIN))
    binary = {"bnn_first": "binary", "bnn_last": "binary"}
    out.append(Case("floors", "digits", _bnn("ste", (64, 64, 32, 16), **binary), DIGITS_TRAIN))
    for act in ("ste", "approx_sign", "swish_sign"):
        out.append(Case("floors", "mnist5k", _bnn(act, MNIST5K_WIDTHS), MNIST5K_TRAIN))
    out.append(Case("floors", "mnist5k", ModelConfig(widths=MNIST5K_WIDTHS), MNIST5K_TRAIN))
    for widths in ((10, 10, 10), (12, 10, 10), (64, 32, 10, 10), (128, 10, 10)):
        for model in (_bnn("ste", widths), ModelConfig(widths=widths)):
            out.append(Case("mnist5k", "mnist5k", model, MNIST5K_TRAIN))
    return out


def measure(case: Case, seeds: list[int]) -> dict:
    """Train the case's seeds packed; accuracies at the last and the best epoch."""
    data = load_dataset(case.dataset)
    start = time.perf_counter()
    trainer = Trainer(case.model, case.train, data, seeds)
    best = np.zeros(len(seeds))
    last = None
    for record in trainer.run(measure=lambda _e: False):
        best = np.maximum(best, record.test_acc)
        last = record
    return {
        "table": case.table,
        "case": case.name,
        "seeds": len(seeds),
        "test_acc": float(last.test_acc.mean()),
        "test_acc_min": float(last.test_acc.min()),
        "best_test_acc": float(best.mean()),
        "train_acc": float(last.train_acc.mean()),
        "seconds": time.perf_counter() - start,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    """Run the chosen tables and print one Markdown row per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("options", "floors", "mnist5k"), action="append")
    parser.add_argument("--seeds", type=int, help="seeds per case (default 3, floors 5)")
    parser.add_argument("--match", help="only cases whose name contains this text")
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print("| table | case | seeds | test acc (min) | best test | train acc | s | load |")
    print("|---|---|---|---|---|---|---|---|")
    for case in cases():
        if args.only and case.table not in args.only:
            continue
        if args.match and args.match not in case.name:
            continue
        n = args.seeds or (5 if case.table == "floors" else 3)
        r = measure(case, list(range(n)))
        rows.append(r)
        print(
            f"| {r['table']} | {r['case']} | {n} | {r['test_acc']:.3f} ({r['test_acc_min']:.3f}) "
            f"| {r['best_test_acc']:.3f} | {r['train_acc']:.3f} | {r['seconds']:.0f} "
            f"| {r['load']:.1f} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
