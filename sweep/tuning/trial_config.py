"""What each Ray Tune trial is given: the settings common to all and its own entry."""

from __future__ import annotations

from ibsweep.sweep.config.grid import Configuration, Plan, Trial
from ibsweep.sweep.execution.prepare import Execution, MeasureSet, run_params
from ibsweep.sweep.tracking.retry import DEFAULT_RETRY_S


def trial_space(plan: Plan, execution: Execution, uri: str, data_root: str) -> tuple[dict, list]:
    """Settings common to every trial, and one entry per trial for ``tune.grid_search``."""
    spec = plan.spec
    common = {
        "tracking_uri": uri,
        "threads": max(1, int(spec.resources.get("cpu", 1))),
        "data_dir": data_root,
        "measure_on": spec.mi.measure_on,
        "estimator": spec.mi.estimator_override(),
        "panel": spec.mi.panel(),
        "tracking_retry_s": spec.tracking.retry_s or DEFAULT_RETRY_S,
        "spool": execution.spool.root,
    }
    per_trial = [
        {
            **_configuration(plan, t.config),
            "seeds": list(t.seeds),
            "run_ids": [execution.run_ids.get(t.run_name(s)) for s in t.seeds],
        }
        for t in plan.trials
    ]
    return common, per_trial


def _configuration(plan: Plan, config: Configuration) -> dict:
    """What a trial needs of its configuration: label, model, dataset, training, MI schedule."""
    return {
        "label": config.label,
        "model": config.model.model_dump(mode="json"),
        "dataset": config.dataset,
        "train": config.train.model_dump(mode="json"),
        "schedule": plan.schedule_of(config),
    }


def search_trial(plan: Plan, execution: Execution, measured: dict[str, MeasureSet]) -> dict:
    """The one configuration an Optuna search tunes, with every seed packed in each sample."""
    config = plan.configurations[0]
    seeds = tuple(plan.spec.grid.seed_list)
    trial = Trial(config, seeds)
    return {
        **_configuration(plan, config),
        "seeds": list(seeds),
        "run_ids": None,
        "search": {
            "experiment_id": execution.experiment_id,
            "parent_id": execution.parent_id,
            "sweep": plan.spec.name,
            "params": [run_params(plan, trial, s, measured) for s in seeds],
        },
    }
