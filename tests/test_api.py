"""The Python API: every public name resolves, and the README's example runs as written."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import ibsweep

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves_and_has_a_docstring():
    for name in ibsweep.__all__:
        value = getattr(ibsweep, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), f"ibsweep.{name} has no docstring"
    assert sorted(ibsweep.__all__) == sorted(dir(ibsweep))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = ibsweep.nothing


def test_importing_ibsweep_loads_none_of_the_heavy_libraries():
    code = "import sys, ibsweep; print(sorted({'ray', 'mlflow', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_sweeps_driver_loads_no_torch():
    """Tune is given a thin entry point: torch is imported by the trials, not the driver."""
    code = (
        "import sys; from ibsweep.sweep.cli import run_command; from ibsweep.sweep.tuning "
        "import tuner; print('torch' in sys.modules, callable(tuner.train_trial))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False True"


def test_library_errors_are_typed_and_bad_input_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ngrid: {kind: [cnn]}\n")
    with pytest.raises(ibsweep.UsageError, match=r"grid\.kind"):
        ibsweep.run_sweep(bad)
    with pytest.raises(ibsweep.IbsweepError, match="no MLflow store"):
        ibsweep.analyze("bad")
    assert not (tmp_path / "mlflow.db").exists()


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written_and_analysis_only_reads_mlflow(tmp_path, shared_ray):
    script = tmp_path / "example.py"
    script.write_text(_readme_example())
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path, env=shared_ray.driver_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "['dnn-tanh-10x7x5x4x3-tishby', 'bnn-ste-10x7x5x4x3-tishby']" in proc.stdout
    assert "4 of 4 runs finished" in proc.stdout
    assert "verdict" in proc.stdout and "i_xt" in proc.stdout
    assert (tmp_path / "ibsweep-results" / "tiny" / "verdicts.csv").is_file()
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        logged_back = db.execute("SELECT COUNT(*) FROM metrics WHERE key LIKE 'phase/%'")
        assert logged_back.fetchone() == (0,)  # run_sweep(analyze=False), then a read-only analyze
        assert db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] > 0
