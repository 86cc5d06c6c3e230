"""The MLflow metric sink on a real SQLite store: batching, flushing, exactly-once steps."""

from mlflow.tracking import MlflowClient

from sweep.store import open_experiment
from sweep.tracking import MetricSink, layer_keys, logged_steps, resolve_tracking_uri


def _client(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    exp = open_experiment(client, "sink")
    return client, client.create_run(exp).info.run_id


def test_sink_batches_beyond_mlflow_limit_and_flushes(tmp_path):
    client, run_id = _client(tmp_path)
    sink = MetricSink(client, flush_s=60)
    for step in range(1200):
        sink.add(run_id, {"a": step, "b": -step}, step)
    sink.flush()
    assert len(client.get_metric_history(run_id, "a")) == 1200
    assert sink.points_written == 2400
    sink.close()


def test_skip_through_makes_repeated_epochs_exactly_once(tmp_path):
    client, run_id = _client(tmp_path)
    sink = MetricSink(client)
    for step in range(10):
        sink.add(run_id, {"loss": 1.0 / (step + 1), "x": step}, step)
    sink.close()
    done = logged_steps(client, run_id, ["loss", "x", "never"])
    assert done == {"loss": 9, "x": 9, "never": -1}
    again = MetricSink(client)
    again.skip_through(run_id, done)
    for step in range(5, 15):  # a restart from a stale checkpoint repeats epochs 5..9
        again.add(run_id, {"loss": 1.0 / (step + 1), "x": step}, step)
    again.close()
    steps = sorted(m.step for m in client.get_metric_history(run_id, "loss"))
    assert steps == list(range(15))


def test_layer_keys_and_uri_resolution(tmp_path, monkeypatch):
    assert layer_keys(2) == [
        "loss", "train_acc", "test_acc",
        "I_XT/layer1", "I_TY/layer1", "grad_snr/layer1",
        "I_XT/layer2", "I_TY/layer2", "grad_snr/layer2",
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert resolve_tracking_uri(None, "sqlite:///x/y.db") == f"sqlite:///{tmp_path / 'x/y.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(None, "sqlite:///y.db") == "http://127.0.0.1:5999"
    assert resolve_tracking_uri("sqlite:////abs.db", None) == "sqlite:////abs.db"
