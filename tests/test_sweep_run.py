"""Sweeps end to end on a real local Ray and real MLflow stores (SQLite and a server)."""

import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest

from tests.services import (
    assert_histories_exact,
    ibsweep,
    kill_tree,
    mlflow_server,
    sweep_runs,
    write_sweep,
)

pytestmark = pytest.mark.slow

SMALL = {
    "name": "small",
    "grid": {
        "kind": ["dnn", "bnn"],
        "activation": {"dnn": ["tanh"], "bnn": ["ste"]},
        "widths": [[10, 7, 5, 4, 3]],
        "dataset": ["tishby"],
        "seeds": 2,
    },
    "train": {"epochs": 12, "optimizer": "adam", "lr": 4.0e-4, "batch_size": 256},
    "mi": {"every": 3},
    "resources": {"cpu": 1},
}


def test_small_grid_into_sqlite(tmp_path):
    path = write_sweep(tmp_path, SMALL)
    proc = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert f"ibsweep ui --tracking-uri {uri}" in proc.stdout
    client, parents, children = sweep_runs(uri, "small")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.params["sweep.grid_size"] == "4"
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "sweep")] == [
        "sweep/sweep.yaml"
    ]
    assert parent.data.metrics["runs_finished"] == 4
    names = sorted(r.info.run_name for r in children)
    assert names == [
        "bnn-ste-10x7x5x4x3-tishby-s0",
        "bnn-ste-10x7x5x4x3-tishby-s1",
        "dnn-tanh-10x7x5x4x3-tishby-s0",
        "dnn-tanh-10x7x5x4x3-tishby-s1",
    ]
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["ibsweep.sweep"] == "small"
        assert run.data.tags["ibsweep.version"] == "0.1.0"
        p = run.data.params
        assert p["model.widths"] == "10x7x5x4x3" and p["data.name"] == "tishby"
        assert p["train.epochs"] == "12" and p["train.lr"] == "0.0004"
        assert p["train.batch_size"] == "256"
        assert p["seed"] == run.info.run_name[-1]
        assert p["mi.layer1.estimator"] == (
            "exact()" if p["model.kind"] == "bnn" else "binning(n_bins=30,range=fixed,lo=-1,hi=1)"
        )
        assert_histories_exact(client, run, [0, 3, 6, 9, 12], 6)
        for k in range(1, 7):
            assert 0 <= run.data.metrics[f"I_TY/layer{k}"] <= run.data.metrics[f"I_XT/layer{k}"]
    filtered = client.search_runs([parent.info.experiment_id], "params.`model.activation` = 'ste'")
    assert len(filtered) == 2
    again = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path)
    assert again.returncode == 0 and "already complete" in again.stderr


def test_training_settings_as_grid_axes_end_to_end(tmp_path):
    """Each configuration trains with its own settings and MI schedule; params name them."""
    spec = {
        "name": "axes",
        "grid": {"kind": ["dnn"], "activation": {"dnn": ["tanh"]}, "seeds": 1},
        "train": {"lr": [1.0e-3, 3.0e-3], "epochs": [4, 6], "schedule": "exponential"},
        "mi": {"every": 2},
        "seeds_per_trial": 1,
    }
    path = write_sweep(tmp_path, spec)
    plan = ibsweep("plan", str(path), cwd=tmp_path)
    assert "training axes: lr = 0.001, 0.003; epochs = 4, 6" in plan.stdout
    proc = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "axes")
    assert parents[0].data.params["sweep.epochs"] == "4,6"
    by_name = {r.info.run_name: r for r in children}
    assert sorted(by_name) == [
        f"dnn-tanh-10x7x5x4x3-tishby-lr{lr}-e{e}-s0" for lr in ("0.001", "0.003") for e in (4, 6)
    ]
    for name, run in by_name.items():
        lr, epochs = name.split("-lr")[1].split("-s0")[0].split("-e")
        p = run.data.params
        assert p["train.lr"] == lr and p["train.epochs"] == epochs
        assert p["train.schedule"] == "exponential" and run.info.status == "FINISHED"
        assert_histories_exact(client, run, list(range(0, int(epochs) + 1, 2)), 6)
    losses = {n: r.data.metrics["loss"] for n, r in by_name.items()}
    assert len(set(losses.values())) == 4  # four different trainings of the same seed
    again = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path)
    assert again.returncode == 0 and "already complete" in again.stderr


def _wait_for(predicate, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_resume_after_sigkill_is_exactly_once(tmp_path):
    spec = {
        **SMALL,
        "name": "resume",
        "grid": {**SMALL["grid"], "kind": ["dnn"], "activation": {"dnn": ["tanh", "relu"]}},
        "train": {**SMALL["train"], "epochs": 500},
        "mi": {"every": 1},
    }
    path = write_sweep(tmp_path, spec)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver = subprocess.Popen(
        [sys.executable, "-m", "ibsweep.sweep.cli", "run", str(path), "--no-analyze"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    family = []

    def some_done_some_running():
        family[:] = [psutil.Process(driver.pid), *psutil.Process(driver.pid).children(True)]
        try:
            _, _, children = sweep_runs(uri, "resume")
        except Exception:
            return False
        statuses = [r.info.status for r in children]
        started = [r for r in children if r.info.status == "RUNNING" and r.data.metrics]
        return statuses.count("FINISHED") >= 1 and started

    try:
        assert _wait_for(some_done_some_running, 300, driver), "sweep never seen mid-way"
        _, _, before = sweep_runs(uri, "resume")
        finished_before = {
            r.info.run_id: r.info.end_time for r in before if r.info.status == "FINISHED"
        }
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        for p in family:  # the Ray processes this driver started, orphaned by SIGKILL
            if p.is_running():
                kill_tree(p)
    second = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming sweep 'resume'" in second.stderr
    client, parents, children = sweep_runs(uri, "resume")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4
    assert sorted(r.info.run_name for r in children) == sorted({r.info.run_name for r in children})
    for run in children:
        assert run.info.status == "FINISHED"
        assert_histories_exact(client, run, list(range(501)), 6)
        if run.info.run_id in finished_before:  # not rerun
            assert run.info.end_time == finished_before[run.info.run_id]


def test_sweep_against_a_real_tracking_server_with_a_diverging_trial(tmp_path):
    spec = {
        "name": "served",
        "grid": {"kind": ["dnn"], "activation": {"dnn": ["tanh", "linear"]}, "seeds": 1,
                 "widths": [[50, 50, 50]]},
        "train": {"epochs": 15, "optimizer": "sgd", "lr": 1.0e6, "batch_size": 256},
        "mi": {"every": 5},
    }  # fmt: skip
    path = write_sweep(tmp_path, spec)
    with mlflow_server(tmp_path) as uri:
        proc = ibsweep("run", str(path), "--tracking-uri", uri, "--no-analyze", cwd=tmp_path)
        client, parents, children = sweep_runs(uri, "served")
        by_name = {r.info.run_name: r for r in children}
        assert proc.returncode == 1, proc.stderr[-3000:]
        diverged = by_name["dnn-linear-50x50x50-tishby-s0"]
        assert diverged.info.status == "FAILED"
        assert "diverged at epoch" in diverged.data.tags["ibsweep.failure"]
        assert "FAILED dnn-linear-50x50x50-tishby-s0: diverged at epoch" in proc.stdout
        fine = by_name["dnn-tanh-50x50x50-tishby-s0"]
        assert fine.info.status == "FINISHED"
        assert_histories_exact(client, fine, [0, 5, 10, 15], 4)
        assert parents[0].info.status == "FINISHED"
        assert parents[0].data.metrics["runs_failed"] == 1
        assert client.list_artifacts(parents[0].info.run_id, "sweep")
        # a finished run stores its series as one file; the analysis reads that (and the
        # history endpoint for the failed run, which has none)
        assert fine.data.tags["ibsweep.series"] == str(3 * 4 + 4 * 2 * 4 + 4 * 3)
        analysis = ibsweep("analyze", "served", "--tracking-uri", uri, cwd=tmp_path)
        assert analysis.returncode == 0, analysis.stderr[-3000:]
        series = pd.read_parquet(tmp_path / "ibsweep-results" / "served" / "series.parquet")
        rows = series[series["run_id"] == fine.info.run_id]
        assert len(rows) == 4 * 4 and rows["i_xt"].notna().all()


def test_optuna_search_of_a_few_samples(tmp_path):
    spec = {
        "name": "tuned",
        "grid": {"kind": ["dnn"], "activation": {"dnn": ["tanh"]}, "seeds": [4]},
        "train": {"epochs": 10},
        "mi": {"every": 5},
        "search": {
            "algorithm": "optuna",
            "metric": "test_acc",
            "mode": "max",
            "num_samples": 3,
            "max_concurrent": 2,
            "space": {
                "train.lr": {"loguniform": [1.0e-4, 1.0e-2]},
                "train.batch_size": {"choice": [64, 256]},
            },
        },
    }
    path = write_sweep(tmp_path, spec)
    proc = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best: train.lr=" in proc.stdout
    client, _parents, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "tuned")
    assert len(children) == 3
    lrs = {float(r.data.params["train.lr"]) for r in children}
    assert len(lrs) == 3 and all(1e-4 <= lr <= 1e-2 for lr in lrs)
    assert {r.data.params["train.batch_size"] for r in children} <= {"64", "256"}
    for run in children:
        assert run.data.params["seed"] == "4" and run.info.status == "FINISHED"
        assert_histories_exact(client, run, [0, 5, 10], 6)


def test_ui_serves_the_store_on_loopback(tmp_path):
    from mlflow.tracking import MlflowClient

    from tests.services import free_port

    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment("seen")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibsweep.sweep.cli", "ui", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = MlflowClient(f"http://127.0.0.1:{port}")

        def serving():
            try:
                return client.get_experiment_by_name("seen") is not None
            except Exception:
                return False

        assert _wait_for(serving, 120, proc), "ibsweep ui did not serve the store"
        listening = {
            c.laddr.ip
            for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
            for c in p.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        assert listening == {"127.0.0.1"}
    finally:
        kill_tree(proc, signal.SIGTERM)
