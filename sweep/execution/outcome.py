"""The end of a sweep: spooled points delivered, failed runs marked, counts on the parent run."""

from __future__ import annotations

import sys
from pathlib import Path

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
from ibsweep.sweep.tuning.tuner import TuneOutcome


def deliver_spool(client: MlflowClient, execution: Execution, retry_s: float) -> None:
    """Deliver the points trials spooled in an earlier execution, before any trial starts."""
    held, runs = execution.spool.count()
    if held:
        written = execution.spool.deliver(client, retry_s=retry_s)
        print(
            f"delivered {written} spooled points of {runs} runs "
            f"({held - written} were already in MLflow)",
            file=sys.stderr,
        )


def stopped_by_tracking(
    client: MlflowClient, execution: Execution, errors: dict[str, str], uri: str, path: Path
) -> int | None:
    """After Tune: exit code 1 with a clear error when the tracking store stopped trials.

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
    print(
        f"ibsweep: error: the tracking store {uri} {what}{kept}. When it is back, run "
        f"`ibsweep run {path}` again: spooled points are delivered first and the trials resume "
        "from their checkpoints",
        file=sys.stderr,
    )
    return 1


def finish_execution(
    client: MlflowClient,
    plan: Plan,
    execution: Execution,
    outcome: TuneOutcome,
    uri: str,
    analyze: bool,
) -> int:
    """Record the outcome in MLflow, print the summary; returns the exit code."""
    for trial in plan.trials if execution.run_ids else []:
        label = f"{trial.config.label}-s{'_'.join(map(str, trial.seeds))}"
        reason = outcome.errors.get(label)
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
    unfinished = expected - counts["FINISHED"] - counts["FAILED"]
    done = not outcome.interrupted and unfinished == 0
    print(
        f"\nsweep '{plan.spec.name}': {expected} runs — {counts['FINISHED']} finished, "
        f"{counts['FAILED']} failed, {unfinished} unfinished"
    )
    for name, reason in failures:
        print(f"  FAILED {name}: {reason}")
    if outcome.best is not None:
        overrides, value = outcome.best
        chosen = ", ".join(
            f"train.{k}={v:.4g}" if isinstance(v, float) else f"train.{k}={v}"
            for k, v in overrides.items()
        )
        print(f"best: {chosen} ({plan.spec.search.metric} {value:.4f}, seed mean)")
    if not done:
        client.set_terminated(pid, RunStatus.to_string(RunStatus.KILLED))
        print(
            "interrupted: run the same command again to resume "
            "(finished runs are kept; unfinished ones continue from their checkpoints)",
            file=sys.stderr,
        )
        return 130
    status = RunStatus.FINISHED
    client.set_terminated(pid, RunStatus.to_string(status))
    if analyze:
        from ibsweep.sweep.cli.analyze_command import analyze_after_run

        analyze_after_run(plan.spec.name, uri)
    print(f"results: ibsweep ui --tracking-uri {uri}")
    return 0 if not failures else 1
