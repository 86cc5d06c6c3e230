"""MLflow: the tracking URI, a batched, retrying, idempotent metric sink, and its disk spool."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ibsweep.analysis.sqlite_metrics import Point, SqliteMetricWriter

DEFAULT_URI = "sqlite:///mlflow.db"
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
DEFAULT_RETRY_S = 600.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
_T = TypeVar("_T")


UNAVAILABLE = "tracking store unavailable"


class TrackingUnavailable(RuntimeError):
    """The tracking store did not take a call within the retry budget (or refused it)."""


def resolve_tracking_uri(cli_uri: str | None, spec_uri: str | None) -> str:
    """The URI to use: --tracking-uri, else $MLFLOW_TRACKING_URI, else the file's, else SQLite.

    A relative SQLite path is made absolute, so trials (run in other folders) share the store.
    """
    uri = cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec_uri or DEFAULT_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def server_reachable(uri: str, timeout_s: float = 10.0) -> bool:
    """Whether an http(s) tracking server answers at all (any HTTP status); True for other URIs."""
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def fail_fast_http() -> None:
    """Let this process's MLflow HTTP calls fail at once; ``call_with_retry`` does the backoff.

    MLflow's own default (7 retries, up to ~4 minutes per call) would make a retry budget of
    seconds impossible and hide an outage from the sink. Values set by the user are kept.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def transient(err: BaseException) -> bool:
    """Whether a failed tracking call may succeed later (outage, timeout, 5xx, 429, lock)."""
    if isinstance(err, MlflowException):
        status = err.get_http_status_code()
        return status >= 500 or status == 429
    return isinstance(err, Exception)


def _backoff(delay: float, deadline: float) -> float:
    """Sleep about ``delay`` seconds (with jitter), never past ``deadline``; the next delay."""
    time.sleep(max(0.0, min(delay * random.uniform(0.5, 1.0), deadline - time.monotonic())))
    return min(delay * 2, BACKOFF_MAX_S)


def call_with_retry(fn: Callable[[], _T], retry_s: float, what: str) -> _T:
    """``fn()``, retried with exponential backoff while it fails transiently, for ``retry_s``."""
    deadline, delay = time.monotonic() + retry_s, BACKOFF_FIRST_S
    while True:
        try:
            return fn()
        except Exception as err:
            if not transient(err) or time.monotonic() >= deadline:
                raise TrackingUnavailable(
                    f"{UNAVAILABLE}: {what} failed for {retry_s:g} s: {_one_line(err)}"
                ) from err
            delay = _backoff(delay, deadline)


def _one_line(err: BaseException) -> str:
    """A short reason: MLflow's text of a connection failure is a paragraph of urllib3."""
    import requests

    for e in (err, err.__cause__, err.__context__):
        if isinstance(e, requests.exceptions.Timeout):
            return "timed out"
        if isinstance(e, requests.exceptions.ConnectionError):
            return "no connection"
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


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


class Spool:
    """Metric points the tracking store did not take, kept as JSON lines until delivered.

    One file per run and spill, ``<run_id>.<unique>.jsonl`` under ``root`` (a path or a
    pyarrow-supported URI such as s3://, so shared storage works). Every point keeps its
    timestamp, so delivering a point twice stores it once; delivery also skips steps the run
    already holds, so a trial that re-logged those epochs meanwhile is not duplicated.
    """

    def __init__(self, root: str) -> None:
        self.root = root

    def _fs(self):
        from pyarrow import fs

        return fs.FileSystem.from_uri(self.root)

    def write(self, points: dict[str, list[Point]]) -> str:
        """Write the points of each run to a new file; returns the folder they are in."""
        filesystem, folder = self._fs()
        filesystem.create_dir(folder, recursive=True)
        unique = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        for run_id, metrics in points.items():
            if not metrics:
                continue
            lines = "".join(
                json.dumps({"key": k, "value": v, "timestamp": ts, "step": step}) + "\n"
                for k, v, ts, step in metrics
            )
            with filesystem.open_output_stream(f"{folder}/{run_id}.{unique}.jsonl") as out:
                out.write(lines.encode())
        return self.root

    def files(self) -> dict[str, list[str]]:
        """The spool files of each run, oldest first."""
        from pyarrow import fs

        filesystem, folder = self._fs()
        infos = filesystem.get_file_info(fs.FileSelector(folder, allow_not_found=True))
        out: dict[str, list[str]] = defaultdict(list)
        for info in sorted(infos, key=lambda i: i.base_name):
            if info.type == fs.FileType.File and info.base_name.endswith(".jsonl"):
                out[info.base_name.split(".", 1)[0]].append(info.path)
        return dict(out)

    def read(self, paths: Iterable[str]) -> list[Metric]:
        """The points in the given files, in file order."""
        filesystem, _ = self._fs()
        points = []
        for path in paths:
            with filesystem.open_input_stream(path) as src:
                for line in src.read().decode().splitlines():
                    if line.strip():
                        p = json.loads(line)
                        points.append(Metric(p["key"], p["value"], p["timestamp"], p["step"]))
        return points

    def count(self) -> tuple[int, int]:
        """(points, runs) held."""
        files = self.files()
        return sum(len(self.read(p)) for p in files.values()), len(files)

    def deliver(
        self, client: MlflowClient, run_ids: Iterable[str] | None = None, retry_s: float = 60.0
    ) -> int:
        """Log the held points of ``run_ids`` (all runs if None) and drop their files.

        Idempotent: steps a run already holds are skipped, and a delivery cut short leaves the
        files for the next one. Returns the number of points written.
        """
        files = self.files()
        wanted = files if run_ids is None else {r: files[r] for r in run_ids if r in files}
        written = 0
        for run_id, paths in wanted.items():
            first: dict[tuple[str, int], Metric] = {}
            for m in self.read(paths):
                first.setdefault((m.key, m.step), m)
            keys = sorted({key for key, _ in first})
            done = call_with_retry(
                lambda r=run_id, k=keys: logged_steps(client, r, k), retry_s, "reading a run"
            )
            todo = sorted(
                (m for (key, step), m in first.items() if step > done[key]),
                key=lambda m: m.step,
            )
            for i in range(0, len(todo), MAX_BATCH):
                chunk = todo[i : i + MAX_BATCH]
                call_with_retry(
                    lambda r=run_id, c=chunk: client.log_batch(r, metrics=c, synchronous=True),
                    retry_s,
                    "delivering spooled points",
                )
                written += len(chunk)
            filesystem, _ = self._fs()
            for path in paths:
                filesystem.delete_file(path)
        return written


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
        self._error: TrackingUnavailable | None = None
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
                delay = _backoff(delay, deadline)

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
        """Move every queued point to the spool and remember the error for the trainer."""
        points, self._pending = self._pending, defaultdict(list)
        n, runs = sum(len(p) for p in points.values()), sum(1 for p in points.values() if p)
        why = f"no write for {self.retry_s:g} s" if transient(err) else "it refused the points"
        message = f"{UNAVAILABLE}: {why} ({_one_line(err)})"
        if self.spool is None:
            self._error = TrackingUnavailable(f"{message}; {n} points of {runs} runs lost")
            return
        try:
            where = self.spool.write(points)
        except Exception as spool_err:
            self._error = TrackingUnavailable(
                f"{message}; {n} points of {runs} runs lost (spool failed: {_one_line(spool_err)})"
            )
            return
        self.points_spooled += n
        self._error = TrackingUnavailable(
            f"{message}; {n} points of {runs} runs kept in {where}: they are delivered when the "
            "trial is retried or `ibsweep run` runs again"
        )
