"""Figures: information planes, trajectories with boundaries, configurations side by side.

Figures are built on matplotlib.figure.Figure and written with the Agg canvas, so no pyplot
state or interactive backend is touched. Curves are seed means (a picture of the typical run);
the boundaries marked on them are medians of per-seed detections, as in the statistics.
Axes sit at fixed margins (in inches) instead of a layout engine: constrained layout measured
every text box of every figure again and took about half of the drawing time.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colorbar import Colorbar
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from scipy import stats as sps

from ibsweep.analysis.parallel import process_map, split

DPI = 100
# Margins in inches: room for tick labels and axis labels (left, bottom), titles (top), and the
# colorbar with its label (right of information planes).
_LEFT, _BOTTOM, _TOP, _RIGHT = 0.6, 0.45, 0.3, 0.15
_BAR_WIDTH, _BAR_ROOM = 0.15, 0.7  # colorbar: its width, room for its ticks and label
_BAR_GAP = 0.2  # between the axes and the colorbar
_CMAP = "viridis"
_MARKS = {
    "boundary_peak": ("tab:red", "-", "peak"),
    "boundary_segments": ("tab:red", "--", "two-segment"),
    "boundary_changepoint": ("tab:red", ":", "change point"),
    "snr_transition": ("tab:gray", "-.", "grad-SNR"),
    "t50": ("tab:blue", "--", "t50"),
    "t95": ("tab:blue", ":", "t95"),
}

_MIN_JOBS_PER_WORKER = 4  # configurations; below this a process costs more than it saves
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
    return _mean_band(select(series_df, config), config)


def _mean_band(rows: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
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
    return _plane_figure(seed_mean(series_df, config), config_label(config), path)


def plot_trajectories(
    series_df: pd.DataFrame,
    phase_df: pd.DataFrame,
    config: Mapping[str, Any],
    path: str | Path,
) -> Path:
    """I(X;T) and I(T;Y) against log10 epoch per layer: seed mean, 95% band, median boundaries."""
    mean = seed_mean(series_df, config)
    return _trajectory_figure(mean, select(phase_df, config), config_label(config), path)


def plot_comparison(
    series_df: pd.DataFrame, configs: Sequence[Mapping[str, Any]], path: str | Path
) -> Path:
    """Information planes of several configurations side by side on shared axes."""
    if not configs:
        raise PlotInputError("plot_comparison needs at least one configuration")
    return _comparison_figure([seed_mean(series_df, c) for c in configs], configs, path)


# A figure is made once per shape and drawn again for every configuration of that shape
# (``kept``): its axes and their ticks, which cost about a third of a figure, are kept, and
# only the data, titles and legends are replaced.
_Kept = dict[tuple, tuple[Figure, np.ndarray, Colorbar | None]]


def _plane_figure(
    mean: pd.DataFrame, title: str, path: str | Path, kept: _Kept | None = None
) -> Path:
    fig, axes, colorbar = _figure(kept, ("plane",), _new_plane)
    norm = _epoch_norm(mean["epoch"])
    _draw_plane(axes[0, 0], mean, norm)
    axes[0, 0].set_title(title, fontsize=8, y=1.0)
    colorbar.mappable.set_norm(norm)
    return _save(fig, path)


def _new_plane() -> tuple[Figure, np.ndarray, Colorbar]:
    fig = Figure(figsize=(6.4, 4.8), dpi=DPI)
    axes = _grid(fig, 1, 1, colorbar=True)
    return fig, axes, _colorbar(fig)


def _trajectory_figure(
    mean: pd.DataFrame,
    phases: pd.DataFrame,
    title: str,
    path: str | Path,
    kept: _Kept | None = None,
) -> Path:
    layers = sorted(mean["layer"].unique())
    fig, axes, _ = _figure(kept, ("trajectories", len(layers)), lambda: _new_trajectories(layers))
    for j, layer in enumerate(layers):
        m = mean[mean["layer"] == layer]
        p = phases[phases["layer"] == layer]
        x = np.log10(m["epoch"].to_numpy(dtype=float))
        for i, (col, _, marks) in enumerate(_PANELS):
            ax = axes[i, j]
            ax.fill_between(x, m[f"{col}_low"], m[f"{col}_high"], color="C0", alpha=0.3, lw=0)
            ax.plot(x, m[col], color="C0", lw=1.2)
            for stat in marks:
                values = p[stat].to_numpy(dtype=float) if stat in p else np.array([])
                values = values[np.isfinite(values)]
                if values.size:
                    color, style, label = _MARKS[stat]
                    ax.axvline(np.log10(np.median(values)), color=color, ls=style, label=label)
            if i == 0:
                ax.set_title(f"layer {layer}", fontsize=8, y=1.0)
    for row in axes:
        handles = {}
        for ax in row:
            lines, labels = ax.get_legend_handles_labels()
            handles.update(zip(labels, lines, strict=True))
        if handles:
            row[-1].legend(handles.values(), handles.keys(), fontsize=6, loc="best")
    fig.suptitle(title, fontsize=8, y=1 - 0.08 / fig.get_figheight(), va="top")
    return _save(fig, path)


def _new_trajectories(layers: Sequence[int]) -> tuple[Figure, np.ndarray, None]:
    fig = Figure(figsize=(2.6 * len(layers) + 0.6, 5.0), dpi=DPI)
    axes = _grid(fig, 2, len(layers), gaps=(0.45, 0.15), top=0.55, sharex=True)
    for (i, j), ax in np.ndenumerate(axes):
        ax.tick_params(labelsize=7)
        if j == 0:
            ax.set_ylabel(_PANELS[i][1], fontsize=8)
        if i == len(axes) - 1:
            ax.set_xlabel("log10 epoch", fontsize=8)
    return fig, axes, None


def _comparison_figure(
    means: Sequence[pd.DataFrame], configs: Sequence[Mapping[str, Any]], path: str | Path
) -> Path:
    norm = _epoch_norm(pd.concat([m["epoch"] for m in means]))
    ncols = min(len(configs), 4)
    nrows = -(-len(configs) // ncols)
    fig = Figure(figsize=(3.2 * ncols + 0.8, 3.0 * nrows), dpi=DPI)
    axes = _grid(fig, nrows, ncols, gaps=(0.45, 0.5), colorbar=True, sharex=True, sharey=True)
    varying = [k for k in configs[0] if len({str(c[k]) for c in configs}) > 1] or list(configs[0])
    for ax, config, mean in zip(axes.flat, configs, means, strict=False):
        _draw_plane(ax, mean, norm)
        ax.set_title(config_label({k: config[k] for k in varying}), fontsize=7, y=1.0)
    for ax in axes.flat[len(configs) :]:
        ax.set_visible(False)
    _colorbar(fig).mappable.set_norm(norm)
    return _save(fig, path)


def _figure(
    kept: _Kept | None, shape: tuple, make: Callable[[], tuple]
) -> tuple[Figure, np.ndarray, Colorbar | None]:
    """A figure of this shape: the kept one with its data taken out, else a new one."""
    if kept is not None and shape in kept:
        fig, axes, colorbar = kept[shape]
        for ax in axes.flat:
            for artist in (*ax.lines, *ax.collections, *ax.texts, *ax.patches):
                artist.remove()
            if ax.get_legend() is not None:
                ax.get_legend().remove()
            ax.relim()  # forget the old data limits; autoscaling follows the new data
        return fig, axes, colorbar
    made = make()
    if kept is not None:
        kept[shape] = made
    return made


def make_figures(
    series_df: pd.DataFrame,
    phase_df: pd.DataFrame,
    config_cols: Sequence[str],
    out_dir: str | Path,
    workers: int = 1,
) -> dict[str, Path]:
    """Write every figure for a sweep under out_dir/figures; return {caption: path}.

    Seed means are taken here, all configurations in one pass; with ``workers`` > 1 the
    figures are drawn in that many processes.
    """
    fig_dir = Path(out_dir) / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    configs = configurations(series_df, config_cols)
    means = _seed_means(series_df, config_cols, configs)
    phases = _split(phase_df, config_cols, configs)
    jobs = [
        (f"{i:02d}_{_slug(config)}", config_label(config), mean, phase, fig_dir)
        for i, (config, mean, phase) in enumerate(zip(configs, means, phases, strict=True), 1)
    ]
    if len(jobs) < _MIN_JOBS_PER_WORKER * workers:
        workers = 1
    # The comparison (the largest figure) first, then the configurations in a few chunks per
    # worker, so that the workers finish at about the same time.
    tasks = [("comparison", means, configs, fig_dir / "comparison.png")]
    tasks += [("configurations", chunk) for chunk in split(jobs, 3 * workers)]
    figures = {}
    try:
        for part in process_map(_draw, tasks, workers):
            figures.update(part)
    finally:
        _KEPT.clear()  # drawn here (one process): let the figures go
    return figures


def _draw(task: tuple) -> dict[str, Path]:
    if task[0] == "comparison":
        _, means, configs, path = task
        return {"Configurations side by side": _comparison_figure(means, configs, path)}
    return _config_figures(task[1])


_KEPT: _Kept = {}  # per process: figures drawn again for the next configuration of a shape


def _config_figures(jobs: list[tuple]) -> dict[str, Path]:
    figures = {}
    for slug, label, mean, phases, fig_dir in jobs:
        figures[f"Information plane: {label}"] = _plane_figure(
            mean, label, fig_dir / f"plane_{slug}.png", _KEPT
        )
        figures[f"Trajectories: {label}"] = _trajectory_figure(
            mean, phases, label, fig_dir / f"trajectories_{slug}.png", _KEPT
        )
    return figures


def _split(
    df: pd.DataFrame, config_cols: Sequence[str], configs: Sequence[Mapping[str, Any]]
) -> list[pd.DataFrame]:
    """The rows of each configuration, in the order of ``configs``, in one pass over ``df``."""
    if not configs:
        return []
    cols = list(config_cols)
    keys = pd.MultiIndex.from_frame(df[cols].astype(object).where(df[cols].notna(), None))
    wanted = pd.MultiIndex.from_tuples([tuple(c[k] for k in cols) for c in configs])
    codes = wanted.get_indexer(keys)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(configs) + 1))
    return [df.iloc[order[a:b]] for a, b in itertools.pairwise(bounds)]


def _seed_means(
    series_df: pd.DataFrame, config_cols: Sequence[str], configs: Sequence[Mapping[str, Any]]
) -> list[pd.DataFrame]:
    columns = ["layer", "epoch", "i_xt", "i_ty"]
    parts = _split(series_df[[*config_cols, *columns]], config_cols, configs)
    return [_mean_band(part[columns], config) for part, config in zip(parts, configs, strict=True)]


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


def _grid(
    fig: Figure,
    nrows: int,
    ncols: int,
    gaps: tuple[float, float] = (0.0, 0.0),
    top: float = _TOP,
    colorbar: bool = False,
    **share: bool | str,
) -> np.ndarray:
    """An nrows x ncols grid of axes with fixed margins and gaps (width, height) in inches."""
    width, height = fig.get_size_inches()
    right = _BAR_GAP + _BAR_WIDTH + _BAR_ROOM if colorbar else _RIGHT
    cell_w = (width - _LEFT - right - (ncols - 1) * gaps[0]) / ncols
    cell_h = (height - _BOTTOM - top - (nrows - 1) * gaps[1]) / nrows
    grid = fig.add_gridspec(
        nrows,
        ncols,
        left=_LEFT / width,
        right=1 - right / width,
        bottom=_BOTTOM / height,
        top=1 - top / height,
        wspace=gaps[0] / cell_w,
        hspace=gaps[1] / cell_h,
    )
    return grid.subplots(squeeze=False, **share)


def _colorbar(fig: Figure) -> Colorbar:
    """A log-epoch colorbar at the right edge, as tall as the axes (norm set by the caller)."""
    width, height = fig.get_size_inches()
    left = (width - _BAR_ROOM - _BAR_WIDTH) / width
    bottom, top = _BOTTOM / height, 1 - _TOP / height
    cax = fig.add_axes((left, bottom, _BAR_WIDTH / width, top - bottom))
    return fig.colorbar(ScalarMappable(Normalize(0, 1), _CMAP), cax=cax, label="log10 epoch")


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


_GENERALISATION_PANELS = (("test_acc", "test accuracy"), ("gap", "train - test"))


def plot_generalisation(points: pd.DataFrame, path: str | Path) -> Path:
    """Per layer, compression against final test accuracy (top) and against the
    generalisation gap (bottom), one point per run, coloured by model."""
    if points.empty:
        raise PlotInputError("no runs with compression and accuracy to draw")
    layers = sorted(points["layer"].unique())
    fig = Figure(figsize=(2.6 * len(layers) + 0.6, 5.0), dpi=DPI)
    axes = _grid(fig, 2, len(layers), gaps=(0.45, 0.15), top=0.55, sharex="col")
    models = sorted(points["model"].astype(str).unique())
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    for j, layer in enumerate(layers):
        rows = points[points["layer"] == layer]
        for i, (target, label) in enumerate(_GENERALISATION_PANELS):
            ax = axes[i, j]
            for model, part in rows.groupby(rows["model"].astype(str)):
                ax.scatter(part["compression"], part[target], s=10, color=colours[model],
                           label=model)  # fmt: skip
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            if i == 1:
                ax.set_xlabel("compression [bits]", fontsize=8)
        axes[0, j].set_title(f"layer {layer}", fontsize=8, y=1.0)
    handles = {}
    for ax in axes[0]:
        lines, labels = ax.get_legend_handles_labels()
        handles.update(zip(labels, lines, strict=True))
    if handles:
        axes[0, -1].legend(handles.values(), handles.keys(), fontsize=6, loc="best")
    estimator = ", ".join(sorted(points["estimator"].astype(str).unique()))
    fig.suptitle(f"compression and generalisation, estimator {estimator}", fontsize=8,
                 y=1 - 0.08 / fig.get_figheight(), va="top")  # fmt: skip
    return _save(fig, path)
