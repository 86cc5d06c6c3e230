"""A finished run's whole metric history as one Parquet artifact, for fast bulk reading.

Over HTTP, reading a history point by point is bounded by the tracking server's rate of
turning database rows into JSON (~50,000 points/s here). A run that has ended therefore also
stores its per-epoch series as ``series/metrics.parquet`` (columns key, step, value) and is
tagged ``ibsweep.series``; an analysis downloads these small files in parallel and reads the
history API only for runs without one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow.artifacts
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from mlflow.entities import Run, RunTag
from mlflow.tracking import MlflowClient
from pandas.api.types import union_categoricals

from ibsweep.analysis import run_schema as rs

ARTIFACT = "series/metrics.parquet"
TAG = rs.SERIES
_THREADS = 16  # downloads in flight: the server answers a few at a time, the rest queue


def write_series_artifact(client: MlflowClient, run_id: str, keys: Iterable[str]) -> int:
    """Store the run's history of ``keys`` (as MLflow holds it now) as the series artifact."""
    keys = list(keys)
    with ThreadPoolExecutor(_THREADS) as pool:
        histories = list(pool.map(lambda k: client.get_metric_history(run_id, k), keys))
    table = pd.DataFrame(
        [(m.key, m.step, m.value) for h in histories for m in h], columns=["key", "step", "value"]
    )
    return store_series_table(client, run_id, table)


def store_series_table(client: MlflowClient, run_id: str, table: pd.DataFrame) -> int:
    """Log a (key, step, value) table as the run's series artifact; returns its row count."""
    table = table.drop_duplicates(["key", "step"], keep="last").sort_values(["key", "step"])
    with tempfile.TemporaryDirectory(prefix="ibsweep-series-") as folder:
        path = Path(folder) / Path(ARTIFACT).name
        table.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path=str(Path(ARTIFACT).parent))
    client.log_batch(run_id, tags=[RunTag(TAG, str(len(table)))], synchronous=True)
    return len(table)


def read_series_artifacts(uri: str, runs: Sequence[Run]) -> pd.DataFrame:
    """The series artifacts of ``runs`` as one (run_id, key, step, value) table.

    run_id and key are categorical. Each file is fetched by its URI under the run's artifact
    root (known from the run), one request per run, in parallel.
    """

    def one(run: Run) -> pd.DataFrame:
        with tempfile.TemporaryDirectory(prefix="ibsweep-series-") as folder:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT}",
                dst_path=folder,
                tracking_uri=uri,
            )
            table = pq.read_table(path, columns=["key", "step", "value"], read_dictionary=["key"])
        return table.to_pandas()

    with ThreadPoolExecutor(_THREADS) as pool:
        frames = list(pool.map(one, runs))
    ids = [r.info.run_id for r in runs]
    sizes = [len(f) for f in frames]
    run_id = pd.Categorical.from_codes(np.repeat(np.arange(len(ids)), sizes), ids)
    if not frames:
        return pd.DataFrame({"run_id": run_id, "key": pd.Categorical([]), "step": [], "value": []})
    return pd.DataFrame(
        {
            "run_id": run_id,
            "key": union_categoricals([f["key"].astype("category") for f in frames]),
            "step": np.concatenate([f["step"].to_numpy(dtype=np.int64) for f in frames]),
            "value": np.concatenate([f["value"].to_numpy(dtype=float) for f in frames]),
        }
    )
