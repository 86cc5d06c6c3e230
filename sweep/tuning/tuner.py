"""Ray Tune: the Tuner over the trials (new or restored), and what came back."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ray import tune

from ibsweep.sweep.cluster.ray_cluster import init_ray
from ibsweep.sweep.config.grid import Plan
from ibsweep.sweep.execution.prepare import Execution
from ibsweep.sweep.tuning.progress import SweepProgress
from ibsweep.sweep.tuning.search import search_setup
from ibsweep.sweep.tuning.trainable import train_trial
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
) -> TuneOutcome:
    """Run the trials with Ray Tune, restoring the experiment when one was interrupted."""
    import ray

    spec = plan.spec
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter is silent at verbose=0
    common, per_trial = trial_space(plan, execution, uri, data_root)
    resources = {"cpu": spec.resources.get("cpu", 1), "gpu": spec.resources.get("gpu", 0)}
    trainable = tune.with_resources(train_trial, resources)
    n_trials = spec.search.num_samples if spec.search else len(plan.trials)
    work = (
        spec.search.num_samples * len(spec.grid.seed_list) * plan.configurations[0].train.epochs
        if spec.search
        else plan.seed_epochs
    )
    progress = SweepProgress(n_trials, work)
    storage_path, name = execution.tune_path.rstrip("/").rsplit("/", 1)
    run_config = tune.RunConfig(
        name=name,
        storage_path=storage_path,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[progress],
        verbose=0,
    )
    if not ray.is_initialized():  # run_sweep connects first to a cluster, to check it
        init_ray(address)
    try:
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
                tune_config=tune.TuneConfig(reuse_actors=True, trial_dirname_creator=_dirname),
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


def _dirname_from_config(config: dict) -> str:
    t = config["trial"]
    return f"{t['label']}-s{'_'.join(map(str, t['seeds']))}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    useful = [line for line in text if line.strip() and not line.startswith("Traceback")]
    return (useful[-1] if useful else type(error).__name__)[:500]
