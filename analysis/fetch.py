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
from pandas.api.types import union_categoricals

from ibsweep.analysis import run_schema as rs
from ibsweep.analysis.series_artifact import TAG, read_series_artifacts

# the tidy table's column of each metric
EPOCH_METRICS = {rs.LOSS: "loss", rs.TRAIN_ACC: "train_acc", rs.TEST_ACC: "test_acc"}
MI_METRICS = {rs.I_XT: "i_xt", rs.I_TY: "i_ty", rs.I_TY_PERM: "i_ty_perm", rs.STATES: "n_states"}
LAYER_METRICS = {**MI_METRICS, rs.GRAD_SNR: "grad_snr"}
VALUE_COLUMNS = (
    "i_xt", "i_ty", "i_ty_perm", "n_states", "layer_ceiling", "grad_snr",
    "loss", "train_acc", "test_acc",
)  # fmt: skip
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
        """Param columns that define a configuration: every param but the seed and those that
        describe how each layer is measured (they follow from the model and the panel)."""
        params = sorted({k for r in self.runs for k in r.data.params})
        return [
            p for p in params if p not in rs.NON_CONFIG_PARAMS and not rs.is_measurement_param(p)
        ]


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
    parents = [r for r in runs if r.data.tags.get(rs.ROLE) == rs.PARENT_ROLE]
    children = [r for r in runs if r.data.tags.get(rs.ROLE) != rs.PARENT_ROLE]
    if not children:
        raise FetchError(f"sweep '{name}' has no runs yet")
    return exp.experiment_id, (parents[0] if parents else None), children


def fetch_long(uri: str, client: MlflowClient, runs: list[Run]) -> pd.DataFrame:
    """Every metric point of ``runs`` as (run_id, key, step, value), fetched in bulk.

    run_id and key are categorical; one value per (run, key, step), the last logged.
    """
    if not runs:
        return _long_frame([], [], [], [], [])
    wanted = {r.info.run_id: rs.run_metric_keys(_n_layers(r), _panel(r)) for r in runs}
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        return _fetch_sqlite(uri, wanted)
    stored = [r for r in runs if r.data.tags.get(TAG) and run_signature(r) is not None]
    stored_ids = {r.info.run_id for r in stored}
    rest = {k: v for k, v in wanted.items() if k not in stored_ids}
    parts = [read_series_artifacts(uri, stored)] if stored else []
    if scheme in ("http", "https") and rest:
        max_steps = max(int(r.data.params.get(rs.EPOCHS, 1000)) + 1 for r in runs)
        parts.append(_fetch_http_bulk(uri, rest, max_steps))
    elif rest:
        parts.append(_fetch_per_metric(client, rest))
    return _concat_long(parts)


def _n_layers(run: Run) -> int:
    if run.data.params.get(rs.N_LAYERS):
        return int(run.data.params[rs.N_LAYERS])
    parsed = (rs.parse_layer_key(k) for k in run.data.metrics)
    return max((p.layer for p in parsed if p is not None and p.metric == rs.I_XT), default=0)


def _panel(run: Run) -> list[str] | None:
    """The run's panel members, None without a panel."""
    return run.data.params[rs.PANEL].split(",") if run.data.params.get(rs.PANEL) else None


def _long_frame(run_id, key, step, value, timestamp=None) -> pd.DataFrame:
    """A long table with categorical run_id and key."""
    frame = {
        "run_id": run_id if isinstance(run_id, pd.Categorical) else pd.Categorical(run_id),
        "key": key if isinstance(key, pd.Categorical) else pd.Categorical(key),
        "step": np.asarray(step, dtype=np.int64),
        "value": np.asarray(value, dtype=float),
    }
    if timestamp is not None:
        frame["timestamp"] = np.asarray(timestamp, dtype=np.int64)
    return pd.DataFrame(frame)


def _concat_long(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Long tables one after the other, run_id and key kept categorical."""
    if len(parts) == 1:
        return parts[0]
    return _long_frame(
        union_categoricals([p["run_id"].astype("category") for p in parts]),
        union_categoricals([p["key"].astype("category") for p in parts]),
        np.concatenate([p["step"].to_numpy() for p in parts]),
        np.concatenate([p["value"].to_numpy() for p in parts]),
    )


def _fetch_sqlite(uri: str, wanted: dict[str, list[str]]) -> pd.DataFrame:
    """Read the points straight from MLflow's metrics table, one query per run.

    The query hands back keys as numbers (their position in ``keys``), so each row arrives
    as plain numbers and the rows go into one structured array without Python objects.
    """
    path = unquote(uri[len("sqlite:///") :])
    keys = sorted({k for ks in wanted.values() for k in ks})
    case = "CASE key " + " ".join(f"WHEN ? THEN {i}" for i in range(len(keys))) + " END"
    marks = ",".join("?" * len(keys))
    query = (
        f"SELECT {case}, step, value, is_nan, timestamp FROM metrics "
        f"WHERE run_uuid = ? AND key IN ({marks}) ORDER BY key, step"
    )
    row = np.dtype([("key", "i4"), ("step", "i8"), ("value", "f8"), ("nan", "i1"), ("ts", "i8")])
    ids = sorted(wanted)
    parts = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        for run_id in ids:
            parts.append(np.fromiter(conn.execute(query, (*keys, run_id, *keys)), dtype=row))
    points = np.concatenate(parts) if parts else np.zeros(0, dtype=row)
    value = np.where(points["nan"].astype(bool), np.nan, points["value"])
    run = np.repeat(np.arange(len(ids)), [len(p) for p in parts])
    df = _long_frame(
        pd.Categorical.from_codes(run, ids),
        pd.Categorical.from_codes(points["key"], keys),
        points["step"],
        value,
        points["ts"],
    )
    return _latest(df)


def _latest(df: pd.DataFrame) -> pd.DataFrame:
    """One value per (run, key, step): the last logged, should a point have been repeated."""
    columns = ["run_id", "key", "step", "value"]
    if not df.duplicated(["run_id", "key", "step"]).any():
        return df[columns].reset_index(drop=True)
    df = df.sort_values("timestamp", kind="stable")
    df = df.drop_duplicates(["run_id", "key", "step"], keep="last")
    return df[columns].reset_index(drop=True)


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
    value = pd.to_numeric(df["value"], errors="coerce")
    return _latest(_long_frame(df["run_id"], df["key"], df["step"], value, df["timestamp"]))


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
    df = pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "timestamp"])
    return _latest(_long_frame(df["run_id"], df["key"], df["step"], df["value"], df["timestamp"]))


def tidy(long: pd.DataFrame, runs: Iterable[Run]) -> pd.DataFrame:
    """One row per (run, estimator, layer, epoch): the estimator's MI, distinct states and
    I(T;Y) under permuted labels, the layer's ceiling under it, the layer's gradient SNR and
    the epoch's loss and accuracy (both repeated for every estimator), and every param of the
    run (names as in MLflow), ``seed``, ``n_layers`` and ``ceiling`` (log2 N).

    ``estimator`` is the panel member (``default`` for a run without a panel); every member of
    a run's panel gets a row wherever the layer has a value at that epoch. ``layer_ceiling`` is
    min(log2 N, the run's ``max_bits`` param of that member and layer), NaN without the param.
    Rows are sorted by run_id, estimator, layer and epoch; text columns are categorical. Works
    on codes: each point's row and column are found with one sort, and values are scattered
    into place.
    """
    runs = list(runs)
    info = pd.DataFrame([_run_columns(r) for r in runs] or {"run_id": []})
    info = info.drop_duplicates("run_id").sort_values("run_id", ignore_index=True)
    run_ids = pd.Index(info["run_id"])
    panels = _run_panels(runs, run_ids)
    members = pd.Index(sorted({m for p in panels for m in p}))
    run = _codes(long["run_id"], run_ids)
    key_codes, key_names = _factorize(long["key"])
    # per distinct key: its value column (-1: not a series key), layer (-1: an epoch metric)
    # and member (-1: grad_snr and the epoch metrics, which every member shares)
    parsed = [rs.parse_layer_key(str(name)) for name in key_names]
    mi_names, epoch_names = list(MI_METRICS), list(EPOCH_METRICS)
    column = np.full(len(key_names) + 1, -1)
    key_layer = np.full(len(key_names) + 1, -2)
    key_member = np.full(len(key_names) + 1, -1)
    for i, (name, p) in enumerate(zip(key_names, parsed, strict=True)):
        if p is not None and p.metric == rs.GRAD_SNR:
            column[i], key_layer[i], key_member[i] = 0, p.layer, -1
        elif p is not None and p.member in members:
            column[i], key_layer[i] = mi_names.index(p.metric), p.layer
            key_member[i] = members.get_loc(p.member)
        elif name in EPOCH_METRICS:
            column[i], key_layer[i] = epoch_names.index(name), -1
    key_codes = np.where(key_codes < 0, len(key_names), key_codes)
    col, layer, member = column[key_codes], key_layer[key_codes], key_member[key_codes]
    allowed = np.zeros((len(run_ids) + 1, len(members) + 1), dtype=bool)
    for r, panel in enumerate(panels):
        allowed[r, [members.get_loc(m) for m in panel]] = True
    known = (run >= 0) & (col >= 0)
    listed = known & (member >= 0)
    known[listed] = allowed[run[listed], member[listed]]
    step = long["step"].to_numpy(dtype=np.int64)
    value = long["value"].to_numpy(dtype=float)
    lo = int(step[known].min()) if known.any() else 0
    span = int(step[known].max()) - lo + 1 if known.any() else 1
    per_layer = known & (layer >= 0)
    top = int(layer[per_layer].max()) + 1 if per_layer.any() else 1
    n_members = max(len(members), 1)

    mi = per_layer & (member >= 0)
    mi_cell = _rows(run[mi] * n_members + member[mi], layer[mi], step[mi] - lo, top, span)
    grad = per_layer & (member == -1)
    grad_cell = _rows(run[grad], layer[grad], step[grad] - lo, top, span)
    grad_rows, grad_at = np.unique(grad_cell, return_inverse=True)
    grad_grid = _scatter(len(grad_rows), grad_at, col[grad], value[grad], 1)[:, 0]
    # a layer with a gradient value but no MI at an epoch still gets a row per member
    grad_run = grad_rows // (top * span)
    counts = np.array([len(p) for p in panels], dtype=np.int64)[grad_run]
    firsts = np.repeat(np.cumsum(counts) - counts, counts)
    flat_members = np.array([members.get_loc(m) for p in panels for m in p], dtype=np.int64)
    offsets = np.cumsum([0, *(len(p) for p in panels)])[:-1].astype(np.int64)
    which = np.repeat(offsets[grad_run], counts) + np.arange(counts.sum()) - firsts
    grad_member = flat_members[which] if len(which) else np.zeros(0, dtype=np.int64)
    rest = np.repeat(grad_rows % (top * span), counts)
    extra = (np.repeat(grad_run, counts) * n_members + grad_member) * (top * span) + rest

    rows, at = np.unique(np.concatenate([mi_cell, extra]), return_inverse=True)
    grid = _scatter(len(rows), at[: len(mi_cell)], col[mi], value[mi], len(mi_names))
    row_run = rows // (n_members * top * span)
    row_member = rows // (top * span) % n_members
    row_layer = rows // span % top
    row_step = rows % span + lo
    grad_base = (row_run * top + row_layer) * span
    grad_values = _lookup(grad_rows, grad_grid[:, None], grad_base, row_step - lo)[:, 0]
    kept = ~(np.isnan(grid).all(axis=1) & np.isnan(grad_values))  # as a pivot: a row needs a value
    rows, grid, grad_values = rows[kept], grid[kept], grad_values[kept]
    row_run, row_member = row_run[kept], row_member[kept]
    row_layer, row_step = row_layer[kept], row_step[kept]

    per_epoch = known & (layer == -1)
    epoch_cell = run[per_epoch] * span + (step[per_epoch] - lo)
    epoch_rows, epoch_at = np.unique(epoch_cell, return_inverse=True)
    epoch_grid = _scatter(
        len(epoch_rows), epoch_at, col[per_epoch], value[per_epoch], len(epoch_names)
    )
    epoch_values = _lookup(epoch_rows, epoch_grid, row_run * span, row_step - lo)

    ceilings = info["ceiling"].to_numpy(dtype=float) if "ceiling" in info else None
    bits = _max_bits(runs, run_ids, members, top)
    out = {
        "run_id": pd.Categorical.from_codes(row_run, run_ids),
        "seed": info["seed"].to_numpy()[row_run] if "seed" in info else np.full(len(rows), -1),
        "estimator": pd.Categorical.from_codes(row_member, members)
        if len(members)
        else pd.Categorical([rs.DEFAULT_MEMBER] * len(rows)),
        "layer": row_layer.astype(np.int64),
        "epoch": row_step.astype(np.int64),
    }
    for j, name in enumerate(mi_names):
        out[MI_METRICS[name]] = grid[:, j]
    ceiling = ceilings[row_run] if ceilings is not None else np.full(len(rows), np.nan)
    out["layer_ceiling"] = np.minimum(ceiling, bits[row_run, row_member, row_layer])
    out["grad_snr"] = grad_values
    for j, name in enumerate(epoch_names):
        out[EPOCH_METRICS[name]] = epoch_values[:, j]
    for name in ("n_layers", "ceiling"):
        out[name] = info[name].to_numpy()[row_run] if name in info else np.nan
    params = sorted(c for c in info.columns if c not in out)
    for name in params:
        values = pd.Categorical(info[name])
        out[name] = pd.Categorical.from_codes(values.codes[row_run], values.categories)
    table = pd.DataFrame(out)
    first = ["run_id", "seed", "estimator", "layer", "epoch", *VALUE_COLUMNS, "n_layers"]
    for name in table.select_dtypes("category").columns:
        table[name] = table[name].cat.remove_unused_categories()
    return table[[*first, "ceiling", *params]]


def _run_panels(runs: list[Run], run_ids: pd.Index) -> list[list[str]]:
    """Each run's panel members (``default`` without a panel), in ``run_ids`` order."""
    by_id = {r.info.run_id: rs.panel_members(r.data.params) for r in runs}
    return [by_id[r] for r in run_ids]


def _max_bits(runs: list[Run], run_ids: pd.Index, members: pd.Index, top: int) -> np.ndarray:
    """The ``max_bits`` param per (run, member, layer), NaN where the run has none."""
    bits = np.full((len(run_ids) + 1, max(len(members), 1), top), np.nan)
    position = {r: i for i, r in enumerate(run_ids)}
    for r in runs:
        i = position[r.info.run_id]
        for member in rs.panel_members(r.data.params):
            for k in range(1, top):
                raw = r.data.params.get(rs.max_bits_param(k, member))
                if raw is not None:
                    bits[i, members.get_loc(member), k] = float(raw)
    return bits


def _lookup(cells: np.ndarray, grid: np.ndarray, base: np.ndarray, step: np.ndarray) -> np.ndarray:
    """``grid``'s row for each wanted cell ``base + step`` among sorted ``cells``; NaN if absent."""
    wanted = base + step
    shape = (len(wanted), *grid.shape[1:])
    out = np.full(shape, np.nan)
    if not len(cells):
        return out
    where = np.clip(np.searchsorted(cells, wanted), 0, len(cells) - 1)
    found = cells[where] == wanted
    out[found] = grid[where[found]]
    return out


def _codes(column: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each value of ``column`` in ``index`` (-1 where absent)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        positions = np.append(index.get_indexer(column.cat.categories.astype(object)), -1)
        return positions[column.cat.codes.to_numpy()]  # code -1 (missing) maps to -1
    return index.get_indexer(column.astype(object))


def _factorize(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64), column.cat.categories
    codes, uniques = pd.factorize(column)
    return codes.astype(np.int64), pd.Index(uniques)


def _rows(run: np.ndarray, layer: np.ndarray, step: np.ndarray, top: int, span: int) -> np.ndarray:
    """(run, layer, step) as one sortable int64, in that order of precedence."""
    if len(run) and (int(run.max()) + 1) * top * span >= 2**62:
        raise FetchError("too many runs, layers and epochs to index in one table")
    return (run.astype(np.int64) * top + layer) * span + step


def _scatter(n: int, at: np.ndarray, col: np.ndarray, value: np.ndarray, width: int) -> np.ndarray:
    """An (n, width) array with value[i] at (at[i], col[i]); the last of repeated cells wins."""
    grid = np.full((n, width), np.nan)
    cell = at * width + col
    if len(cell) and np.bincount(cell).max() > 1:
        last = len(cell) - 1 - np.unique(cell[::-1], return_index=True)[1]
        at, col, value = at[last], col[last], value[last]
    grid[at, col] = value
    return grid


def _run_columns(run: Run) -> dict:
    params = run.data.params
    n = params.get(rs.N_SAMPLES)
    return {
        "run_id": run.info.run_id,
        **{k: v for k, v in params.items() if k != rs.SEED},
        "seed": int(params.get(rs.SEED, -1)),
        "n_layers": _n_layers(run),
        "ceiling": math.log2(int(n)) if n else math.nan,
    }


class SeriesCache:
    """Tidy rows of finished runs on disk, keyed by each run's signature; a cache written for
    another layout of the table (``FORMAT``) is not used."""

    FORMAT = 2  # 2: one row per estimator, with the reliability columns

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.index_path = self.folder / "index.json"
        self.table_path = self.folder / "series.parquet"

    def load(self) -> tuple[dict[str, str], pd.DataFrame | None]:
        """The cached signatures and rows (None when there is no cache)."""
        if not (self.index_path.exists() and self.table_path.exists()):
            return {}, None
        index = json.loads(self.index_path.read_text())
        if not isinstance(index, dict) or index.get("format") != self.FORMAT:
            return {}, None
        return index["runs"], pd.read_parquet(self.table_path)

    def save(self, signatures: dict[str, str], table: pd.DataFrame) -> None:
        """Replace the cache (written to temporary files, then renamed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp_table = self.table_path.with_suffix(".partial")
        table.to_parquet(tmp_table, index=False)
        tmp_table.replace(self.table_path)
        tmp_index = self.index_path.with_suffix(".partial")
        tmp_index.write_text(json.dumps({"format": self.FORMAT, "runs": signatures}))
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
    parts = []
    if old_table is not None and keep_ids:
        cached = old_table["run_id"].isin(keep_ids)
        parts.append(old_table if cached.all() else old_table[cached])
    if todo:
        parts.append(tidy(fetch_long(uri, client, todo), todo))
    parts = [p for p in parts if not p.empty]
    if not parts:
        table = pd.DataFrame()
    elif len(parts) == 1:  # a part is sorted already
        table = _compact(parts[0].reset_index(drop=True))
    else:
        table = _compact(pd.concat(parts, ignore_index=True))
        table = table.sort_values(["run_id", "estimator", "layer", "epoch"])
        table = table.reset_index(drop=True)
    if cache is not None and todo:
        done = {k: v for k, v in sigs.items() if v}
        finished = table["run_id"].isin(done) if not table.empty else None
        cache.save(done, table if finished is None or finished.all() else table[finished])
    return SweepSeries(exp_id, parent, runs, table, [r.info.run_id for r in todo], sorted(keep_ids))


def _compact(table: pd.DataFrame) -> pd.DataFrame:
    """Repeated text columns (params) as categories: small in memory and in Parquet."""
    for col in table.columns:
        if table[col].dtype == object or str(table[col].dtype) in ("str", "string"):
            table[col] = table[col].astype("category")
    return table
