"""Benchmark: analysing a large sweep from a local MLflow tracking server, then from its cache.

Writes a synthetic sweep (planted fit/compression phases plus noise) of RUNS runs x EPOCHS
epochs x 15 series (loss, train_acc, test_acc and I_XT, I_TY, grad_snr of 4 layers) into a
SQLite store, starts a real `mlflow server` on 127.0.0.1 over it, and times
`analysis.sweep_analysis.analyze_sweep` through HTTP: a cold analysis reading the histories
through the server's bulk-history endpoint; then, once every run has its series artifact (as
trials store them when they finish against a server), a cold analysis reading those, and a
second one served by the cache. Also times a cold analysis straight from the SQLite file.

    python bench/bench_analysis.py            # 200 runs x 1000 epochs (3.0 M points)
    python bench/bench_analysis.py --quick    # 20 runs x 300 epochs
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mlflow_server import start_server, stop_server

from ibsweep.analysis.series_artifact import store_series_table
from ibsweep.analysis.sweep_analysis import analyze_sweep

LAYERS = 4
MODELS = [("dnn", "tanh"), ("dnn", "relu"), ("bnn", "ste"), ("bnn", "approx_sign")]


def _curve(u: np.ndarray, start: float, rise: float, centre: float, width: float) -> np.ndarray:
    return start + rise / (1 + np.exp(-(u - centre) / width))


def write_sweep(uri: str, runs: int, epochs: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A parent run and ``runs`` child runs with planted phases, via log_batch.

    Returns each run's series as (key, step, value), for the series artifacts that finished
    trials store (written later, through the server, as trials do).
    """
    rng = np.random.default_rng(seed)
    client = MlflowClient(uri)
    exp = client.create_experiment("bench", artifact_location="mlflow-artifacts:/bench")
    tables = {}
    parent = client.create_run(exp, tags={"ibsweep.role": "parent"}).info.run_id
    steps = np.arange(epochs + 1)
    u = np.log10(np.maximum(steps, 1))
    lrs = ["0.0004", "0.001", "0.002", "0.004", "0.008"]
    per_config = 10
    for i in range(runs):
        kind, act = MODELS[(i // per_config) % len(MODELS)]
        lr = lrs[(i // (per_config * len(MODELS))) % len(lrs)]
        run = client.create_run(
            exp, tags={"mlflow.parentRunId": parent, "ibsweep.sweep": "bench"}
        ).info.run_id
        params = {
            "model.kind": kind, "model.activation": act, "model.widths": "10x7x5x4",
            "model.n_layers": str(LAYERS), "data.name": "tishby", "mi.n_samples": "4096",
            "train.epochs": str(epochs), "train.lr": lr, "seed": str(i % per_config),
        }  # fmt: skip
        client.log_batch(run, params=[Param(k, v) for k, v in params.items()])
        series = {
            "loss": 0.7 - _curve(u, 0, 0.6, 1.8, 0.2) + rng.normal(0, 0.01, u.size),
            "train_acc": _curve(u, 0.5, 0.45, 1.8, 0.2) + rng.normal(0, 0.005, u.size),
            "test_acc": _curve(u, 0.5, 0.4, 1.8, 0.2) + rng.normal(0, 0.005, u.size),
        }
        for k in range(1, LAYERS + 1):
            expand = 1.5 if kind == "dnn" else 0.0
            i_xt = _curve(u, 8 - k, expand, 1.5, 0.15) - _curve(u, 0, 2.0, 2.3, 0.2)
            series[f"I_XT/layer{k}"] = i_xt + rng.normal(0, 0.1, u.size)
            series[f"I_TY/layer{k}"] = _curve(u, 0.1, 0.8, 1.8, 0.2) + rng.normal(0, 0.01, u.size)
            series[f"grad_snr/layer{k}"] = 10 ** (1 - _curve(u, 0, 1.5, 2.2, 0.2))
        metrics = [
            Metric(key, float(values[s]), 0, int(s))
            for key, values in series.items()
            for s in steps
        ]
        for j in range(0, len(metrics), 1000):
            client.log_batch(run, metrics=metrics[j : j + 1000])
        tables[run] = pd.DataFrame(
            [(m.key, m.step, m.value) for m in metrics], columns=["key", "step", "value"]
        )
    client.set_terminated(parent)
    for r in client.search_runs([exp], max_results=10000):
        if r.info.run_id != parent:
            client.set_terminated(r.info.run_id)
    return tables


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--epochs", type=int)
    args = parser.parse_args()
    runs = args.runs or (20 if args.quick else 200)
    epochs = args.epochs or (300 if args.quick else 1000)
    folder = Path(tempfile.mkdtemp(prefix="ibsweep-bench-analysis-"))
    db = folder / "store.db"
    points = runs * (epochs + 1) * (3 + 3 * LAYERS)
    try:
        start = time.perf_counter()
        tables = write_sweep(f"sqlite:///{db}", runs, epochs)
        print(f"wrote {runs} runs x {epochs + 1} epochs x {3 + 3 * LAYERS} series = "
              f"{points / 1e6:.2f} M points in {time.perf_counter() - start:.0f} s")  # fmt: skip
        proc, uri = start_server(db, folder / "artifacts", workers=2)
        try:
            bulk = _timed(
                lambda: analyze_sweep(uri, "bench", folder / "out-bulk", log_to_mlflow=True)
            )
            client = MlflowClient(uri)
            for run_id, table in tables.items():  # what finished trials store over HTTP
                store_series_table(client, run_id, table)
            cold = _timed(
                lambda: analyze_sweep(uri, "bench", folder / "out-http", log_to_mlflow=True)
            )
            warm = _timed(
                lambda: analyze_sweep(uri, "bench", folder / "out-http", log_to_mlflow=True)
            )
            # reports go to the parent run's artifacts, which the server holds
            direct = _timed(
                lambda: analyze_sweep(
                    f"sqlite:///{db}", "bench", folder / "out-sql", log_to_mlflow=True
                )
            )
        finally:
            stop_server(proc)
        print("| analysis | seconds |")
        print("| --- | --- |")
        print(f"| cold, tracking server, bulk-history endpoint only | {bulk:.1f} |")
        print(f"| cold, tracking server, series artifacts | {cold:.1f} |")
        print(f"| cached re-analysis, tracking server | {warm:.2f} |")
        print(f"| cold, SQLite file read directly | {direct:.1f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
