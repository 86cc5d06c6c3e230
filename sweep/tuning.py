"""Ray Tune: the Tuner over the trials (new or restored), and what came back."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ray import tune

from sweep.grid import Plan
from sweep.progress import SweepProgress
from sweep.runner import Execution, init_ray, trial_space
from sweep.trainable import train_trial


@dataclass
class TuneOutcome:
    """Per trial label: done, or the error; and whether the sweep was interrupted."""

    finished: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False


def _dirname(trial) -> str:
    return _dirname_from_config(trial.config)


def run_tuner(plan: Plan, execution: Execution, uri: str, data_root: str, address: str | None):
    """Run the trials with Ray Tune, restoring the experiment when one was interrupted."""
    import ray

    spec = plan.spec
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "5")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter is silent at verbose=0
    common, per_trial = trial_space(plan, execution, uri, data_root)
    resources = {"cpu": spec.resources.get("cpu", 1), "gpu": spec.resources.get("gpu", 0)}
    trainable = tune.with_resources(train_trial, resources)
    progress = SweepProgress(len(plan.trials), plan.seed_epochs)
    run_config = tune.RunConfig(
        name=execution.tune_path.name,
        storage_path=str(execution.tune_path.parent),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[progress],
        verbose=0,
    )
    init_ray(address)
    try:
        if tune.Tuner.can_restore(str(execution.tune_path)):
            tuner = tune.Tuner.restore(str(execution.tune_path), trainable, resume_errored=True)
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
            if result.error is not None:
                outcome.errors[label] = _first_line(result.error)
            elif result.metrics.get("done"):
                outcome.finished.add(label)
            else:
                outcome.interrupted = True
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
