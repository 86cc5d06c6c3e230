"""Per-run, per-layer phase statistics of information-plane trajectories.

Definitions follow docs/science.md ("Phases and their boundary"). A trajectory is one (run,
estimator, layer): estimators are never pooled. Curves are read after smoothing on a log-epoch
axis (analysis.smoothing), which starts at epoch 1; epoch 0, the untrained network, gives the
start values ("Epoch 0 matters for BNNs": I(X;T) can jump by a bit between epoch 0 and 1), so
I(X;T) and I(T;Y) at the start are epoch 0's measured values (the smoothed value at the first
epoch for a trajectory without epoch 0). Epochs are floats on the smoothing grid, interpolated
where a level is crossed; information is in bits. End values are smoothed, at the last epoch.
- t50, t95: first epoch where smoothed I(T;Y) reaches start + q (max - start); NaN if I(T;Y)
  rises by less than `min_rise_bits`. expansion: I(X;T) at t50 minus I(X;T) at the start.
- i_xt_peak, peak_epoch: the maximum of I(X;T) over the start and the smoothed curve
  (peak_epoch 0 when the untrained network holds the most); compression: i_xt_peak minus
  the end.
- compression_onset: where the fall from the peak passes `onset_fraction` of the compression
  (its last passage before half the fall is done, so noise on a plateau does not count).
- compression_before_t95: how far I(X;T) at t95 lies below its maximum up to t95 (the start
  included).
- Boundaries, NaN unless compression >= `min_compression_bits`: boundary_peak is peak_epoch
  if the peak stands `min_expansion_bits` above the start (a plateau has no peak to mark);
  boundary_segments is the knot of the least-squares continuous two-segment line whose slope
  falls at the knot; boundary_changepoint is the change point, among the knots of the optimal
  penalised continuous piecewise-linear segmentation (`changepoint_penalty` per segment, the
  objective that PELT searches, solved exactly), where the slope falls the most. Both line
  fits see the curve up to where all but `onset_fraction` of the fall is done, so a flat tail
  does not bend them.
- Computation: trajectories measured at the same epochs are computed together as arrays
  (smoothing as two matrix products, the two-segment fit in closed form from prefix sums for
  every knot at once, the segmentation by dynamic programming over all rows at once).
- snr_transition (drift to diffusion): where smoothed log10 gradient SNR has fallen halfway
  from its maximum to its end; NaN if it falls by less than `min_snr_drop_decades`.
run_phases adds to each trajectory its reliability (analysis.reliability: the share of training
each rule holds, `unreliable_reason`) and to each run its final accuracy (`train_acc_end`,
`test_acc_end`: the values at the last epoch where they were measured).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ibsweep.analysis.reliability import COLUMNS as RELIABILITY_COLUMNS
from ibsweep.analysis.reliability import KEYS, owners, reliability, with_optional_columns
from ibsweep.analysis.settings import PhaseConfig
from ibsweep.analysis.smoothing import LogEpochSmoother

__all__ = ["PHASE_STATS", "PhaseConfig", "PhaseStats", "layer_phases", "run_phases"]


class SeriesTableError(ValueError):
    """Raised when the tidy per-epoch series table lacks columns or has unusable values."""


@dataclass(frozen=True)
class PhaseStats:
    """Phase statistics of one layer of one run; bits, epochs, NaN where undefined."""

    i_xt_start: float
    i_ty_start: float
    i_xt_end: float
    i_ty_end: float
    i_ty_rise: float
    t50: float
    t95: float
    expansion: float
    i_xt_peak: float
    peak_epoch: float
    compression: float
    compression_onset: float
    compression_before_t95: float
    boundary_peak: float
    boundary_segments: float
    boundary_changepoint: float
    snr_transition: float


PHASE_STATS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PhaseStats))
SERIES_COLUMNS: tuple[str, ...] = (
    "run_id",
    "seed",
    "layer",
    "n_layers",
    "epoch",
    "i_xt",
    "i_ty",
    "grad_snr",
    "ceiling",
)
ACCURACY_COLUMNS: tuple[str, ...] = ("train_acc_end", "test_acc_end")
_CHANGEPOINT_POINTS = 100
_MIN_SEGMENT = 3  # points of a change-point segment at least
_BATCH = 2048  # trajectories computed together at most
_UNDEFINED = PhaseStats(**dict.fromkeys(PHASE_STATS, math.nan))


def layer_phases(
    epoch: np.ndarray,
    i_xt: np.ndarray,
    i_ty: np.ndarray,
    grad_snr: np.ndarray | None = None,
    config: PhaseConfig | None = None,
) -> PhaseStats:
    """Phase statistics of one layer's trajectory (I(X;T), I(T;Y), gradient SNR per epoch);
    the values at epoch 0, if given, are the start."""
    config = config or PhaseConfig()
    epoch = np.asarray(epoch, dtype=float)
    i_xt = np.asarray(i_xt, dtype=float)
    i_ty = np.asarray(i_ty, dtype=float)
    if not epoch.shape == i_xt.shape == i_ty.shape:
        raise SeriesTableError("epoch, i_xt and i_ty must have the same length")
    if (epoch < 0).any():
        raise SeriesTableError("epochs must be >= 0 (epoch 0: the untrained network)")
    snr = np.full(epoch.shape, np.nan) if grad_snr is None else np.asarray(grad_snr, dtype=float)
    measured = np.isfinite(i_xt) & np.isfinite(i_ty)
    zero = np.flatnonzero((epoch == 0) & measured)
    start = (i_xt[zero[0]], i_ty[zero[0]]) if zero.size else (math.nan, math.nan)
    later = epoch >= 1
    finite = later & measured
    if np.unique(epoch[finite]).size < 3:
        raise SeriesTableError(
            "a trajectory needs at least 3 epochs >= 1 with finite i_xt and i_ty"
        )
    stats = _phases_batch(
        epoch[finite],
        i_xt[finite][None, :],
        i_ty[finite][None, :],
        (epoch[later], snr[later][None, :]),
        np.array([start[0]]),
        np.array([start[1]]),
        config,
    )
    return PhaseStats(**{name: values[0].item() for name, values in stats.items()})


def run_phases(
    series_df: pd.DataFrame, config_cols: Sequence[str], config: PhaseConfig | None = None
) -> pd.DataFrame:
    """One row per run, estimator and layer: config columns, seed, phase statistics,
    reliability and the run's final accuracy.

    A table without an ``estimator`` column holds one estimator, named ``default``.
    Trajectories measured at the same epochs (the usual case: one MI schedule for a sweep)
    are computed together, as arrays of trajectories.
    """
    config = config or PhaseConfig()
    missing = [c for c in (*SERIES_COLUMNS, *config_cols) if c not in series_df.columns]
    if missing:
        raise SeriesTableError(f"series table lacks columns {missing}; it needs {SERIES_COLUMNS}")
    series_df = with_optional_columns(series_df)
    if (series_df["epoch"] < 0).any():
        raise SeriesTableError("epochs must be >= 0 (epoch 0: the untrained network)")
    id_cols = ["run_id", *config_cols, "seed", "n_layers"]
    columns = [
        *id_cols, *KEYS[1:], *PHASE_STATS, *RELIABILITY_COLUMNS[len(KEYS) :], *ACCURACY_COLUMNS
    ]  # fmt: skip
    if series_df.empty:
        return pd.DataFrame(columns=columns)
    codes, run_of, est_of = owners(series_df)
    _, first = np.unique(codes, return_index=True)  # each (run, estimator)'s first row
    layer = series_df["layer"].to_numpy(dtype=np.int64)
    epoch = series_df["epoch"].to_numpy(dtype=float)
    order = np.lexsort((epoch, layer, codes))
    run, layer, epoch = codes[order], layer[order], epoch[order]
    values = series_df[["i_xt", "i_ty", "grad_snr"]].to_numpy(dtype=float)[order]
    repeated = (run[1:] == run[:-1]) & (layer[1:] == layer[:-1]) & (epoch[1:] == epoch[:-1])
    if repeated.any():  # several rows for one epoch: the mean of their values, as one point
        starts = np.flatnonzero(np.r_[True, ~repeated])
        present = ~np.isnan(values)
        total = np.add.reduceat(np.where(present, values, 0.0), starts, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = total / np.add.reduceat(present, starts, axis=0)
        run, layer, epoch = run[starts], layer[starts], epoch[starts]
    bounds = np.flatnonzero(np.r_[True, (run[1:] != run[:-1]) | (layer[1:] != layer[:-1]), True])

    heads = bounds[:-1]
    traj_run, traj_layer = run[heads], layer[heads]
    at_zero = (epoch[heads] == 0) & np.isfinite(values[heads, :2]).all(axis=1)
    start_xt = np.where(at_zero, values[heads, 0], np.nan)
    start_ty = np.where(at_zero, values[heads, 1], np.nan)
    begins = heads + (epoch[heads] == 0)  # the smoothed curve starts at epoch 1
    stats = {name: np.full(len(traj_run), np.nan) for name in PHASE_STATS}
    batches: dict[bytes, list[int]] = {}  # trajectories by their epochs, all values finite
    for t, (head, a, b) in enumerate(zip(heads, begins, bounds[1:], strict=True)):
        if b - a >= 3 and np.isfinite(values[a:b, :2]).all():
            batches.setdefault(epoch[a:b].tobytes(), []).append(t)
            continue
        try:
            one = layer_phases(
                epoch[head:b], values[head:b, 0], values[head:b, 1], values[head:b, 2], config
            )
        except SeriesTableError as err:
            # One short or broken run must not stop the analysis of a sweep.
            warnings.warn(
                f"run {run_of[traj_run[t]]} estimator {est_of[traj_run[t]]} layer "
                f"{traj_layer[t]}: {err}; "
                "its statistics are NaN",
                stacklevel=2,
            )
            one = _UNDEFINED
        for name, value in dataclasses.asdict(one).items():
            stats[name][t] = value
    for key, every in batches.items():
        common = np.frombuffer(key, dtype=float)
        for i in range(0, len(every), _BATCH):
            members = np.array(every[i : i + _BATCH])
            rows = begins[members][:, None] + np.arange(len(common))[None, :]
            batch = _phases_batch(
                common,
                values[rows, 0],
                values[rows, 1],
                (common, values[rows, 2]),
                start_xt[members],
                start_ty[members],
                config,
            )
            for name, value in batch.items():
                stats[name][members] = value

    out = {"run_id": run_of[traj_run]}
    for col in id_cols[1:]:
        column = series_df[col].iloc[first]
        if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
            column = column.astype(object)
        out[col] = column.to_numpy()[traj_run]
    out["estimator"] = est_of[traj_run]
    out["layer"] = traj_layer
    out.update(stats)
    table = pd.DataFrame(out)
    # both list trajectories in the same order: by (run, estimator) code, then layer
    rel = reliability(series_df, config)
    for col in RELIABILITY_COLUMNS[len(KEYS) :]:
        table[col] = rel[col].to_numpy()
    raw_epoch = series_df["epoch"].to_numpy(dtype=float)
    for name, source in zip(ACCURACY_COLUMNS, ("train_acc", "test_acc"), strict=True):
        final = _final(codes, raw_epoch, series_df[source].to_numpy(dtype=float), len(run_of))
        table[name] = final[traj_run]
    return table[columns]


def _final(codes: np.ndarray, epoch: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per code 0..n-1, the value at its last epoch where the value is finite (NaN if none)."""
    out = np.full(n, np.nan)
    ok = np.isfinite(values)
    codes, epoch, values = codes[ok], epoch[ok], values[ok]
    order = np.lexsort((epoch, codes))
    codes, values = codes[order], values[order]
    last = np.r_[codes[1:] != codes[:-1], True] if codes.size else np.zeros(0, dtype=bool)
    out[codes[last]] = values[last]
    return out


def _phases_batch(
    epoch: np.ndarray,
    i_xt: np.ndarray,
    i_ty: np.ndarray,
    snr: tuple[np.ndarray, np.ndarray],
    start_xt: np.ndarray,
    start_ty: np.ndarray,
    config: PhaseConfig,
) -> dict[str, np.ndarray]:
    """Phase statistics of trajectories (rows) measured at the same epochs (>= 1), all finite.

    `snr` is (epochs, gradient SNR per row) for the SNR transition, which may have gaps;
    `start_xt`, `start_ty` are the epoch-0 values per row (NaN: the smoothed first value).
    Returns each PhaseStats field as an array with a value per row.
    """
    smoother = LogEpochSmoother(config.bandwidth, config.n_grid, config.min_neighbours)
    u = smoother.grid(epoch)
    xt = smoother.smooth_many(epoch, i_xt, u)
    ty = smoother.smooth_many(epoch, i_ty, u)
    n, rows = len(u), np.arange(len(xt))
    nan = np.full(len(xt), np.nan)
    x0 = np.where(np.isfinite(start_xt), start_xt, xt[:, 0])
    y0 = np.where(np.isfinite(start_ty), start_ty, ty[:, 0])

    i_ty_rise = ty.max(axis=1) - y0
    fits = i_ty_rise >= config.min_rise_bits
    u50 = np.where(fits, _first_crossing(u, ty, y0 + 0.5 * i_ty_rise, rising=True), nan)
    u95 = np.where(fits, _first_crossing(u, ty, y0 + 0.95 * i_ty_rise, rising=True), nan)
    expansion = _interp(u50, u, xt) - x0
    xt95 = _interp(u95, u, xt)
    before = np.maximum(x0, np.where(u[None, :] <= u95[:, None], xt, -np.inf).max(axis=1))
    compression_before_t95 = np.where(fits, np.maximum(before, xt95) - xt95, nan)

    i_peak = xt.argmax(axis=1)
    at_start = x0 > xt[rows, i_peak]  # the untrained network holds the most
    peak = np.where(at_start, x0, xt[rows, i_peak])
    i_peak = np.where(at_start, 0, i_peak)
    compression = peak - xt[:, -1]
    compresses = compression >= config.min_compression_bits
    after = np.arange(n)[None, :] >= i_peak[:, None]
    onset_level = peak - config.onset_fraction * compression
    u_onset = _onset(u, xt, after, i_peak, peak, onset_level)
    # A plateau's maximum is wherever the noise puts it: only a peak that stands out
    # above the start marks a boundary.
    stands_out = peak - x0 >= config.min_expansion_bits
    boundary_peak = np.where(stands_out, u[i_peak], nan)
    min_points = max(3, round(config.min_segment_decades / (u[1] - u[0])))
    # Fit up to where most of the fall is done, so a flat tail does not bend the fits.
    low = np.where(after, xt, np.inf).min(axis=1)
    end_level = low + config.onset_fraction * (peak - low)
    i_end = np.argmax(after & (xt <= end_level[:, None]), axis=1) + 1
    boundary_segments = _two_segment_break(u, xt, i_end, min_points)
    boundary_changepoint = _changepoint_break(u, xt, i_end, min_points, config.changepoint_penalty)

    def compressing(x: np.ndarray) -> np.ndarray:
        return _to_epoch(np.where(compresses, x, nan))

    return {
        "i_xt_start": x0,
        "i_ty_start": y0,
        "i_xt_end": xt[:, -1],
        "i_ty_end": ty[:, -1],
        "i_ty_rise": i_ty_rise,
        "t50": _to_epoch(u50),
        "t95": _to_epoch(u95),
        "expansion": expansion,
        "i_xt_peak": peak,
        "peak_epoch": np.where(at_start, 0.0, _to_epoch(u[i_peak])),
        "compression": compression,
        "compression_onset": compressing(u_onset),
        "compression_before_t95": compression_before_t95,
        "boundary_peak": compressing(boundary_peak),
        "boundary_segments": compressing(boundary_segments),
        "boundary_changepoint": compressing(boundary_changepoint),
        "snr_transition": _snr_transition(smoother, snr[0], snr[1], u, config),
    }


def _to_epoch(u: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(u), 10.0**u, np.nan)


def _first_crossing(
    u: np.ndarray, y: np.ndarray, level: np.ndarray, rising: bool, start: np.ndarray | None = None
) -> np.ndarray:
    """Per row, the first log-epoch (from index `start` on) at which y reaches `level` (from
    below if rising), linearly interpolated; NaN where it never does."""
    rows = np.arange(len(y))
    start = np.zeros(len(y), dtype=np.int64) if start is None else start
    with np.errstate(invalid="ignore"):
        reached = y >= level[:, None] if rising else y <= level[:, None]
        reached &= np.arange(y.shape[1])[None, :] >= start[:, None]
        i = reached.argmax(axis=1)
        prev = np.maximum(i - 1, 0)
        y0, y1 = y[rows, prev], y[rows, i]
        frac = np.where(y1 != y0, (level - y0) / np.where(y1 != y0, y1 - y0, 1.0), 1.0)
        crossing = np.where(i == start, u[i], u[prev] + frac * (u[i] - u[prev]))
    return np.where(reached.any(axis=1), crossing, np.nan)


def _interp(x: np.ndarray, u: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row, y (on the increasing grid u) linearly interpolated at x; NaN where x is NaN."""
    j = np.clip(np.searchsorted(u, np.nan_to_num(x, nan=u[0]), side="right") - 1, 0, len(u) - 2)
    rows = np.arange(len(y))
    frac = (x - u[j]) / (u[j + 1] - u[j])
    return y[rows, j] + frac * (y[rows, j + 1] - y[rows, j])


def _onset(
    u: np.ndarray,
    y: np.ndarray,
    after: np.ndarray,
    i_peak: np.ndarray,
    peak: np.ndarray,
    level: np.ndarray,
) -> np.ndarray:
    """Per row: last log-epoch above `level` before the fall from the peak to the end is half
    done (so noise on a plateau does not count), then where y first falls to `level`."""
    n = y.shape[1]
    half_level = 0.5 * (peak + y[:, -1])
    falling = after & (y <= half_level[:, None])
    half = np.where(falling.any(axis=1), falling.argmax(axis=1), i_peak)
    window = after & (np.arange(n)[None, :] < half[:, None]) & (y >= level[:, None])
    last_above = n - 1 - window[:, ::-1].argmax(axis=1)
    start = np.where(window.any(axis=1), last_above, i_peak)
    return _first_crossing(u, y, level, rising=False, start=start)


def _two_segment_break(u: np.ndarray, y: np.ndarray, n: np.ndarray, min_points: int) -> np.ndarray:
    """Per row, the knot of the least-squares continuous two-segment line through y[:n] whose
    slope falls at the knot (NaN if none does): closed form from prefix sums, every row and
    candidate knot at once.

    With d = u - knot, the line a + b1 min(d, 0) + b2 max(d, 0): left of the knot only b1's
    column is non-zero and right of it only b2's, so the normal equations give b1 and b2 in
    terms of a, and a in closed form.
    """
    rows, width = y.shape
    x = u - u[0]  # shifts keep the sums small; the fit is shift-invariant
    z = y - y[:, :1]
    zero = np.zeros((rows, 1))
    s_y = np.hstack([zero, np.cumsum(z, axis=1)])
    s_yy = np.hstack([zero, np.cumsum(z * z, axis=1)])
    s_xy = np.hstack([zero, np.cumsum(z * x, axis=1)])
    s_1 = np.arange(width + 1, dtype=float)
    s_x = np.r_[0.0, np.cumsum(x)]
    s_xx = np.r_[0.0, np.cumsum(x * x)]
    c = np.arange(min_points, max(min_points, width - min_points))
    if c.size == 0:
        return np.full(rows, np.nan)
    k = x[c][None, :]
    end = n[:, None]
    # left: points 0..c-1; right: points c..n-1 (the knot itself has d = 0)
    left_d = s_x[c] - k * s_1[c]
    left_dd = s_xx[c] - 2 * k * s_x[c] + k * k * s_1[c]
    left_yd = s_xy[:, c] - k * s_y[:, c]
    count_r = end - c
    sum_x_r = s_x[end] - s_x[c]
    right_d = sum_x_r - k * count_r
    right_dd = (s_xx[end] - s_xx[c]) - 2 * k * sum_x_r + k * k * count_r
    right_yd = (np.take_along_axis(s_xy, end, 1) - s_xy[:, c]) - k * (
        np.take_along_axis(s_y, end, 1) - s_y[:, c]
    )
    total_y = np.take_along_axis(s_y, end, 1)
    valid = c[None, :] + min_points < end
    with np.errstate(divide="ignore", invalid="ignore"):
        dd_r = np.where(valid, right_dd, 1.0)
        a = (total_y - left_d * left_yd / left_dd - right_d * right_yd / dd_r) / (
            end - left_d**2 / left_dd - right_d**2 / dd_r
        )
        b1 = (left_yd - a * left_d) / left_dd
        b2 = (right_yd - a * right_d) / dd_r
        sse = np.take_along_axis(s_yy, end, 1) - (a * total_y + b1 * left_yd + b2 * right_yd)
    sse = np.where(valid & (b2 < b1), sse, np.inf)
    best = sse.argmin(axis=1)
    return np.where(np.isfinite(sse[np.arange(rows), best]), u[c[best]], np.nan)


def _changepoint_break(
    u: np.ndarray, y: np.ndarray, n: np.ndarray, min_points: int, penalty: float
) -> np.ndarray:
    """Per row, among the knots of the optimal penalised continuous piecewise-linear
    segmentation of y[:n], the one where the slope falls the most (NaN if it never falls)."""
    out = np.full(len(y), np.nan)
    # The segmentation's cost is quadratic in length: use a fixed, coarser resampling.
    step = np.maximum(1, n // _CHANGEPOINT_POINTS)
    m = -(-n // step)  # points after resampling
    min_size = np.maximum(_MIN_SEGMENT, min_points // step)
    idx = np.minimum(np.arange(m.max())[None, :] * step[:, None], len(u) - 1)
    us = u[idx]
    ys = np.take_along_axis(y, idx, 1)
    inside = np.arange(m.max())[None, :] < m[:, None]
    top = np.where(inside, ys, -np.inf).max(axis=1)
    bottom = np.where(inside, ys, np.inf).min(axis=1)
    todo = np.flatnonzero((m >= 2 * min_size) & (top > bottom))
    if todo.size == 0:
        return out
    scaled = (ys[todo] - bottom[todo, None]) / (top - bottom)[todo, None]
    pen = penalty * m[todo] / _CHANGEPOINT_POINTS  # the same penalty per point of the curve
    ends = _optimal_partition(scaled, m[todo], min_size[todo], pen)
    for row, segment_ends in zip(todo, ends, strict=True):
        # The chords join at the last point of each segment (and at the first point).
        knots = np.array([0, *(e - 1 for e in segment_ends)])
        slopes = np.diff(ys[row, knots]) / np.diff(us[row, knots])
        drops = np.diff(slopes)
        if drops.size and drops.min() < 0:
            out[row] = us[row, knots[int(np.argmin(drops)) + 1]]
    return out


def _optimal_partition(
    y: np.ndarray, n: np.ndarray, min_size: np.ndarray, penalty: np.ndarray
) -> list[list[int]]:
    """Per row, the segment ends of the segmentation of y[:n] into pieces of at least
    `min_size` points that minimises the sum of the pieces' costs plus `penalty` per piece.

    A piece y[s:e] costs its squared error about the chord from y[s - 1] to y[e - 1] (from
    y[0] for the first piece), so the pieces form a continuous piecewise-linear curve through
    data points (ruptures' "clinear" cost), computed from prefix sums. The minimum is found by
    exact dynamic programming over all segmentations (optimal partitioning), for all rows at
    once; ties go to the earliest change point. PELT searches the same optimum but prunes on
    the assumption that a split never raises the cost, which chords through data points do not
    guarantee: on noisy curves it now and then stopped at a costlier segmentation.
    Rows are padded series: only y[r, :n[r]] is read for the answer.
    """
    rows, width = y.shape
    zero = np.zeros((rows, 1))
    s1 = np.hstack([zero, np.cumsum(y, axis=1)])
    s2 = np.hstack([zero, np.cumsum(y * y, axis=1)])
    sj = np.hstack([zero, np.cumsum(np.arange(width) * y, axis=1)])
    best = np.full((rows, width + 1), np.inf)
    best[:, 0] = 0.0
    came_from = np.zeros((rows, width + 1), dtype=np.int64)
    every = np.arange(rows)
    for e in range(int(min_size.min()), width + 1):
        s = np.arange(e - _MIN_SEGMENT + 1)  # pieces of at least 3 points
        start = np.maximum(s, 1)
        length = e - start
        a = y[:, start - 1]
        b = (y[:, e - 1, None] - a) / length
        seg1 = s1[:, e, None] - s1[:, start]
        seg2 = s2[:, e, None] - s2[:, start]
        sky = sj[:, e, None] - sj[:, start] - (start - 1) * seg1
        sk = length * (length + 1) / 2
        skk = length * (length + 1) * (2 * length + 1) / 6
        cost = seg2 - 2 * a * seg1 - 2 * b * sky + length * a * a + 2 * a * b * sk + b * b * skk
        # a piece starts at 0 or after a first piece, and leaves room for itself
        allowed = ((s == 0) | (s >= min_size[:, None])) & (s <= e - min_size[:, None])
        total = np.where(allowed, best[:, s] + (cost + penalty[:, None]), np.inf)
        came_from[:, e] = total.argmin(axis=1)
        best[:, e] = total[every, came_from[:, e]]
    out = []
    for row in range(rows):
        ends, e = [], int(n[row])
        while e > 0:
            ends.append(e)
            e = int(came_from[row, e])
        out.append(ends[::-1])
    return out


def _snr_transition(
    smoother: LogEpochSmoother,
    epoch: np.ndarray,
    grad_snr: np.ndarray,
    u: np.ndarray,
    config: PhaseConfig,
) -> np.ndarray:
    """Per row, the epoch where smoothed log10 gradient SNR has fallen halfway from its peak
    to its end; NaN if it falls by less than `min_snr_drop_decades` or is missing."""
    snr = np.asarray(grad_snr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_snr = np.where(snr > 0, np.log10(snr), np.nan)
    s = smoother.smooth_many(epoch, log_snr, u)
    valid = np.isfinite(s)  # one block of the grid: the span of the finite values
    rows = np.arange(len(s))
    i_peak = np.where(valid, s, -np.inf).argmax(axis=1)
    last = s.shape[1] - 1 - valid[:, ::-1].argmax(axis=1)
    peak, end = s[rows, i_peak], s[rows, last]
    drop = peak - end
    with np.errstate(invalid="ignore"):
        falls = (valid.sum(axis=1) >= 3) & (drop >= config.min_snr_drop_decades)
    filled = np.where(valid, s, np.inf)
    crossing = _first_crossing(u, filled, peak - 0.5 * drop, rising=False, start=i_peak)
    return _to_epoch(np.where(falls, crossing, np.nan))
