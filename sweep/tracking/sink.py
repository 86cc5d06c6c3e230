"""A batched, retrying, idempotent metric sink that writes from a background thread."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ibsweep.analysis.sqlite_metrics import Point, SqliteMetricWriter
from ibsweep.sweep.tracking.retry import (
    BACKOFF_FIRST_S,
    DEFAULT_RETRY_S,
    UNAVAILABLE,
    TrackingUnavailable,
    backoff,
    one_line,
    transient,
)
from ibsweep.sweep.tracking.spool import Spool
from ibsweep.sweep.tracking.store import MAX_BATCH


class MetricSink:
    """Buffers metric points and writes them from a background thread.

    Points go to the store with ``log_batch``, run by run, or, given a ``bulk`` writer (an
    SQLite store), every run's points in one transaction.
    Points are flushed every ``flush_s`` seconds and on ``flush()``. A failed write is retried
    with exponential backoff while the points stay queued (training goes on); when the store
    stays unreachable for ``retry_s`` seconds, or refuses a write outright, every queued point
    goes to the ``spool`` (if given) and the next ``add``/``flush`` raises TrackingUnavailable.
    Points at or below a key's already-logged step (``skip_through``) are dropped, so a trial
    that repeats epochs after a restart logs every (key, step) exactly once. Each run's points
    are written in order, so what MLflow holds of a key is always a prefix of its steps.
    """

    def __init__(
        self,
        client: MlflowClient,
        flush_s: float = 3.0,
        retry_s: float = DEFAULT_RETRY_S,
        spool: Spool | None = None,
        bulk: SqliteMetricWriter | None = None,
    ) -> None:
        self.client = client
        self.flush_s = flush_s
        self.retry_s = retry_s
        self.spool = spool
        self.bulk = bulk
        self._pending: dict[str, list[Point]] = defaultdict(list)
        self._skip: dict[tuple[str, str], int] = {}
        self._cond = threading.Condition()
        self._error: Exception | None = None
        self._outage_since: float | None = None
        self._closing = False
        self._flush_requested = False
        self._busy = False
        self._queued = 0  # points ever queued, and how many of the first of them are stored
        self._stored = 0
        self.points_written = 0
        self.points_spooled = 0
        self._thread = threading.Thread(target=self._loop, name="metric-sink", daemon=True)
        self._thread.start()

    @property
    def failing(self) -> bool:
        """Whether the store is failing right now (points are queued and being retried)."""
        with self._cond:
            return self._outage_since is not None

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
            pending = self._pending[run_id]
            before = len(pending)
            pending.extend(
                (k, float(v), ts, step)
                for k, v in metrics.items()
                if step > self._skip.get((run_id, k), -1)
            )
            self._queued += len(pending) - before

    def request_flush(self) -> int:
        """Ask for a write of every queued point, without waiting; a ticket for ``stored``."""
        with self._cond:
            self._flush_requested = True
            self._cond.notify_all()
            return self._queued

    def stored(self, ticket: int) -> bool:
        """Whether every point queued before ``request_flush`` returned ``ticket`` is stored."""
        with self._cond:
            self._raise_if_failed()
            return self._stored >= ticket

    def flush(self) -> None:
        """Block until every queued point is written (or raise TrackingUnavailable)."""
        with self._cond:  # a re-entrant lock: request_flush takes it again
            self.request_flush()
            while self._error is None and (self._has_pending() or self._busy):
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
            if self.bulk is not None:
                self.bulk.close()

    def _has_pending(self) -> bool:
        return any(self._pending.values())

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        delay = BACKOFF_FIRST_S
        while True:
            with self._cond:
                if self._outage_since is None:
                    self._cond.wait_for(
                        lambda: self._closing or self._flush_requested, timeout=self.flush_s
                    )
                if not self._has_pending():
                    self._flush_requested = False
                    if self._closing:
                        return
                    continue
                batches, self._pending = self._pending, defaultdict(list)
                mark = self._queued
                self._flush_requested = False
                self._busy = True
            unwritten, err = self._write(batches)
            with self._cond:
                for run_id, points in unwritten.items():
                    self._pending[run_id][:0] = points
                now = time.monotonic()
                if err is None:
                    self._stored = mark
                    self._outage_since, delay = None, BACKOFF_FIRST_S
                else:
                    self._outage_since = self._outage_since or now
                    if not transient(err) or now - self._outage_since >= self.retry_s:
                        self._give_up(err)
                        self._busy = False
                        self._cond.notify_all()
                        return
                self._busy = False
                self._cond.notify_all()
                deadline = None if err is None else self._outage_since + self.retry_s
            if deadline is not None:
                delay = backoff(delay, deadline)

    def _write(self, batches: dict[str, list[Point]]) -> tuple[dict, Exception | None]:
        """Write every run's points, in order; on a failure, those not written and the error."""
        if self.bulk is not None:
            try:
                self.points_written += self.bulk.write(batches)
            except Exception as err:
                return batches, err
            return {}, None
        runs = list(batches.items())
        for r, (run_id, points) in enumerate(runs):
            for i in range(0, len(points), MAX_BATCH):
                chunk = [Metric(*p) for p in points[i : i + MAX_BATCH]]
                try:
                    self.client.log_batch(run_id, metrics=chunk, synchronous=True)
                except Exception as err:
                    return {run_id: points[i:], **dict(runs[r + 1 :])}, err
                self.points_written += len(chunk)
        return {}, None

    def _give_up(self, err: Exception) -> None:
        """Move every queued point to the spool and remember the error for the trainer.

        An error that is neither the store's answer nor an outage (a bug) is kept as it is,
        so the trial fails with it rather than with a story about the store.
        """
        points, self._pending = self._pending, defaultdict(list)
        n, runs = sum(len(p) for p in points.values()), sum(1 for p in points.values() if p)
        why = f"no write for {self.retry_s:g} s" if transient(err) else "it refused the points"
        message = f"{UNAVAILABLE}: {why} ({one_line(err)})"
        if self.spool is None:
            kept = f"{n} points of {runs} runs lost"
        else:
            try:
                kept = (
                    f"{n} points of {runs} runs kept in {self.spool.write(points)}: they are "
                    "delivered when the trial is retried or `ibsweep run` runs again"
                )
                self.points_spooled += n
            except Exception as spool_err:
                kept = f"{n} points of {runs} runs lost (spool failed: {one_line(spool_err)})"
        if transient(err) or isinstance(err, MlflowException):
            self._error = TrackingUnavailable(f"{message}; {kept}")
        else:
            err.add_note(kept)
            self._error = err
