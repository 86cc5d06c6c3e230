"""A sweep's whole analysis: series, phases per run, verdicts, claims, robustness, sensitivity,
generalisation, comparisons, figures, report.

Everything is written under ``out_dir``. Read-only by default: only with ``log_to_mlflow`` does
the analysis write into the store, then phase statistics go onto each run
(``phase/layer{k}/{stat}`` metrics, ``phase.layer{k}.verdict`` tags; with a panel
``phase/<estimator>/layer{k}/...``), and the report, tables, figures and settings onto the
sweep's parent run (artifact folder ``analysis``, params ``analysis.<setting>``). ``ibsweep
run`` logs (the sweep's own store); ``ibsweep analyze`` logs only with ``--log-to-mlflow``.
Settings: the defaults of AnalysisConfig, then the ``analysis:`` block of the sweep file that
the parent run holds as an artifact, then the overrides given here.
A cache under ``out_dir/.cache`` keeps the series and phase statistics of finished runs: a
second analysis fetches and recomputes only runs that are new or changed (all of them when a
per-run setting changed), and rewrites nothing when neither the runs nor the settings changed.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ibsweep.analysis import run_schema as rs
from ibsweep.analysis.claims import claim_tests
from ibsweep.analysis.configurations import (
    MODEL_AXIS,
    comparison_columns,
    model_label,
    varying_columns,
)
from ibsweep.analysis.fetch import SweepSeries, fetch_series, run_signature
from ibsweep.analysis.generalisation import generalisation_points, generalisation_table
from ibsweep.analysis.parallel import default_workers
from ibsweep.analysis.phases import PHASE_STATS, run_phases
from ibsweep.analysis.plots import make_figures, plot_generalisation
from ibsweep.analysis.reliability import with_optional_columns
from ibsweep.analysis.report import ReportTables, write_report
from ibsweep.analysis.robustness import robustness_table
from ibsweep.analysis.sensitivity import sensitivity_table
from ibsweep.analysis.settings import (
    PhaseConfig,
    as_params,
    block_of_sweep_file,
    make_config,
)
from ibsweep.analysis.sqlite_metrics import Point, bulk_writer
from ibsweep.analysis.statistics import KEY_STATS, aggregate, compare
from ibsweep.analysis.verdicts import classify_runs

_LOG_THREADS = 8  # requests in flight when logging statistics back to a tracking server
TABLES: tuple[str, ...] = (
    "claims.csv",
    "verdicts.csv",
    "robustness.csv",
    "sensitivity.csv",
    "generalisation.csv",
    "comparisons.csv",
    "phases.csv",
    "series.parquet",
    "settings.json",
)
_LOGGED = [f for f in TABLES if f != "series.parquet"]  # artifacts of the parent run


@dataclass
class SweepAnalysis:
    """What an analysis produced (tables in memory, files on disk)."""

    out_dir: Path
    verdicts: pd.DataFrame
    claims: pd.DataFrame
    comparisons: pd.DataFrame
    display_cols: list[str]
    n_runs: int
    fetched: int
    up_to_date: bool
    files: list[str]
    settings: dict[str, str]
    logged: bool
    notes: list[str] = field(default_factory=list)

    @property
    def phases(self) -> pd.DataFrame:
        """Phase statistics per run and layer (``phases.csv``)."""
        return pd.read_csv(self.out_dir / "phases.csv")

    @property
    def series(self) -> pd.DataFrame:
        """The tidy per-epoch series of every run (``series.parquet``)."""
        return pd.read_parquet(self.out_dir / "series.parquet")


def _phases(
    series: SweepSeries, table: pd.DataFrame, cache: Path, config: PhaseConfig
) -> tuple[pd.DataFrame, set[str]]:
    """Phase statistics per run, estimator and layer, and the runs computed now: the fetched
    runs, or every run when the per-run settings differ from those of the cache.

    One process: the statistics of all trajectories are computed as arrays (a few
    milliseconds per hundred trajectories), which costs less than starting workers.
    """
    per_run = config.model_dump_json(include=set(PhaseConfig.model_fields))
    path = cache / f"phases-{hashlib.sha256(per_run.encode()).hexdigest()[:12]}.parquet"
    old = pd.read_parquet(path) if path.exists() else None
    keep = set(series.cached) if old is not None else set()
    parts = [old[old["run_id"].isin(keep)]] if keep else []
    todo = table["run_id"].astype(str).isin(keep)
    computed = set(table.loc[~todo, "run_id"].astype(str))
    if computed:
        parts.append(run_phases(table[~todo], series.config_cols, config))
    phases = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for col in series.config_cols:
        if col in phases.columns:
            phases[col] = phases[col].astype(str)
    for stale in cache.glob("phases-*.parquet"):
        stale.unlink()
    phases.to_parquet(path, index=False)
    return phases, computed


def _log_back(
    client: MlflowClient, uri: str, phases: pd.DataFrame, run_ids: set[str], config: PhaseConfig
) -> None:
    """Phase statistics as metrics and per-seed verdicts (under ``config``) as tags, on each run.

    Into a SQLite store the metrics of all runs go in one transaction (the same rows as
    ``log_batch``, see analysis.sqlite_metrics) and the tags with one ``log_batch`` per run; to a
    tracking server one ``log_batch`` per run, several requests at a time.
    """
    if not run_ids:
        return
    todo = phases[phases["run_id"].isin(run_ids)].reset_index(drop=True)
    todo = todo.assign(
        verdict=classify_runs(todo, config),
        unreliable=todo["unreliable_reason"].fillna("").astype(bool),
    )
    batches: dict[str, tuple[list[Point], list[RunTag]]] = {}
    columns = ["run_id", "estimator", "layer", *PHASE_STATS, "unreliable", "verdict"]
    for row in todo[columns].itertuples(index=False):
        points, tags = batches.setdefault(row[0], ([], []))
        estimator, k = str(row[1]), int(row[2])
        for stat, value in zip(PHASE_STATS, row[3:-2], strict=True):
            if math.isfinite(value):
                points.append((rs.phase_key(k, stat, estimator), float(value), 0, 0))
        points.append((rs.phase_key(k, "unreliable", estimator), float(row[-2]), 0, 0))
        tags.append(RunTag(rs.verdict_tag(k, estimator), row[-1]))

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


def _sweep_block(client: MlflowClient, parent: Run | None) -> tuple[dict[str, Any], str]:
    """The ``analysis:`` block of the sweep file the parent run holds, and where the settings
    came from (said in the report: a block that cannot be read is not silently dropped)."""
    if parent is None:
        return {}, "defaults (no parent run holds a sweep file)"
    pid = parent.info.run_id
    try:
        files = [
            a.path
            for a in client.list_artifacts(pid, rs.SPEC_ARTIFACTS)
            if a.path.endswith((".yaml", ".yml"))
        ]
        if not files:
            return {}, "defaults (the parent run holds no sweep file)"
        with tempfile.TemporaryDirectory(prefix="ibsweep-spec-") as folder:
            local = client.download_artifacts(pid, files[0], folder)
            text = Path(local).read_text()
    except MlflowException as err:
        first = str(err).splitlines()[0]
        return {}, f"defaults: the parent run's sweep file could not be read ({first})"
    block = block_of_sweep_file(text)
    return block, f"the analysis: block of {files[0]}" if block else f"defaults ({files[0]})"


def _log_settings(client: MlflowClient, parent: Run, settings: Mapping[str, str]) -> list[str]:
    """The settings as params of the parent run; MLflow params never change, so a setting
    that an earlier analysis logged with another value is kept and named in the notes."""
    held = parent.data.params
    new = {rs.analysis_param(k): v for k, v in settings.items()}
    clash = [k for k, v in new.items() if k in held and held[k] != v]
    todo = [Param(k, v) for k, v in new.items() if k not in held]
    if todo:
        client.log_batch(parent.info.run_id, params=todo, synchronous=True)
    if not clash:
        return []
    return [
        f"the parent run keeps the analysis params of an earlier analysis for {', '.join(clash)} "
        "(MLflow params never change); this analysis's settings are in its report and in the "
        f"artifact {rs.ANALYSIS_ARTIFACTS}/settings.json"
    ]


def _signature(series: SweepSeries, settings: Mapping[str, str]) -> str:
    sigs = sorted(f"{r.info.run_id}={run_signature(r)}" for r in series.runs)
    sigs.append(json.dumps(dict(settings), sort_keys=True))
    return hashlib.sha256("\n".join(sigs).encode()).hexdigest()[:16]


def analyze_sweep(
    uri: str,
    name: str,
    out_dir: str | Path,
    settings: Mapping[str, Any] | None = None,
    log_to_mlflow: bool = False,
) -> SweepAnalysis:
    """Analyse sweep ``name`` from the MLflow store at ``uri`` into ``out_dir``.

    ``settings`` override the sweep file's ``analysis:`` block (raises AnalysisSettingsError,
    before the store is read, on an unknown setting or a bad value); the store is written only
    with ``log_to_mlflow``.
    """
    overrides = dict(settings or {})
    make_config(overrides)
    out = Path(out_dir)
    cache = out / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    series = fetch_series(uri, name, cache)
    client = MlflowClient(uri)
    block, source = _sweep_block(client, series.parent)
    config = make_config({**block, **overrides})
    if overrides:
        source += ", then --set " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    used = as_params(config)
    signature = _signature(series, used)
    stamp = cache / "outputs.json"
    before = json.loads(stamp.read_text()) if stamp.exists() else {}
    if (
        not series.fetched
        and before.get("signature") == signature
        and (before.get("logged") or not log_to_mlflow)
        and all((out / f).exists() for f in before.get("files", ["-"]))
    ):
        return SweepAnalysis(
            out, pd.read_csv(out / "verdicts.csv"), pd.read_csv(out / "claims.csv"),
            pd.read_csv(out / "comparisons.csv"), before["display_cols"], len(series.runs), 0,
            True, before["files"], used, False,
        )  # fmt: skip
    table = with_optional_columns(series.table)
    table.to_parquet(out / "series.parquet", index=False)
    config_cols = series.config_cols
    phases, computed = _phases(series, table, cache, config)
    # runs whose statistics the store lacks: those computed now, or all of them when the last
    # analysis did not log or logged other settings' values
    logged_before = before.get("logged") and before.get("settings") == used
    to_log = computed if logged_before else set(phases["run_id"])
    phases.to_csv(out / "phases.csv", index=False)
    display = varying_columns(table, config_cols)
    with_model = phases.assign(**{MODEL_AXIS: model_label(phases)})
    reliable = with_model[~with_model["unreliable_reason"].fillna("").astype(bool)]
    (out / "settings.json").write_text(json.dumps(used, indent=1))
    # Logging back waits on the store and drawing on worker processes: both go on in the
    # background while this thread computes the statistics.
    with ThreadPoolExecutor(2) as background:
        logged = (
            background.submit(_log_back, client, uri, phases, to_log, config)
            if log_to_mlflow
            else None
        )
        drawn = background.submit(
            make_figures,
            table[table["epoch"] >= 1],
            with_model,
            [*display, "estimator"],
            out,
            default_workers(),
        )
        verdicts = aggregate(phases, config_cols, config=config)
        verdicts.to_csv(out / "verdicts.csv", index=False)
        claims = claim_tests(phases, verdicts, config_cols, config)
        claims.to_csv(out / "claims.csv", index=False)
        robustness = robustness_table(verdicts, config_cols)
        robustness.to_csv(out / "robustness.csv", index=False)
        sensitivity, moved = sensitivity_table(table, phases, config_cols, config)
        sensitivity.to_csv(out / "sensitivity.csv", index=False)
        generalisation = generalisation_table(phases, config_cols, config)
        generalisation.to_csv(out / "generalisation.csv", index=False)
        comparisons = compare(
            reliable,
            comparison_columns(config_cols),
            KEY_STATS,
            fixed_cols=["estimator"],
            alpha=config.alpha,
            seed=config.random_seed,
        )
        comparisons.to_csv(out / "comparisons.csv", index=False)
        figures = drawn.result()
        if logged is not None:
            logged.result()
    points = generalisation_points(phases)
    for estimator, part in points.groupby("estimator", sort=True):
        path = out / "figures" / f"generalisation_{estimator}.png"
        figures[f"Compression and generalisation: {estimator}"] = plot_generalisation(part, path)
    keep = [*display, *[c for c in verdicts.columns if c not in config_cols]]
    report = write_report(
        out,
        verdicts[keep],
        comparisons,
        figures,
        {
            "title": f"ibsweep analysis: {name}",
            "sweep": name,
            "runs": len(series.runs),
            "settings": source,
        },
        ReportTables(
            claims=_shown(claims, display),
            robustness=robustness[[*display, *robustness.columns[len(config_cols) :]]],
            sensitivity=sensitivity[[*display, *sensitivity.columns[len(config_cols) :]]],
            sensitivity_summary=moved,
            generalisation=generalisation,
            settings=used,
        ),
    )
    files = [*TABLES, report.name, "report.html"]
    files += sorted(str(p.relative_to(out)) for p in (out / "figures").glob("*.png"))
    notes = [] if "could not be read" not in source else [f"settings: {source}"]
    if log_to_mlflow and series.parent is not None:
        pid = series.parent.info.run_id
        notes += _log_settings(client, series.parent, used)
        for f in [*_LOGGED, report.name, "report.html"]:
            client.log_artifact(pid, str(out / f), artifact_path=rs.ANALYSIS_ARTIFACTS)
        client.log_artifacts(
            pid, str(out / "figures"), artifact_path=f"{rs.ANALYSIS_ARTIFACTS}/figures"
        )
    stamp.write_text(
        json.dumps(
            {"signature": signature, "display_cols": display, "files": files,
             "logged": log_to_mlflow, "settings": used}
        )
    )  # fmt: skip
    return SweepAnalysis(
        out, verdicts, claims, comparisons, display, len(series.runs), len(series.fetched),
        False, files, used, log_to_mlflow, notes,
    )  # fmt: skip


def _shown(claims: pd.DataFrame, display: list[str]) -> pd.DataFrame:
    """The claims with only the settings that vary between configurations."""
    first = claims.columns.get_loc("layer")
    settings = [c for c in claims.columns[2:first] if c in display]
    return claims[["dnn_model", "bnn_model", *settings, *claims.columns[first:]]]
