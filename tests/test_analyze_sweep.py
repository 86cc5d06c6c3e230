"""`ibsweep run` then `ibsweep analyze` end to end on a small real sweep."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.services import ibsweep, sweep_runs, write_sweep

pytestmark = pytest.mark.slow


def test_run_analyzes_and_second_analysis_uses_the_cache(tmp_path, shared_ray):
    spec = {
        "name": "phases",
        "grid": {"kind": ["dnn", "bnn"], "activation": {"dnn": ["tanh"], "bnn": ["ste"]},
                 "seeds": 3},
        "train": {"epochs": 60},
        "mi": {"every": 1},
        "seeds_per_trial": 3,
    }  # fmt: skip
    path = write_sweep(tmp_path, spec)
    proc = ibsweep("run", str(path), cwd=tmp_path, env=shared_ray.driver_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "ibsweep-results" / "phases"
    assert "verdict (agreement)" in proc.stdout and "6 fetched" in proc.stdout

    series = pq.read_table(out / "series.parquet")
    needed = {"run_id", "seed", "layer", "epoch", "i_xt", "i_ty", "loss", "train_acc",
              "test_acc", "grad_snr", "model.kind", "model.activation", "data.name"}  # fmt: skip
    assert needed <= set(series.column_names)
    assert series.num_rows == 6 * 6 * 61  # runs x layers x scheduled epochs (0..60)

    verdicts = pd.read_csv(out / "verdicts.csv")
    assert len(verdicts) == 2 * 6 and set(verdicts["n_seeds"]) == {3}
    for col in ("model.kind", "model.activation", "layer", "verdict", "verdict_confidence",
                "expansion_median", "expansion_ci_low", "t50_ci_high"):  # fmt: skip
        assert col in verdicts.columns
    assert set(verdicts["verdict"]) <= {
        "separate", "simultaneous", "no compression", "saturated", "undetermined"
    }  # fmt: skip
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert set(comparisons["axis"]) == {"model"} and "p_adjusted" in comparisons.columns

    client, parents, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "phases")
    for run in children:
        assert "phase/layer6/t50" in run.data.metrics
        assert "phase/layer1/saturated" in run.data.metrics
        assert run.data.tags["phase.layer6.verdict"] in set(verdicts["verdict"])
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "analysis")}
    assert {"analysis/report.md", "analysis/report.html", "analysis/verdicts.csv"} <= artifacts
    assert any(a.path.endswith(".png") for a in client.list_artifacts(
        parents[0].info.run_id, "analysis/figures"))  # fmt: skip

    again = ibsweep("analyze", "phases", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "up to date, nothing changed" in again.stdout
    assert _table(again.stdout) == _table(proc.stdout)


def _table(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "verdict (agreement)" in line)
    end = lines.index("", start)
    return lines[start:end]


def test_analyze_unknown_sweep_or_store_is_a_clear_error(tmp_path):
    proc = ibsweep("analyze", "nothing-here", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no MLflow store at" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "mlflow.db").exists()
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment("other")
    proc = ibsweep("analyze", "nothing-here", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no sweep named 'nothing-here'" in proc.stderr.strip().splitlines()[-1]
