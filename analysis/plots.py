"""Figures: information planes, trajectories with boundaries, configurations side by side.

Figures are built on matplotlib.figure.Figure and written with the Agg canvas, so no pyplot
state or interactive backend is touched. Curves are seed means (a picture of the typical run);
the boundaries marked on them are medians of per-seed detections, as in the statistics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from scipy import stats as sps

from analysis.parallel import process_map

DPI = 100
_CMAP = "viridis"
_MARKS = {
    "boundary_peak": ("tab:red", "-", "peak"),
    "boundary_segments": ("tab:red", "--", "two-segment"),
    "boundary_changepoint": ("tab:red", ":", "PELT"),
    "snr_transition": ("tab:gray", "-.", "grad-SNR"),
    "t50": ("tab:blue", "--", "t50"),
    "t95": ("tab:blue", ":", "t95"),
}

_PANELS = (
    (
        "i_xt",
        "I(X;T) [bits]",
        ("boundary_peak", "boundary_segments", "boundary_changepoint", "snr_transition"),
    ),
    ("i_ty", "I(T;Y) [bits]", ("t50", "t95")),
)


class PlotInputError(ValueError):
    """Raised when a figure has no rows to draw or is asked for an unknown configuration."""


def configurations(df: pd.DataFrame, config_cols: Sequence[str]) -> list[dict[str, Any]]:
    """Distinct configurations (dicts of config column values) in a table, sorted."""
    unique = df[list(config_cols)].drop_duplicates()
    configs = [
        {c: (None if pd.isna(v) else v) for c, v in row.items()}
        for row in unique.to_dict("records")
    ]
    return sorted(configs, key=lambda c: tuple(str(v) for v in c.values()))


def config_label(config: Mapping[str, Any]) -> str:
    """Short human-readable label of a configuration."""
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in config.items())


def select(df: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of `df` whose config columns equal `config` (missing values match missing)."""
    mask = np.ones(len(df), dtype=bool)
    for col, value in config.items():
        if col not in df.columns:
            raise PlotInputError(f"no column {col!r} in table; config columns must be columns")
        column = df[col]
        mask &= column.isna().to_numpy() if pd.isna(value) else (column == value).to_numpy()
    return df[mask]


def seed_mean(series_df: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Per layer and epoch: seed mean of I(X;T) and I(T;Y), their 95% t-intervals, n seeds."""
    rows = select(series_df, config)
    if rows.empty:
        raise PlotInputError(f"no series rows for configuration {dict(config)}")
    g = rows.groupby(["layer", "epoch"])[["i_xt", "i_ty"]]
    mean, sd, n = g.mean(), g.std(), g.count()
    out = mean.copy()
    for col in ("i_xt", "i_ty"):
        count = n[col].to_numpy()
        t = sps.t.ppf(0.975, np.maximum(count - 1, 1))
        half = np.where(count > 1, t * sd[col].to_numpy() / np.sqrt(count), 0.0)
        out[f"{col}_low"] = mean[col] - half
        out[f"{col}_high"] = mean[col] + half
    out["n"] = n["i_xt"]
    return out.reset_index()


def plot_information_plane(
    series_df: pd.DataFrame, config: Mapping[str, Any], path: str | Path
) -> Path:
    """Seed-mean information plane of every layer, points coloured by log10 epoch."""
    mean = seed_mean(series_df, config)
    fig = Figure(figsize=(6.4, 4.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    norm = _epoch_norm(mean["epoch"])
    _draw_plane(ax, mean, norm)
    ax.set_title(config_label(config), fontsize=8)
    fig.colorbar(ScalarMappable(norm, _CMAP), ax=ax, label="log10 epoch")
    return _save(fig, path)


def plot_trajectories(
    series_df: pd.DataFrame,
    phase_df: pd.DataFrame,
    config: Mapping[str, Any],
    path: str | Path,
) -> Path:
    """I(X;T) and I(T;Y) against log10 epoch per layer: seed mean, 95% band, median boundaries."""
    mean = seed_mean(series_df, config)
    phases = select(phase_df, config)
    layers = sorted(mean["layer"].unique())
    fig = Figure(figsize=(2.6 * len(layers) + 0.6, 5.0), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, len(layers), sharex=True, squeeze=False)
    for j, layer in enumerate(layers):
        m = mean[mean["layer"] == layer]
        p = phases[phases["layer"] == layer]
        for i, (col, name, marks) in enumerate(_PANELS):
            ax = axes[i, j]
            x = np.log10(m["epoch"])
            ax.fill_between(x, m[f"{col}_low"], m[f"{col}_high"], alpha=0.3, lw=0)
            ax.plot(x, m[col], lw=1.2)
            for stat in marks:
                values = p[stat].to_numpy(dtype=float) if stat in p else np.array([])
                values = values[np.isfinite(values)]
                if values.size:
                    color, style, label = _MARKS[stat]
                    ax.axvline(np.log10(np.median(values)), color=color, ls=style, label=label)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if i == 0:
                ax.set_title(f"layer {layer}", fontsize=8)
            else:
                ax.set_xlabel("log10 epoch", fontsize=8)
    for row in axes:
        handles = {}
        for ax in row:
            lines, labels = ax.get_legend_handles_labels()
            handles.update(zip(labels, lines, strict=True))
        if handles:
            row[-1].legend(handles.values(), handles.keys(), fontsize=6, loc="best")
    fig.suptitle(config_label(config), fontsize=8)
    return _save(fig, path)


def plot_comparison(
    series_df: pd.DataFrame, configs: Sequence[Mapping[str, Any]], path: str | Path
) -> Path:
    """Information planes of several configurations side by side on shared axes."""
    if not configs:
        raise PlotInputError("plot_comparison needs at least one configuration")
    means = [seed_mean(series_df, c) for c in configs]
    every = pd.concat(means)
    norm = _epoch_norm(every["epoch"])
    ncols = min(len(configs), 4)
    nrows = -(-len(configs) // ncols)
    fig = Figure(figsize=(3.2 * ncols + 0.8, 3.0 * nrows), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    varying = [k for k in configs[0] if len({str(c[k]) for c in configs}) > 1] or list(configs[0])
    for ax, config, mean in zip(axes.flat, configs, means, strict=False):
        _draw_plane(ax, mean, norm)
        ax.set_title(config_label({k: config[k] for k in varying}), fontsize=7)
    for ax in axes.flat[len(configs) :]:
        ax.set_visible(False)
    fig.colorbar(ScalarMappable(norm, _CMAP), ax=axes.ravel().tolist(), label="log10 epoch")
    return _save(fig, path)


def make_figures(
    series_df: pd.DataFrame,
    phase_df: pd.DataFrame,
    config_cols: Sequence[str],
    out_dir: str | Path,
    workers: int = 1,
) -> dict[str, Path]:
    """Write every figure for a sweep under out_dir/figures; return {caption: path}.

    With ``workers`` > 1 the configurations' figures are drawn in that many processes.
    """
    fig_dir = Path(out_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    configs = configurations(series_df, config_cols)
    figures = {
        "Configurations side by side": plot_comparison(
            series_df, configs, fig_dir / "comparison.png"
        )
    }
    jobs = [
        (i, config, select(series_df, config), select(phase_df, config), fig_dir)
        for i, config in enumerate(configs, start=1)
    ]
    for part in process_map(_config_figures, jobs, workers):
        figures.update(part)
    return figures


def _config_figures(job: tuple) -> dict[str, Path]:
    i, config, series_df, phase_df, fig_dir = job
    slug = f"{i:02d}_{_slug(config)}"
    label = config_label(config)
    return {
        f"Information plane: {label}": plot_information_plane(
            series_df, config, fig_dir / f"plane_{slug}.png"
        ),
        f"Trajectories: {label}": plot_trajectories(
            series_df, phase_df, config, fig_dir / f"trajectories_{slug}.png"
        ),
    }


def _draw_plane(ax: Axes, mean: pd.DataFrame, norm: Normalize) -> None:
    for layer, m in mean.groupby("layer"):
        ax.plot(m["i_xt"], m["i_ty"], color="0.6", lw=0.8, zorder=1)
        ax.scatter(
            m["i_xt"], m["i_ty"], c=np.log10(m["epoch"]), cmap=_CMAP, norm=norm, s=8, zorder=2
        )
        last = m.iloc[-1]
        ax.annotate(
            f"L{layer}",
            (last["i_xt"], last["i_ty"]),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=7,
        )
    ax.set_xlabel("I(X;T) [bits]", fontsize=8)
    ax.set_ylabel("I(T;Y) [bits]", fontsize=8)
    ax.tick_params(labelsize=7)


def _epoch_norm(epoch: pd.Series) -> Normalize:
    log_epoch = np.log10(epoch.to_numpy(dtype=float))
    return Normalize(float(log_epoch.min()), float(max(log_epoch.max(), log_epoch.min() + 1e-9)))


def _slug(config: Mapping[str, Any]) -> str:
    text = "_".join(f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in config.items())
    return re.sub(r"[^A-Za-z0-9._-]+", "", text)[:80]


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path
