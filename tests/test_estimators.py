"""Estimators against ground truth: analytic distributions, scikit-learn, known limits, bounds."""

from __future__ import annotations

import itertools
import math
import tracemalloc

import numpy as np
import pytest
import torch
from scipy.integrate import trapezoid
from scipy.special import logsumexp
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import mutual_info_score

from ibsweep.analysis.estimators import (
    EstimatorInputError,
    EstimatorParameterError,
    NotFittedError,
    default_estimator,
    entropies_of_keys,
    make_estimator,
    pack_rows,
)

LN2 = math.log(2)


def h2(*p: float) -> float:
    """Entropy in bits of the probabilities p."""
    q = np.asarray(p, dtype=float)
    q = q[q > 0]
    return float(-(q * np.log2(q)).sum())


def mi_of_joint(p: np.ndarray) -> float:
    """I(T;Y) in bits of a joint probability table p[t, y]."""
    pt, py = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log2(p[nz] / (pt @ py)[nz])).sum())


def samples_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """State and label arrays whose empirical joint distribution is exactly counts / n."""
    t_idx, y_idx = np.nonzero(counts)
    reps = counts[t_idx, y_idx]
    return np.repeat(t_idx, reps), np.repeat(y_idx, reps)


def as_patterns(states: np.ndarray, width: int) -> np.ndarray:
    """Each integer state written as `width` units of +-1 (its binary digits)."""
    bits = (states[:, None] >> np.arange(width)) & 1
    return np.where(bits == 1, 1.0, -1.0)


def bin_centres(states: np.ndarray, width: int, n_bins: int, lo: float, hi: float) -> np.ndarray:
    """Each state written in base n_bins over `width` units, as the centres of its bins."""
    digits = (states[:, None] // n_bins ** np.arange(width)) % n_bins
    return lo + (digits + 0.5) * (hi - lo) / n_bins


# Joint count tables of (T, Y) with their analytic I(T;Y) in bits.
JOINTS = {
    "identity": (np.array([[5, 0], [0, 5]]), 1.0),
    "binary_symmetric_1/4": (np.array([[3, 1], [1, 3]]), 1 - h2(0.25, 0.75)),
    "z_channel_uneven": (np.array([[2, 0], [1, 1]]), 1 + h2(0.25, 0.75) - 1.5),
    "independent_uneven": (np.outer([1, 2, 5], [3, 1]), 0.0),
    "three_by_four": (np.array([[7, 1, 0, 2], [0, 3, 3, 1], [1, 0, 6, 9]]), None),
}


@pytest.mark.parametrize("case", JOINTS)
@pytest.mark.parametrize("encoding", ["exact", "binning"])
def test_discrete_joints_give_their_analytic_mutual_information(case: str, encoding: str) -> None:
    counts, mi = JOINTS[case]
    counts = counts * 16  # repeat each table so that it is not a tiny sample
    p = counts / counts.sum()
    mi = mi_of_joint(p) if mi is None else mi
    states, y = samples_from_counts(counts)
    if encoding == "exact":
        t = as_patterns(states, width=2)
        est = make_estimator("exact")
    else:
        t = bin_centres(states, width=2, n_bins=3, lo=-1.0, hi=1.0)
        est = make_estimator("binning", n_bins=3, range="fixed", lo=-1.0, hi=1.0)
    res = est.estimate(t, y)
    assert res.i_ty == pytest.approx(mi, abs=1e-12)
    assert res.i_xt == pytest.approx(h2(*p.sum(axis=1)), abs=1e-12)
    assert res.h_y == pytest.approx(h2(*p.sum(axis=0)), abs=1e-12)
    assert res.n_states == np.count_nonzero(counts.sum(axis=1))


def test_exact_matches_scikit_learn_on_random_discrete_data() -> None:
    rng = np.random.default_rng(1)
    t = rng.integers(-1, 2, size=(3000, 4)).astype(np.float32)  # ternary units
    y = (t[:, 0] + rng.integers(0, 3, size=3000) > 0).astype(np.int64) + 2 * (t[:, 3] > 0)
    _, row_id, row_counts = np.unique(t, axis=0, return_inverse=True, return_counts=True)
    res = make_estimator("exact").estimate(t, y)
    assert res.i_ty == pytest.approx(mutual_info_score(y, row_id.ravel()) / LN2, abs=1e-10)
    assert res.i_xt == pytest.approx(scipy_entropy(row_counts, base=2), abs=1e-10)
    assert res.n_states == len(row_counts)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binning_matches_digitize_and_scikit_learn(dtype: type) -> None:
    rng = np.random.default_rng(2)
    t = np.tanh(rng.normal(scale=1.5, size=(4096, 3))).astype(dtype)
    y = rng.integers(0, 3, size=4096) + (t[:, 0] > 0)
    edges = -1.0 + 2.0 * np.arange(1, 10) / 10  # interior edges of 10 even bins on [-1, 1]
    _, row_id, row_counts = np.unique(
        np.digitize(t, edges), axis=0, return_inverse=True, return_counts=True
    )
    res = make_estimator("binning", n_bins=10, range="fixed", lo=-1.0, hi=1.0).estimate(t, y)
    assert res.i_ty == pytest.approx(mutual_info_score(y, row_id.ravel()) / LN2, abs=1e-10)
    assert res.i_xt == pytest.approx(scipy_entropy(row_counts, base=2), abs=1e-10)
    assert res.clipped_fraction == 0.0


def test_exactly_independent_t_and_y_give_zero() -> None:
    states, y = samples_from_counts(np.outer([1, 2, 3, 6], [5, 1, 2]) * 8)
    for est in (make_estimator("exact"), make_estimator("adaptive", n_bins=4)):
        assert est.estimate(as_patterns(states, 2), y).i_ty == pytest.approx(0.0, abs=1e-12)


def test_random_independent_t_and_y_stay_within_plug_in_bias() -> None:
    rng = np.random.default_rng(3)
    n, n_t, n_y = 4096, 8, 2
    t = as_patterns(rng.integers(0, n_t, size=n), width=3)
    y = rng.integers(0, n_y, size=n)
    bias = (n_t - 1) * (n_y - 1) / (2 * n * LN2)  # expected plug-in MI under independence
    res = make_estimator("exact").estimate(t, y)
    assert 0.0 <= res.i_ty <= 4 * bias


@pytest.mark.parametrize("name", ["exact", "binning", "adaptive"])
def test_t_a_copy_of_y_gives_h_y(name: str) -> None:
    y = np.repeat([0, 1, 2], [100, 300, 600])
    t = np.eye(3)[y] * 0.7 - 0.35  # one-hot, inside [-1, 1] and away from bin edges
    res = make_estimator(name).estimate(t, y)
    assert res.i_ty == pytest.approx(h2(0.1, 0.3, 0.6), abs=1e-12)
    assert res.i_xt == pytest.approx(h2(0.1, 0.3, 0.6), abs=1e-12)
    assert res.n_states == 3


def test_labels_with_any_integer_values_are_recoded() -> None:
    counts = np.array([[4, 1, 0], [0, 2, 5]])
    states, y = samples_from_counts(counts * 4)
    t = as_patterns(states, 1)
    mi = mi_of_joint(counts / counts.sum())
    est = make_estimator("exact")
    for labels in (y, 1000 * y - 7, (y - 1).astype(np.int8) * 100, torch.from_numpy(y)):
        assert est.estimate(t, labels).i_ty == pytest.approx(mi, abs=1e-12)
    assert est.estimate(t, y == 1).h_y == pytest.approx(h2(0.25, 0.75), abs=1e-12)


# exact


def test_exact_counts_zero_signs_and_int_and_wide_layers() -> None:
    est = make_estimator("exact")
    y = np.array([0, 1, 0, 1])
    signed = np.array([[0.0, 1.0], [-0.0, 1.0], [0.5, 0.25], [0.5, 0.25]])
    assert est.estimate(signed, y).n_states == 2  # -0.0 and 0.0 are one value
    assert est.estimate(np.array([[3], [-100], [3], [120]], dtype=np.int8), y).n_states == 3
    rng = np.random.default_rng(4)
    for values in ([-1.0, 1.0], [-1.0, 0.0, 1.0], [0.0, 0.3, 0.7]):  # 2, 3, non-integer levels
        patterns = rng.choice(values, size=(64, 100))  # 100 units: too wide for one int64 key
        t = np.repeat(patterns, 8, axis=0)
        res = est.estimate(t, np.repeat(np.arange(64) % 2, 8))
        assert res.i_xt == pytest.approx(6.0, abs=1e-12)
        assert res.i_ty == pytest.approx(1.0, abs=1e-12)


def test_exact_accepts_unsigned_and_bfloat16_layers() -> None:
    y = np.array([0, 1, 0, 1])
    top = 2**64 - 1
    for column in ([top, top - 2, top, 5], [top, top - 2, top, top - 1]):  # wide, narrow range
        t = np.array(column, dtype=np.uint64)[:, None]
        assert make_estimator("exact").estimate(t, y).n_states == 3
    signs = torch.tensor([[1, -1], [-1, 1], [1, -1], [1, 1]], dtype=torch.bfloat16)
    res = make_estimator("exact").estimate(signs, torch.tensor(y))
    assert res.n_states == 3 and res.i_xt == pytest.approx(h2(0.5, 0.25, 0.25))


def test_exact_obeys_data_processing_along_a_random_bnn() -> None:
    x = np.where((np.arange(4096)[:, None] >> np.arange(11, -1, -1)) & 1, 1.0, -1.0)
    y = (x.sum(axis=1) > 0).astype(int) ^ (x[:, 0] > 0)
    est = make_estimator("exact")
    for seed in range(5):
        rng = np.random.default_rng(seed)
        h, widths = x, [10, 7, 5, 4, 3, 2]
        results = []
        for fan_in, width in zip([12, *widths], widths, strict=False):
            w = np.where(rng.random((fan_in, width)) < 0.5, -1.0, 1.0)
            h = np.where(h @ w + rng.normal(scale=0.1, size=width) >= 0, 1.0, -1.0)
            results.append(est.estimate(h, y))
        for prev, nxt in itertools.pairwise(results):
            assert nxt.i_xt <= prev.i_xt + 1e-12
            assert nxt.i_ty <= prev.i_ty + 1e-12
        for width, res in zip(widths, results, strict=True):
            assert res.i_xt <= width + 1e-12


# binning


def test_fixed_range_clips_into_edge_bins_and_reports_it() -> None:
    t = np.array([[-0.9], [0.9], [5.0], [-3.0], [0.95], [0.0]])
    y = np.array([0, 1, 1, 0, 0, 1])
    res = make_estimator("binning", n_bins=4, range="fixed", lo=-1.0, hi=1.0).estimate(t, y)
    assert res.clipped_fraction == pytest.approx(2 / 6)
    assert res.n_states == 3  # {-0.9, -3}, {0.9, 5, 0.95}, {0.0}
    assert res.i_xt == pytest.approx(h2(2 / 6, 3 / 6, 1 / 6))


def test_fixed_range_collapses_relu_values_but_layer_range_does_not() -> None:
    t = np.arange(1, 41, dtype=float)[:, None] / 4  # 0.25 .. 10, mostly above 1
    y = np.arange(40) % 2
    fixed = make_estimator("binning", n_bins=4, range="fixed", lo=-1.0, hi=1.0).estimate(t, y)
    layer = make_estimator("binning", n_bins=4, range="layer").estimate(t, y)
    assert fixed.n_states == 2 and fixed.clipped_fraction == pytest.approx(36 / 40)
    assert layer.n_states == 4 and layer.clipped_fraction == 0.0
    assert layer.params["lo"] == 0.25 and layer.params["hi"] == 10.0


def test_layer_range_on_integer_levels_and_scaling() -> None:
    t = np.tile(np.array([0.0, 1.0, 2.0, 3.0]), 25)[:, None]  # range [0, 3], width 1 with 3 bins
    y = np.arange(100) % 2
    est = make_estimator("binning", n_bins=3, range="layer")
    res = est.estimate(t, y)
    assert res.n_states == 3  # the top value 3 belongs to the last bin, with 2
    assert res.i_xt == pytest.approx(h2(0.25, 0.25, 0.5))
    scaled = est.estimate(4.0 * t - 8.0, y)  # exact in floating point: same bins
    assert scaled.i_xt == res.i_xt and scaled.n_states == res.n_states


def test_neuron_range_bins_each_unit_on_its_own_scale() -> None:
    a = np.tile([0.0, 1.0], 8)
    b = np.repeat([0.0, 1000.0], 8)
    t = np.column_stack([a, b])
    y = np.arange(16) % 2
    neuron = make_estimator("binning", n_bins=2, range="neuron").estimate(t, y)
    layer = make_estimator("binning", n_bins=2, range="layer").estimate(t, y)
    assert neuron.n_states == 4 and neuron.i_xt == pytest.approx(2.0)
    assert layer.n_states == 2  # unit a collapses into the bottom bin of [0, 1000]
    constant = make_estimator("binning", n_bins=5, range="neuron").estimate(np.ones((4, 2)), y[:4])
    assert constant.n_states == 1 and constant.i_xt == 0.0


def test_bin_width_sets_the_number_of_bins() -> None:
    t = np.array([-0.75, -0.25, 0.25, 0.75, 0.8])[:, None]
    y = np.array([0, 0, 1, 1, 1])
    res = make_estimator("binning", bin_width=0.5, range="fixed").estimate(t, y)
    assert res.n_states == 4 and res.params["n_bins"] == 4
    assert res.i_ty == pytest.approx(h2(0.4, 0.6))


def test_global_range_is_fitted_over_the_whole_run() -> None:
    epochs = [np.linspace(-1, 1, 8)[:, None], np.linspace(-4, 4, 8)[:, None]]
    y = np.arange(8) % 2
    est = make_estimator("binning", n_bins=8, range="global")
    with pytest.raises(NotFittedError, match="fit_range"):
        est.estimate(epochs[0], y)
    est.fit_range(e for e in epochs)  # any iterable, e.g. a generator over saved epochs
    assert est.global_range_ == (-4.0, 4.0)
    res = est.estimate(np.array([[-0.5], [0.5], [1.2], [0.7]]), y[:4])  # bins of width 1
    assert res.n_states == 3 and res.params["lo"] == -4.0 and res.params["hi"] == 4.0
    assert est.estimate(np.array([[9.0], [0.5]]), y[:2]).clipped_fraction == 0.5
    with pytest.raises(EstimatorParameterError, match="global"):
        make_estimator("binning").fit_range(epochs)
    with pytest.raises(EstimatorInputError, match="NaN"):
        est.fit_range([np.array([[np.nan]])])


# adaptive


def test_adaptive_bins_hold_equal_mass_and_keep_ties_together() -> None:
    rng = np.random.default_rng(5)
    t = rng.normal(size=(1000, 1))
    y = np.arange(1000) % 2
    assert make_estimator("adaptive", n_bins=4).estimate(t, y).i_xt == pytest.approx(2.0)
    assert make_estimator("adaptive", n_bins=10).estimate(t, y).n_states == 10
    saturated = np.where(np.arange(1000) < 700, 1.0, rng.uniform(-1, 0.5, size=1000))[:, None]
    res = make_estimator("adaptive", n_bins=10).estimate(saturated, y)
    assert res.n_states == 4  # the tied 70% share one bin; the other 30% fill three
    assert res.i_xt == pytest.approx(h2(0.7, 0.1, 0.1, 0.1), abs=1e-12)


def test_adaptive_is_unchanged_by_increasing_transforms() -> None:
    rng = np.random.default_rng(6)
    t = rng.normal(size=(2000, 3))
    y = rng.integers(0, 2, size=2000) | (t[:, 1] > 0.5)
    est = make_estimator("adaptive", n_bins=5)
    a, b = est.estimate(t, y), est.estimate(np.exp(t) * [1.0, 100.0, 1e-3], y)
    assert (a.i_xt, a.i_ty, a.n_states) == (b.i_xt, b.i_ty, b.n_states)


# kde


@pytest.mark.parametrize("bound", ["upper", "lower"])
def test_kde_well_separated_components_give_log_k(bound: str) -> None:
    rng = np.random.default_rng(7)
    centres = 10.0 * np.arange(4)[:, None] * np.ones(3)
    y = np.repeat(np.arange(4), 50)
    t = centres[y] + rng.normal(scale=1e-6, size=(200, 3))
    res = make_estimator("kde", noise_var=1e-2, bound=bound).estimate(t, y)
    assert res.i_xt == pytest.approx(2.0, abs=1e-6)
    assert res.i_ty == pytest.approx(2.0, abs=1e-6)
    assert res.n_states == 200


def test_kde_two_points_match_the_closed_form() -> None:
    dist2, s2 = 0.05, 0.01
    t, y = np.array([[0.0, 0.0], [0.3, 0.1 * math.sqrt(0.5)]]), np.array([0, 1])
    t[1] *= math.sqrt(dist2 / (t[1] ** 2).sum())
    for bound, w in (("upper", 2 * s2), ("lower", 8 * s2)):
        res = make_estimator("kde", noise_var=s2, bound=bound).estimate(t, y)
        expected = (LN2 - math.log1p(math.exp(-dist2 / w))) / LN2
        assert res.i_xt == pytest.approx(expected, rel=1e-12)
        assert res.i_ty == pytest.approx(expected, rel=1e-12)  # one point per class
        assert res.h_t_given_x == pytest.approx(math.log2(2 * math.pi * math.e * s2))


def test_kde_matches_the_saxe_et_al_formulas_with_their_constants() -> None:
    rng = np.random.default_rng(8)
    t, s2 = rng.normal(scale=0.1, size=(300, 5)), 0.01
    y = np.digitize(t[:, 0], [-0.05, 0.05])
    d = t.shape[1]

    def h_kl(x: np.ndarray, var: float) -> float:  # nats
        dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        lprobs = logsumexp(-dist / (2 * var), axis=1) - math.log(len(x))
        return d / 2 + -(lprobs - d / 2 * math.log(2 * math.pi * var)).mean()

    def h_bd(x: np.ndarray, var: float) -> float:
        return h_kl(x, 4 * var) + d / 2 * math.log(0.25)

    h_noise = d / 2 * (math.log(2 * math.pi * s2) + 1)
    for bound, h in (("upper", h_kl), ("lower", h_bd)):
        h_cond = sum((y == c).mean() * h(t[y == c], s2) for c in range(3))
        res = make_estimator("kde", noise_var=s2, bound=bound).estimate(t, y)
        assert res.i_xt == pytest.approx((h(t, s2) - h_noise) / LN2, rel=1e-9)
        assert res.i_ty == pytest.approx((h(t, s2) - h_cond) / LN2, rel=1e-9)
        assert res.h_t == pytest.approx(h(t, s2) / LN2, rel=1e-9)


def test_kde_bounds_bracket_the_true_mixture_information() -> None:
    points, s2 = np.array([0.0, 0.1, 0.15, 0.5, 1.2]), 0.02
    grid = np.linspace(-2, 3.5, 200_001)
    dens = np.exp(-((grid[:, None] - points) ** 2) / (2 * s2)).mean(1) / math.sqrt(2 * math.pi * s2)
    h_mix = -trapezoid(dens * np.log(dens), grid)
    i_true = (h_mix - 0.5 * math.log(2 * math.pi * math.e * s2)) / LN2
    t, y = points[:, None], np.zeros(5, dtype=int)
    lower = make_estimator("kde", noise_var=s2, bound="lower").estimate(t, y).i_xt
    upper = make_estimator("kde", noise_var=s2, bound="upper").estimate(t, y).i_xt
    assert lower <= i_true <= upper
    assert upper - lower < 1.0


def test_kde_lower_never_exceeds_upper_and_noise_limits() -> None:
    rng = np.random.default_rng(9)
    t = np.tanh(rng.normal(size=(500, 4)))
    y = rng.integers(0, 2, size=500) | (t[:, 0] > 0)
    for s2 in (1e-4, 1e-2, 1.0):
        up = make_estimator("kde", noise_var=s2).estimate(t, y)
        lo = make_estimator("kde", noise_var=s2, bound="lower").estimate(t, y)
        assert lo.i_xt <= up.i_xt + 1e-12
        assert lo.h_t <= up.h_t + 1e-12
    assert make_estimator("kde", noise_var=1e-9).estimate(t, y).i_xt == pytest.approx(
        math.log2(500), abs=1e-9
    )  # no overlap: every point its own component
    assert make_estimator("kde", noise_var=1e6).estimate(t, y).i_xt < 1e-5  # all overlap


def test_kde_merges_duplicate_rows_without_changing_the_estimate() -> None:
    rng = np.random.default_rng(10)
    base, y = rng.normal(size=(40, 3)), rng.integers(0, 2, size=40)
    est = make_estimator("kde", noise_var=0.5)
    once = est.estimate(base, y)
    twice = est.estimate(np.vstack([base, base]), np.concatenate([y, y]))
    assert twice.n_states == 40
    assert twice.i_xt == pytest.approx(once.i_xt, rel=1e-12)
    assert twice.i_ty == pytest.approx(once.i_ty, rel=1e-12)


def test_kde_memory_is_bounded_by_chunking() -> None:
    n, d = 12_000, 8  # an unchunked kernel matrix would take n * n * 8 B = 1.15 GB
    rng = np.random.default_rng(11)
    t, y = rng.normal(size=(n, d)), rng.integers(0, 2, size=n)
    tracemalloc.start()
    try:
        make_estimator("kde").estimate(t, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * n * d * 8 + (16 << 20)


# bounds of science.md on random networks


def random_network_layers(seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Layers of a random 12-10-7-5-4-3-2 tanh network with softmax output on all 12-bit inputs."""
    rng = np.random.default_rng(seed)
    x = ((np.arange(4096)[:, None] >> np.arange(11, -1, -1)) & 1).astype(float)
    y = (x.sum(axis=1) + x[:, 0] * 3 > 7).astype(int)
    layers, h = [], x
    for fan_in, width in zip([12, 10, 7, 5, 4, 3], [10, 7, 5, 4, 3, 2], strict=True):
        z = h @ rng.normal(scale=1 / math.sqrt(fan_in), size=(fan_in, width))
        h = np.tanh(z) if width > 2 else np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        layers.append(h)
    return layers, y


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "binning"},
        {"name": "binning", "n_bins": 100, "range": "layer"},
        {"name": "adaptive", "n_bins": 10},
        {"name": "kde"},
        {"name": "kde", "bound": "lower", "noise_var": 0.1},
    ],
)
def test_bounds_hold_on_random_networks(spec: dict) -> None:
    for seed in range(2):
        layers, y = random_network_layers(seed)
        est = make_estimator(**spec)
        for t in layers:
            res = est.estimate(t, y)
            assert 0.0 <= res.i_ty <= min(res.h_y, res.i_xt) + 1e-9
            assert 0.0 <= res.i_xt <= min(12.0, res.ceiling) + 1e-9
            assert res.ceiling == 12.0
            assert res.saturated == (res.i_xt >= 11.9)


def test_binary_layers_of_width_k_carry_at_most_k_bits() -> None:
    layers, y = random_network_layers(3)
    for t in layers[:-1]:
        res = make_estimator("exact").estimate(np.sign(t), y)
        assert res.i_xt <= t.shape[1] + 1e-12
        assert res.i_ty <= min(res.h_y, res.i_xt) + 1e-12


# counting helpers and defaults


def test_entropies_of_keys_many_rows_at_once() -> None:
    n = 64
    keys = np.stack([np.arange(n), np.zeros(n, int), np.arange(n) // 32, np.arange(n) % 4])
    y = np.arange(n) // 32
    out = entropies_of_keys(keys, y)
    np.testing.assert_allclose(out.h_t, [6.0, 0.0, 1.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(out.i_ty, [1.0, 0.0, 1.0, 0.0], atol=1e-12)
    assert out.n_states.tolist() == [64, 1, 2, 4]
    huge = (keys + 1) * (2**62 // 64)  # too large to join with labels by multiplication
    np.testing.assert_allclose(entropies_of_keys(huge, y).i_ty, out.i_ty, atol=1e-12)
    assert entropies_of_keys(keys[2]).i_ty is None


def test_pack_rows_gives_equal_keys_exactly_for_equal_rows() -> None:
    rng = np.random.default_rng(12)
    codes = rng.integers(0, 3, size=(500, 12))
    keys = pack_rows(codes, [3] * 12)
    assert len(np.unique(keys)) == len(np.unique(codes, axis=0))
    assert keys.max() < 3**12
    with pytest.raises(ValueError, match="int64"):
        pack_rows(codes, [30] * 13)


@pytest.mark.parametrize(
    ("layer_type", "expected"),
    [
        ("binary", "exact()"),
        ("binary_logits", "exact()"),
        ("tanh", "binning(n_bins=30,range=fixed,lo=-1,hi=1)"),
        ("hardtanh", "binning(n_bins=30,range=fixed,lo=-1,hi=1)"),
        ("sigmoid", "binning(n_bins=30,range=fixed,lo=0,hi=1)"),
        ("softmax", "binning(n_bins=30,range=fixed,lo=0,hi=1)"),
        ("relu", "binning(n_bins=30,range=layer)"),
        ("linear", "binning(n_bins=30,range=layer)"),
    ],
)
def test_default_estimator_per_layer_type(layer_type: str, expected: str) -> None:
    assert default_estimator(layer_type).describe() == expected


def test_unknown_layer_type_lists_the_allowed_ones() -> None:
    with pytest.raises(EstimatorParameterError, match="relu"):
        default_estimator("gelu")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("binning", {"n_bins": 0}, "n_bins"),
        ("binning", {"n_bins": 10, "bin_width": 0.1}, "not both"),
        ("binning", {"range": "fixed", "lo": 1.0, "hi": -1.0}, "lo < hi"),
        ("binning", {"range": "layer", "lo": 0.0}, "only used with range='fixed'"),
        ("binning", {"range": "epoch"}, "'fixed', 'layer', 'neuron' or 'global'"),
        ("binning", {"bin_width": -0.1}, "bin_width"),
        ("binning", {"n_bins": True}, "boolean"),
        ("binning", {"lo": float("nan")}, "lo"),
        ("adaptive", {"n_bins": 2.5}, "n_bins"),
        ("kde", {"noise_var": 0.0}, "noise_var"),
        ("kde", {"bound": "middle"}, "'upper' or 'lower'"),
        ("exact", {"n_bins": 30}, "unknown parameter 'n_bins'"),
        ("mine", {}, "available: exact, binning, adaptive, kde"),
    ],
)
def test_bad_parameters_fail_when_built(name: str, params: dict, message: str) -> None:
    with pytest.raises(EstimatorParameterError, match=message) as info:
        make_estimator(name, **params)
    assert "\n" not in str(info.value)
