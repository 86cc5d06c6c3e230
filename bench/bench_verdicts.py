"""Benchmark: the verdict side of an analysis on a synthetic sweep, in one process, no MLflow.

The stages analysis.sweep_analysis runs on a tidy series table: phase statistics with
reliability (run_phases), configuration verdicts with their reproducibility and summaries
(aggregate), claims, robustness, sensitivity (each threshold halved and doubled) and
generalisation. The table is shaped like bench_analysis.py's sweep: RUNS runs (4 models x 5
learning rates x 10 seeds), 4 layers, EPOCHS + 1 epochs, ESTIMATORS estimators per layer.

    python bench/bench_verdicts.py              # 200 runs x 1001 epochs x 1 estimator
    python bench/bench_verdicts.py --estimators 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from ibsweep.analysis.claims import claim_tests
from ibsweep.analysis.generalisation import generalisation_table
from ibsweep.analysis.phases import run_phases
from ibsweep.analysis.robustness import robustness_table
from ibsweep.analysis.sensitivity import sensitivity_table
from ibsweep.analysis.settings import AnalysisConfig
from ibsweep.analysis.statistics import aggregate

MODELS = [("dnn", "tanh"), ("dnn", "relu"), ("bnn", "ste"), ("bnn", "approx_sign")]
LRS = ["0.0004", "0.001", "0.002", "0.004", "0.008"]
COLS = ["model.kind", "model.activation", "train.lr"]


def _curve(u: np.ndarray, start: float, rise: float, centre: float, width: float) -> np.ndarray:
    return start + rise / (1 + np.exp(-(u - centre) / width))


def synthetic(runs: int, epochs: int, estimators: int, layers: int = 4) -> pd.DataFrame:
    """Planted fit/compression phases plus noise, as bench_analysis.py writes them."""
    rng = np.random.default_rng(0)
    steps = np.arange(epochs + 1)
    u = np.log10(np.maximum(steps, 1))
    frames = []
    for i in range(runs):
        kind, act = MODELS[(i // 10) % len(MODELS)]
        for e in range(estimators):
            for k in range(1, layers + 1):
                expand = 1.5 if kind == "dnn" else 0.0
                i_xt = _curve(u, 8 - k, expand, 1.5, 0.15) - _curve(u, 0, 2.0, 2.3, 0.2)
                frames.append(
                    pd.DataFrame(
                        {"run_id": f"r{i}", "seed": i % 10, "estimator": f"e{e}", "layer": k,
                         "n_layers": layers, "epoch": steps,
                         "i_xt": i_xt + rng.normal(0, 0.1, u.size),
                         "i_ty": _curve(u, 0.1, 0.8, 1.8, 0.2) + rng.normal(0, 0.01, u.size),
                         "grad_snr": np.nan, "ceiling": 12.0,
                         "train_acc": _curve(u, 0.5, 0.45, 1.8, 0.2), "test_acc": 0.9,
                         "model.kind": kind, "model.activation": act,
                         "train.lr": LRS[(i // 40) % len(LRS)]}
                    )
                )  # fmt: skip
    table = pd.concat(frames, ignore_index=True)
    text = ["run_id", "estimator", *COLS]  # categorical, as analysis.fetch hands them over
    return table.astype(dict.fromkeys(text, "category"))


def main() -> None:
    """Time each stage once and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--estimators", type=int, default=1)
    args = parser.parse_args()
    table = synthetic(args.runs, args.epochs, args.estimators)
    config = AnalysisConfig()
    times = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - start
        return out

    phases = timed("phase statistics and reliability", lambda: run_phases(table, COLS, config))
    verdicts = timed(
        "verdicts, reproducibility, summaries", lambda: aggregate(phases, COLS, config=config)
    )
    timed("claims", lambda: claim_tests(phases, verdicts, COLS, config))
    timed("robustness", lambda: robustness_table(verdicts, COLS))
    timed("sensitivity (12 variants)", lambda: sensitivity_table(table, phases, COLS, config))
    timed("generalisation", lambda: generalisation_table(phases, COLS, config))
    print(f"{len(phases)} trajectories ({args.runs} runs x {args.estimators} estimators x 4 "
          f"layers), {len(verdicts)} configuration verdicts")  # fmt: skip
    print("| stage | seconds |\n| --- | --- |")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
