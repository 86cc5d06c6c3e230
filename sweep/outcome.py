"""The end of a sweep: failed runs marked, counts on the parent run, and the summary."""

from __future__ import annotations

import sys

from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient

from ibsweep.sweep.grid import Plan
from ibsweep.sweep.runner import Execution
from ibsweep.sweep.store import child_runs, set_tags
from ibsweep.sweep.tuning import TuneOutcome


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
                set_tags(client, run_id, {"ibsweep.failure": f"trial failed: {reason}"})
                client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    runs = child_runs(client, execution.experiment_id, execution.parent_id)
    if not outcome.interrupted:
        first_error = next(iter(outcome.errors.values()), "the trial ended without finishing")
        for run in runs.values():
            if run.info.status == "RUNNING":
                set_tags(
                    client, run.info.run_id, {"ibsweep.failure": f"trial failed: {first_error}"}
                )
                client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        runs = child_runs(client, execution.experiment_id, execution.parent_id)
    counts = {"FINISHED": 0, "FAILED": 0, "RUNNING": 0}
    for run in runs.values():
        counts[run.info.status] = counts.get(run.info.status, 0) + 1
    failures = sorted(
        (r.info.run_name, r.data.tags.get("ibsweep.failure", "unknown reason"))
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
        from ibsweep.sweep.analyze_command import analyze_after_run

        analyze_after_run(plan.spec.name, uri)
    print(f"results: ibsweep ui --tracking-uri {uri}")
    return 0 if not failures else 1
