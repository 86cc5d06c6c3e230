"""Sweeps end to end on a real local Ray and real MLflow stores (SQLite and a server)."""

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from ibsweep.analysis.fetch import fetch_series
from ibsweep.sweep.tuning.trainable import CHECKPOINT_PREFIX
from tests.services import (
    Holds,
    assert_histories_exact,
    ibsweep,
    ibsweep_in_process,
    kill_tree,
    sweep_runs,
    tune_reports,
    wait_for,
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
    "max_concurrent_trials": 1,  # the two trials in turn, in one worker process
}


def test_small_grid_into_sqlite(tmp_path, capsys, monkeypatch):
    path = write_sweep(tmp_path, SMALL)
    scratch = Path(tempfile.mkdtemp(prefix="ib-", dir="/tmp"))  # short: Ray's sockets go there
    try:
        proc = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path, env={"TMPDIR": str(scratch)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        # every checkpoint was written from a temporary folder that is gone again
        tune_dir = tmp_path / ".ibsweep" / "tune"
        assert list(tune_dir.rglob("checkpoint_*/trainer.pt"))
        assert len(list(tune_dir.rglob("result.json"))) == len(list(tune_dir.rglob("progress.csv")))
        assert list(tune_dir.rglob("result.json")) and not list(tune_dir.rglob("events.out.*"))
        assert not list(scratch.rglob(f"{CHECKPOINT_PREFIX}*"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
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
    monkeypatch.chdir(tmp_path)
    code, _, err = ibsweep_in_process(capsys, "run", str(path), "--no-analyze")
    assert code == 0 and "already complete" in err


PANEL = {
    "bin30": {"name": "binning", "n_bins": 30},
    "sign": {"name": "binning", "n_bins": 2},
    "exact": {"name": "exact"},
}
SERIES_COLUMNS = [
    "run_id", "seed", "estimator", "layer", "epoch", "i_xt", "i_ty", "i_ty_perm", "n_states",
    "layer_ceiling", "grad_snr", "loss", "train_acc", "test_acc", "n_layers", "ceiling",
]  # fmt: skip


def test_a_panel_is_measured_every_scheduled_epoch_exactly_once(tmp_path, shared_ray):
    spec = {
        **SMALL,
        "name": "panel",
        "grid": {**SMALL["grid"], "seeds": 2},
        "seeds_per_trial": 2,
        "train": {**SMALL["train"], "epochs": 6},
        "mi": {"every": 2, "estimators": PANEL},
    }
    path = write_sweep(tmp_path, spec)
    proc = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path, env=shared_ray.driver_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, _, children = sweep_runs(uri, "panel")
    assert len(children) == 4
    schedule = [0, 2, 4, 6]
    for run in children:
        p = run.data.params
        assert p["mi.estimators"] == "bin30,sign,exact"
        bnn = p["model.kind"] == "bnn"
        assert p["mi.estimators.sign.layer1"] == "binning(n_bins=2,range=fixed,lo=-1,hi=1)"
        assert p["mi.estimators.bin30.layer6"] == "binning(n_bins=30,range=fixed,lo=0,hi=1)"
        assert p["mi.estimators.exact.layer6.max_bits"] == ("3" if bnn else "inf")
        assert "mi.layer1.estimator" not in p and "I_XT/layer1" not in run.data.metrics
        histories = assert_histories_exact(client, run, schedule, 6)  # every member's keys
        assert "I_TY_perm/sign/layer6" in histories and "states/exact/layer1" in histories
    series = fetch_series(uri, "panel")
    table = series.table
    assert list(table.columns[: len(SERIES_COLUMNS)]) == SERIES_COLUMNS
    assert not any(
        c.startswith("mi.estimators") or c.startswith("mi.layer") for c in series.config_cols
    )
    assert "model.kind" in series.config_cols and "seed" not in series.config_cols
    assert len(table) == 4 * 3 * 6 * len(schedule)  # runs x estimators x layers x epochs
    assert set(table["estimator"].astype(str)) == set(PANEL)
    assert not table.duplicated(["run_id", "estimator", "layer", "epoch"]).any()
    assert (table["n_states"] >= 1).all() and (table["n_states"] % 1 == 0).all()
    assert (table["i_xt"] <= table["layer_ceiling"] + 1e-9).all()
    assert (table["i_ty_perm"] <= table["i_xt"] + 1e-9).all()
    assert (table["i_ty_perm"] >= 0).all()
    bins30 = 2 * np.log2(30)  # a 2-class softmax binned at 30 levels
    ceilings = {  # min(log2 4096, width x log2 levels, the layer's own states)
        ("dnn", "bin30"): [12, 12, 12, 12, 12, bins30],
        ("dnn", "sign"): [10, 7, 5, 4, 3, 2],
        ("dnn", "exact"): [12] * 6,
        ("bnn", "bin30"): [10, 7, 5, 4, 3, 3],  # binary: 1 bit per unit; output: 2^3 states
        ("bnn", "sign"): [10, 7, 5, 4, 3, 2],
        ("bnn", "exact"): [10, 7, 5, 4, 3, 3],
    }
    expected = [
        ceilings[(k, e)][layer - 1]
        for k, e, layer in zip(
            table["model.kind"].astype(str),
            table["estimator"].astype(str),
            table["layer"],
            strict=True,
        )
    ]
    np.testing.assert_allclose(table["layer_ceiling"], expected)
    np.testing.assert_allclose(table["ceiling"], 12.0)
    shared = table.pivot_table(
        index=["run_id", "layer", "epoch"], columns="estimator", values="grad_snr", observed=True
    )
    np.testing.assert_array_equal(shared["sign"].to_numpy(), shared["exact"].to_numpy())
    at_zero = table[table["epoch"] == 0]
    assert len(at_zero) == 4 * 3 * 6 and at_zero["grad_snr"].isna().all()


def test_training_settings_as_grid_axes_end_to_end(tmp_path, shared_ray, capsys, monkeypatch):
    """Each configuration trains with its own settings and MI schedule; params name them."""
    spec = {
        "name": "axes",
        "grid": {"kind": ["dnn"], "activation": {"dnn": ["tanh"]}, "seeds": 1},
        "train": {"lr": [1.0e-3, 3.0e-3], "epochs": [4, 6], "schedule": "exponential"},
        "mi": {"every": 2},
        "seeds_per_trial": 1,
        "max_concurrent_trials": 1,
    }
    path = write_sweep(tmp_path, spec)
    plan = ibsweep("plan", str(path), cwd=tmp_path)
    assert "training axes: lr = 0.001, 0.003; epochs = 4, 6" in plan.stdout
    assert "at most 1 trial at once (max_concurrent_trials)" in plan.stdout
    proc = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path, env=shared_ray.driver_env)
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
    # four trials, one at a time, in one worker process: it trained each trial in turn
    reports = tune_reports(tmp_path / ".ibsweep" / "tune")
    assert len({r["trial_id"] for r in reports}) == 4 and len({r["pid"] for r in reports}) == 1
    monkeypatch.chdir(tmp_path)
    code, _, err = ibsweep_in_process(capsys, "run", str(path), "--no-analyze")
    assert code == 0 and "already complete" in err


def test_resume_after_sigkill_is_exactly_once(tmp_path, shared_ray):
    """The driver killed while one run has finished and the other is mid-way."""
    spec = {
        **SMALL,
        "name": "resume",
        "grid": {**SMALL["grid"], "kind": ["dnn"], "activation": {"dnn": ["tanh", "relu"]}},
        "train": {**SMALL["train"], "epochs": 60},
        "mi": {"every": 1},
        "seeds_per_trial": 2,  # two trials in turn: tanh runs to the end, then relu holds
    }
    path = write_sweep(tmp_path, spec)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    holds = Holds(tmp_path / "holds")
    driver = subprocess.Popen(
        [sys.executable, "-m", "ibsweep.sweep.cli", "run", str(path), "--no-analyze"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**shared_ray.driver_env, **holds.env(epochs=[30], labels=["dnn-relu"])},
    )

    def one_finished_one_held():
        try:
            _, _, children = sweep_runs(uri, "resume")
        except Exception:
            return False
        finished = [r for r in children if r.info.status == "FINISHED"]
        return len(finished) == 2 and holds.held(30) == ["dnn-relu-10x7x5x4x3-tishby-s0_1"]

    try:
        assert wait_for(one_finished_one_held, 300, driver), "sweep never seen mid-way"
        _, _, before = sweep_runs(uri, "resume")
        finished_before = {
            r.info.run_id: r.info.end_time for r in before if r.info.status == "FINISHED"
        }
    finally:
        driver.send_signal(signal.SIGKILL)  # Ray ends the killed driver's trials with it
        driver.wait(30)
    second = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path, env=shared_ray.driver_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming sweep 'resume'" in second.stderr
    client, parents, children = sweep_runs(uri, "resume")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4
    assert sorted(r.info.run_name for r in children) == sorted({r.info.run_name for r in children})
    for run in children:
        assert run.info.status == "FINISHED"
        assert_histories_exact(client, run, list(range(61)), 6)
        if run.info.run_id in finished_before:  # not rerun
            assert run.info.end_time == finished_before[run.info.run_id]


def test_sweep_against_a_real_tracking_server_with_a_diverging_trial(
    tmp_path, shared_ray, shared_mlflow, capsys, monkeypatch
):
    spec = {
        "name": "served",
        "grid": {"kind": ["dnn"], "activation": {"dnn": ["tanh", "linear"]}, "seeds": 1,
                 "widths": [[50, 50, 50]]},
        "train": {"epochs": 15, "optimizer": "sgd", "lr": 1.0e6, "batch_size": 256},
        "mi": {"every": 5},
        "max_concurrent_trials": 1,
    }  # fmt: skip
    path = write_sweep(tmp_path, spec)
    uri = shared_mlflow.uri
    proc = ibsweep(
        "run", str(path), "--tracking-uri", uri, "--no-analyze",
        cwd=tmp_path, env=shared_ray.driver_env,
    )  # fmt: skip
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
    # epoch metrics, 4 MI families x 4 layers at 4 epochs, grad SNR of 4 layers at 3
    assert fine.data.tags["ibsweep.series"] == str(3 * 4 + 4 * 4 * 4 + 4 * 3)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=f"run {diverged.info.run_id} .* needs at least 3 epochs"):
        code, _, err = ibsweep_in_process(capsys, "analyze", "served", "--tracking-uri", uri)
    assert code == 0, err[-3000:]
    series = pd.read_parquet(tmp_path / "ibsweep-results" / "served" / "series.parquet")
    rows = series[series["run_id"] == fine.info.run_id]
    assert len(rows) == 4 * 4 and rows["i_xt"].notna().all()


def test_optuna_search_of_a_few_samples(tmp_path, shared_ray):
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
            "max_concurrent": 1,
            "space": {
                "train.lr": {"loguniform": [1.0e-4, 1.0e-2]},
                "train.batch_size": {"choice": [64, 256]},
            },
        },
    }
    path = write_sweep(tmp_path, spec)
    proc = ibsweep("run", str(path), "--no-analyze", cwd=tmp_path, env=shared_ray.driver_env)
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

        assert wait_for(serving, 120, proc), "ibsweep ui did not serve the store"
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
        listening = {
            c.laddr.ip
            for p in family
            for c in p.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        assert listening == {"127.0.0.1"}
        # one server worker by default, and no GenAI job runner (nor its huey consumers)
        commands = [" ".join(p.cmdline()) for p in family]
        assert not [c for c in commands if "mlflow.server.jobs" in c or "huey" in c], commands
    finally:
        kill_tree(proc, signal.SIGTERM)
