"""Running (or resuming) a sweep: checked, prepared in MLflow, trained on Ray Tune, recorded."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TextIO

from mlflow.tracking import MlflowClient

from ibsweep.analysis.sqlite_metrics import SchemaMismatch, check_schema
from ibsweep.sweep.cluster.ray_cluster import alive_nodes, check_cluster, init_ray, resolve_storage
from ibsweep.sweep.config.grid import expand
from ibsweep.sweep.config.spec import load_spec, sweep_file, uri_has_password
from ibsweep.sweep.errors import UsageError
from ibsweep.sweep.execution.outcome import (
    SweepResult,
    deliver_spool,
    finish_execution,
    stopped_by_tracking,
)
from ibsweep.sweep.execution.prepare import check_inputs, data_dir, prepare_execution
from ibsweep.sweep.tracking.retry import DEFAULT_RETRY_S, TrackingUnavailable
from ibsweep.sweep.tracking.uri import resolve_tracking_uri, server_reachable

log = logging.getLogger(__name__)


def run_sweep(
    spec_path: str | Path,
    tracking_uri: str | None = None,
    address: str | None = None,
    restart: bool = False,
    analyze: bool = True,
    progress: TextIO | None = None,
) -> SweepResult:
    """Run (or resume) a sweep file (or a shipped example by name) and return what it did.

    Bad input raises UsageError before anything starts. With ``analyze``, a sweep whose runs
    all ended is analysed into ``./ibsweep-results/NAME`` and the statistics are logged back
    to its runs. ``progress``, if given, receives a progress line every few seconds.
    """
    path = sweep_file(spec_path)
    spec = load_spec(path)
    plan = expand(spec)
    if not plan.trials:
        raise UsageError(f"{path}: the grid has no runnable configuration (all were skipped)")
    if spec.search is not None and len(plan.configurations) != 1:
        raise UsageError(
            f"{path}: search tunes one configuration, but the grid expands to "
            f"{len(plan.configurations)} ({', '.join(c.label for c in plan.configurations[:3])}"
            f"{', ...' if len(plan.configurations) > 3 else ''}); give one value per grid axis"
        )
    data_root = data_dir(spec)
    measured = check_inputs(plan, data_root)
    uri = resolve_tracking_uri(tracking_uri, spec.tracking.uri)
    if uri_has_password(uri):
        raise UsageError(
            "the tracking URI holds a password; put credentials in MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD (environment) instead"
        )
    storage = resolve_storage(spec.storage)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:  # on a cluster, refuse what its nodes cannot share before anything starts
        init_ray(address)
        check_cluster(path, alive_nodes(), uri, storage)
    if not server_reachable(uri):
        raise UsageError(f"the tracking server {uri} does not answer; is it running?")
    client = MlflowClient(uri)
    if uri.startswith("sqlite:"):
        client.search_experiments(max_results=1)  # creates (or migrates) the store first
        try:
            check_schema(uri)
        except SchemaMismatch as err:
            raise UsageError(str(err)) from None
    execution = prepare_execution(client, plan, path, measured, storage, restart)
    if execution.complete:
        return SweepResult(spec.name, uri, execution.parent_id, already_complete=True)
    log.info(
        "%s sweep '%s': %d trials, %d runs, %d seed-epochs; MLflow %s (parent run %s)",
        "resuming" if execution.resumed else "starting", spec.name, len(plan.trials),
        plan.n_runs, plan.seed_epochs, uri, execution.parent_id,
    )  # fmt: skip
    try:
        deliver_spool(client, execution, spec.tracking.retry_s or DEFAULT_RETRY_S)
    except TrackingUnavailable as err:
        raise UsageError(f"{err}; the points stay in {execution.spool.root}") from None
    from ibsweep.sweep.tuning.tuner import run_tuner

    outcome = run_tuner(plan, execution, uri, data_root, address, measured, progress)
    stopped = stopped_by_tracking(client, execution, outcome.errors, uri, path)
    if stopped is not None:
        return SweepResult(spec.name, uri, execution.parent_id, tracking_error=stopped)
    result = finish_execution(client, plan, execution, outcome, uri)
    if analyze and not result.interrupted:
        from ibsweep.analysis.sweep_analysis import analyze_sweep

        try:
            out = Path("ibsweep-results") / spec.name
            result.analysis = analyze_sweep(uri, spec.name, out, log_to_mlflow=True)
        except Exception as err:  # the sweep itself succeeded; say why the analysis did not
            result.analysis_error = str(err).strip().splitlines()[0] if str(err) else repr(err)
    return result
