"""Figures and the report: non-empty PNGs of the expected size, tables and links in the report."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from ibsweep.analysis.claims import claim_tests
from ibsweep.analysis.generalisation import generalisation_points, generalisation_table
from ibsweep.analysis.phases import run_phases
from ibsweep.analysis.plots import (
    DPI,
    PlotInputError,
    configurations,
    make_figures,
    plot_comparison,
    plot_generalisation,
    plot_information_plane,
    plot_trajectories,
    select,
)
from ibsweep.analysis.report import ReportTables, write_report
from ibsweep.analysis.robustness import robustness_table
from ibsweep.analysis.sensitivity import sensitivity_table
from ibsweep.analysis.settings import AnalysisConfig, as_params
from ibsweep.analysis.statistics import aggregate, compare

CONFIG_COLS = ["model.kind", "model.activation"]


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(0)
    epochs = np.unique(np.round(np.logspace(0, 3, 40)))
    u = np.log10(epochs)
    frames = []
    for kind, activation in [("dnn", "tanh"), ("bnn", np.nan)]:
        for seed in range(3):
            for layer in (1, 2, 3):
                if kind == "dnn":
                    ixt = 6 - layer + 1.5 * sig((u - 1.2) / 0.2) - 2.0 * sig((u - 2.2) / 0.2)
                else:
                    ixt = 4 - layer - 1.0 * sig((u - 1.4) / 0.2)
                frames.append(
                    pd.DataFrame(
                        {
                            "run_id": f"{kind}-{seed}",
                            "model.kind": kind,
                            "model.activation": activation,
                            "seed": seed,
                            "layer": layer,
                            "n_layers": 3,
                            "epoch": epochs.astype(int),
                            "i_xt": ixt + rng.normal(0, 0.05, u.size),
                            "i_ty": 0.1 + 0.7 * sig((u - 1.4) / 0.2) / layer,
                            "grad_snr": 10 ** (0.5 - 0.7 * np.tanh((u - 1.8) / 0.2)),
                            "ceiling": 12.0,
                            "train_acc": 0.9 + 0.01 * seed,
                            "test_acc": 0.85 + 0.02 * seed,
                        }
                    )
                )
    series = pd.concat(frames, ignore_index=True)
    phases = run_phases(series, CONFIG_COLS)
    return series, phases


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def assert_drawn(path: Path) -> None:
    pixels = imread(path)
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_configurations_and_select_handle_missing_values(tables):
    series, _ = tables
    configs = configurations(series, CONFIG_COLS)
    assert configs == [
        {"model.kind": "bnn", "model.activation": None},
        {"model.kind": "dnn", "model.activation": "tanh"},
    ]
    assert select(series, configs[0])["run_id"].str.startswith("bnn").all()
    assert len(select(series, configs[0])) == len(series) // 2


def test_information_plane_png(tables, tmp_path):
    series, _ = tables
    path = plot_information_plane(series, {"model.kind": "dnn"}, tmp_path / "plane.png")
    assert png_size(path) == (round(6.4 * DPI), round(4.8 * DPI))
    assert_drawn(path)


def test_trajectories_png_has_a_column_per_layer(tables, tmp_path):
    series, phases = tables
    config = {"model.kind": "dnn", "model.activation": "tanh"}
    path = plot_trajectories(series, phases, config, tmp_path / "traj.png")
    assert png_size(path) == (round((2.6 * 3 + 0.6) * DPI), round(5.0 * DPI))
    assert_drawn(path)


def test_comparison_png_puts_configurations_side_by_side(tables, tmp_path):
    series, _ = tables
    configs = configurations(series, CONFIG_COLS)
    path = plot_comparison(series, configs, tmp_path / "cmp.png")
    assert png_size(path) == (round((3.2 * 2 + 0.8) * DPI), round(3.0 * DPI))
    assert_drawn(path)


def test_figures_drawn_again_for_the_next_configuration_equal_new_ones(tables, tmp_path):
    series, phases = tables
    figures = make_figures(series, phases, CONFIG_COLS, tmp_path / "kept")
    for config in configurations(series, CONFIG_COLS):  # the second reuses the first's figures
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in config.items())
        plane = plot_information_plane(series, config, tmp_path / "plane.png")
        traj = plot_trajectories(series, phases, config, tmp_path / "traj.png")
        np.testing.assert_array_equal(imread(figures[f"Information plane: {label}"]), imread(plane))
        np.testing.assert_array_equal(imread(figures[f"Trajectories: {label}"]), imread(traj))


def test_plots_reject_an_unknown_configuration(tables, tmp_path):
    series, _ = tables
    with pytest.raises(PlotInputError, match="no series rows"):
        plot_information_plane(series, {"model.kind": "cnn"}, tmp_path / "x.png")


CONFIG = AnalysisConfig(bootstrap_draws=200, min_correlation_runs=3)


def test_report_has_tables_and_links_every_figure(tables, tmp_path):
    series, phases = tables
    summary = aggregate(phases, CONFIG_COLS, config=CONFIG)
    comparisons = compare(phases, ["model.kind"])
    figures = make_figures(series, phases, CONFIG_COLS, tmp_path)
    assert len(figures) == 1 + 2 * 2
    md_path = write_report(tmp_path, summary, comparisons, figures, {"sweep": "demo"})
    md = md_path.read_text()
    assert md.startswith("# Phase analysis: demo")
    for heading in ("## Verdicts", "## Statistics", "## Comparisons", "## Figures"):
        assert heading in md
    verdict_rows = [line for line in md.splitlines() if re.match(r"\| (dnn|bnn) \|", line)]
    assert len(verdict_rows) == 2 * 2 * 3  # verdict and statistics tables, 2 configs x 3 layers
    assert "| dnn | tanh | default | 2 | 3 | separate |" in md
    assert "| bnn | n/a | default | 2 | 3 | simultaneous |" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == len(figures)
    for link in links:
        assert not Path(link).is_absolute()
        assert (tmp_path / link).is_file()
    page = (tmp_path / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(figures)
    assert page.count("<table>") == 4
    assert "| model.kind | bnn | dnn | 2 | expansion |" in md


def test_report_opens_with_the_claims_and_has_every_section(tables, tmp_path):
    series, phases = tables
    summary = aggregate(phases, CONFIG_COLS, config=CONFIG)
    claims = claim_tests(phases, summary, CONFIG_COLS, CONFIG)
    assert len(claims) == 2 * 2  # one dnn-bnn pair, hidden layers 1 and 2, two statistics
    sensitivity, moved = sensitivity_table(series, phases, CONFIG_COLS, CONFIG)
    extra = ReportTables(
        claims=claims,
        robustness=robustness_table(summary, CONFIG_COLS),
        sensitivity=sensitivity,
        sensitivity_summary=moved,
        generalisation=generalisation_table(phases, CONFIG_COLS, CONFIG),
        settings=as_params(CONFIG),
    )
    md = write_report(tmp_path, summary, compare(phases, ["model.kind"]), [], {}, extra)
    headings = [line for line in md.read_text().splitlines() if line.startswith("## ")]
    assert headings[0] == "## Claims"
    for heading in ("Verdicts", "Robustness across estimators", "Sensitivity to thresholds",
                    "Compression and generalisation", "Settings"):  # fmt: skip
        assert f"## {heading}" in headings
    text = md.read_text()
    assert "| dnn-tanh | bnn-nan | 1 | default | expansion |" in text
    assert "| min_compression_bits | 0.25 |" in text and "| undertrained_floor | 0.8 |" in text


def test_generalisation_figure(tables, tmp_path):
    _, phases = tables
    points = generalisation_points(phases)
    path = plot_generalisation(points, tmp_path / "gen.png")
    assert png_size(path) == (round((2.6 * 3 + 0.6) * DPI), round(5.0 * DPI))
    assert_drawn(path)
    with pytest.raises(PlotInputError, match="no runs"):
        plot_generalisation(points.iloc[:0], tmp_path / "none.png")


def test_report_says_when_nothing_is_compared(tables, tmp_path):
    _, phases = tables
    summary = aggregate(phases, CONFIG_COLS, config=AnalysisConfig(bootstrap_draws=100))
    comparisons = compare(phases, CONFIG_COLS)
    assert comparisons.empty  # the two configurations differ in both columns
    md = write_report(tmp_path, summary, comparisons, [], {}).read_text()
    assert md.startswith("# Phase analysis\n")
    assert "nothing to compare" in md
    assert "there is no claim to test" in md


def test_plotting_leaves_pyplot_alone(tmp_path):
    code = (
        "import sys, pandas as pd\n"
        "from ibsweep.analysis.plots import plot_information_plane\n"
        "df = pd.DataFrame({'k': ['a'] * 4, 'layer': [1, 1, 2, 2], 'epoch': [1, 10] * 2,"
        " 'i_xt': [1.0, 2.0, 0.5, 1.0], 'i_ty': [0.1, 0.5, 0.1, 0.4]})\n"
        f"plot_information_plane(df, {{'k': 'a'}}, {str(tmp_path / 'p.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
