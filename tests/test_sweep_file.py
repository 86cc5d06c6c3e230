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
    (_with("resources.gpu", 1), "resources: gpu: 1 asked, but training runs on the CPU only"),
    (_with("grid.kinds", ["dnn"]), "grid.kinds: unknown field; allowed: kind, activation"),
    (_with("epochs", 5), "epochs: unknown field; allowed: name, grid, train"),
    (_with("mi.estimator", "magic"), "unknown estimator 'magic'"),
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
    assert plan.schedule == list(range(301))


def test_log_spaced_schedule(tmp_path):
    spec = yaml.safe_load(yaml.safe_dump(GOOD))
    spec["mi"] = {"log_points": 30}
    (tmp_path / "l.yaml").write_text(yaml.safe_dump(spec))
    schedule = expand(load_spec(tmp_path / "l.yaml")).schedule
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
