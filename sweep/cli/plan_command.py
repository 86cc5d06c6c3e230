"""``ibsweep plan``: the expanded grid, without running anything."""

from __future__ import annotations

from ibsweep.sweep.config.grid import expand
from ibsweep.sweep.config.spec import load_spec, sweep_file


def print_plan(spec_path: str) -> int:
    """Print trials, configurations, skipped combinations and the amount of work."""
    path = sweep_file(spec_path)
    spec = load_spec(path)
    plan = expand(spec)
    seeds = spec.grid.seed_list
    k = spec.seeds_per_trial
    print(f"sweep '{spec.name}' ({path})")
    print(
        f"{len(plan.configurations)} configurations x {len(seeds)} seeds = {plan.n_runs} runs, "
        f"in {len(plan.trials)} trials ({k} seed{'s' * (k > 1)} packed per trial)"
    )
    if spec.max_concurrent_trials is not None:
        n = spec.max_concurrent_trials
        print(f"at most {n} trial{'s' * (n > 1)} at once (max_concurrent_trials)")
    header = f"{'#':>3}  {'configuration':<40} {'seeds':<16} trials"
    print(header)
    print("-" * len(header))
    seed_text = ",".join(map(str, seeds))
    per_config = -(-len(seeds) // k)
    for i, config in enumerate(plan.configurations, start=1):
        print(f"{i:>3}  {config.label:<40} {seed_text[:16]:<16} {per_config}")
    if plan.skipped:
        print(f"skipped {len(plan.skipped)} combinations:")
        for name, reason in plan.skipped:
            print(f"  {name}: {reason}")
    if spec.train.axes:
        print(
            "training axes: "
            + "; ".join(
                f"{k} = {', '.join(map(str, getattr(spec.train, k)))}" for k in spec.train.axes
            )
        )
    epochs = sorted({c.train.epochs for c in plan.configurations})
    n_mi = sorted({len(plan.schedule_of(c)) for c in plan.configurations})
    n_points = sum(len(t.seeds) * len(plan.schedule_of(t.config)) for t in plan.trials)
    print(
        f"work: {plan.seed_epochs} seed-epochs ({'/'.join(map(str, epochs))} epochs per run); "
        f"{plan.trial_epochs} trial-epochs; "
        f"MI on {'/'.join(map(str, n_mi))} epochs per run ({n_points} layer-sweeps)"
    )
    panel = spec.mi.panel()
    if panel:
        members = ", ".join(f"{m} ({name})" for m, (name, _) in panel.items())
        print(f"estimators: a panel of {len(panel)}, each on every layer: {members}")
    elif spec.mi.estimator is not None:
        print(f"estimator: {spec.mi.estimator_override()[0]} on every layer")
    else:
        print("estimators: the per-layer defaults (exact for binary layers and a BNN's output)")
    if spec.search is not None:
        s = spec.search
        print(
            f"search: optuna over {', '.join(s.space)}: {s.num_samples} samples, "
            f"{s.max_concurrent} at a time, {s.mode} {s.metric} (the grid's first configuration)"
        )
    return 0
