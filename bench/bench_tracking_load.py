"""Benchmark: many trials logging every epoch to one MLflow tracking server at once.

A real ``mlflow server`` on 127.0.0.1 (its own SQLite store, ``--workers W``) and a sweep of T
trials on local Ray (``resources: {cpu: CPUS / T}``, so all train at once), each one seed of
the classic network on ``tishby`` for E epochs with every metric at every epoch. Prints the
sweep's wall time, the points the store holds against the points the trials wrote (none may be
lost), the points per second over the sweep, and whether the server logged a lock or an error.
The test suite checks the same with four trials (tests/test_faults.py); this is the load.

    python bench/bench_tracking_load.py                    # 16 trials, 50 epochs, 4 workers
    python bench/bench_tracking_load.py --trials 8 --workers 2
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from ibsweep.analysis.run_schema import run_metric_keys

N_LAYERS = 6  # widths 10,7,5,4,3 and the output layer; grad_snr from epoch 1
ACTIVATIONS = ["tanh", "relu", "sigmoid", "hardtanh"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(folder: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(folder / "server.log", "w")  # noqa: SIM115 - the server holds it
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return proc, uri
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(
        f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}"
    )


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
        server, uri = _start_server(folder, args.workers)
        try:
            spec = {
                "name": "load",
                "grid": {"kind": ["dnn"], "activation": {"dnn": ACTIVATIONS},
                         "seeds": -(-args.trials // len(ACTIVATIONS))},
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
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
        if done.returncode != 0:
            raise SystemExit(f"the sweep failed: {done.stderr[-3000:]}")
        runs = spec["grid"]["seeds"] * len(ACTIVATIONS)
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
