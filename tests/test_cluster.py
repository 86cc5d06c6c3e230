"""Cluster use: cluster.yaml, the rules for what a multi-node cluster can share, credentials,
and sweeps on a real two-node Ray cluster on this machine (refusals, job API, driver killed,
a node lost)."""

import copy
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ibsweep.sweep.cli.main import main
from ibsweep.sweep.cluster.ray_cluster import (
    check_cluster,
    environ_defaults,
    resolve_storage,
    storage_is_shared,
    tracking_is_local,
)
from ibsweep.sweep.config.spec import SweepSpec, load_spec
from ibsweep.sweep.errors import UsageError
from tests.services import (
    Holds,
    assert_histories_exact,
    ibsweep,
    kill_tree,
    ray_cluster,
    sweep_runs,
    tune_reports,
    wait_for,
    write_sweep,
)

ROOT = Path(__file__).resolve().parent.parent
ONE_HOST = [{"NodeManagerAddress": "10.0.0.5"}, {"NodeManagerAddress": "10.0.0.5"}]
TWO_HOSTS = [{"NodeManagerAddress": "10.0.0.5"}, {"NodeManagerAddress": "10.0.0.6"}]


def _cluster_config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def _local_variant(config: dict) -> dict:
    """cluster.yaml with its commented on-premises block in place of the AWS sections."""
    text = (ROOT / "cluster.yaml").read_text()
    block = text.split("# --- On-premises", 1)[1].split("# -----", 1)[0]
    lines = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    yaml_lines = [line for line in lines if re.match(r"^(provider|auth|  )", line)]
    local = yaml.safe_load("\n".join(yaml_lines))
    out = {k: v for k, v in config.items() if k not in ("available_node_types", "head_node_type")}
    return {**out, **local}


def test_cluster_yaml_is_a_valid_ray_cluster_for_aws_and_on_premises():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _cluster_config()
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["provider"]["type"] == "aws"
    local = _local_variant(config)
    assert local["provider"]["type"] == "local" and local["provider"]["worker_ips"]
    validate_config(prepare_config(copy.deepcopy(local)))
    head = " ".join(config["head_start_ray_commands"])
    assert "mlflow server" in head and "--host $HEAD_IP" in head  # private address, not 0.0.0.0
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert "MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000" in " ".join(
        config["worker_start_ray_commands"]
    )
    setup = " ".join(config["setup_commands"])
    assert "pip install --quiet -e ~/ibsweep" in setup and "torch==" in setup
    assert "RAY_AUTH_MODE=token" in setup
    assert config["file_mounts"]["~/.ray/auth_token"].startswith("~/")  # a file, not a value


def test_no_credentials_in_cluster_yaml():
    text = (ROOT / "cluster.yaml").read_text()
    for pattern in (r"AKIA[0-9A-Z]{16}", r"(?i)password\s*[:=]\s*\S", r"(?i)secret\s*[:=]\s*\S"):
        assert not re.search(pattern, text), pattern
    assert not re.search(r"[0-9a-f]{32,}", text)  # no token pasted in


def test_storage_and_tracking_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IBSWEEP_SHARED_STORAGE", raising=False)
    assert resolve_storage(None) == str(tmp_path / ".ibsweep/tune")
    assert resolve_storage("s3://bucket/tune/") == "s3://bucket/tune"
    assert resolve_storage(f"file://{tmp_path}/t") == str(tmp_path / "t")
    assert storage_is_shared("s3://bucket/tune") and storage_is_shared("gs://b/t")
    assert not storage_is_shared(str(tmp_path / "tune"))
    monkeypatch.setenv("IBSWEEP_SHARED_STORAGE", f"/elsewhere:{tmp_path / 'nfs'}")
    assert storage_is_shared(str(tmp_path / "nfs" / "tune"))
    assert not storage_is_shared(str(tmp_path / "nfs-not"))
    for uri in ("sqlite:///x.db", "file:///runs", "mlruns"):
        assert tracking_is_local(uri)
    for uri in ("http://10.0.0.5:5000", "https://mlflow.example", "postgresql://db/m"):
        assert not tracking_is_local(uri)

    shared, local = str(tmp_path / "nfs" / "t"), str(tmp_path / "t")
    check_cluster(Path("s.yaml"), ONE_HOST[:1], "sqlite:///x.db", local)  # one node: anything
    check_cluster(Path("s.yaml"), TWO_HOSTS, "http://10.0.0.5:5000", shared)
    check_cluster(Path("s.yaml"), ONE_HOST, "http://127.0.0.1:5000", shared)  # one host
    refusals = [
        (ONE_HOST, "sqlite:///x.db", shared, "store on one machine's disk"),
        (TWO_HOSTS, "http://127.0.0.1:5000", shared, "loopback address"),
        (ONE_HOST, "http://10.0.0.5:5000", local, "local to this machine"),
    ]
    for nodes, uri, storage, message in refusals:
        with pytest.raises(UsageError, match=message) as err:
            check_cluster(Path("s.yaml"), nodes, uri, storage)
        assert str(err.value).startswith("s.yaml: ") and "\n" not in str(err.value)


def test_credentials_never_come_from_the_sweep_file(tmp_path):
    base = {"name": "c", "tracking": {"uri": "http://10.0.0.5:5000"}}
    for bad, message in [
        ({"uri": "http://10.0.0.5:5000", "password": "x"}, "credentials come from the environ"),
        ({"token": "x"}, "MLFLOW_TRACKING_TOKEN"),
        ({"uri": "http://me:secret@10.0.0.5:5000"}, "the URI holds a password"),
    ]:
        path = write_sweep(tmp_path, {**base, "tracking": bad})
        with pytest.raises(UsageError, match=message) as err:
            load_spec(path)
        assert "\n" not in str(err.value) and "secret" not in str(err.value)
    spec = SweepSpec(**{**base, "tracking": {**base["tracking"], "retry_s": 30}})
    assert spec.tracking.retry_s == 30
    assert spec.digest() == SweepSpec(**base).digest()  # the retry budget is not the sweep


def test_submit_checks_everything_before_contacting_a_cluster(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    good = write_sweep(tmp_path, {"name": "s"})
    bad = write_sweep(tmp_path, {"name": "s", "grid": {"kind": ["cnn"]}}, "bad.yaml")
    cases = [
        ([str(bad), "--address", "http://127.0.0.1:1"], "bad.yaml: grid.kind"),
        ([str(good)], "give --address http://HEAD:8265"),
        ([str(good), "--address", "10.0.0.5:6379"], "not a job API address"),
        (
            [str(good), "--address", "http://127.0.0.1:1", "--tracking-uri", "http://u:p@h:5000"],
            "holds a password",
        ),
    ]
    for args, message in cases:
        assert main(["submit", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


SWEEP = {
    "grid": {"kind": ["dnn"], "activation": {"dnn": ["tanh", "relu"]}, "seeds": 1},
    "train": {"epochs": 40},
    "mi": {"every": 4},
    "resources": {"cpu": 1},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, shared_mlflow):
    """A head and one more node (1 CPU each), a tracking server and a folder both call shared."""
    shared = tmp_path_factory.mktemp("shared")
    with ray_cluster(workers=(1,), env={"IBSWEEP_SHARED_STORAGE": str(shared)}) as ray:
        yield ray, shared_mlflow.uri, shared


def _driver_env(ray) -> dict:
    """The environment of an ibsweep process talking to the cluster: the token, not the mode."""
    env = dict(ray.env)
    env.pop("RAY_AUTH_MODE")  # ibsweep turns token authentication on when it finds a token
    return env


@pytest.mark.slow
def test_run_on_a_two_node_cluster_refuses_local_stores(cluster, tmp_path):
    ray, uri, _shared = cluster
    env = _driver_env(ray)
    env.pop("MLFLOW_TRACKING_URI", None)
    path = write_sweep(tmp_path, {"name": "refused", **SWEEP})
    cases = [
        ([], "is a store on one machine's disk, but the Ray cluster has 2 nodes"),
        (["--tracking-uri", uri], "storage " + str(tmp_path / ".ibsweep/tune") + " is local"),
    ]
    for extra, message in cases:
        proc = ibsweep(
            "run", str(path), "--address", ray.address, *extra, cwd=tmp_path, env=env, timeout=300
        )
        assert proc.returncode == 2, proc.stderr[-3000:]
        errors = [line for line in proc.stderr.splitlines() if line.startswith("ibsweep: error")]
        assert len(errors) == 1 and message in errors[0], proc.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / ".ibsweep").exists()


@pytest.mark.slow
def test_submit_runs_a_sweep_on_both_nodes_through_the_job_api(cluster, tmp_path):
    ray, uri, shared = cluster
    spec = {"name": "submitted", **SWEEP, "storage": str(shared / "tune")}
    spec["train"], spec["mi"] = {"epochs": 100}, {"every": 10}
    path = write_sweep(tmp_path, spec)
    holds = Holds(tmp_path / "holds")
    log = tmp_path / "submit.log"
    with log.open("w") as out:
        submit = subprocess.Popen(
            [sys.executable, "-m", "ibsweep.sweep.cli", "submit", str(path),
             "--address", ray.dashboard, "--tracking-uri", uri],
            cwd=tmp_path, env={**_driver_env(ray), **holds.env(epochs=[30])},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # Each node has 1 CPU and each trial takes 1: both held at once, one on each node.
        assert holds.wait(2, 30, 600, submit), log.read_text()[-3000:]
        holds.release(30)
        submit.wait(600)
    finally:
        if submit.poll() is None:
            kill_tree(submit)
    stdout = log.read_text()
    assert submit.returncode == 0, stdout[-3000:]
    job = re.search(r"as Ray job (raysubmit_\w+) to " + re.escape(ray.dashboard), stdout)
    assert job, stdout[:2000]
    assert f"ray job logs {job.group(1)} --address {ray.dashboard} --follow" in stdout
    assert "starting sweep 'submitted': 2 trials, 2 runs" in stdout  # the job's own logs
    assert "2 finished, 0 failed, 0 unfinished" in stdout
    client, parents, children = sweep_runs(uri, "submitted")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2
    for run in children:
        assert run.info.status == "FINISHED"
        assert_histories_exact(client, run, list(range(0, 101, 10)), 6)
    assert str(shared / "tune") in parents[0].data.tags["ibsweep.tune_path"]


@pytest.mark.slow
def test_driver_killed_on_the_cluster_then_run_again_resumes(cluster, tmp_path):
    ray, uri, shared = cluster
    spec = {
        "name": "driverkill",
        **SWEEP,
        "grid": {**SWEEP["grid"], "activation": {"dnn": ["tanh", "relu", "sigmoid"]}},
        "train": {"epochs": 60},
        "mi": {"every": 2},
        "storage": str(shared / "tune"),
        "max_concurrent_trials": 1,  # in turn: tanh and relu finish, then sigmoid holds
    }
    path = write_sweep(tmp_path, spec)
    holds = Holds(tmp_path / "holds")
    args = ["run", str(path), "--address", ray.address, "--tracking-uri", uri, "--no-analyze"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "ibsweep.sweep.cli", *args],
        cwd=tmp_path,
        env={**_driver_env(ray), **holds.env(epochs=[30], labels=["dnn-sigmoid"])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def two_done_one_held():
        try:
            _, _, children = sweep_runs(uri, "driverkill")
        except Exception:
            return False
        done = [r for r in children if r.info.status == "FINISHED"]
        return len(done) == 2 and len(holds.held(30)) == 1

    try:
        assert wait_for(two_done_one_held, 400, driver), "sweep never seen mid-way"
        _, _, before = sweep_runs(uri, "driverkill")
        finished_before = {
            r.info.run_id: r.info.end_time for r in before if r.info.status == "FINISHED"
        }
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    second = ibsweep(*args, cwd=tmp_path, env=_driver_env(ray), timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming sweep 'driverkill'" in second.stderr
    client, parents, children = sweep_runs(uri, "driverkill")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.info.run_name for r in children) == [
        f"dnn-{a}-10x7x5x4x3-tishby-s0" for a in ("relu", "sigmoid", "tanh")
    ]
    for run in children:
        assert run.info.status == "FINISHED"
        assert_histories_exact(client, run, list(range(0, 61, 2)), 6)
        if run.info.run_id in finished_before:  # not rerun
            assert run.info.end_time == finished_before[run.info.run_id]


@pytest.mark.slow
def test_worker_node_killed_mid_sweep_its_trial_resumes_on_the_other_node(cluster, tmp_path):
    """Last of the module's cluster tests: it ends the module's worker node."""
    ray, uri, shared = cluster
    storage = shared / "tune"
    spec = {"name": "nodeloss", **SWEEP, "storage": str(storage), "max_failures": 3}
    spec["train"], spec["mi"] = {"epochs": 60}, {"every": 2}
    path = write_sweep(tmp_path, spec)
    holds = Holds(tmp_path / "holds")
    args = ["run", str(path), "--address", ray.address, "--tracking-uri", uri, "--no-analyze"]
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        driver = subprocess.Popen(
            [sys.executable, "-m", "ibsweep.sweep.cli", *args], cwd=tmp_path,
            env={**_driver_env(ray), **holds.env(epochs=[20])},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # both trials checkpointed at epoch 20 and waiting, one on each node
        assert holds.wait(2, 20, 600, driver), log.read_text()[-3000:]
        ray.kill_node(ray.nodes[1])  # the worker node: its raylet and its trial, at once
        holds.release(20)
        driver.wait(900)
    finally:
        if driver.poll() is None:
            kill_tree(driver)
    assert driver.returncode == 0, log.read_text()[-3000:]
    client, parents, children = sweep_runs(uri, "nodeloss")
    assert parents[0].info.status == "FINISHED" and len(children) == 2
    for run in children:
        assert run.info.status == "FINISHED"
        assert_histories_exact(client, run, list(range(0, 61, 2)), 6)
    # The lost trial started again from its checkpoint: after a restore its first report is at
    # the checkpoint's epoch (20), not at epoch 0.
    restored = [
        r
        for experiment in storage.glob("nodeloss-*")
        for r in tune_reports(experiment)
        if r.get("iterations_since_restore") == 1 and r.get("epoch", 0) > 0
    ]
    assert restored and {r["epoch"] for r in restored} == {20}, "no trial resumed from epoch 20"


def test_environ_defaults_keep_the_users_values_and_remove_only_what_they_added(monkeypatch):
    monkeypatch.setenv("IBSWEEP_T_USER", "mine")
    monkeypatch.delenv("IBSWEEP_T_ADDED", raising=False)
    with environ_defaults({"IBSWEEP_T_USER": "theirs", "IBSWEEP_T_ADDED": "1"}):
        assert os.environ["IBSWEEP_T_USER"] == "mine" and os.environ["IBSWEEP_T_ADDED"] == "1"
    assert os.environ["IBSWEEP_T_USER"] == "mine" and "IBSWEEP_T_ADDED" not in os.environ
