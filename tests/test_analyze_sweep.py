"""`ibsweep run` then `ibsweep analyze` end to end on a small real sweep: every table, the
settings from the sweep file and from --set, the claims first, read-only unless asked."""

import hashlib
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ibsweep.analysis.verdicts import UNDERTRAINED, VERDICTS
from ibsweep.sweep.cli.analyze_command import VERDICT_HEADER
from tests.services import ibsweep, ibsweep_in_process, sweep_runs, write_sweep

pytestmark = pytest.mark.slow

TABLES = ("claims.csv", "verdicts.csv", "robustness.csv", "sensitivity.csv",
          "generalisation.csv", "comparisons.csv", "phases.csv", "series.parquet",
          "settings.json", "report.md", "report.html")  # fmt: skip


def _store_state(folder):
    """A fingerprint of everything the MLflow store holds: its database and its artifacts."""
    files = [folder / "mlflow.db", *(p for p in (folder / "mlruns").rglob("*") if p.is_file())]
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def swept(tmp_path_factory, shared_ray):
    tmp_path = tmp_path_factory.mktemp("analyze")
    spec = {
        "name": "phases",
        "grid": {"kind": ["dnn", "bnn"], "activation": {"dnn": ["tanh"], "bnn": ["ste"]},
                 "seeds": 3},
        "train": {"epochs": 60},
        "mi": {"every": 1},
        "seeds_per_trial": 3,
        "max_concurrent_trials": 1,  # both trials in one worker process
        # 60 epochs train nothing to 0.8: a floor of 0 lets the claims be tested
        "analysis": {"undertrained_floor": 0.0, "reproducibility_draws": 500},
    }  # fmt: skip
    path = write_sweep(tmp_path, spec)
    proc = ibsweep("run", str(path), cwd=tmp_path, env=shared_ray.driver_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp_path, proc


def test_run_analyzes_into_every_table_and_logs_into_its_store(swept):
    tmp_path, proc = swept
    out = tmp_path / "ibsweep-results" / "phases"
    lines = proc.stdout.splitlines()
    claims_at = next(i for i, line in enumerate(lines) if line.startswith("Claims (one-sided"))
    assert claims_at < next(i for i, line in enumerate(lines) if VERDICT_HEADER in line)
    assert "6 fetched; logged to MLflow" in proc.stdout
    assert "Downloading artifacts" not in proc.stderr
    for name in TABLES:
        assert (out / name).is_file(), name
        assert f"  {name}" in lines  # every file written is listed

    series = pq.read_table(out / "series.parquet")
    needed = {"run_id", "seed", "estimator", "layer", "epoch", "i_xt", "i_ty", "loss", "train_acc",
              "test_acc", "grad_snr", "model.kind", "model.activation", "data.name"}  # fmt: skip
    assert needed <= set(series.column_names)
    assert series.num_rows == 6 * 6 * 61  # runs x layers x scheduled epochs (0..60)
    phases = pd.read_csv(out / "phases.csv")
    zero = series.to_pandas().query("epoch == 0")  # the start is the untrained network
    merged = phases.merge(zero, on=["run_id", "layer"])
    assert (merged["i_xt_start"] == merged["i_xt"]).all() and len(merged) == 36

    verdicts = pd.read_csv(out / "verdicts.csv")
    assert len(verdicts) == 2 * 6 and set(verdicts["n_seeds"]) == {3}
    for col in ("model.kind", "model.activation", "estimator", "layer", "verdict",
                "reproducibility", "split", "train_acc", "undertrained", "expansion_median",
                "expansion_ci_low", "t50_ci_high"):  # fmt: skip
        assert col in verdicts.columns
    assert set(verdicts["verdict"]) <= {*VERDICTS, UNDERTRAINED}
    assert not verdicts["undertrained"].any()  # the sweep file's floor of 0
    claims = pd.read_csv(out / "claims.csv")
    assert len(claims) == 5 * 2  # one dnn-bnn pair, hidden layers 1..5, two statistics
    assert set(claims["dnn_model"]) == {"dnn-tanh"} and set(claims["bnn_model"]) == {"bnn-ste"}
    assert set(claims["supported"]) <= {"yes", "no", "not tested"}
    tested = claims[claims["p_value"].notna()]
    assert tested["n_pairs"].between(1, 3).all()  # 3 seeds, less those unreliable in the layer
    assert (tested["p_value"] >= 0.5 ** tested["n_pairs"]).all()  # exact: 2^n flips
    assert (claims["n_pairs"] + claims["dropped_unreliable"] <= 6).all()
    assert set(pd.read_csv(out / "robustness.csv")["holds_under_all"]) == {"one estimator only"}
    assert json.loads((out / "settings.json").read_text())["undertrained_floor"] == "0.0"
    report = (out / "report.md").read_text()
    assert report.splitlines()[2] == "## Claims"
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert set(comparisons["axis"]) == {"model"} and "p_adjusted" in comparisons.columns

    client, parents, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "phases")
    for run in children:
        assert "phase/layer6/t50" in run.data.metrics
        assert "phase/layer1/unreliable" in run.data.metrics
        assert run.data.tags["phase.layer6.verdict"] in VERDICTS
    parent = client.get_run(parents[0].info.run_id)
    assert parent.data.params["analysis.undertrained_floor"] == "0.0"
    assert parent.data.params["analysis.min_compression_bits"] == "0.25"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "analysis")}
    assert {f"analysis/{f}" for f in ("report.md", "report.html", "claims.csv", "verdicts.csv",
            "sensitivity.csv", "settings.json")} <= artifacts  # fmt: skip
    assert any(a.path.endswith(".png") for a in client.list_artifacts(
        parent.info.run_id, "analysis/figures"))  # fmt: skip


def test_analyze_is_read_only_unless_asked_and_takes_settings(swept, capsys, monkeypatch):
    tmp_path, first = swept
    monkeypatch.chdir(tmp_path)
    before = _store_state(tmp_path)
    code, out, err = ibsweep_in_process(capsys, "analyze", "phases")
    assert code == 0, err[-3000:]
    assert "up to date, nothing changed" in out
    assert _table(out) == _table(first.stdout)

    code, out, err = ibsweep_in_process(
        capsys, "analyze", "phases", "--set", "min_compression_bits=5", "--out", "tuned"
    )
    assert code == 0, err[-3000:]
    assert "MLflow store not written" in out
    assert _store_state(tmp_path) == before  # nothing in the store changed
    settings = json.loads((tmp_path / "tuned" / "settings.json").read_text())
    assert settings["min_compression_bits"] == "5.0"  # --set over the sweep file's block
    assert settings["undertrained_floor"] == "0.0"  # the block, from the parent's sweep file
    verdicts = pd.read_csv(tmp_path / "tuned" / "verdicts.csv")
    assert not verdicts["phase_verdict"].isin(["separate", "simultaneous"]).any()  # 5 bits: none
    assert "| min_compression_bits | 5.0 |" in (tmp_path / "tuned" / "report.md").read_text()

    args = ("phases", "--set", "min_compression_bits=5", "--out", "tuned", "--log-to-mlflow")
    code, out, err = ibsweep_in_process(capsys, "analyze", *args)
    assert code == 0, err[-3000:]
    assert "logged to MLflow" in out
    assert "note: the parent run keeps the analysis params of an earlier analysis for " \
           "analysis.min_compression_bits" in err  # fmt: skip
    assert _store_state(tmp_path) != before
    # the read-only analysis before it logged nothing: every run gets this one's statistics
    _, _, children = sweep_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "phases")
    tags = {run.data.tags[f"phase.layer{k}.verdict"] for run in children for k in range(1, 7)}
    assert not tags & {"separate", "simultaneous", "late compression"}  # 5 bits: none falls


def _table(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if VERDICT_HEADER in line)
    end = lines.index("", start)
    return lines[start:end]


def test_analyze_unknown_sweep_or_store_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = ibsweep_in_process(capsys, "analyze", "nothing-here")
    assert code == 2
    assert err.count("\n") == 1 and "no MLflow store at" in err
    assert not (tmp_path / "mlflow.db").exists()
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").create_experiment("other")
    code, _, err = ibsweep_in_process(capsys, "analyze", "nothing-here")
    assert code == 2
    assert "no sweep named 'nothing-here'" in err.strip().splitlines()[-1]
