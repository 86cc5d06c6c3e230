"""Ray Tune: the Tuner over the trials (new or restored), and what came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from ibsweep.sweep.cluster.ray_cluster import environ_defaults, init_ray
from ibsweep.sweep.config.grid import Plan, trial_name
from ibsweep.sweep.execution.prepare import Execution
from ibsweep.sweep.tuning.entry import train_trial
from ibsweep.sweep.tuning.progress import SweepProgress
from ibsweep.sweep.tuning.search import search_setup
from ibsweep.sweep.tuning.trial_config import trial_space


@dataclass
class TuneOutcome:
    """Per trial label: done, or the error; and whether the sweep was interrupted."""

    finished: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    best: tuple[dict, float] | None = None


def _dirname(trial) -> str:
    return _dirname_from_config(trial.config)


def run_tuner(
    plan: Plan,
    execution: Execution,
    uri: str,
    data_root: str,
    address: str | None,
    measured: dict,
    progress: TextIO | None = None,
) -> TuneOutcome:
    """Run the trials with Ray Tune, restoring the experiment when one was interrupted.

    ``progress``, if given, receives a progress line every few seconds.
    """
    import ray

    spec = plan.spec
    common, per_trial = trial_space(plan, execution, uri, data_root)
    resources = {"cpu": spec.resources.get("cpu", 1)}
    trainable = tune.with_resources(train_trial, resources)
    n_trials = spec.search.num_samples if spec.search else len(plan.trials)
    work = (
        spec.search.num_samples * len(spec.grid.seed_list) * plan.configurations[0].train.epochs
        if spec.search
        else plan.seed_epochs
    )
    storage_path, name = execution.tune_path.rstrip("/").rsplit("/", 1)
    run_config = tune.RunConfig(
        name=name,
        storage_path=storage_path,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        # each trial's result.json and progress.csv; MLflow holds the series, so no
        # TensorBoard files (Tune's TBX logger would also import torch into the driver)
        callbacks=[JsonLoggerCallback(), CSVLoggerCallback()]
        + ([SweepProgress(n_trials, work, stream=progress)] if progress else []),
        verbose=0,
    )
    if not ray.is_initialized():  # run_sweep connects first to a cluster, to check it
        init_ray(address)
    try:
        with environ_defaults(_tune_env(search=spec.search is not None)):
            if tune.Tuner.can_restore(execution.tune_path):
                tuner = tune.Tuner.restore(execution.tune_path, trainable, resume_errored=True)
            elif spec.search is not None:
                space, tune_config = search_setup(plan, execution, measured)
                tuner = tune.Tuner(
                    trainable,
                    param_space={**common, **space},
                    tune_config=tune_config,
                    run_config=run_config,
                )
            else:
                tuner = tune.Tuner(
                    trainable,
                    param_space={**common, "trial": tune.grid_search(per_trial)},
                    tune_config=tune.TuneConfig(
                        reuse_actors=True,
                        trial_dirname_creator=_dirname,
                        max_concurrent_trials=spec.max_concurrent_trials,
                    ),
                    run_config=run_config,
                )
            outcome = TuneOutcome()
            try:
                results = tuner.fit()
            except KeyboardInterrupt:
                outcome.interrupted = True
                return outcome
        for result in results:
            label = _dirname_from_config(result.config)
            if spec.search is not None:
                label = f"{label}#{result.path}"
            if result.error is not None:
                outcome.errors[label] = _first_line(result.error)
            elif result.metrics.get("done"):
                outcome.finished.add(label)
            else:
                outcome.interrupted = True
        if spec.search is not None and outcome.finished:
            best = results.get_best_result(spec.search.metric, spec.search.mode)
            outcome.best = (best.config["overrides"], best.metrics[spec.search.metric])
        return outcome
    finally:
        ray.shutdown()


def _tune_env(search: bool) -> dict[str, str]:
    """Ray Tune's settings that only its environment holds, set for the duration of a sweep."""
    wanted = {
        "TUNE_GLOBAL_CHECKPOINT_S": "5",  # the experiment's state: a killed driver loses little
        "RAY_AIR_NEW_OUTPUT": "0",  # the legacy reporter is silent at verbose=0
        # a packed trial checkpoints every few seconds by design; Tune's snapshot warning
        # about it is noise on every short sweep
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # the loggers are the run config's
    }
    if search:  # a searcher needs its metric in every result, and some results have none
        wanted["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    return wanted


def _dirname_from_config(config: dict) -> str:
    return trial_name(config["trial"]["label"], config["trial"]["seeds"])


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    useful = [line for line in text if line.strip() and not line.startswith("Traceback")]
    return (useful[-1] if useful else type(error).__name__)[:500]
