"""An Optuna search through Ray Tune over training settings."""

from __future__ import annotations

from ray import tune

from ibsweep.sweep.config.grid import Plan
from ibsweep.sweep.execution.prepare import Execution
from ibsweep.sweep.tuning.trial_config import search_trial


def _space(entry) -> object:
    if entry.loguniform:
        return tune.loguniform(*entry.loguniform)
    if entry.uniform:
        return tune.uniform(*entry.uniform)
    if entry.randint:
        return tune.randint(entry.randint[0], entry.randint[1] + 1)
    return tune.choice(entry.choice)


def search_setup(plan: Plan, execution: Execution, measured: dict) -> tuple[dict, tune.TuneConfig]:
    """The search space and Tune settings of an Optuna search over training settings."""
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    s = plan.spec.search
    space = {
        "trial": search_trial(plan, execution, measured),
        "overrides": {key.split(".", 1)[1]: _space(e) for key, e in s.space.items()},
    }
    algo = ConcurrencyLimiter(
        OptunaSearch(metric=s.metric, mode=s.mode, seed=plan.spec.grid.seed_list[0]),
        max_concurrent=s.max_concurrent,
    )
    config = tune.TuneConfig(
        search_alg=algo,
        num_samples=s.num_samples,
        reuse_actors=True,
        trial_dirname_creator=lambda t: f"{t.config['trial']['label']}-{t.trial_id}",
    )
    return space, config
