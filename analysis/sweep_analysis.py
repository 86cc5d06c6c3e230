"""A sweep's whole analysis: series, phases per run, verdicts and comparisons, figures, report.

Everything is written under ``out_dir``; phase statistics are logged back onto each MLflow run
(``phase/layer{k}/{stat}`` metrics, ``phase.layer{k}.verdict`` tags) and the report onto the
sweep's parent run (artifact folder ``analysis``). A cache under ``out_dir/.cache`` keeps the
series and phase statistics of finished runs: a second analysis fetches and recomputes only
runs that are new or changed, and rewrites nothing when no run changed.
"""

from __future__ import annotations

import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from ibsweep.analysis import run_schema as rs
from ibsweep.analysis.fetch import SweepSeries, fetch_series, run_signature
from ibsweep.analysis.parallel import default_workers
from ibsweep.analysis.phases import PHASE_STATS, run_phases
from ibsweep.analysis.plots import make_figures
from ibsweep.analysis.report import write_report
from ibsweep.analysis.sqlite_metrics import Point, bulk_writer
from ibsweep.analysis.statistics import KEY_STATS, aggregate, compare
from ibsweep.analysis.verdicts import classify_runs

MODEL_AXIS = "model"
_MODEL_PARTS = ("model.kind", "model.activation", "model.beta", "model.bnn_norm")
_ARTIFACT_PATH = "analysis"
_LOG_THREADS = 8  # requests in flight when logging statistics back to a tracking server


@dataclass
class SweepAnalysis:
    """What an analysis produced (tables in memory, files on disk)."""

    out_dir: Path
    verdicts: pd.DataFrame
    comparisons: pd.DataFrame
    display_cols: list[str]
    n_runs: int
    fetched: int
    up_to_date: bool

    @property
    def phases(self) -> pd.DataFrame:
        """Phase statistics per run and layer (``phases.csv``)."""
        return pd.read_csv(self.out_dir / "phases.csv")

    @property
    def series(self) -> pd.DataFrame:
        """The tidy per-epoch series of every run (``series.parquet``)."""
        return pd.read_parquet(self.out_dir / "series.parquet")


def varying_columns(table: pd.DataFrame, config_cols: list[str]) -> list[str]:
    """Config columns that differ between configurations (always model kind and activation)."""
    derived = ("mi.layer", rs.N_LAYERS)  # follow from the model and widths
    cols = [
        c
        for c in config_cols
        if c in table.columns
        and table[c].nunique(dropna=False) > 1
        and not c.startswith(derived)
        and c not in ("model.kind", "model.activation")
    ]
    for c in reversed(("model.kind", "model.activation")):
        if c in table.columns and c not in cols:
            cols.insert(0, c)
    return cols


def comparison_columns(config_cols: list[str]) -> list[str]:
    """Axes for comparisons: the model (kind and activation together) and every other setting.

    BNN vs DNN differ in kind, activation and estimator at once; folding the model into one
    axis and leaving out what follows from it pairs them as one comparison.
    """
    derived = {*_MODEL_PARTS, rs.N_LAYERS}
    rest = [c for c in config_cols if c not in derived and not c.startswith("mi.layer")]
    return [MODEL_AXIS, *rest]


def _model_label(df: pd.DataFrame) -> pd.Series:
    label = df["model.kind"].astype(str) + "-" + df["model.activation"].astype(str)
    if "model.beta" in df.columns:
        swish = df["model.activation"].astype(str) == "swish_sign"
        label = label.where(~swish, label + "-b" + df["model.beta"].astype(str))
    if "model.bnn_norm" in df.columns:
        bn = df["model.bnn_norm"].astype(str) == "batchnorm"
        label = label.where(~bn, label + "-bn")
    return label


def _phases(series: SweepSeries, cache: Path) -> pd.DataFrame:
    """Phase statistics per run and layer, recomputed only for fetched runs.

    One process: the statistics of all trajectories are computed as arrays (a few
    milliseconds per hundred trajectories), which costs less than starting workers.
    """
    path = cache / "phases.parquet"
    old = pd.read_parquet(path) if path.exists() else None
    keep = set(series.cached)
    parts = []
    if old is not None and keep:
        parts.append(old[old["run_id"].isin(keep)])
    table = series.table
    fetched = table["run_id"].isin(set(series.fetched)) & (table["epoch"] >= 1)
    if fetched.any():  # a log-epoch axis starts at epoch 1
        parts.append(run_phases(table[fetched], series.config_cols))
    phases = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for col in series.config_cols:
        if col in phases.columns:
            phases[col] = phases[col].astype(str)
    phases.to_parquet(path, index=False)
    return phases


def _log_back(client: MlflowClient, uri: str, phases: pd.DataFrame, run_ids: set[str]) -> None:
    """Phase statistics as metrics and per-seed verdicts as tags, on each run.

    Into a SQLite store the metrics of all runs go in one transaction (the same rows as
    ``log_batch``, see analysis.sqlite_metrics) and the tags with one ``log_batch`` per run; to a
    tracking server one ``log_batch`` per run, several requests at a time.
    """
    if not run_ids:
        return
    todo = phases[phases["run_id"].isin(run_ids)].reset_index(drop=True)
    todo = todo.assign(verdict=classify_runs(todo))
    batches: dict[str, tuple[list[Point], list[RunTag]]] = {}
    columns = ["run_id", "layer", *PHASE_STATS, "saturated", "verdict"]
    for row in todo[columns].itertuples(index=False):
        points, tags = batches.setdefault(row[0], ([], []))
        k = int(row[1])
        for stat, value in zip(PHASE_STATS, row[2:-2], strict=True):
            if math.isfinite(value):
                points.append((rs.phase_key(k, stat), float(value), 0, 0))
        points.append((rs.phase_key(k, "saturated"), float(row[-2]), 0, 0))
        tags.append(RunTag(rs.verdict_tag(k), row[-1]))

    writer = bulk_writer(uri)
    if writer is not None:
        try:
            writer.write({run_id: points for run_id, (points, _) in batches.items()})
        finally:
            writer.close()
        for run_id, (_, tags) in batches.items():
            client.log_batch(run_id, tags=tags, synchronous=True)
        return

    def log(item: tuple[str, tuple[list[Point], list[RunTag]]]) -> None:
        run_id, (points, tags) = item
        metrics = [Metric(*p) for p in points]
        client.log_batch(run_id, metrics=metrics, tags=tags, synchronous=True)

    with ThreadPoolExecutor(_LOG_THREADS) as pool:
        list(pool.map(log, batches.items()))


def _signature(series: SweepSeries) -> str:
    sigs = sorted(f"{r.info.run_id}={run_signature(r)}" for r in series.runs)
    return hashlib.sha256("\n".join(sigs).encode()).hexdigest()[:16]


def analyze_sweep(
    uri: str, name: str, out_dir: str | Path, log_to_mlflow: bool = False
) -> SweepAnalysis:
    """Analyse sweep ``name`` from the MLflow store at ``uri`` into ``out_dir``.

    Read-only unless ``log_to_mlflow``: then each run also gets its phase statistics and
    verdicts, and the sweep's parent run the report, in MLflow.
    """
    out = Path(out_dir)
    cache = out / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    series = fetch_series(uri, name, cache)
    signature = _signature(series)
    stamp = cache / "outputs.json"
    before = json.loads(stamp.read_text()) if stamp.exists() else {}
    logged = set(before.get("logged", [])) - set(series.fetched)
    to_log = {r.info.run_id for r in series.runs} - logged if log_to_mlflow else set()
    outputs = [out / "verdicts.csv", out / "comparisons.csv", out / "series.parquet"]
    if (
        not series.fetched
        and not to_log
        and before.get("signature") == signature
        and all(p.exists() for p in outputs)
    ):
        return SweepAnalysis(
            out,
            pd.read_csv(out / "verdicts.csv"),
            pd.read_csv(out / "comparisons.csv"),
            before["display_cols"],
            len(series.runs),
            0,
            True,
        )
    table = series.table
    table.to_parquet(out / "series.parquet", index=False)
    config_cols = series.config_cols
    phases = _phases(series, cache)
    phases.to_csv(out / "phases.csv", index=False)
    client = MlflowClient(uri)
    display = varying_columns(table, config_cols)
    with_model = phases.assign(**{MODEL_AXIS: _model_label(phases)})
    # Logging back waits on the store and drawing on worker processes: both go on in the
    # background while this thread computes the statistics.
    with ThreadPoolExecutor(2) as background:
        back = background.submit(_log_back, client, uri, phases, to_log)
        drawn = background.submit(
            make_figures, table[table["epoch"] >= 1], with_model, display, out, default_workers()
        )
        verdicts = aggregate(phases, config_cols)
        verdicts.to_csv(out / "verdicts.csv", index=False)
        comparisons = compare(with_model, comparison_columns(config_cols), KEY_STATS)
        comparisons.to_csv(out / "comparisons.csv", index=False)
        figures = drawn.result()
        back.result()
    shown = verdicts[[*display, *[c for c in verdicts.columns if c not in config_cols]]]
    report = write_report(
        out,
        shown,
        comparisons,
        figures,
        {"title": f"ibsweep analysis: {name}", "sweep": name, "runs": len(series.runs)},
    )
    if log_to_mlflow and series.parent is not None:
        pid = series.parent.info.run_id
        for path in (report, report.with_suffix(".html"), *outputs[:2], out / "phases.csv"):
            client.log_artifact(pid, str(path), artifact_path=_ARTIFACT_PATH)
        client.log_artifacts(pid, str(out / "figures"), artifact_path=f"{_ARTIFACT_PATH}/figures")
    stamp.write_text(
        json.dumps(
            {"signature": signature, "display_cols": display, "logged": sorted(logged | to_log)}
        )
    )
    return SweepAnalysis(
        out, verdicts, comparisons, display, len(series.runs), len(series.fetched), False
    )
