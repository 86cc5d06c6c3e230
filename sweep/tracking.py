"""MLflow: the tracking URI, and a batched, retrying, idempotent metric sink."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

DEFAULT_URI = "sqlite:///mlflow.db"
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def resolve_tracking_uri(cli_uri: str | None, spec_uri: str | None) -> str:
    """The URI to use: --tracking-uri, else $MLFLOW_TRACKING_URI, else the file's, else SQLite.

    A relative SQLite path is made absolute, so trials (run in other folders) share the store.
    """
    uri = cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec_uri or DEFAULT_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def layer_keys(n_layers: int) -> list[str]:
    """Every metric key a run logs for a network with ``n_layers`` measured layers."""
    keys = ["loss", "train_acc", "test_acc"]
    for k in range(1, n_layers + 1):
        keys += [f"I_XT/layer{k}", f"I_TY/layer{k}", f"grad_snr/layer{k}"]
    return keys


def logged_steps(client: MlflowClient, run_id: str, keys: Iterable[str]) -> dict[str, int]:
    """The last step logged for each key of a run (-1 where none)."""
    run = client.get_run(run_id)
    if not run.data.metrics:
        return dict.fromkeys(keys, -1)
    return {
        key: max((m.step for m in client.get_metric_history(run_id, key)), default=-1)
        for key in keys
    }


class MetricSink:
    """Buffers metric points and writes them with ``log_batch`` from a background thread.

    Points are flushed every ``flush_s`` seconds and on ``flush()``; a failed write is retried
    with exponential backoff for up to ``retry_s`` seconds, keeping the points. Points at or
    below a key's already-logged step (``skip_through``) are dropped, so a trial that repeats
    epochs after a restart logs every (key, step) exactly once.
    """

    def __init__(
        self,
        client: MlflowClient,
        flush_s: float = 3.0,
        retry_s: float = 600.0,
    ) -> None:
        self.client = client
        self.flush_s = flush_s
        self.retry_s = retry_s
        self._pending: dict[str, list[Metric]] = defaultdict(list)
        self._skip: dict[tuple[str, str], int] = {}
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._closing = False
        self._flush_requested = False
        self._busy = False
        self.points_written = 0
        self._thread = threading.Thread(target=self._loop, name="metric-sink", daemon=True)
        self._thread.start()

    def skip_through(self, run_id: str, steps: dict[str, int]) -> None:
        """Drop future points of ``run_id`` whose step is <= the given step for their key."""
        with self._cond:
            for key, step in steps.items():
                self._skip[(run_id, key)] = step

    def add(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        """Queue one step's metrics for a run (non-blocking)."""
        ts = int(time.time() * 1000)
        with self._cond:
            self._raise_if_failed()
            self._pending[run_id].extend(
                Metric(k, float(v), ts, step)
                for k, v in metrics.items()
                if step > self._skip.get((run_id, k), -1)
            )

    def flush(self) -> None:
        """Block until every queued point is written (or raise the write error)."""
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            while (any(self._pending.values()) or self._busy) and self._error is None:
                self._cond.wait(0.05)
            self._raise_if_failed()

    def close(self) -> None:
        """Flush and stop the background thread."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"metric logging failed: {self._error}") from self._error

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._closing or self._flush_requested, timeout=self.flush_s
                )
                if self._closing and not any(self._pending.values()):
                    return
                batches, self._pending = self._pending, defaultdict(list)
                self._flush_requested = False
                self._busy = True
            try:
                for run_id, points in batches.items():
                    for i in range(0, len(points), MAX_BATCH):
                        self._write(run_id, points[i : i + MAX_BATCH])
            except BaseException as err:  # kept for the training thread to raise
                with self._cond:
                    self._error = err
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, run_id: str, points: list[Metric]) -> None:
        delay, deadline = 0.5, time.monotonic() + self.retry_s
        while True:
            try:
                self.client.log_batch(run_id, metrics=points, synchronous=True)
                self.points_written += len(points)
                return
            except Exception:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
