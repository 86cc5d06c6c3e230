"""Phase statistics and boundary detectors on synthetic trajectories with planted boundaries.

Curves live on u = log10(epoch) in [0, 4] (epochs 1..10^4 on a log-spaced MI schedule, sparse
early on as in real runs). Tolerances, in decades of epoch, with noise of 0.1 bit on I(X;T):
- separate phases (rise, rounded peak, fall): the boundary detectors (smoothed peak,
  two-segment fit, change point) each within 0.15 decade of the planted boundary (the analytic
  argmax for the peak; the knot of the lines for the line fits), and the compression onset within
  0.15 decade of the analytic epoch where the fall reaches `onset_fraction` of itself;
- simultaneous phases (plateau, then a fall from the knot): line fits and onset each within
  0.3 decade and with median error under 0.1 decade. Looser because no peak pins the
  boundary: a rounded corner with a long flat arm draws the line fits early (by about 0.05
  decade without noise), and noise on the plateau moves the onset;
- t50: 0.1 decade; t95: 0.3 decade, with noise of 0.01 bit on I(T;Y). t95 is ill-conditioned:
  the rise is flat near 95% and the smoothed maximum is biased up by noise, so at 0.02 bit
  its error has a median of 0.07 but a tail up to 0.9 decade;
- gradient-SNR transition: 0.15 decade of the planted midpoint of the fall of log10 SNR.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ibsweep.analysis.phases import (
    PHASE_STATS,
    PhaseConfig,
    SeriesTableError,
    _optimal_partition,
    _two_segment_break,
    layer_phases,
    run_phases,
)
from ibsweep.analysis.smoothing import LogEpochSmoother, SmoothingError

EPOCHS = np.unique(np.round(np.logspace(0, 4, 150))).astype(float)
U = np.log10(EPOCHS)
DENSE = np.linspace(0.0, 4.0, 40001)
CONFIG = PhaseConfig()


def soft_hinge(u, start, knot, slope_before, slope_after, knot2=None, corner=0.1):
    """Lines meeting at `knot` (then flat after `knot2`), corners rounded over `corner`."""
    y = start + slope_before * (u - knot)
    y = y + (slope_after - slope_before) * corner * np.logaddexp(0.0, (u - knot) / corner)
    if knot2 is not None:
        y = y - slope_after * corner * np.logaddexp(0.0, (u - knot2) / corner)
    return y


def rise(u, i0, height, mid, width):
    """Sigmoid rise of I(T;Y) in log-epoch."""
    return i0 + height / (1.0 + np.exp(-(u - mid) / width))


def sigmoid_t_q(q, i0, height, mid, width):
    """Analytic t_q (log10 epoch) of `rise` on [0, 4] by the science.md definition."""
    lo, hi = rise(0.0, i0, height, mid, width), rise(4.0, i0, height, mid, width)
    frac = (lo + q * (hi - lo) - i0) / height
    return mid + width * np.log(frac / (1.0 - frac))


def onset_truth(curve, fraction):
    """Log-epoch where the noiseless curve has fallen by `fraction` of its peak-to-end fall."""
    y = curve(DENSE)
    i = int(np.argmax(y))
    level = y[i] - fraction * (y[i] - y[-1])
    return DENSE[i + int(np.argmax(y[i:] <= level))]


def planted(rng, n):
    for _ in range(n):
        yield rng.uniform(1.5, 2.8), rng.uniform(0.8, 1.5), rng.uniform(1.0, 2.0)


def test_local_linear_smoother_is_exact_on_lines_in_log_epoch():
    epochs = np.array([1, 2, 3, 7, 20, 21, 22, 23, 100, 400, 401, 5000], dtype=float)
    values = 3.0 - 0.7 * np.log10(epochs)
    smoother = LogEpochSmoother(bandwidth=0.25, n_grid=50)
    grid = smoother.grid(epochs)
    np.testing.assert_allclose(grid[[0, -1]], np.log10([1, 5000]))
    np.testing.assert_allclose(smoother.smooth(epochs, values, grid), 3.0 - 0.7 * grid, atol=1e-9)


def test_smoother_ignores_nan_and_leaves_grid_outside_the_data_nan():
    epochs = np.arange(1, 101, dtype=float)
    values = np.full(100, 2.5)
    values[3::7] = np.nan
    values[60:] = np.nan
    smoother = LogEpochSmoother()
    grid = smoother.grid(epochs)
    out = smoother.smooth(epochs, values, grid)
    inside = grid <= np.log10(60)
    np.testing.assert_allclose(out[inside], 2.5)
    assert np.isnan(out[~inside]).all()


def test_smoother_rejects_bad_input():
    with pytest.raises(SmoothingError):
        LogEpochSmoother(bandwidth=0.0)
    with pytest.raises(SmoothingError):
        LogEpochSmoother().grid(np.array([0.0, 1.0, 2.0]))


def chord_cost(y, start, end):
    """Squared error of y[start:end] about the chord from y[start - 1] (y[0] at 0) to y[end - 1]."""
    anchor = max(start, 1) - 1
    k = np.arange(anchor, end)
    line = y[anchor] + (y[end - 1] - y[anchor]) * (k - anchor) / (end - 1 - anchor)
    return float(((y[anchor:end] - line) ** 2).sum())


def segmentations(n, min_size, start=0):
    """Every list of segment ends that cuts range(start, n) into pieces of >= min_size."""
    if n - start < min_size:
        return
    yield [n]
    for end in range(start + min_size, n - min_size + 1):
        for rest in segmentations(n, min_size, end):
            yield [end, *rest]


def test_optimal_partition_equals_exhaustive_search():
    rng = np.random.default_rng(0)
    lengths = np.array([14, 11, 9, 13])
    sizes = np.array([3, 3, 4, 3])
    penalties = np.array([0.05, 0.3, 0.01, 1.0])
    y = rng.normal(size=(4, 14)).cumsum(axis=1)  # padded: row r is read up to lengths[r]
    found = _optimal_partition(y, lengths, sizes, penalties)
    for row, n in enumerate(lengths):
        best = min(
            segmentations(int(n), int(sizes[row])),
            key=lambda ends, row=row: sum(
                chord_cost(y[row], s, e) + penalties[row]
                for s, e in zip([0, *ends[:-1]], ends, strict=True)
            ),
        )
        assert found[row] == best


def test_two_segment_fit_equals_least_squares_per_knot():
    rng = np.random.default_rng(1)
    u = np.linspace(0.0, 3.0, 60)
    y = np.stack([np.minimum(u - 1.2, 0.4 * (1.2 - u)), np.abs(u - 2.0), -np.abs(u - 1.7)])
    y = y + rng.normal(0, 0.05, y.shape)
    ends = np.array([60, 45, 52])
    found = _two_segment_break(u, y, ends, 5)
    for row, n in enumerate(ends):
        best, knot = np.inf, np.nan
        for c in range(5, n - 5):
            d = u[:n] - u[c]
            basis = np.stack([np.ones(n), np.minimum(d, 0), np.maximum(d, 0)], axis=1)
            coef, *_ = np.linalg.lstsq(basis, y[row, :n], rcond=None)
            sse = ((basis @ coef - y[row, :n]) ** 2).sum()
            if coef[2] < coef[1] and sse < best:
                best, knot = sse, u[c]
        assert found[row] == pytest.approx(knot, nan_ok=True)
    assert np.isnan(found[1])  # a V: the slope rises at every knot


def test_detectors_recover_planted_peak_between_expansion_and_compression():
    rng = np.random.default_rng(1)
    for knot, up, down in planted(rng, 12):

        def curve(u, knot=knot, up=up, down=down):
            return soft_hinge(u, 8.0, knot, up, -down)

        ity = rise(U, 0.1, 0.8, knot - 0.5, 0.25) + rng.normal(0, 0.03, U.size)
        stats = layer_phases(EPOCHS, curve(U) + rng.normal(0, 0.1, U.size), ity)
        peak = DENSE[np.argmax(curve(DENSE))]
        assert abs(np.log10(stats.boundary_peak) - peak) < 0.15
        assert abs(np.log10(stats.boundary_segments) - knot) < 0.15
        assert abs(np.log10(stats.boundary_changepoint) - knot) < 0.15
        onset = onset_truth(curve, CONFIG.onset_fraction)
        assert abs(np.log10(stats.compression_onset) - onset) < 0.15
        assert stats.compression == pytest.approx(curve(peak) - curve(4.0), abs=0.25)
        assert stats.expansion > 0.5


def test_detectors_recover_planted_onset_of_compression_without_expansion():
    rng = np.random.default_rng(2)
    errors = []
    no_peak = 0
    for knot, _, down in planted(rng, 12):
        end = knot + rng.uniform(0.8, 1.2)

        def curve(u, knot=knot, down=down, end=end):
            return soft_hinge(u, 3.0, knot, 0.0, -down, knot2=end)

        ity = rise(U, 0.1, 0.8, knot, 0.25) + rng.normal(0, 0.03, U.size)
        stats = layer_phases(EPOCHS, curve(U) + rng.normal(0, 0.1, U.size), ity)
        onset = onset_truth(curve, CONFIG.onset_fraction)
        errors.append(
            [
                np.log10(stats.boundary_segments) - knot,
                np.log10(stats.boundary_changepoint) - knot,
                np.log10(stats.compression_onset) - onset,
            ]
        )
        assert stats.expansion < CONFIG.min_expansion_bits
        no_peak += np.isnan(stats.boundary_peak)
    errors = np.abs(np.array(errors))
    assert (errors < 0.3).all()
    # A plateau has no peak to mark; the noisy start value (local-linear at the edge of the
    # log axis, sd about 0.085 bit here) now and then leaves one standing out.
    assert no_peak >= 10
    assert (np.median(errors, axis=0) < 0.1).all()


def test_fitting_epochs_match_the_analytic_sigmoid():
    rng = np.random.default_rng(3)
    for _ in range(12):
        mid, width = rng.uniform(1.0, 2.5), rng.uniform(0.15, 0.35)
        ity = rise(U, 0.1, 0.8, mid, width) + rng.normal(0, 0.01, U.size)
        ixt = 5.0 + rng.normal(0, 0.1, U.size)
        stats = layer_phases(EPOCHS, ixt, ity)
        assert abs(np.log10(stats.t50) - sigmoid_t_q(0.5, 0.1, 0.8, mid, width)) < 0.1
        assert abs(np.log10(stats.t95) - sigmoid_t_q(0.95, 0.1, 0.8, mid, width)) < 0.3
        assert stats.i_ty_rise == pytest.approx(0.8, abs=0.1)


def test_snr_transition_is_the_midpoint_of_the_fall_of_log_snr():
    rng = np.random.default_rng(4)
    for _ in range(12):
        mid = rng.uniform(1.5, 3.0)

        def log_snr(u, mid=mid):
            return 0.25 - 0.75 * np.tanh((u - mid) / 0.2)

        snr = 10 ** (log_snr(U) + rng.normal(0, 0.15, U.size))
        ity = rise(U, 0.1, 0.8, 1.5, 0.25)
        stats = layer_phases(EPOCHS, np.full(U.size, 5.0), ity, snr)
        half = 0.5 * (log_snr(0.0) + log_snr(4.0))
        truth = mid + 0.2 * np.arctanh((0.25 - half) / 0.75)
        assert abs(np.log10(stats.snr_transition) - truth) < 0.15


def test_snr_without_a_fall_or_missing_gives_no_transition():
    ity = rise(U, 0.1, 0.8, 1.5, 0.25)
    flat = layer_phases(EPOCHS, np.full(U.size, 5.0), ity, np.full(U.size, 3.0))
    missing = layer_phases(EPOCHS, np.full(U.size, 5.0), ity, np.full(U.size, np.nan))
    assert np.isnan(flat.snr_transition)
    assert np.isnan(missing.snr_transition)


def test_no_compression_leaves_every_boundary_undefined():
    rng = np.random.default_rng(5)
    ixt = soft_hinge(U, 6.0, 2.0, 0.8, 0.0) + rng.normal(0, 0.1, U.size)
    stats = layer_phases(EPOCHS, ixt, rise(U, 0.1, 0.8, 1.5, 0.25))
    assert stats.compression < CONFIG.min_compression_bits
    for name in ("boundary_peak", "boundary_segments", "boundary_changepoint"):
        assert np.isnan(getattr(stats, name))
    assert np.isnan(stats.compression_onset)


def test_flat_label_information_leaves_fitting_undefined():
    ixt = soft_hinge(U, 6.0, 2.0, 0.0, -1.0)
    stats = layer_phases(EPOCHS, ixt, np.full(U.size, 0.3))
    assert np.isnan(stats.t50) and np.isnan(stats.t95) and np.isnan(stats.expansion)
    assert stats.compression > 1.0


def test_epoch_zero_gives_the_start_values():
    """The untrained network's measured values are the start: the base of expansion, of t_q and
    of the peak (a BNN's I(X;T) can jump by a bit between epoch 0 and 1)."""
    rng = np.random.default_rng(11)
    ity_later = rise(U, 0.3, 0.6, 1.8, 0.2) + rng.normal(0, 0.005, U.size)
    flat = 5.0 + rng.normal(0, 0.02, U.size)
    epochs = np.r_[0.0, EPOCHS]
    jump = layer_phases(epochs, np.r_[4.0, flat], np.r_[0.0, ity_later])
    assert jump.i_xt_start == 4.0 and jump.i_ty_start == 0.0  # measured, not smoothed
    assert jump.expansion == pytest.approx(1.0, abs=0.05)  # from epoch 0, not from epoch 1
    assert jump.i_ty_rise == pytest.approx(0.9, abs=0.02)  # max minus epoch 0's 0.0
    # t50: where I(T;Y) reaches 0 + 0.5 x 0.9 = 0.45, i.e. a quarter of the later sigmoid rise
    assert np.log10(jump.t50) == pytest.approx(1.8 + 0.2 * np.log(0.25 / 0.75), abs=0.05)
    without = layer_phases(EPOCHS, flat, ity_later)
    assert abs(without.expansion) < 0.1 and without.i_ty_start > 0.25
    fall = layer_phases(epochs, np.r_[8.0, flat], np.r_[0.0, ity_later])
    assert fall.peak_epoch == 0.0 and fall.i_xt_peak == 8.0
    assert fall.compression == pytest.approx(3.0, abs=0.05)
    assert fall.compression_before_t95 == pytest.approx(3.0, abs=0.05)
    assert np.isnan(fall.boundary_peak)  # a start value is no peak standing out of the start
    df = pd.DataFrame(
        {"epoch": epochs, "i_xt": np.r_[4.0, flat], "i_ty": np.r_[0.0, ity_later]}
    ).assign(run_id="r", layer=1, seed=0, n_layers=1, ceiling=12.0, grad_snr=np.nan, cfg="x")
    row = run_phases(df, ["cfg"]).iloc[0]
    for name in PHASE_STATS:
        assert row[name] == pytest.approx(getattr(jump, name), rel=1e-9, nan_ok=True), name


def series_table(rng, runs):
    rows = []
    for run_id, activation, seed in runs:
        for layer in (1, 2):
            epochs = np.unique(np.round(np.logspace(0, 3, 40)))
            u = np.log10(epochs)
            ixt = soft_hinge(u, 6.0 - layer, 1.5, 1.0, -1.5) + rng.normal(0, 0.05, u.size)
            for e, x, y in zip(epochs, ixt, rise(u, 0.1, 0.8, 1.0, 0.2), strict=True):
                rows.append(
                    {
                        "run_id": run_id,
                        "model.activation": activation,
                        "data.name": "tishby",
                        "seed": seed,
                        "layer": layer,
                        "n_layers": 2,
                        "epoch": int(e),
                        "i_xt": x,
                        "i_ty": y,
                        "grad_snr": np.nan,
                        "ceiling": 12.0,
                    }
                )
    return pd.DataFrame(rows)


def test_run_phases_gives_one_row_per_run_and_layer_independent_of_row_order():
    rng = np.random.default_rng(7)
    df = series_table(rng, [("a", "tanh", 0), ("b", "tanh", 1), ("c", np.nan, 0)])
    cols = ["model.activation", "data.name"]
    out = run_phases(df, cols)
    assert len(out) == 6
    assert list(out.columns[:7]) == ["run_id", *cols, "seed", "n_layers", "estimator", "layer"]
    assert (out["estimator"] == "default").all()  # a table without the column: one estimator
    assert set(PHASE_STATS) <= set(out.columns)
    assert out.loc[out["run_id"] == "c", "model.activation"].isna().all()
    assert out["snr_transition"].isna().all()
    shuffled = run_phases(df.sample(frac=1.0, random_state=0), cols)
    pd.testing.assert_frame_equal(out, shuffled)


def test_run_phases_rejects_missing_columns_and_negative_epochs():
    df = series_table(np.random.default_rng(8), [("a", "tanh", 0)])
    with pytest.raises(SeriesTableError, match="i_ty"):
        run_phases(df.drop(columns="i_ty"), ["model.activation"])
    with pytest.raises(SeriesTableError, match=r"model\.kind"):
        run_phases(df, ["model.kind"])
    bad = df.copy()
    bad.loc[0, "epoch"] = -1
    with pytest.raises(SeriesTableError, match="epochs must be >= 0"):
        run_phases(bad, ["model.activation"])


def test_run_phases_warns_and_leaves_nan_for_a_run_too_short_to_read():
    df = series_table(np.random.default_rng(9), [("a", "tanh", 0), ("b", "tanh", 1)])
    short = df[(df["run_id"] == "a") | (df["epoch"] <= 2)]
    with pytest.warns(
        UserWarning, match="run b estimator default layer [12]: a trajectory needs at least 3"
    ):
        out = run_phases(short, ["model.activation"])
    b = out[out["run_id"] == "b"]
    assert len(b) == 2
    assert b[list(PHASE_STATS)].isna().all().all()
    assert out.loc[out["run_id"] == "a", "compression"].notna().all()


def test_run_phases_computes_each_trajectory_as_layer_phases_does():
    rng = np.random.default_rng(10)
    frames = []
    for i, epochs in enumerate([EPOCHS, EPOCHS, EPOCHS[::2], EPOCHS]):
        ixt = soft_hinge(U, 6.0, rng.uniform(1.5, 2.8), 1.0, -1.2) + rng.normal(0, 0.1, U.size)
        snr = 10 ** (0.25 - 0.75 * np.tanh((U - 2.0) / 0.2) + rng.normal(0, 0.1, U.size))
        frame = pd.DataFrame(
            {"epoch": EPOCHS, "i_xt": ixt, "i_ty": rise(U, 0.1, 0.8, 1.5, 0.25), "grad_snr": snr}
        )
        frame = frame[frame["epoch"].isin(epochs)].assign(run_id=f"r{i}", layer=1)
        frames.append(frame)
    frames[1].loc[frames[1].index[40:45], "i_xt"] = np.nan  # a gap: computed on its own
    frames[3].loc[frames[3].index[::3], "grad_snr"] = np.nan  # SNR with gaps
    df = pd.concat(frames).assign(seed=0, n_layers=1, ceiling=12.0, cfg="x")
    out = run_phases(df, ["cfg"]).set_index("run_id")
    for frame in frames:
        one = layer_phases(
            frame["epoch"].to_numpy(float), frame["i_xt"], frame["i_ty"], frame["grad_snr"]
        )
        row = out.loc[frame["run_id"].iloc[0]]
        for name in PHASE_STATS:
            assert row[name] == pytest.approx(getattr(one, name), rel=1e-9, nan_ok=True), name


def test_run_phases_keeps_estimators_apart():
    """A panel measures each layer with several estimators: one trajectory per estimator,
    never pooled, each computed as layer_phases computes it alone."""
    rng = np.random.default_rng(12)
    epochs = np.r_[0.0, EPOCHS]
    u = np.log10(np.maximum(epochs, 1))
    curves = {
        "bin30": soft_hinge(u, 6.0, 2.0, 1.0, -1.2),  # rises, then falls
        "sign": soft_hinge(u, 4.0, 2.0, 0.0, -1.0),  # flat, then falls
    }
    frames = [
        pd.DataFrame(
            {"epoch": epochs, "i_xt": ixt + rng.normal(0, 0.05, u.size),
             "i_ty": rise(u, 0.1, 0.8, 1.5, 0.25), "grad_snr": np.nan, "estimator": name,
             "n_states": 100.0, "i_ty_perm": 0.01, "layer_ceiling": 10.0}
        )
        for name, ixt in curves.items()
    ]  # fmt: skip
    df = pd.concat(frames).assign(run_id="r", layer=1, seed=0, n_layers=2, ceiling=12.0, cfg="x")
    out = run_phases(df, ["cfg"]).set_index("estimator")
    assert sorted(out.index) == ["bin30", "sign"]
    for frame in frames:
        one = layer_phases(frame["epoch"], frame["i_xt"], frame["i_ty"])
        row = out.loc[frame["estimator"].iloc[0]]
        for name in PHASE_STATS:
            assert row[name] == pytest.approx(getattr(one, name), rel=1e-9, nan_ok=True), name
    assert out.loc["bin30", "expansion"] > 0.5 > out.loc["sign", "expansion"]
    assert (out["layer_ceiling"] == 10.0).all() and (out["unreliable_reason"] == "").all()
