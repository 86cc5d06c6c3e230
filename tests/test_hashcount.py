"""The compiled counting kernel gives the numbers of the numpy path and of each estimator."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ibsweep.analysis.estimators import (
    EstimatorInputError,
    default_estimator,
    estimate_stacked,
    hashcount,
    make_estimator,
)
from ibsweep.analysis.estimators import stacked as stacked_module

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not hashcount.available(), reason="numba is not installed")


def _both(monkeypatch, estimators, layers, y):
    """estimate_stacked with the kernel and with the numpy path (sort and run lengths)."""
    got = estimate_stacked(estimators, layers, y)
    monkeypatch.setattr(stacked_module, "_USE_KERNEL", False)
    ref = estimate_stacked(estimators, layers, y)
    monkeypatch.setattr(stacked_module, "_USE_KERNEL", True)
    return got, ref


def _assert_same(got, ref, estimators=None, layers=None, y=None):
    np.testing.assert_array_equal(got.n_states, ref.n_states)
    np.testing.assert_allclose(got.i_xt, ref.i_xt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.i_ty, ref.i_ty, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.saturated, ref.saturated)
    if estimators is None:
        return
    labels = np.broadcast_to(y, (got.i_xt.shape[0], layers[0].shape[1]))
    for li, (est, t) in enumerate(zip(estimators, layers, strict=True)):
        for s in range(t.shape[0]):
            one = est.estimate(t[s], labels[s])
            assert got.n_states[s, li] == one.n_states
            assert got.i_xt[s, li] == pytest.approx(one.i_xt, abs=1e-12)
            assert got.i_ty[s, li] == pytest.approx(one.i_ty, abs=1e-12)


def _units_first(t: np.ndarray) -> np.ndarray:
    """The same values as the trainer hands them out: a view of a (S, width, n) array."""
    return np.ascontiguousarray(t.transpose(0, 2, 1)).transpose(0, 2, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("units_first", [True, False], ids=["units-first", "rows"])
@pytest.mark.parametrize("n_classes", [1, 2, 3, 10])
def test_random_layers_equal_the_numpy_path(monkeypatch, dtype, units_first, n_classes):
    rng = np.random.default_rng(n_classes)
    n_seeds, n = 5, 700
    y = rng.integers(0, n_classes, size=(n_seeds, n))
    layers = []
    for width, scale in ((1, 1.0), (2, 0.3), (3, 2.0), (6, 1.5), (10, 1.0)):
        layers.append(np.tanh(rng.normal(scale=scale, size=(n_seeds, n, width))).astype(dtype))
    # few distinct rows (the key is the counter's index) and many (hashed), per seed
    layers.append(np.round(layers[3] * 2) / 2)
    binary = np.where(rng.normal(size=(n_seeds, n, 7)) > 0, 1.0, -1.0).astype(dtype)
    layers.append(binary)
    if not units_first:
        layers = [np.ascontiguousarray(t) for t in layers]
    else:
        layers = [_units_first(t) for t in layers]
    estimators = [default_estimator("tanh")] * 6 + [default_estimator("binary")]
    got, ref = _both(monkeypatch, estimators, layers, y)
    _assert_same(got, ref, estimators, layers, y)


@pytest.mark.parametrize(
    "name,params",
    [
        ("binning", {"n_bins": 7, "range": "neuron"}),
        ("binning", {"bin_width": 0.25, "range": "layer"}),
        ("binning", {"n_bins": 12, "range": "fixed", "lo": -2.0, "hi": 0.5}),
        ("binning", {"n_bins": 1000, "range": "fixed", "lo": -1.0, "hi": 1.0}),
    ],
)
def test_binning_ranges_equal_the_numpy_path(monkeypatch, name, params):
    rng = np.random.default_rng(7)
    est = make_estimator(name, **params)
    layers = [_units_first(rng.normal(size=(4, 500, w)).astype(np.float32)) for w in (1, 3, 5)]
    y = rng.integers(0, 2, size=500)
    got, ref = _both(monkeypatch, [est] * 3, layers, y)
    _assert_same(got, ref, [est] * 3, layers, y)


def test_edge_cases(monkeypatch):
    """All rows equal, all rows distinct, values on bin edges, -0.0, constant and 3-valued
    binary seeds, and a layer too wide for a key (the estimator itself runs)."""
    rng = np.random.default_rng(3)
    n_seeds, n = 4, 512
    y = rng.integers(0, 2, size=n)
    equal = np.full((n_seeds, n, 4), 0.25, dtype=np.float32)
    equal[1] = -1.0  # the range's ends: clipped into the edge bins
    equal[2] = 1.0
    equal[3] = 5.0
    distinct = np.zeros((n_seeds, n, 3), dtype=np.float64)
    centres = (np.arange(30) + 0.5) / 15 - 1
    distinct[:, :, 0] = centres[np.arange(n) % 30]  # every row in its own bins
    distinct[:, :, 1] = centres[np.arange(n) // 30]
    distinct[:, :, 2] = np.linspace(-1, 1, 31)[np.arange(n) % 31]  # exactly on the bin edges
    binary = np.where(rng.normal(size=(n_seeds, n, 5)) > 0, 1.0, -1.0).astype(np.float32)
    binary[1] = -1.0  # constant: one state
    binary[2, 7, 3] = 0.5  # three values: not binary, the estimator counts rows
    binary[3] = np.where(binary[3] > 0, 0.0, -0.0)  # 0.0 and -0.0 are one value
    wide = np.tanh(rng.normal(size=(n_seeds, n, 14))).astype(np.float32)  # 30^14 > 2^53
    layers = [_units_first(t) for t in (equal, distinct, binary, wide)]
    estimators = [
        default_estimator("tanh"),
        default_estimator("tanh"),
        default_estimator("binary"),
        default_estimator("tanh"),
    ]
    got, ref = _both(monkeypatch, estimators, layers, y)
    _assert_same(got, ref, estimators, layers, y)
    assert got.n_states[:, 0].tolist() == [1, 1, 1, 1]
    assert got.n_states[:, 1].tolist() == [n] * n_seeds
    assert got.n_states[1, 2] == 1
    assert got.n_states[3, 2] == 1


def test_large_sample_class_products_take_the_numpy_path(monkeypatch):
    """Beyond about 130,000 samples x classes the sorts win; the numbers are the same."""
    assert hashcount.fits(4096, 2) and hashcount.fits(10_000, 10)
    assert not hashcount.fits(60_000, 10)
    monkeypatch.setattr(hashcount, "_MAX_SAMPLE_CLASSES", 100)
    rng = np.random.default_rng(5)
    t = _units_first(np.tanh(rng.normal(size=(2, 300, 3))).astype(np.float32))
    y = rng.integers(0, 2, size=300)
    got, ref = _both(monkeypatch, [default_estimator("tanh")], [t], y)
    _assert_same(got, ref, [default_estimator("tanh")], [t], y)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("layer_type", ["tanh", "binary"])
def test_non_finite_values_raise_the_estimators_error(bad, layer_type):
    t = np.tanh(np.random.default_rng(0).normal(size=(3, 200, 4))).astype(np.float32)
    if layer_type == "binary":
        t = np.sign(t)
    t[2, 5, 1] = bad
    with pytest.raises(EstimatorInputError, match="NaN or infinite"):
        estimate_stacked([default_estimator(layer_type)], [_units_first(t)], np.arange(200) % 2)


def test_kernel_counts_directly(monkeypatch):
    """count_stacked itself: the analytic entropies of four equiprobable states, with the
    labels and with labels that ignore them."""
    n = 400
    units = np.zeros((2, 2, n), dtype=np.float32)
    units[:, 0] = (np.arange(n) % 2) * 2 - 1
    units[:, 1] = ((np.arange(n) // 2) % 2) * 2 - 1
    ones = np.ones((2, 2))
    labels = (np.arange(n) % 2)[None, :].astype(np.int64)
    constant = np.zeros((1, n), dtype=np.int64)
    counts = hashcount.count_stacked(
        units, hashcount.BINARY, np.full((2, 2), 1.0), ones, np.full((2, 2), -1.0),
        np.array([[2.0, 1.0]] * 2), np.array([4, 4]), labels, constant, 2, np.array([1]),
        stacked_module._plogp(n),
    )  # fmt: skip
    assert counts.done.tolist() == [False, True]
    assert counts.states[1] == 4
    assert counts.h_t[1] == pytest.approx(2.0, abs=1e-12)
    assert counts.h_ty[1] == pytest.approx(2.0, abs=1e-12)  # (T, Y): T holds Y
    assert counts.h_ty_perm[1] == pytest.approx(2.0, abs=1e-12)  # Y' constant: H(T, Y') = H(T)
    assert np.isnan(counts.h_t[0])
    rows = hashcount.count_stacked(
        units, hashcount.ROWS, ones, ones, ones, ones, np.array([0, 0]), labels, None, 2,
        np.array([0, 1]), stacked_module._plogp(n),
    )  # fmt: skip
    assert rows.states.tolist() == [4, 4] and np.isnan(rows.h_ty_perm).all()
    np.testing.assert_allclose(rows.h_t, counts.h_t[1], atol=1e-12)


def test_exact_on_real_values_hashes_rows_as_the_estimator_counts_them(monkeypatch):
    """Rows equal but for -0.0 are one state, rows differing in one unit are two; a softmax
    and an injective tanh layer: the estimator's numbers, with and without the kernel."""
    rng = np.random.default_rng(11)
    n_seeds, n = 3, 600
    y = rng.integers(0, 3, size=n)
    few = rng.normal(size=(n_seeds, 7, 4))[:, rng.integers(0, 7, size=n)]  # 7 distinct rows
    few[0, ::2, 1] = 0.0
    few[0, 1::2, 1] = -0.0  # the same value: one state
    few[1, 5, 3] *= 1 + 1e-6  # a few ulps away in float32: a state of its own
    z = rng.normal(size=(n_seeds, n, 3))
    softmax = np.round(np.exp(z) / np.exp(z).sum(axis=2, keepdims=True), 2)
    layers = [
        _units_first(t.astype(dtype))
        for t in (few, softmax, np.tanh(z))
        for dtype in (np.float32, np.float64)
    ]
    exact = make_estimator("exact")
    got, ref = _both(monkeypatch, [exact] * len(layers), layers, y)
    _assert_same(got, ref, [exact] * len(layers), layers, y)
    assert got.n_states[0, :2].tolist() == [7, 7] and got.n_states[1, :2].tolist() == [8, 8]
    assert (got.n_states[:, 4:] == n).all()


_FRESH_PROCESS = """
import time, warnings
import numpy as np
warnings.simplefilter("error")
from ibsweep.analysis.estimators import default_estimator, estimate_stacked
t = np.tanh(np.random.default_rng(0).normal(size=(2, 300, 3))).astype(np.float32)
t = np.ascontiguousarray(t.transpose(0, 2, 1)).transpose(0, 2, 1)
start = time.perf_counter()
r = estimate_stacked([default_estimator("tanh")], [t], np.arange(300) % 2)
print(time.perf_counter() - start, r.i_xt.tolist(), r.i_ty.tolist())
"""


def _fresh_process(tmp_path, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    clean.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS], env=clean, capture_output=True, text=True,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no warnings (they would be errors here)
    seconds, i_xt, i_ty = out.stdout.split(" ", 2)
    return float(seconds), i_xt + " " + i_ty


def _in_process():
    t = np.tanh(np.random.default_rng(0).normal(size=(2, 300, 3))).astype(np.float32)
    r = estimate_stacked([default_estimator("tanh")], [t], np.arange(300) % 2)
    return f"{r.i_xt.tolist()} {r.i_ty.tolist()}"


@pytest.mark.slow
def test_a_fresh_process_loads_the_cached_kernel(tmp_path):
    """The first process compiles and writes the cache; the next loads it, quickly."""
    cache = tmp_path / "cache"
    first, numbers = _fresh_process(tmp_path, NUMBA_CACHE_DIR=str(cache))
    assert list(cache.rglob("*.nbi")), "numba wrote no cache"
    second, again = _fresh_process(tmp_path, NUMBA_CACHE_DIR=str(cache))
    assert numbers.strip() == again.strip() == _in_process()
    assert second < first
    assert second < 2.0


@pytest.mark.slow
def test_no_writable_cache_folder_compiles_in_memory(tmp_path):
    """A read-only install without a writable cache folder (simulated: numba's user-wide
    folder under a file) still runs the kernel, without warnings."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    _, numbers = _fresh_process(
        tmp_path,
        NUMBA_CACHE_LOCATOR_CLASSES="UserWideCacheLocator",
        XDG_CACHE_HOME=str(blocker / "cache"),
    )
    assert numbers.strip() == _in_process()
