"""Smoothing of per-epoch series on a log-epoch axis.

Choice: local-linear regression (LOWESS without robustness iterations: tricube kernel) whose
half-width is given in decades of epoch, evaluated on a grid uniform in log10(epoch). Unlike
interpolating onto the grid and running a Savitzky–Golay filter, it uses every measured point
however irregular the MI schedule (dense late epochs are averaged, not subsampled), and unlike
a plain kernel average it has no first-order bias at the ends of the run, where start values
are read (at the price of more variance there than inside the run).
A half-width of 0.25 decade (kernel sd about 0.1 decade) smooths epoch-to-epoch estimator noise
while keeping phase boundaries, which span about a decade on the synthetic task, to within a
few hundredths of a decade. As in LOWESS, the kernel widens where points are sparse (the first
epochs, on a log axis) so that it always spans at least `min_neighbours` points: otherwise
single noisy early points would pass through unsmoothed and could pose as a peak. The kernel's
compact support keeps the many dense late points out of those widened early windows.
"""

from __future__ import annotations

import numpy as np


class SmoothingError(ValueError):
    """Raised when a series cannot be smoothed on a log-epoch axis."""


class LogEpochSmoother:
    """Local-linear tricube-kernel smoother on log10(epoch), evaluated on a uniform log grid."""

    def __init__(
        self, bandwidth: float = 0.25, n_grid: int = 200, min_neighbours: int = 10
    ) -> None:
        if not bandwidth > 0:
            raise SmoothingError(f"bandwidth must be > 0 decades, got {bandwidth}")
        if n_grid < 3:
            raise SmoothingError(f"n_grid must be >= 3, got {n_grid}")
        if min_neighbours < 1:
            raise SmoothingError(f"min_neighbours must be >= 1, got {min_neighbours}")
        self.bandwidth = bandwidth
        self.n_grid = n_grid
        self.min_neighbours = min_neighbours

    def grid(self, epoch: np.ndarray) -> np.ndarray:
        """Return the uniform grid of log10(epoch) spanning the given epochs."""
        epoch = np.asarray(epoch, dtype=float)
        epoch = epoch[np.isfinite(epoch)]
        if epoch.size == 0 or epoch.min() <= 0:
            raise SmoothingError("epochs must be finite and >= 1 for a log-epoch axis")
        return np.linspace(np.log10(epoch.min()), np.log10(epoch.max()), self.n_grid)

    def smooth(self, epoch: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """Smooth `values` measured at `epoch` and evaluate at log10 epochs `grid`.

        NaN values are ignored; grid points outside the span of the finite values are NaN.
        """
        epoch = np.asarray(epoch, dtype=float)
        values = np.asarray(values, dtype=float)
        if epoch.shape != values.shape:
            raise SmoothingError(f"epoch {epoch.shape} and values {values.shape} differ in shape")
        keep = np.isfinite(epoch) & np.isfinite(values) & (epoch > 0)
        if keep.sum() < 2:
            return np.full(len(grid), np.nan)
        return self._fit(np.log10(epoch[keep]), values[keep][None, :], np.asarray(grid))[0]

    def smooth_many(self, epoch: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """`smooth` of every row of `values` (series x epochs), all measured at `epoch`.

        Rows without missing values share one kernel matrix, so they are smoothed together
        in two matrix products; rows with NaN are smoothed one by one.
        """
        epoch = np.asarray(epoch, dtype=float)
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[1:] != epoch.shape:
            raise SmoothingError(f"values {values.shape} must be (series, {epoch.size})")
        grid = np.asarray(grid)
        out = np.full((len(values), len(grid)), np.nan)
        whole = np.isfinite(values).all(axis=1)
        usable = np.isfinite(epoch) & (epoch > 0)
        if whole.any() and usable.sum() >= 2:
            out[whole] = self._fit(np.log10(epoch[usable]), values[whole][:, usable], grid)
        for i in np.flatnonzero(~whole):
            out[i] = self.smooth(epoch, values[i], grid)
        return out

    def _fit(self, u: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """Local-linear fits of the rows of `y` (all finite, measured at log epochs `u`)."""
        out = np.full((len(y), len(grid)), np.nan)
        inside = (grid >= u.min() - 1e-12) & (grid <= u.max() + 1e-12)
        g = grid[inside]
        d = u[None, :] - g[:, None]
        dist = np.abs(d)
        # Widen to just past the min_neighbours-th nearest point where points are sparse.
        k = min(self.min_neighbours, len(u)) - 1
        width = np.maximum(self.bandwidth, 1.001 * np.partition(dist, k, axis=1)[:, k])
        w = np.clip(1.0 - (dist / width[:, None]) ** 3, 0.0, None) ** 3
        wd = w * d
        s0 = w.sum(axis=1)
        s1 = wd.sum(axis=1)
        s2 = (wd * d).sum(axis=1)
        t0 = y @ w.T
        t1 = y @ wd.T
        det = s0 * s2 - s1 * s1
        # With a single point in the window the local line is undetermined: kernel mean.
        ok = det > 1e-9 * np.maximum(s0 * s2, 1e-300)
        local_linear = (s2 * t0 - s1 * t1) / np.where(ok, det, 1.0)
        out[:, inside] = np.where(ok, local_linear, t0 / s0)
        return out
