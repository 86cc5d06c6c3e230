"""Metric points the tracking store did not take, kept on disk until delivered."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from ibsweep.analysis.sqlite_metrics import Point
from ibsweep.sweep.tracking.retry import call_with_retry
from ibsweep.sweep.tracking.store import MAX_BATCH, logged_steps


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
