"""The shipped paper experiment, shortened (2 seeds, 60 epochs), through run and analyze."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.services import ibsweep, sweep_runs, write_sweep

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_shortened_paper_sweep_end_to_end(tmp_path, shared_ray):
    spec = yaml.safe_load((EXAMPLES / "paper.yaml").read_text())
    assert spec["grid"]["seeds"] >= 10 and spec["train"]["epochs"] >= 1500
    spec["grid"]["seeds"] = 2
    spec["seeds_per_trial"] = 2
    spec["train"]["epochs"] = 60
    spec["mi"] = {"log_points": 30}
    spec["max_concurrent_trials"] = 1  # 5 trials in turn in one worker process
    path = write_sweep(tmp_path, spec, "paper-short.yaml")
    proc = ibsweep("run", str(path), cwd=tmp_path, env=shared_ray.driver_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, parents, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "paper")
    assert len(children) == 5 * 2 and all(r.info.status == "FINISHED" for r in children)
    models = {(r.data.params["model.kind"], r.data.params["model.activation"]) for r in children}
    assert models == {
        ("dnn", "tanh"), ("dnn", "relu"), ("bnn", "ste"), ("bnn", "approx_sign"),
        ("bnn", "swish_sign"),
    }  # fmt: skip
    verdicts = pd.read_csv(tmp_path / "ibsweep-results" / "paper" / "verdicts.csv")
    assert len(verdicts) == 5 * 6 and set(verdicts["n_seeds"]) == {2}
    assert (tmp_path / "ibsweep-results" / "paper" / "report.md").exists()
    assert parents[0].info.status == "FINISHED"
