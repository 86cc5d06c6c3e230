"""Faults clusters have, survived with every result kept: the tracking server out of reach for
a while or for good, and many trials logging to one server at once (a node lost mid-sweep is
in test_cluster, on its two-node cluster). The outages cut a link (``services.Link``) between
the sweep and the shared MLflow server: the trials see what a stopped server gives them."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibsweep.sweep.tracking.spool import Spool
from tests.services import (
    Holds,
    Link,
    assert_histories_exact,
    kill_tree,
    sweep_runs,
    write_sweep,
)

pytestmark = pytest.mark.slow

N_LAYERS = 6  # widths 10,7,5,4,3 and the output layer


def _spec(name: str, epochs: int, every: int, activations=("tanh", "relu"), **extra) -> dict:
    return {
        "name": name,
        "grid": {"kind": ["dnn"], "activation": {"dnn": list(activations)}, "seeds": 1},
        "train": {"epochs": epochs},
        "mi": {"every": every},
        "resources": {"cpu": 1},
        **extra,
    }


def _driver(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """``ibsweep`` as a background process; its output goes to cwd/driver.log."""
    log = open(cwd / "driver.log", "w")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(
        [sys.executable, "-m", "ibsweep.sweep.cli", *args],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _run(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 600):
    """``ibsweep`` to the end: (exit code, output). Ends what it started, also on timeout."""
    driver = _driver(args, cwd, env)
    try:
        driver.wait(timeout)
    finally:
        _stop(driver)
    return driver.returncode, (cwd / "driver.log").read_text()


def _stop(driver: subprocess.Popen) -> None:
    """End a driver we started and everything it started (its local Ray), if still running."""
    if driver.poll() is None:
        kill_tree(driver)


def test_tracking_server_unreachable_for_a_while_trials_go_on_and_no_point_is_lost(
    tmp_path, shared_ray, shared_mlflow
):
    spec = _spec("outage", 120, 5, activations=("tanh",), tracking={"retry_s": 600})
    spec["grid"]["seeds"], spec["seeds_per_trial"] = 2, 2  # two runs in one trial
    path = write_sweep(tmp_path, spec)
    storage = tmp_path / ".ibsweep" / "tune"
    holds = Holds(tmp_path / "holds")
    link = Link(shared_mlflow.port)
    uri = link.restore()
    env = {**shared_ray.driver_env, **holds.env(epochs=[10], reached=[100])}
    driver = _driver(["run", str(path), "--tracking-uri", uri, "--no-analyze"], tmp_path, env)
    try:
        assert holds.wait(1, 10, 300, driver), (tmp_path / "driver.log").read_text()[-3000:]
        down_ms = int(time.time() * 1000)
        link.cut()
        holds.release(10)
        # The trial trains on to epoch 100 while MLflow is out of reach: training goes on.
        assert holds.wait(1, 100, 300, driver), (tmp_path / "driver.log").read_text()[-3000:]
        holds.release(100)
        up_ms = int(time.time() * 1000)
        link.restore()
        driver.wait(600)
        assert driver.returncode == 0, (tmp_path / "driver.log").read_text()[-3000:]
        client, parents, children = sweep_runs(uri, "outage")
        assert parents[0].info.status == "FINISHED" and len(children) == 2
        for run in children:
            assert run.info.status == "FINISHED"
            histories = assert_histories_exact(client, run, list(range(0, 121, 5)), N_LAYERS)
            during = {m.step for m in histories["loss"] if down_ms < m.timestamp < up_ms}
            assert set(range(15, 101, 5)) <= during, "points of the outage were lost"
    finally:
        _stop(driver)
        link.cut()
    assert not list((storage / "spool").rglob("*.jsonl"))  # nothing had to be spooled


def test_tracking_server_gone_for_good_points_spooled_then_delivered_by_run(
    tmp_path, shared_ray, shared_mlflow
):
    spec = _spec("gone", 200, 5, activations=("tanh",), tracking={"retry_s": 2}, max_failures=1)
    path = write_sweep(tmp_path, spec)
    holds = Holds(tmp_path / "holds")
    link = Link(shared_mlflow.port)
    uri = link.restore()
    args = ["run", str(path), "--tracking-uri", uri, "--no-analyze"]
    driver = _driver(args, tmp_path, {**shared_ray.driver_env, **holds.env(epochs=[10])})
    try:
        assert holds.wait(1, 10, 300, driver), (tmp_path / "driver.log").read_text()[-3000:]
        link.cut()
        holds.release(10)
        driver.wait(600)
    finally:
        _stop(driver)
    log = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 1, log[-3000:]
    errors = [line for line in log.splitlines() if line.startswith("ibsweep: error:")]
    assert len(errors) == 1, log[-3000:]
    assert f"the tracking store {uri} stopped 1 trials" in errors[0]
    assert re.search(r"tracking store unavailable: .*for 2 s\W+no connection", errors[0])
    assert f"run `ibsweep run {path}` again" in errors[0]
    spool_dirs = list((tmp_path / ".ibsweep" / "tune" / "spool").glob("gone-*"))
    assert len(spool_dirs) == 1 and str(spool_dirs[0]) in errors[0]
    held, runs = Spool(str(spool_dirs[0])).count()
    assert held > 0 and runs == 1

    link.restore()
    try:
        client, parents, children = sweep_runs(uri, "gone")
        assert children[0].info.status == "RUNNING"  # not marked finished with points missing
        assert parents[0].info.status == "RUNNING"
        code, log = _run(args, tmp_path, shared_ray.driver_env)
        assert code == 0, log[-3000:]
        assert "resuming sweep 'gone'" in log
        assert f"delivered {held} spooled points of 1 runs" in log
        client, parents, children = sweep_runs(uri, "gone")
        assert parents[0].info.status == "FINISHED"
        assert children[0].info.status == "FINISHED"
        assert_histories_exact(client, children[0], list(range(0, 201, 5)), N_LAYERS)
        assert Spool(str(spool_dirs[0])).count() == (0, 0)
    finally:
        link.cut()


def test_eight_runs_of_four_concurrent_trials_log_every_epoch_to_one_server(
    tmp_path, shared_ray, shared_mlflow
):
    """Four trials at once, two seeds packed in each: eight runs log every epoch at the same
    time, from four processes, to one server. (The logging rate of many more trials is
    measured by bench/bench_tracking_load.py.)"""
    epochs = 30
    spec = _spec(
        "load", epochs, 1, activations=("tanh", "relu", "sigmoid", "hardtanh"),
        resources={"cpu": 0.5}, seeds_per_trial=2,  # 4 trials at once on 2 CPUs
    )  # fmt: skip
    spec["grid"]["seeds"] = 2
    path = write_sweep(tmp_path, spec)
    holds = Holds(tmp_path / "holds")
    env = {**shared_ray.driver_env, **holds.env(reached=[15])}
    uri = shared_mlflow.uri  # two server processes on one SQLite store
    driver = _driver(["run", str(path), "--tracking-uri", uri, "--no-analyze"], tmp_path, env)
    try:
        # all 4 trials (8 runs) mid-way at once: they log to the server concurrently
        assert holds.wait(4, 15, 600, driver), (tmp_path / "driver.log").read_text()[-3000:]
        holds.release(15)
        driver.wait(600)
    finally:
        _stop(driver)
    assert driver.returncode == 0, (tmp_path / "driver.log").read_text()[-3000:]
    client, _, children = sweep_runs(uri, "load")
    assert len(children) == 8
    expected = (epochs + 1) * (3 + 2 * N_LAYERS) + epochs * N_LAYERS  # grad_snr from epoch 1
    keys = ["loss", "train_acc", "test_acc"] + [
        f"{m}/layer{k}" for k in range(1, N_LAYERS + 1) for m in ("I_XT", "I_TY", "grad_snr")
    ]
    spans, written = [], 0
    for run in children:
        histories = assert_histories_exact(client, run, list(range(epochs + 1)), N_LAYERS)
        written += sum(len(histories[k]) for k in keys)
        stamps = [m.timestamp for m in histories["loss"]]
        spans.append((min(stamps), max(stamps)))
    assert written == 8 * expected
    assert max(s for s, _ in spans) < min(e for _, e in spans), "the 8 runs never overlapped"
    server_log = shared_mlflow.log_path.read_text().lower()  # (every test's, so far)
    for problem in ("database is locked", "deadlock", "traceback", "internal server error"):
        assert problem not in server_log, problem
