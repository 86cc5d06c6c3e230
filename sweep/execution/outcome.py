"""The end of a sweep: spooled points delivered, failed runs marked, counts on the parent run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient

from ibsweep.analysis import run_schema as rs
from ibsweep.sweep.config.grid import Plan
from ibsweep.sweep.execution.prepare import Execution
from ibsweep.sweep.tracking.retry import UNAVAILABLE, TrackingUnavailable
from ibsweep.sweep.tracking.store import (
    child_runs,
    set_tags,
)
from ibsweep.sweep.tracking.uri import server_reachable

if TYPE_CHECKING:
    from ibsweep.sweep.tuning.tuner import TuneOutcome

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """What one ``run_sweep`` did: run counts, failures, and the analysis if it ran.

    ``interrupted``: the sweep stopped before every run ended (run it again to resume);
    ``tracking_error``: the tracking store stopped trials (their points wait in the spool);
    ``already_complete``: an earlier execution had finished it, nothing ran.
    """

    name: str
    tracking_uri: str
    parent_id: str
    runs: int = 0
    finished: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    best: tuple[dict[str, Any], float] | None = None  # a search's best settings, metric value
    search_metric: str | None = None
    interrupted: bool = False
    already_complete: bool = False
    tracking_error: str | None = None
    analysis: Any = None
    analysis_error: str | None = None

    @property
    def unfinished(self) -> int:
        """Runs that neither finished nor failed."""
        return self.runs - self.finished - self.failed

    @property
    def ok(self) -> bool:
        """Whether every run finished and nothing stopped the sweep."""
        return not (self.interrupted or self.tracking_error or self.failures)


def deliver_spool(client: MlflowClient, execution: Execution, retry_s: float) -> None:
    """Deliver the points trials spooled in an earlier execution, before any trial starts."""
    held, runs = execution.spool.count()
    if held:
        written = execution.spool.deliver(client, retry_s=retry_s)
        log.info(
            "delivered %d spooled points of %d runs (%d were already in MLflow)",
            written, runs, held - written,
        )  # fmt: skip


def stopped_by_tracking(
    client: MlflowClient, execution: Execution, errors: dict[str, str], uri: str, path: Path
) -> str | None:
    """After Tune: what to tell the user when the tracking store stopped trials, or None.

    Such trials stay unfinished (their runs are not marked), so the next ``ibsweep run`` of
    the same file delivers the spooled points and resumes them from their checkpoints.
    """
    stopped = sorted(label for label, reason in errors.items() if UNAVAILABLE in reason)
    held, runs = execution.spool.count()
    if held and server_reachable(uri):
        try:
            deliver_spool(client, execution, 60.0)
            held, runs = execution.spool.count()
        except TrackingUnavailable:
            pass
    if not stopped and not held:
        return None
    what = (
        f"stopped {len(stopped)} trials ({errors[stopped[0]]})"
        if stopped
        else "did not take the spooled points"
    )
    kept = f"; {held} points of {runs} runs are kept in {execution.spool.root}" if held else ""
    return (
        f"the tracking store {uri} {what}{kept}. When it is back, run "
        f"`ibsweep run {path}` again: spooled points are delivered first and the trials resume "
        "from their checkpoints"
    )


def finish_execution(
    client: MlflowClient,
    plan: Plan,
    execution: Execution,
    outcome: TuneOutcome,
    uri: str,
) -> SweepResult:
    """Record the outcome in MLflow (failed runs, counts, the parent's status) and return it."""
    for trial in plan.trials if execution.run_ids else []:
        reason = outcome.errors.get(trial.name)
        if reason is None:
            continue
        for seed in trial.seeds:
            run_id = execution.run_ids[trial.run_name(seed)]
            if client.get_run(run_id).info.status not in ("FINISHED", "FAILED"):
                set_tags(client, run_id, {rs.FAILURE: f"trial failed: {reason}"})
                client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    runs = child_runs(client, execution.experiment_id, execution.parent_id)
    if not outcome.interrupted:
        first_error = next(iter(outcome.errors.values()), "the trial ended without finishing")
        for run in runs.values():
            if run.info.status == "RUNNING":
                set_tags(client, run.info.run_id, {rs.FAILURE: f"trial failed: {first_error}"})
                client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        runs = child_runs(client, execution.experiment_id, execution.parent_id)
    counts = {"FINISHED": 0, "FAILED": 0, "RUNNING": 0}
    for run in runs.values():
        counts[run.info.status] = counts.get(run.info.status, 0) + 1
    failures = sorted(
        (r.info.run_name, r.data.tags.get(rs.FAILURE, "unknown reason"))
        for r in runs.values()
        if r.info.status == "FAILED"
    )
    pid = execution.parent_id
    client.log_batch(
        pid,
        metrics=[
            Metric(f"runs_{k.lower()}", float(v), 0, 0)
            for k, v in counts.items()
            if k in ("FINISHED", "FAILED", "RUNNING")
        ],
        synchronous=True,
    )
    expected = len(runs) if plan.spec.search else plan.n_runs
    result = SweepResult(
        name=plan.spec.name,
        tracking_uri=uri,
        parent_id=pid,
        runs=expected,
        finished=counts["FINISHED"],
        failed=counts["FAILED"],
        failures=failures,
        best=outcome.best,
        search_metric=plan.spec.search.metric if plan.spec.search else None,
    )
    result.interrupted = outcome.interrupted or result.unfinished > 0
    status = RunStatus.KILLED if result.interrupted else RunStatus.FINISHED
    client.set_terminated(pid, RunStatus.to_string(status))
    return result
