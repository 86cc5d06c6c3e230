"""Analysis settings: one model of defaults, the sweep file's analysis: block validated on load,
`ibsweep analyze --set` checked (one line, exit 2) before the store is touched."""

from __future__ import annotations

import pytest
import yaml

from ibsweep.analysis.settings import (
    AnalysisConfig,
    AnalysisSettingsError,
    block_of_sweep_file,
    parse_overrides,
    setting_names,
)
from ibsweep.sweep.cli.main import main
from ibsweep.sweep.config.spec import load_spec


def test_overrides_are_typed_and_checked():
    got = parse_overrides(["min_compression_bits=0.5", "reproducibility_draws=500", "alpha=.01"])
    assert got == {"min_compression_bits": 0.5, "reproducibility_draws": 500, "alpha": 0.01}
    config = AnalysisConfig(**got)
    assert config.min_compression_bits == 0.5 and config.bandwidth == 0.25  # the rest: defaults
    with pytest.raises(
        AnalysisSettingsError, match=r"unknown analysis setting 'min_bits'; allowed: bandwidth"
    ):
        parse_overrides(["min_bits=1"])
    with pytest.raises(AnalysisSettingsError, match=r"alpha=2: Input should be less than 1"):
        parse_overrides(["alpha=2"])
    with pytest.raises(AnalysisSettingsError, match="--set takes KEY=VALUE"):
        parse_overrides(["alpha"])
    assert {"undertrained_floor", "reproducibility_level", "bias_share"} <= set(setting_names())


def test_the_block_of_a_sweep_file():
    text = yaml.safe_dump({"name": "x", "analysis": {"undertrained_floor": 0.5}})
    assert block_of_sweep_file(text) == {"undertrained_floor": 0.5}
    assert block_of_sweep_file("name: x\n") == {}
    with pytest.raises(AnalysisSettingsError, match="undertrained_floor"):
        block_of_sweep_file("name: x\nanalysis: {undertrained_floor: 2}\n")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"min_bits": 1}, "analysis.min_bits: unknown field; allowed: bandwidth, n_grid"),
        ({"alpha": "high"}, "analysis.alpha: Input should be a valid number"),
        ({"reproducibility_level": 1.5}, "analysis.reproducibility_level: Input should be less"),
    ],
)
def test_the_analysis_block_is_validated_on_load(tmp_path, capsys, block, message):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "analysis": block}))
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_the_analysis_block_does_not_change_what_the_sweep_is(tmp_path):
    plain, tuned = tmp_path / "a.yaml", tmp_path / "b.yaml"
    plain.write_text(yaml.safe_dump({"name": "x"}))
    tuned.write_text(yaml.safe_dump({"name": "x", "analysis": {"min_compression_bits": 0.5}}))
    assert load_spec(tuned).analysis.min_compression_bits == 0.5
    assert load_spec(plain).digest() == load_spec(tuned).digest()  # resumes the same sweep


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("foo=1", "unknown analysis setting 'foo'; allowed: bandwidth, n_grid, min_neighbours"),
        ("min_compression_bits=-1", "min_compression_bits=-1: Input should be greater than"),
        ("n_grid=many", "n_grid='many': Input should be a valid integer"),
    ],
)
def test_analyze_set_errors_are_one_line_exit_2_before_the_store(
    tmp_path, monkeypatch, capsys, setting, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["analyze", "any", "--set", "alpha=0.01", "--set", setting]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not list(tmp_path.iterdir())  # no store, no output folder
