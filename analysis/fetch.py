"""Fetching a sweep's per-epoch series from MLflow into one tidy table, with a per-run cache.

MLflow has no bulk export, and one history request per (run, metric) is slow over HTTP. So:
- a ``sqlite:///`` store is read directly (read-only SQL over MLflow's ``metrics`` table);
- an ``http(s)://`` tracking server is asked through its bulk-history endpoint
  (``/ajax-api/2.0/mlflow/metrics/get-history-bulk``: up to 100 runs per request), with
  requests in parallel;
- any other store falls back to ``get_metric_history`` calls in parallel;
- a finished run that stored its series as one Parquet artifact (analysis.series_artifact)
  is read from that file instead, in parallel: the fastest way through a tracking server.
The cache keeps each finished run's rows with the run's status and end time; a later fetch
asks MLflow only for runs that are new or changed (a run still RUNNING is always fetched).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from analysis.series_artifact import TAG, read_series_artifacts

EPOCH_METRICS = {"loss": "loss", "train_acc": "train_acc", "test_acc": "test_acc"}
LAYER_METRICS = {"I_XT": "i_xt", "I_TY": "i_ty", "grad_snr": "grad_snr"}
VALUE_COLUMNS = ("i_xt", "i_ty", "grad_snr", "loss", "train_acc", "test_acc")
NON_CONFIG_PARAMS = ("seed", "search.trial")
_BULK_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
_BULK_MAX_RESULTS = 25000
_BULK_MAX_RUNS = 100
_THREADS = 8


class FetchError(ValueError):
    """The sweep cannot be fetched (unknown experiment, no runs)."""


@dataclass
class SweepSeries:
    """A sweep's tidy series table and what the fetch did."""

    experiment_id: str
    parent: Run | None
    runs: list[Run]
    table: pd.DataFrame
    fetched: list[str]
    cached: list[str]

    @property
    def config_cols(self) -> list[str]:
        """Param columns that define a configuration (every param but the seed)."""
        params = sorted({k for r in self.runs for k in r.data.params})
        return [p for p in params if p not in NON_CONFIG_PARAMS]


def metric_keys(n_layers: int) -> list[str]:
    """The per-epoch metric keys of a run with ``n_layers`` measured layers."""
    keys = list(EPOCH_METRICS)
    for k in range(1, n_layers + 1):
        keys += [f"{m}/layer{k}" for m in LAYER_METRICS]
    return keys


def run_signature(run: Run) -> str | None:
    """What identifies a run's content for the cache; None while it may still change."""
    if run.info.status == "RUNNING" or run.info.end_time is None:
        return None
    return f"{run.info.status}:{run.info.end_time}"


def sweep_runs(client: MlflowClient, name: str) -> tuple[str, Run | None, list[Run]]:
    """Experiment id, newest parent run and the child (per-seed) runs of a sweep."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        names = [e.name for e in client.search_experiments(max_results=50)]
        raise FetchError(f"no sweep named '{name}' in this store; sweeps here: {', '.join(names)}")
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [exp.experiment_id],
            max_results=1000,
            page_token=token,
            order_by=["attributes.start_time DESC"],
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    parents = [r for r in runs if r.data.tags.get("ibsweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("ibsweep.role") != "parent"]
    if not children:
        raise FetchError(f"sweep '{name}' has no runs yet")
    return exp.experiment_id, (parents[0] if parents else None), children


def fetch_long(uri: str, client: MlflowClient, runs: list[Run]) -> pd.DataFrame:
    """Every metric point of ``runs`` as (run_id, key, step, value), fetched in bulk."""
    if not runs:
        return pd.DataFrame({"run_id": [], "key": [], "step": [], "value": []})
    wanted = {r.info.run_id: metric_keys(_n_layers(r)) for r in runs}
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        return _fetch_sqlite(uri, wanted)
    stored = [r.info.run_id for r in runs if r.data.tags.get(TAG) and run_signature(r) is not None]
    rest = {k: v for k, v in wanted.items() if k not in set(stored)}
    parts = [read_series_artifacts(client, stored)] if stored else []
    if scheme in ("http", "https") and rest:
        max_steps = max(int(r.data.params.get("train.epochs", 1000)) + 1 for r in runs)
        parts.append(_fetch_http_bulk(uri, rest, max_steps))
    elif rest:
        parts.append(_fetch_per_metric(client, rest))
    return pd.concat(parts, ignore_index=True)


def _n_layers(run: Run) -> int:
    return int(run.data.params.get("model.n_layers", 0)) or sum(
        1 for k in run.data.metrics if k.startswith("I_XT/layer")
    )


def _fetch_sqlite(uri: str, wanted: dict[str, list[str]]) -> pd.DataFrame:
    path = unquote(uri[len("sqlite:///") :])
    frames = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        ids = list(wanted)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            frames.append(
                pd.read_sql_query(
                    "SELECT run_uuid AS run_id, key, step, value, is_nan, timestamp "
                    f"FROM metrics WHERE run_uuid IN ({marks})",
                    conn,
                    params=chunk,
                )
            )
    df = pd.concat(frames, ignore_index=True)
    df.loc[df["is_nan"].astype(bool), "value"] = math.nan
    return _latest(df.drop(columns="is_nan"))


def _latest(df: pd.DataFrame) -> pd.DataFrame:
    """One value per (run, key, step): the last logged, should a point have been repeated."""
    df = df.sort_values("timestamp", kind="stable")
    df = df.drop_duplicates(["run_id", "key", "step"], keep="last")
    return df[["run_id", "key", "step", "value"]].reset_index(drop=True)


def _fetch_http_bulk(uri: str, wanted: dict[str, list[str]], max_steps: int) -> pd.DataFrame:
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import augmented_raise_for_status, http_request

    creds = get_default_host_creds(uri)  # credentials from the environment, as MLflow does
    per_request = max(1, min(_BULK_MAX_RUNS, _BULK_MAX_RESULTS // max_steps))
    keys = sorted({k for ks in wanted.values() for k in ks})
    jobs = []
    for key in keys:
        ids = [r for r, ks in wanted.items() if key in ks]
        jobs += [(key, ids[i : i + per_request]) for i in range(0, len(ids), per_request)]

    def one(job: tuple[str, list[str]]) -> list[dict]:
        key, ids = job
        response = http_request(
            creds,
            _BULK_ENDPOINT,
            "GET",
            params={"run_id": ids, "metric_key": key, "max_results": _BULK_MAX_RESULTS},
        )
        augmented_raise_for_status(response)
        points = response.json().get("metrics", [])
        if len(points) >= _BULK_MAX_RESULTS and len(ids) > 1:  # truncated: split the request
            half = len(ids) // 2
            return one((key, ids[:half])) + one((key, ids[half:]))
        return points

    with ThreadPoolExecutor(_THREADS) as pool:
        batches = list(pool.map(one, jobs))
    rows = [p for batch in batches for p in batch]
    df = pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "timestamp"])
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return _latest(df)


def _fetch_per_metric(client: MlflowClient, wanted: dict[str, list[str]]) -> pd.DataFrame:
    jobs = [(r, k) for r, ks in wanted.items() for k in ks]

    def one(job: tuple[str, str]) -> list[tuple]:
        run_id, key = job
        return [
            (run_id, key, m.step, m.value, m.timestamp)
            for m in client.get_metric_history(run_id, key)
        ]

    with ThreadPoolExecutor(_THREADS) as pool:
        rows = [row for batch in pool.map(one, jobs) for row in batch]
    return _latest(pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "timestamp"]))


def tidy(long: pd.DataFrame, runs: Iterable[Run]) -> pd.DataFrame:
    """One row per (run, layer, epoch): MI and SNR of the layer, the epoch's loss and accuracy,
    and every param of the run (names as in MLflow), ``seed``, ``n_layers`` and ``ceiling``."""
    runs = list(runs)
    parts = long["key"].str.split("/layer", n=1, expand=True)
    long = long.assign(metric=parts[0], layer=pd.to_numeric(parts.get(1), errors="coerce"))
    per_layer = long[long["metric"].isin(list(LAYER_METRICS))]
    per_epoch = long[long["metric"].isin(list(EPOCH_METRICS))]
    layer_df = per_layer.pivot_table(
        index=["run_id", "layer", "step"], columns="metric", values="value", aggfunc="last"
    ).rename(columns=LAYER_METRICS)
    epoch_df = per_epoch.pivot_table(
        index=["run_id", "step"], columns="metric", values="value", aggfunc="last"
    ).rename(columns=EPOCH_METRICS)
    df = layer_df.reset_index().merge(epoch_df.reset_index(), on=["run_id", "step"], how="left")
    df = df.rename(columns={"step": "epoch"})
    for col in VALUE_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    df["layer"] = df["layer"].astype("int64")
    df["epoch"] = df["epoch"].astype("int64")
    info = pd.DataFrame([_run_columns(r) for r in runs])
    df = df.merge(info, on="run_id", how="inner")
    first = ["run_id", "seed", "layer", "epoch", *VALUE_COLUMNS, "n_layers", "ceiling"]
    rest = sorted(c for c in df.columns if c not in first)
    return df[first + rest].sort_values(["run_id", "layer", "epoch"]).reset_index(drop=True)


def _run_columns(run: Run) -> dict:
    params = run.data.params
    n = params.get("mi.n_samples")
    return {
        "run_id": run.info.run_id,
        **{k: v for k, v in params.items() if k != "seed"},
        "seed": int(params.get("seed", -1)),
        "n_layers": _n_layers(run),
        "ceiling": math.log2(int(n)) if n else math.nan,
    }


class SeriesCache:
    """Tidy rows of finished runs on disk, keyed by each run's signature."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.index_path = self.folder / "index.json"
        self.table_path = self.folder / "series.parquet"

    def load(self) -> tuple[dict[str, str], pd.DataFrame | None]:
        """The cached signatures and rows (None when there is no cache)."""
        if not (self.index_path.exists() and self.table_path.exists()):
            return {}, None
        return json.loads(self.index_path.read_text()), pd.read_parquet(self.table_path)

    def save(self, signatures: dict[str, str], table: pd.DataFrame) -> None:
        """Replace the cache (written to temporary files, then renamed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp_table = self.table_path.with_suffix(".partial")
        table.to_parquet(tmp_table, index=False)
        tmp_table.replace(self.table_path)
        tmp_index = self.index_path.with_suffix(".partial")
        tmp_index.write_text(json.dumps(signatures))
        tmp_index.replace(self.index_path)


def fetch_series(uri: str, name: str, cache_dir: str | Path | None = None) -> SweepSeries:
    """The tidy series of every run of sweep ``name``; only new or changed runs are fetched."""
    client = MlflowClient(uri)
    exp_id, parent, runs = sweep_runs(client, name)
    cache = SeriesCache(cache_dir) if cache_dir else None
    old_sigs, old_table = cache.load() if cache else ({}, None)
    sigs = {r.info.run_id: run_signature(r) for r in runs}
    keep = [
        r
        for r in runs
        if sigs[r.info.run_id] and old_sigs.get(r.info.run_id) == sigs[r.info.run_id]
    ]
    keep_ids = {r.info.run_id for r in keep}
    todo = [r for r in runs if r.info.run_id not in keep_ids]
    fresh = tidy(fetch_long(uri, client, todo), todo) if todo else None
    parts = []
    if old_table is not None and keep_ids:
        parts.append(old_table[old_table["run_id"].isin(keep_ids)])
    if fresh is not None:
        parts.append(fresh)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not table.empty:
        table = table.sort_values(["run_id", "layer", "epoch"]).reset_index(drop=True)
        table = _compact(table)
    if cache is not None and todo:
        done = {k: v for k, v in sigs.items() if v}
        cache.save(done, table[table["run_id"].isin(done)] if not table.empty else table)
    return SweepSeries(exp_id, parent, runs, table, [r.info.run_id for r in todo], sorted(keep_ids))


def _compact(table: pd.DataFrame) -> pd.DataFrame:
    """Repeated text columns (params) as categories: small in memory and in Parquet."""
    for col in table.columns:
        if table[col].dtype == object or str(table[col].dtype) in ("str", "string"):
            table[col] = table[col].astype("category")
    return table
