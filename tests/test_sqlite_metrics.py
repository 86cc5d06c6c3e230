"""The bulk SQLite metric writer stores what MLflow's log_batch stores, and waits out locks."""

import math
import random
import sqlite3
import time

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ibsweep.analysis.sqlite_metrics import (
    JSON_ROWS,
    SchemaMismatch,
    SqliteMetricWriter,
    bulk_writer,
    check_schema,
)
from ibsweep.sweep.cli.main import main
from ibsweep.sweep.tracking.sink import MetricSink
from ibsweep.sweep.tracking.store import open_experiment

# (key, value, timestamp, step): NaN, +-inf, an exact duplicate, steps out of order, and a
# later point with a smaller step (the latest value follows the step, then the timestamp)
POINTS = [
    ("loss", 0.5, 1000, 0),
    ("loss", 0.4, 1001, 1),
    ("loss", 0.4, 1001, 1),
    ("loss", 0.45, 999, 3),
    ("loss", 0.3, 1002, 2),
    ("gap", float("nan"), 1000, 0),
    ("gap", float("inf"), 1001, 1),
    ("gap", float("-inf"), 1002, 2),
    ("acc", 0.1, 1005, 4),
    ("acc", 0.2, 1006, 4),
    ("acc", 0.9, 1007, 2),
]


def _store(uri: str):
    client = MlflowClient(uri)
    return uri, client, open_experiment(client, "bulk")


def _stored(client, run_id):
    run = client.get_run(run_id)
    histories = {
        key: sorted(
            (m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value)
            for m in client.get_metric_history(run_id, key)
        )
        for key in ("loss", "gap", "acc", "x")
    }
    latest = {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items()}
    return histories, latest


@pytest.fixture(params=[True, False], ids=["json-rows", "executemany"])
def json_rows(request):
    """Both ways of passing rows: one JSON array (SQLite >= 3.38), or one call per row."""
    if request.param and not JSON_ROWS:
        pytest.skip(f"SQLite {sqlite3.sqlite_version} lacks json_each or ->> (3.38): not used")
    return request.param


def test_bulk_write_stores_exactly_what_log_batch_stores(new_store, json_rows):
    uri, client, exp = _store(new_store)
    reference = client.create_run(exp).info.run_id
    rng = random.Random(0)
    points = POINTS + [("x", rng.uniform(-1e3, 1e3), 1000 + i, i) for i in range(500)]
    client.log_batch(reference, metrics=[Metric(*p) for p in points], synchronous=True)
    runs = [client.create_run(exp).info.run_id for _ in range(3)]
    writer = SqliteMetricWriter(uri, json_rows=json_rows)
    assert writer.write({r: points for r in runs}) == 3 * len(points)
    assert writer.write({r: POINTS[:4] for r in runs}) == 12  # again: nothing duplicated
    writer.close()
    expected = _stored(client, reference)
    assert expected[1]["loss"] == 0.45 and expected[1]["acc"] == 0.2  # MLflow's rule
    for run_id in runs:
        assert _stored(client, run_id) == expected
    assert bulk_writer("http://127.0.0.1:5000") is None


def test_bulk_write_refuses_missing_or_deleted_runs_and_writes_nothing(new_store, json_rows):
    uri, client, exp = _store(new_store)
    live, gone = (client.create_run(exp).info.run_id for _ in range(2))
    client.delete_run(gone)
    writer = SqliteMetricWriter(uri, json_rows=json_rows)
    for bad in (gone, "0" * 32):
        with pytest.raises(MlflowException, match="not found or deleted") as err:
            writer.write({live: POINTS, bad: POINTS})
        assert err.value.get_http_status_code() == 404
    assert client.get_metric_history(live, "loss") == []
    with pytest.raises(ValueError, match="not an SQLite tracking URI"):
        SqliteMetricWriter("http://127.0.0.1:5000")


def test_sink_waits_out_a_locked_database(tmp_path, new_store):
    uri, client, exp = _store(new_store)
    run_id = client.create_run(exp).info.run_id
    lock = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    sink = MetricSink(client, flush_s=0.05, retry_s=60, bulk=SqliteMetricWriter(uri, timeout_s=0.2))
    for step in range(50):
        sink.add(run_id, {"loss": 1.0 / (step + 1)}, step)
    time.sleep(1.0)  # the sink tries, meets the lock, keeps the points and retries
    assert sink.failing
    lock.execute("COMMIT")
    sink.close()
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == list(range(50))


def test_a_store_with_another_schema_is_refused_at_start_up(
    tmp_path, new_store, capsys, monkeypatch
):
    """The writer uses MLflow's tables directly: a mismatch is one line, exit 2, no runs."""
    uri, client, _ = _store(new_store)
    check_schema(uri)  # MLflow's own store passes
    with sqlite3.connect(tmp_path / "m.db") as db:
        db.execute("ALTER TABLE metrics RENAME COLUMN is_nan TO nan_flag")
    with pytest.raises(SchemaMismatch, match="table metrics without the columns is_nan"):
        check_schema(uri)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text("name: schema\ntrain: {epochs: 2}\n")
    assert main(["run", str(spec), "--tracking-uri", uri]) == 2
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ibsweep")]
    assert len(ours) == 1 and "without the columns is_nan" in ours[0]  # MLflow logs its own
    assert client.get_experiment_by_name("schema") is None
