"""The MLflow metric sink on real stores: batching, flushing, exactly-once steps, outages."""

import math
import sqlite3
import time

import pytest
import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    REQUEST_LIMIT_EXCEEDED,
    TEMPORARILY_UNAVAILABLE,
    UNAUTHENTICATED,
)
from mlflow.tracking import MlflowClient

from ibsweep.analysis import run_schema as rs
from ibsweep.analysis.run_schema import run_metric_keys
from ibsweep.analysis.sqlite_metrics import SqliteMetricWriter
from ibsweep.sweep.tracking.retry import TrackingUnavailable, call_with_retry, transient
from ibsweep.sweep.tracking.sink import MetricSink
from ibsweep.sweep.tracking.spool import Spool
from ibsweep.sweep.tracking.store import logged_steps, open_experiment
from ibsweep.sweep.tracking.uri import resolve_tracking_uri
from tests.services import free_port


def _client(uri: str):
    client = MlflowClient(uri)
    exp = open_experiment(client, "sink")
    return client, client.create_run(exp).info.run_id


@pytest.fixture(params=["log_batch", "bulk"])
def make_sink(request, new_store):
    """MetricSink over either write path: log_batch per run, or one SQLite transaction."""

    def make(client, **kwargs):
        bulk = SqliteMetricWriter(new_store)
        return MetricSink(client, bulk=bulk if request.param == "bulk" else None, **kwargs)

    return make


def test_sink_batches_beyond_mlflow_limit_and_flushes(new_store, make_sink):
    client, run_id = _client(new_store)
    sink = make_sink(client, flush_s=60)
    for step in range(1200):
        sink.add(run_id, {"a": step, "b": -step}, step)
    ticket = sink.request_flush()
    sink.add(run_id, {"a": 1200}, 1200)
    while not sink.stored(ticket):  # written in the background; then the rest, on flush()
        time.sleep(0.01)
    assert len(client.get_metric_history(run_id, "b")) == 1200
    sink.flush()
    assert len(client.get_metric_history(run_id, "a")) == 1201
    assert sink.points_written == 2401
    sink.close()


def test_skip_through_makes_repeated_epochs_exactly_once(new_store, make_sink):
    client, run_id = _client(new_store)
    sink = make_sink(client)
    for step in range(10):
        sink.add(run_id, {"loss": 1.0 / (step + 1), "x": step}, step)
    sink.close()
    done = logged_steps(client, run_id, ["loss", "x", "never"])
    assert done == {"loss": 9, "x": 9, "never": -1}
    again = make_sink(client)
    again.skip_through(run_id, done)
    for step in range(5, 15):  # a restart from a stale checkpoint repeats epochs 5..9
        again.add(run_id, {"loss": 1.0 / (step + 1), "x": step}, step)
    again.close()
    steps = sorted(m.step for m in client.get_metric_history(run_id, "loss"))
    assert steps == list(range(15))


def test_run_metric_keys_and_uri_resolution(tmp_path, monkeypatch):
    assert run_metric_keys(2) == [
        "loss", "train_acc", "test_acc",
        "I_XT/layer1", "I_TY/layer1", "I_TY_perm/layer1", "states/layer1", "grad_snr/layer1",
        "I_XT/layer2", "I_TY/layer2", "I_TY_perm/layer2", "states/layer2", "grad_snr/layer2",
    ]  # fmt: skip
    assert run_metric_keys(1, ["bin30", "sign"]) == [
        "loss", "train_acc", "test_acc",
        "I_XT/bin30/layer1", "I_TY/bin30/layer1", "I_TY_perm/bin30/layer1", "states/bin30/layer1",
        "I_XT/sign/layer1", "I_TY/sign/layer1", "I_TY_perm/sign/layer1", "states/sign/layer1",
        "grad_snr/layer1",
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_tracking_uri(None, "sqlite:///x/y.db") == f"sqlite:///{tmp_path / 'x/y.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(None, "sqlite:///y.db") == "http://127.0.0.1:5999"
    assert resolve_tracking_uri("sqlite:////abs.db", None) == "sqlite:////abs.db"


def _dead_client(monkeypatch):
    """A client of a tracking server that is not there (connection refused), failing at once."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(f"http://127.0.0.1:{free_port()}")


def test_unreachable_store_spools_points_and_delivery_is_exactly_once(
    tmp_path, new_store, monkeypatch
):
    client, run_id = _client(new_store)
    first = MetricSink(client)
    for step in range(5):
        first.add(run_id, {"loss": 1.0 / (step + 1), "gap": float("nan")}, step)
    first.close()
    spool = Spool(str(tmp_path / "spool"))
    sink = MetricSink(_dead_client(monkeypatch), flush_s=0.05, retry_s=1.0, spool=spool)
    for step in range(3, 10):  # a restart from an older checkpoint repeats steps 3 and 4
        sink.add(run_id, {"loss": 1.0 / (step + 1), "gap": float("nan")}, step)
    with pytest.raises(TrackingUnavailable, match=r"no write for 1 s.*14 points of 1 runs kept"):
        sink.flush()
    with pytest.raises(TrackingUnavailable):
        sink.add(run_id, {"loss": 0.0}, 10)
    with pytest.raises(TrackingUnavailable):
        sink.close()
    assert spool.count() == (14, 1)
    assert client.get_run(run_id).info.status == "RUNNING"
    assert spool.deliver(client) == 10  # steps 5..9 of both keys; 3 and 4 are there already
    for key in ("loss", "gap"):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == list(range(10))
    assert all(math.isnan(m.value) for m in client.get_metric_history(run_id, "gap"))
    assert spool.count() == (0, 0)
    assert spool.deliver(client) == 0


def test_sink_keeps_points_through_an_outage_and_skips_checkpoints_meanwhile(
    new_store, monkeypatch
):
    client, run_id = _client(new_store)
    sink = MetricSink(_dead_client(monkeypatch), flush_s=0.05, retry_s=120)
    for step in range(20):
        sink.add(run_id, {"loss": float(step)}, step)
    ticket = sink.request_flush()
    time.sleep(0.5)
    assert sink.failing and not sink.stored(ticket)  # a checkpoint of step 19 waits
    sink.add(run_id, {"loss": 20.0}, 20)  # training goes on
    later = sink.request_flush()
    sink.client = client  # the store is back: the sink's next retry reaches it
    sink.flush()
    assert not sink.failing
    assert sink.stored(ticket) and sink.stored(later)
    sink.close()
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == list(range(21))


def test_a_refused_write_is_spooled_at_once_not_retried(tmp_path, new_store, make_sink):
    client, _ = _client(new_store)
    spool = Spool(str(tmp_path / "spool"))
    sink = make_sink(client, flush_s=0.05, retry_s=3600, spool=spool)
    missing = "0" * 32  # no such run: MLflow answers 404, which no retry will change
    sink.add(missing, {"loss": 1.0}, 0)
    with pytest.raises(TrackingUnavailable, match="refused"):
        sink.flush()
    assert spool.count() == (1, 1)


def test_retry_policy_classifies_failures():
    assert transient(MlflowException("down", error_code=TEMPORARILY_UNAVAILABLE))
    assert transient(MlflowException("boom"))  # INTERNAL_ERROR: 500
    assert transient(MlflowException("slow down", error_code=REQUEST_LIMIT_EXCEEDED))
    assert transient(ConnectionError("refused"))
    assert not transient(MlflowException("bad", error_code=INVALID_PARAMETER_VALUE))
    assert not transient(MlflowException("who", error_code=UNAUTHENTICATED))
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("refused")
        return "ok"

    assert call_with_retry(flaky, 30, "a flaky call") == "ok" and len(calls) == 3

    def refused():
        calls.append(1)
        raise MlflowException("bad", error_code=INVALID_PARAMETER_VALUE)

    calls.clear()
    with pytest.raises(TrackingUnavailable, match="a refused call failed"):
        call_with_retry(refused, 3600, "a refused call")
    assert len(calls) == 1


def test_only_outages_timeouts_and_locks_are_retried():
    """A bug is no outage: it fails at once, as itself, not after the retry budget."""
    locked = sqlite3.OperationalError("database is locked")
    assert transient(locked)
    assert transient(sqlalchemy.exc.OperationalError("INSERT ...", {}, locked))
    assert transient(TimeoutError()) and transient(requests.exceptions.ReadTimeout())
    assert not transient(sqlite3.OperationalError("no such table: metrics"))
    assert not transient(TypeError("unsupported operand")) and not transient(KeyError("run"))
    calls = []

    def buggy():
        calls.append(1)
        return {}["missing"]

    with pytest.raises(KeyError):
        call_with_retry(buggy, 3600, "a buggy call")
    assert len(calls) == 1

    def busy():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    calls.clear()
    assert call_with_retry(busy, 30, "a busy store") == "ok" and len(calls) == 3


class _BuggyWriter(SqliteMetricWriter):
    """A bulk writer with a bug in it (fault injection): every write raises TypeError."""

    def write(self, points):
        raise TypeError("a bug in the writer")


def test_a_bug_in_the_sink_fails_the_trial_at_once_with_its_own_error(tmp_path, new_store):
    client, run_id = _client(new_store)
    spool = Spool(str(tmp_path / "spool"))
    sink = MetricSink(
        client, flush_s=0.05, retry_s=3600, spool=spool,
        bulk=_BuggyWriter(new_store),
    )  # fmt: skip
    sink.add(run_id, {"loss": 1.0, "train_acc": 0.5}, 0)
    with pytest.raises(TypeError, match="a bug in the writer") as caught:
        sink.flush()
    assert any("2 points of 1 runs kept" in note for note in caught.value.__notes__)
    assert spool.count() == (2, 1)  # nothing lost


def test_sweep_experiments_are_tagged_for_the_runs_page(new_store):
    """MLflow 3's UI opens an untagged experiment on its GenAI pages: new and old get the tag."""
    client = MlflowClient(new_store)
    fresh = client.get_experiment(open_experiment(client, "fresh"))
    assert fresh.tags[rs.EXPERIMENT_KIND] == rs.MODEL_TRAINING == "custom_model_development"
    old = client.create_experiment("old")
    assert rs.EXPERIMENT_KIND not in client.get_experiment(old).tags
    assert open_experiment(client, "old") == old
    assert client.get_experiment(old).tags[rs.EXPERIMENT_KIND] == rs.MODEL_TRAINING
