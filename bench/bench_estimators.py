"""Benchmark of the information estimators against the speed targets of the estimator issue.

Run from the repository root (one thread: BLAS/OpenMP pinned through threadpoolctl, torch through
torch.set_num_threads):

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/bench_estimators.py

Each case prints the median time of the estimator, its target, and where a straightforward
reference runs on the same data (distinct rows by np.unique over row byte views, H(T|X) by a loop
over the distinct inputs and H(T|Y) by a loop over the labels, as the 2017 reference code does;
for kde the unchunked O(n^2) logsumexp formulas of Saxe et al.), the reference's time, the speed
ratio and whether both give the same numbers. The two `estimate_stacked` cases (64 packed seeds,
all six layers in one call) compare the compiled counting kernel with the numpy path of the same
function instead. `--kde-large` adds one kde run on 70,000 x 1024 (several minutes) and
reports its peak traced memory.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable

import numpy as np


def pin_one_thread() -> None:
    """Limit BLAS/OpenMP pools and torch to one thread."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of fn in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def tishby_inputs() -> np.ndarray:
    """All 4096 patterns of 12 bits, most significant bit first."""
    return ((np.arange(4096)[:, None] >> np.arange(11, -1, -1)) & 1).astype(np.float32)


def binary_labels(n: int, n_ones: int, rng: np.random.Generator) -> np.ndarray:
    """Binary labels with n_ones ones at random places (2118 of 4096 as in the Tishby data)."""
    y = np.zeros(n, dtype=np.int64)
    y[rng.choice(n, size=n_ones, replace=False)] = 1
    return y


def classic_layers(x: np.ndarray, binary: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """Activations (float32) of a random 12-10-7-5-4-3-2 network: tanh or sign, softmax output."""
    layers, h = [], x * 2 - 1
    for fan_in, width in zip([12, 10, 7, 5, 4, 3], [10, 7, 5, 4, 3, 2], strict=True):
        z = h @ rng.normal(scale=2 / math.sqrt(fan_in), size=(fan_in, width)) + rng.normal(
            scale=0.1, size=width
        )
        if width == 2:
            h = np.exp(z - z.max(axis=1, keepdims=True))
            h /= h.sum(axis=1, keepdims=True)
        else:
            h = np.where(z >= 0, 1.0, -1.0) if binary else np.tanh(z)
        layers.append(h.astype(np.float32))
    return layers


def reference_codes(t: np.ndarray, lo: float, hi: float, n_bins: int) -> np.ndarray:
    """Bin index by np.digitize against the interior edges lo + (hi - lo) k / n_bins."""
    return np.digitize(t.astype(np.float64), lo + (hi - lo) * np.arange(1, n_bins) / n_bins)


def _entropy(rows: np.ndarray) -> float:
    _, counts = np.unique(rows, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def reference_information(
    codes: np.ndarray, x_ids: np.ndarray | None, y: np.ndarray
) -> tuple[float, float]:
    """Plug-in I(X;T), I(T;Y) the straightforward way: byte-view rows, loops over x and y.

    `x_ids` identifies the input of each sample; None skips the O(n^2) loop over inputs (every
    input distinct, so H(T|X) = 0).
    """
    codes = np.ascontiguousarray(codes)
    rows = codes.view(np.dtype((np.void, codes.dtype.itemsize * codes.shape[1]))).ravel()
    h_t = _entropy(rows)
    h_t_given_x = 0.0
    if x_ids is not None:
        for i in np.unique(x_ids):
            mask = x_ids == i
            h_t_given_x += mask.mean() * _entropy(rows[mask])
    h_t_given_y = sum((y == c).mean() * _entropy(rows[y == c]) for c in np.unique(y))
    return h_t - h_t_given_x, h_t - h_t_given_y


def reference_kde(t: np.ndarray, y: np.ndarray, s2: float) -> tuple[float, float]:
    """Kolchinsky-Tracey upper-bound I(X;T), I(T;Y) in bits from the unchunked logsumexp form."""
    from scipy.special import logsumexp

    def h(x: np.ndarray) -> float:  # nats, the constant d/2 (ln(2 pi s2) + 1) left out
        sq = (x**2).sum(axis=1)
        dist = sq[:, None] + sq[None, :] - 2 * x @ x.T
        return -float((logsumexp(-dist / (2 * s2), axis=1) - math.log(len(x))).mean())

    x = t.astype(np.float64)
    h_all = h(x)
    h_cond = sum((y == c).mean() * h(x[y == c]) for c in np.unique(y))
    return h_all / math.log(2), (h_all - h_cond) / math.log(2)


class Report:
    """Collects benchmark rows and prints them as a Markdown table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str, str]] = []
        self.all_ok = True

    def add(
        self,
        case: str,
        ms: float,
        target_ms: float | None,
        ref_ms: float | None = None,
        same: bool | None = None,
    ) -> None:
        """Record one case; `same` says whether the reference gave the same numbers."""
        met = "" if target_ms is None else ("yes" if ms <= target_ms else "NO")
        self.all_ok &= met != "NO" and same is not False
        self.rows.append(
            (
                case,
                f"{ms:.3f}",
                "" if target_ms is None else f"<= {target_ms:g}",
                met,
                "" if ref_ms is None else f"{ref_ms:.1f} ({_ratio(ref_ms / ms)})",
                "" if same is None else ("same" if same else "DIFFERENT"),
            )
        )
        print(" | ".join(self.rows[-1]), flush=True)

    def print_table(self) -> None:
        """Print the Markdown table of all rows."""
        head = ("case", "median ms", "target ms", "met", "reference ms (ratio)", "numbers")
        print("\n| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in self.rows:
            print("| " + " | ".join(row) + " |")


def _ratio(r: float) -> str:
    return f"{r:.0f}x" if r >= 10 else f"{r:.1f}x"


def close(a: tuple[float, float], b: tuple[float, float], tol: float = 1e-9) -> bool:
    """Whether two (I(X;T), I(T;Y)) pairs agree."""
    return all(abs(u - v) <= tol for u, v in zip(a, b, strict=True))


def main() -> None:
    """Run the benchmark cases and print their table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per small case")
    parser.add_argument("--kde-large", action="store_true", help="also run kde on 70000 x 1024")
    args = parser.parse_args()
    pin_one_thread()
    from ibsweep.analysis.estimators import Estimator, default_estimator, make_estimator

    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    rng = np.random.default_rng(0)
    x = tishby_inputs()
    x_ids = np.arange(len(x))  # every input distinct
    y = binary_labels(4096, 2118, rng)
    report = Report()
    rep = args.repeats

    tanh_layers = classic_layers(x, binary=False, rng=rng)
    bnn_layers = classic_layers(x, binary=True, rng=rng)
    tanh_est = [default_estimator("tanh")] * 5 + [default_estimator("softmax")]
    bnn_est = [default_estimator("binary")] * 5 + [default_estimator("softmax")]

    def information(est: Estimator, t: np.ndarray) -> tuple[float, float]:
        res = est.estimate(t, y)
        return res.i_xt, res.i_ty

    def reference(est: Estimator, t: np.ndarray) -> tuple[float, float]:
        p = est.params
        codes = t if est.name == "exact" else reference_codes(t, p.lo, p.hi, p.n_bins)
        return reference_information(codes, x_ids, y)

    for label, est, t in (
        ("binning 4096x10 (tanh layer 1)", tanh_est[0], tanh_layers[0]),
        ("exact 4096x10 (BNN layer 1)", bnn_est[0], bnn_layers[0]),
    ):
        ms = median_ms(lambda e=est, t=t: e.estimate(t, y), rep)
        ref_ms = median_ms(lambda e=est, t=t: reference(e, t), 5)
        report.add(label, ms, 1.0, ref_ms, close(information(est, t), reference(est, t)))

    for label, ests, layers in (
        ("6 layers, tanh network (defaults)", tanh_est, tanh_layers),
        ("6 layers, BNN (defaults)", bnn_est, bnn_layers),
    ):

        def all_layers(ests: list[Estimator] = ests, layers: list[np.ndarray] = layers) -> None:
            for e, t in zip(ests, layers, strict=True):
                e.estimate(t, y)

        def all_reference(ests: list[Estimator] = ests, layers: list[np.ndarray] = layers) -> None:
            for e, t in zip(ests, layers, strict=True):
                reference(e, t)

        same = all(
            close(information(e, t), reference(e, t)) for e, t in zip(ests, layers, strict=True)
        )
        report.add(label, median_ms(all_layers, rep), 3.0, median_ms(all_reference, 3), same)

    # 64 seeds of each network, packed as the trainer hands them over (units-first views): all
    # seeds and layers in one estimate_stacked call, compiled counting against the numpy path
    # (sorts and run lengths); the two must give the same numbers
    from ibsweep.analysis.estimators import stacked

    for label, ests, binary in (
        ("64 seeds x 6 layers, tanh (estimate_stacked, one call)", tanh_est, False),
        ("64 seeds x 6 layers, BNN (estimate_stacked, one call)", bnn_est, True),
    ):
        per_seed = [classic_layers(x, binary=binary, rng=rng) for _ in range(64)]
        packed = [
            np.ascontiguousarray(np.stack(ls).transpose(0, 2, 1)).transpose(0, 2, 1)
            for ls in zip(*per_seed, strict=True)
        ]

        def packed_mi(ests: list[Estimator] = ests, packed: list[np.ndarray] = packed) -> object:
            return stacked.estimate_stacked(ests, packed, y)

        kernel_ms = median_ms(packed_mi, max(10, rep // 10))
        got = packed_mi()
        stacked._USE_KERNEL = False
        numpy_ms = median_ms(packed_mi, max(10, rep // 10))
        ref = packed_mi()
        stacked._USE_KERNEL = True
        same = bool(
            np.array_equal(got.n_states, ref.n_states)
            and np.allclose(got.i_xt, ref.i_xt, rtol=0, atol=1e-9)
            and np.allclose(got.i_ty, ref.i_ty, rtol=0, atol=1e-9)
        )
        report.add(label, kernel_ms, None, numpy_ms, same)

    adaptive = make_estimator("adaptive")
    report.add(
        "adaptive 4096x10", median_ms(lambda: adaptive.estimate(tanh_layers[0], y), 20), None
    )
    kde = make_estimator("kde")
    kde_ms = median_ms(lambda: kde.estimate(tanh_layers[0], y), 10)
    kde_ref_ms = median_ms(lambda: reference_kde(tanh_layers[0], y, 1e-3), 3)
    kde_same = close(
        information(kde, tanh_layers[0]), reference_kde(tanh_layers[0], y, 1e-3), tol=1e-6
    )
    report.add("kde 4096x10 (upper, noise_var 1e-3)", kde_ms, 200.0, kde_ref_ms, kde_same)

    big_rng = np.random.default_rng(1)
    big_y = big_rng.integers(0, 10, size=70_000)
    big_tanh = np.tanh(big_rng.normal(size=(70_000, 1024))).astype(np.float32)
    big_sign = np.where(big_tanh >= 0, 1.0, -1.0).astype(np.float32)
    no_x_loop = None  # a loop over 70,000 inputs with a mask each is O(n^2): minutes; H(T|X) = 0
    for label, est, t, codes in (
        (
            "binning 70000x1024 (float32, 10 classes)",
            default_estimator("tanh"),
            big_tanh,
            lambda: reference_codes(big_tanh, -1.0, 1.0, 30).astype(np.uint8),
        ),
        ("exact 70000x1024 (+-1 float32, 10 classes)", make_estimator("exact"), big_sign, None),
    ):
        ms = median_ms(lambda e=est, t=t: e.estimate(t, big_y), 5)
        start = time.perf_counter()
        ref = reference_information(t if codes is None else codes(), no_x_loop, big_y)
        ref_ms = 1e3 * (time.perf_counter() - start)
        res = est.estimate(t, big_y)
        report.add(label, ms, 500.0, ref_ms, close((res.i_xt, res.i_ty), ref))

    if args.kde_large:
        tracemalloc.start()
        start = time.perf_counter()
        kde.estimate(big_tanh, big_y)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"kde 70000x1024: {seconds:.0f} s, peak traced memory {peak / 2**30:.2f} GiB")
        report.add("kde 70000x1024 (float32 input)", 1e3 * seconds, None)

    report.print_table()
    print("all targets met and all numbers equal" if report.all_ok else "SOME CHECK FAILED")


if __name__ == "__main__":
    main()
