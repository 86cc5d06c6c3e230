"""Per-run, per-layer phase statistics of information-plane trajectories.

Definitions follow docs/science.md ("Phases and their boundary"), read off the trajectory
after smoothing on a log-epoch axis (analysis.smoothing). Epochs are floats on the smoothing
grid, interpolated where a level is crossed; information is in bits. Start and end values are
the smoothed values at the first and last epoch.
- t50, t95: first epoch where I(T;Y) reaches start + q (max - start); NaN if I(T;Y) rises by
  less than `min_rise_bits`. expansion: I(X;T) at t50 minus I(X;T) at the start.
- i_xt_peak, peak_epoch: maximum of smoothed I(X;T); compression: i_xt_peak minus the end.
- compression_onset: where the fall from the peak passes `onset_fraction` of the compression
  (its last passage before half the fall is done, so noise on a plateau does not count).
- compression_before_t95: how far I(X;T) at t95 lies below its maximum up to t95.
- Boundaries, NaN unless compression >= `min_compression_bits`: boundary_peak is peak_epoch
  if the peak stands `min_expansion_bits` above the start (a plateau has no peak to mark);
  boundary_segments is the knot of the least-squares continuous two-segment line whose slope
  falls at the knot; boundary_changepoint is the knot, among PELT's knots of a continuous
  piecewise-linear fit, where the slope falls the most. Both line fits see the curve up to
  where all but `onset_fraction` of the fall is done, so a flat tail does not bend them.
- snr_transition (drift to diffusion): where smoothed log10 gradient SNR has fallen halfway
  from its maximum to its end; NaN if it falls by less than `min_snr_drop_decades`.
- saturated: smoothed I(X;T) within `saturation_margin` of the ceiling over at least
  `saturation_fraction` of the log-epoch span: such a layer carries no phase information.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import ruptures
from pydantic import BaseModel, ConfigDict, Field

from analysis.smoothing import LogEpochSmoother


class SeriesTableError(ValueError):
    """Raised when the tidy per-epoch series table lacks columns or has unusable values."""


class PhaseConfig(BaseModel):
    """Parameters of phase detection: smoothing, thresholds in bits, detector settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bandwidth: float = Field(0.25, gt=0, description="smoothing half-width, decades of epoch")
    n_grid: int = Field(200, ge=20, description="points of the uniform log-epoch grid")
    min_neighbours: int = Field(10, ge=1, description="points the smoothing kernel spans at least")
    min_rise_bits: float = Field(
        0.05, ge=0, description="rise of I(T;Y) below which t50 and t95 are undefined"
    )
    min_compression_bits: float = Field(
        0.25, ge=0, description="fall of I(X;T) from peak to end that counts as compression"
    )
    min_expansion_bits: float = Field(
        0.25, ge=0, description="rise of I(X;T) up to t50 that counts as expansion"
    )
    onset_fraction: float = Field(
        0.2, gt=0, lt=1, description="fraction of the compression that marks its onset"
    )
    saturation_margin: float = Field(0.1, ge=0, description="bits below the ceiling")
    saturation_fraction: float = Field(
        0.9, gt=0, le=1, description="share of the log-epoch span at the ceiling to be saturated"
    )
    min_segment_decades: float = Field(
        0.2, gt=0, description="shortest segment of the two-segment fit and of PELT"
    )
    changepoint_penalty: float = Field(
        0.5, gt=0, description="PELT penalty on the range-normalised smoothed I(X;T)"
    )
    min_snr_drop_decades: float = Field(
        0.3, ge=0, description="fall of log10 gradient SNR below which no transition is read"
    )


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
    saturated: bool


PHASE_STATS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(PhaseStats) if f.name != "saturated"
)
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
_PELT_POINTS = 100
_UNDEFINED = PhaseStats(**dict.fromkeys(PHASE_STATS, math.nan), saturated=False)


def layer_phases(
    epoch: np.ndarray,
    i_xt: np.ndarray,
    i_ty: np.ndarray,
    grad_snr: np.ndarray | None = None,
    ceiling: float = math.nan,
    config: PhaseConfig | None = None,
) -> PhaseStats:
    """Phase statistics of one layer's trajectory (I(X;T), I(T;Y), gradient SNR per epoch)."""
    config = config or PhaseConfig()
    epoch = np.asarray(epoch, dtype=float)
    i_xt = np.asarray(i_xt, dtype=float)
    i_ty = np.asarray(i_ty, dtype=float)
    if not epoch.shape == i_xt.shape == i_ty.shape:
        raise SeriesTableError("epoch, i_xt and i_ty must have the same length")
    finite = np.isfinite(epoch) & np.isfinite(i_xt) & np.isfinite(i_ty)
    if np.unique(epoch[finite]).size < 3:
        raise SeriesTableError("a trajectory needs at least 3 epochs with finite i_xt and i_ty")
    smoother = LogEpochSmoother(config.bandwidth, config.n_grid, config.min_neighbours)
    u = smoother.grid(epoch[finite])
    xt = smoother.smooth(epoch[finite], i_xt[finite], u)
    ty = smoother.smooth(epoch[finite], i_ty[finite], u)

    i_ty_rise = float(ty.max() - ty[0])
    if i_ty_rise >= config.min_rise_bits:
        u50 = _first_crossing(u, ty, ty[0] + 0.5 * i_ty_rise, rising=True)
        u95 = _first_crossing(u, ty, ty[0] + 0.95 * i_ty_rise, rising=True)
        expansion = float(np.interp(u50, u, xt) - xt[0])
        xt95 = float(np.interp(u95, u, xt))
        compression_before_t95 = float(max(xt[u <= u95].max(), xt95) - xt95)
    else:
        u50 = u95 = expansion = compression_before_t95 = math.nan

    i_peak = int(np.argmax(xt))
    compression = float(xt[i_peak] - xt[-1])
    if compression >= config.min_compression_bits:
        after = slice(i_peak, None)
        onset_level = xt[i_peak] - config.onset_fraction * compression
        u_onset = _onset(u[after], xt[after], onset_level)
        # A plateau's maximum is wherever the noise puts it: only a peak that stands out
        # above the start marks a boundary.
        stands_out = xt[i_peak] - xt[0] >= config.min_expansion_bits
        boundary_peak = u[i_peak] if stands_out else math.nan
        min_points = max(3, round(config.min_segment_decades / (u[1] - u[0])))
        # Fit up to where most of the fall is done, so a flat tail does not bend the fits.
        end_level = xt[after].min() + config.onset_fraction * (xt[i_peak] - xt[after].min())
        i_end = i_peak + int(np.argmax(xt[after] <= end_level)) + 1
        boundary_segments = _two_segment_break(u[:i_end], xt[:i_end], min_points)
        boundary_changepoint = _changepoint_break(
            u[:i_end], xt[:i_end], min_points, config.changepoint_penalty
        )
    else:
        u_onset = boundary_peak = boundary_segments = boundary_changepoint = math.nan

    at_ceiling = xt >= ceiling - config.saturation_margin
    saturated = bool(np.isfinite(ceiling) and at_ceiling.mean() >= config.saturation_fraction)

    return PhaseStats(
        i_xt_start=float(xt[0]),
        i_ty_start=float(ty[0]),
        i_xt_end=float(xt[-1]),
        i_ty_end=float(ty[-1]),
        i_ty_rise=i_ty_rise,
        t50=_to_epoch(u50),
        t95=_to_epoch(u95),
        expansion=expansion,
        i_xt_peak=float(xt[i_peak]),
        peak_epoch=_to_epoch(u[i_peak]),
        compression=compression,
        compression_onset=_to_epoch(u_onset),
        compression_before_t95=compression_before_t95,
        boundary_peak=_to_epoch(boundary_peak),
        boundary_segments=_to_epoch(boundary_segments),
        boundary_changepoint=_to_epoch(boundary_changepoint),
        snr_transition=_snr_transition(smoother, epoch, grad_snr, u, config),
        saturated=saturated,
    )


def run_phases(
    series_df: pd.DataFrame, config_cols: Sequence[str], config: PhaseConfig | None = None
) -> pd.DataFrame:
    """One row of phase statistics per run and layer, with the run's config columns and seed."""
    config = config or PhaseConfig()
    missing = [c for c in (*SERIES_COLUMNS, *config_cols) if c not in series_df.columns]
    if missing:
        raise SeriesTableError(f"series table lacks columns {missing}; it needs {SERIES_COLUMNS}")
    if (series_df["epoch"] < 1).any():
        raise SeriesTableError("epochs must be >= 1 for a log-epoch axis")
    id_cols = ["run_id", *config_cols, "seed", "n_layers"]
    runs = series_df.drop_duplicates("run_id").set_index("run_id")[id_cols[1:]]
    ceilings = series_df.groupby("run_id")["ceiling"].max()
    rows = []
    for (run_id, layer), g in series_df.groupby(["run_id", "layer"], sort=True):
        g = g.groupby("epoch", as_index=False)[["i_xt", "i_ty", "grad_snr"]].mean()
        try:
            stats = layer_phases(
                g["epoch"].to_numpy(),
                g["i_xt"].to_numpy(),
                g["i_ty"].to_numpy(),
                g["grad_snr"].to_numpy(),
                float(ceilings[run_id]),
                config,
            )
        except SeriesTableError as err:
            # One short or broken run must not stop the analysis of a sweep.
            warnings.warn(
                f"run {run_id} layer {layer}: {err}; its statistics are NaN", stacklevel=2
            )
            stats = _UNDEFINED
        row = {"run_id": run_id, **runs.loc[run_id].to_dict(), "layer": int(layer)}
        rows.append({**row, **dataclasses.asdict(stats)})
    columns = [*id_cols, "layer", *(f.name for f in dataclasses.fields(PhaseStats))]
    return pd.DataFrame(rows, columns=columns)


def _to_epoch(u: float) -> float:
    return float(10.0**u) if np.isfinite(u) else math.nan


def _first_crossing(u: np.ndarray, y: np.ndarray, level: float, rising: bool) -> float:
    """First log-epoch at which y reaches `level` (from below if rising), linearly interpolated."""
    reached = y >= level if rising else y <= level
    if not reached.any():
        return math.nan
    i = int(np.argmax(reached))
    if i == 0:
        return float(u[0])
    y0, y1 = y[i - 1], y[i]
    frac = (level - y0) / (y1 - y0) if y1 != y0 else 1.0
    return float(u[i - 1] + frac * (u[i] - u[i - 1]))


def _onset(u: np.ndarray, y: np.ndarray, level: float) -> float:
    """Last log-epoch above `level` before the fall from y[0] to y[-1] is half done."""
    half = np.argmax(y <= 0.5 * (y[0] + y[-1]))
    above = np.flatnonzero(y[:half] >= level)
    i = above[-1] if above.size else 0
    return _first_crossing(u[i:], y[i:], level, rising=False)


def _two_segment_break(u: np.ndarray, y: np.ndarray, min_points: int) -> float:
    """Break of the least-squares continuous two-segment line whose slope falls at the break."""
    candidates = np.arange(min_points, len(u) - min_points)
    if candidates.size == 0:
        return math.nan
    knots = u[candidates]
    d = u[None, :] - knots[:, None]
    basis = np.stack([np.ones_like(d), np.minimum(d, 0.0), np.maximum(d, 0.0)], axis=-1)
    gram = np.einsum("cni,cnj->cij", basis, basis)
    rhs = np.einsum("cni,n->ci", basis, y)
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    sse = ((np.einsum("cni,ci->cn", basis, coef) - y) ** 2).sum(axis=1)
    falls = coef[:, 2] < coef[:, 1]
    if not falls.any():
        return math.nan
    return float(knots[np.argmin(np.where(falls, sse, np.inf))])


class _ContinuousLinearCost(ruptures.base.BaseCost):
    """ruptures' "clinear" cost (chords joining segment ends) from prefix sums, O(1) a call."""

    model = "clinear_prefix_sums"
    min_size = 3

    def fit(self, signal: np.ndarray) -> _ContinuousLinearCost:
        """Precompute prefix sums of a 1-d signal."""
        y = np.asarray(signal, dtype=float).ravel()
        self.signal = y.reshape(-1, 1)
        self.y = y
        zero = np.zeros(1)
        self.s1 = np.concatenate([zero, np.cumsum(y)])
        self.s2 = np.concatenate([zero, np.cumsum(y * y)])
        self.sj = np.concatenate([zero, np.cumsum(np.arange(len(y)) * y)])
        return self

    def error(self, start: int, end: int) -> float:
        """Squared error of y[start:end] about the chord from y[start - 1] to y[end - 1]."""
        if end - start < self.min_size:
            raise ruptures.exceptions.NotEnoughPoints
        start = max(start, 1)
        m = end - start
        a = self.y[start - 1]
        b = (self.y[end - 1] - a) / m
        s1 = self.s1[end] - self.s1[start]
        s2 = self.s2[end] - self.s2[start]
        sky = self.sj[end] - self.sj[start] - (start - 1) * s1
        sk = m * (m + 1) / 2
        skk = m * (m + 1) * (2 * m + 1) / 6
        return float(s2 - 2 * a * s1 - 2 * b * sky + m * a * a + 2 * a * b * sk + b * b * skk)


def _changepoint_break(u: np.ndarray, y: np.ndarray, min_points: int, penalty: float) -> float:
    """PELT knots of a continuous piecewise-linear fit; the one where the slope falls the most."""
    # PELT's cost is quadratic in length: run it on a fixed, coarser resampling of the curve.
    step = max(1, len(u) // _PELT_POINTS)
    u, y = u[::step], y[::step]
    cost = _ContinuousLinearCost()
    min_size = max(cost.min_size, min_points // step)
    if len(u) < 2 * min_size or y.max() == y.min():
        return math.nan
    algo = ruptures.Pelt(custom_cost=cost, min_size=min_size, jump=1)
    y_scaled = (y - y.min()) / (y.max() - y.min())
    ends = algo.fit(y_scaled).predict(pen=penalty * len(u) / _PELT_POINTS)
    # The chords join at the last point of each segment (and at the first point).
    knots = np.array([0, *(end - 1 for end in ends)])
    slopes = np.diff(y[knots]) / np.diff(u[knots])
    drops = np.diff(slopes)
    if drops.size == 0 or drops.min() >= 0:
        return math.nan
    return float(u[knots[int(np.argmin(drops)) + 1]])


def _snr_transition(
    smoother: LogEpochSmoother,
    epoch: np.ndarray,
    grad_snr: np.ndarray | None,
    u: np.ndarray,
    config: PhaseConfig,
) -> float:
    """Epoch where smoothed log10 gradient SNR has fallen halfway from its peak to its end."""
    if grad_snr is None:
        return math.nan
    snr = np.asarray(grad_snr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_snr = np.where(snr > 0, np.log10(snr), np.nan)
    s = smoother.smooth(epoch, log_snr, u)
    valid = np.isfinite(s)
    if valid.sum() < 3:
        return math.nan
    uv, sv = u[valid], s[valid]
    i_peak = int(np.argmax(sv))
    drop = sv[i_peak] - sv[-1]
    if drop < config.min_snr_drop_decades:
        return math.nan
    return _to_epoch(_first_crossing(uv[i_peak:], sv[i_peak:], sv[i_peak] - 0.5 * drop, False))
