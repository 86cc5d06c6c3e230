"""Benchmark: many trials logging every epoch to one MLflow tracking server at once.

A real ``mlflow server`` on 127.0.0.1 (its own SQLite store, ``--workers W``) and a sweep of T
trials on local Ray (``resources: {cpu: CPUS / T}``, so all train at once), each one seed of
the classic tanh network on ``tishby`` for E epochs with every metric at every epoch. Prints the
sweep's wall time, the points the store holds against the points the trials wrote (none may be
lost), the points per second over the sweep, and whether the server logged a lock or an error.
The test suite checks the same with four trials (tests/test_faults.py); this is the load.

    python bench/bench_tracking_load.py                    # 16 trials, 50 epochs, 4 workers
    python bench/bench_tracking_load.py --trials 8 --workers 2
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mlflow_server import start_server, stop_server

from ibsweep.analysis.run_schema import run_metric_keys

N_LAYERS = 6  # widths 10,7,5,4,3 and the output layer; grad_snr from epoch 1


def main() -> None:
    """Run the benchmark once and print its numbers as a table row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="the server's worker processes")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="ibs-load-", dir="/tmp") as tmp:
        folder = Path(tmp)
        server, uri = start_server(
            folder / "server.db", folder / "artifacts", args.workers, folder / "server.log",
            {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )  # fmt: skip
        try:
            spec = {
                "name": "load",
                # one trial per seed
                "grid": {"kind": ["dnn"], "activation": {"dnn": ["tanh"]}, "seeds": args.trials},
                "train": {"epochs": args.epochs},
                "mi": {"every": 1},
                "resources": {"cpu": cpus / args.trials},
            }  # fmt: skip
            (folder / "sweep.yaml").write_text(yaml.safe_dump(spec))
            start = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "ibsweep.sweep.cli", "run", "sweep.yaml",
                 "--tracking-uri", uri, "--no-analyze"],
                cwd=folder, capture_output=True, text=True,
            )  # fmt: skip
            wall = time.monotonic() - start
        finally:
            stop_server(server)
        if done.returncode != 0:
            raise SystemExit(f"the sweep failed: {done.stderr[-3000:]}")
        runs = args.trials
        keys = run_metric_keys(N_LAYERS)
        per_run = (args.epochs + 1) * (len(keys) - N_LAYERS) + args.epochs * N_LAYERS
        with sqlite3.connect(folder / "server.db") as db:
            marks = ",".join("?" * len(keys))  # the runs' own keys (not the parent's counts)
            query = f"SELECT COUNT(*) FROM metrics WHERE key IN ({marks})"
            stored = db.execute(query, keys).fetchone()[0]
        log = (folder / "server.log").read_text().lower()
        problems = [p for p in ("database is locked", "traceback", "internal server error")
                    if p in log]  # fmt: skip
    print("| trials | epochs | server workers | sweep wall s | points stored / written "
          "| points/s | server problems |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print(f"| {runs} | {args.epochs} | {args.workers} | {wall:.1f} | {stored} / {runs * per_run} "
          f"| {runs * per_run / wall:.0f} | {', '.join(problems) or 'none'} |")  # fmt: skip


if __name__ == "__main__":
    main()
