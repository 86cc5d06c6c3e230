"""Real components for tests: the ibsweep CLI as a process, an MLflow server on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import yaml
from mlflow.tracking import MlflowClient


def write_sweep(folder: Path, spec: dict, name: str = "sweep.yaml") -> Path:
    """Write a sweep file."""
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def ibsweep(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None):
    """Run the ibsweep command line in its own process; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(proc: psutil.Process | subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to a process we started and to every process it started."""
    root = psutil.Process(proc.pid)
    family = [root, *root.children(recursive=True)]
    for p in family:
        with suppress(psutil.NoSuchProcess):
            p.send_signal(sig)
    psutil.wait_procs(family, timeout=30)


@contextmanager
def mlflow_server(folder: Path):
    """A real ``mlflow server`` on a free loopback port, stopped (with its workers) at exit."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = open(folder / "mlflow-server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "mlflow-server.log").read_text()[-2000:]
                raise RuntimeError(f"mlflow server did not start: {tail}")
            time.sleep(0.5)
        yield uri
    finally:
        kill_tree(proc, signal.SIGTERM)
        log.close()


def sweep_runs(uri: str, name: str):
    """The parent run(s) and the child runs of a sweep's experiment."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=10000)
    parents = [r for r in runs if r.data.tags.get("ibsweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("ibsweep.role") != "parent"]
    return client, parents, children


def assert_histories_exact(client: MlflowClient, run, schedule: list[int], n_layers: int) -> None:
    """Every metric of a finished run has exactly one value at each scheduled epoch."""
    keys = ["loss", "train_acc", "test_acc"]
    keys += [f"{m}/layer{k}" for k in range(1, n_layers + 1) for m in ("I_XT", "I_TY")]
    for key in keys:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert steps == schedule, f"{run.info.run_name} {key}: steps {steps} != {schedule}"
    for k in range(1, n_layers + 1):
        steps = sorted(
            m.step for m in client.get_metric_history(run.info.run_id, f"grad_snr/layer{k}")
        )
        assert steps == [s for s in schedule if s > 0], f"grad_snr/layer{k}: {steps}"
