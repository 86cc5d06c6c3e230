"""Running (or resuming) a sweep: checked, prepared in MLflow, trained on Ray Tune, recorded."""

from __future__ import annotations

import os
import sys

from mlflow.tracking import MlflowClient

from ibsweep.sweep.cluster.ray_cluster import alive_nodes, check_cluster, init_ray, resolve_storage
from ibsweep.sweep.config.grid import expand
from ibsweep.sweep.config.spec import load_spec, sweep_file, uri_has_password
from ibsweep.sweep.errors import UsageError
from ibsweep.sweep.execution.outcome import deliver_spool, stopped_by_tracking
from ibsweep.sweep.execution.prepare import check_inputs, data_dir, prepare_execution
from ibsweep.sweep.tracking.retry import DEFAULT_RETRY_S, TrackingUnavailable
from ibsweep.sweep.tracking.uri import resolve_tracking_uri, server_reachable


def run_sweep(
    spec_path: str,
    tracking_uri: str | None = None,
    address: str | None = None,
    restart: bool = False,
    analyze: bool = True,
) -> int:
    """Run (or resume) a sweep file; returns the process exit code."""
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
    execution = prepare_execution(client, plan, path, measured, storage, restart)
    if execution.complete:
        print(
            f"sweep '{spec.name}' is already complete (parent run {execution.parent_id}); "
            "--restart runs it again",
            file=sys.stderr,
        )
        return 0
    verb = "resuming" if execution.resumed else "starting"
    print(
        f"{verb} sweep '{spec.name}': {len(plan.trials)} trials, {plan.n_runs} runs, "
        f"{plan.seed_epochs} seed-epochs; MLflow {uri} (parent run {execution.parent_id})",
        file=sys.stderr,
    )
    try:
        deliver_spool(client, execution, spec.tracking.retry_s or DEFAULT_RETRY_S)
    except TrackingUnavailable as err:
        raise UsageError(f"{err}; the points stay in {execution.spool.root}") from None
    from ibsweep.sweep.tuning.tuner import run_tuner

    outcome = run_tuner(plan, execution, uri, data_root, address, measured)
    code = stopped_by_tracking(client, execution, outcome.errors, uri, path)
    if code is not None:
        return code
    from ibsweep.sweep.execution.outcome import finish_execution

    return finish_execution(client, plan, execution, outcome, uri, analyze)
