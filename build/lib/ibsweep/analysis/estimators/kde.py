"""Kernel (Gaussian-noise) estimator: Kolchinsky & Tracey's pairwise bounds on mixture entropy."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from ibsweep.analysis.estimators.base import (
    Estimator,
    EstimatorParams,
    Labels,
    MIResult,
    make_result,
)
from ibsweep.analysis.estimators.counting import unique_row_ids

# The kernel matrix is built in row blocks: cache-sized for the element-wise passes, but at least
# _WIDE_ROWS rows for wide layers (where the matrix product dominates), and never above
# _MAX_BLOCK_BYTES.
_CACHE_BYTES = 1 << 21
_WIDE_ROWS = 256
_MAX_BLOCK_BYTES = 128 << 20
# exp() below about -708 leaves the normal range and is several times slower; such kernel values
# are negligible next to a point's own exp(0) = 1, so exponents are floored here.
_MIN_EXPONENT = -700.0
_COMPACT_ROWS = 1024


class KDEParams(EstimatorParams):
    """Variance of the Gaussian noise added to the layer, and which entropy bound to use."""

    noise_var: float = Field(default=1e-3, gt=0, allow_inf_nan=False)
    bound: Literal["upper", "lower"] = "upper"


class KDEEstimator(Estimator):
    """I(X;T) and I(T;Y) of T + N(0, noise_var I), with pairwise-distance bounds on its entropy.

    T + noise is a mixture of n Gaussians centred on the rows t_i (Kolchinsky & Tracey 2017, as
    used by Saxe et al. 2018). Bounds on its entropy, in nats:
    H = d/2 (ln(2 pi s2) + 1) - mean_i ln mean_j exp(-|t_i - t_j|^2 / w), with w = 2 s2 for the
    KL upper bound (`bound="upper"`) and, for the Bhattacharyya lower bound (`bound="lower"`),
    w = 8 s2, which is the upper-bound formula at 4 s2 plus (d/2) ln(1/4). The noise is this
    estimator's own H(T|X) = d/2 (ln(2 pi s2) + 1), so
    I(X;T) = -mean_i ln mean_j exp(-|t_i - t_j|^2 / w), in [0, ln n]. I(T;Y) = H(T) - sum_c p_c
    H(T | Y=c), each term the same bound on the class's own mixture (as in Saxe et al.'s code),
    which never exceeds H(Y) or I(X;T); a finite-sample value below 0 is reported as 0.
    `h_t` is the differential-entropy bound in bits.

    Identical rows are merged (weighted by their counts per class), and the kernel matrix is
    built in row blocks of at most 128 MiB, so memory is one float64 copy of T plus one block:
    about 0.7 GiB for n = 70,000, d = 1024. Kernel values below exp(-700) count as exp(-700),
    negligible next to each point's own exp(0) = 1.
    """

    name: ClassVar[str] = "kde"
    Params: ClassVar[type[EstimatorParams]] = KDEParams

    def _estimate(self, t: np.ndarray, labels: Labels) -> MIResult:
        s2 = self.params.noise_var
        width = 2.0 * s2 if self.params.bound == "upper" else 8.0 * s2
        n, d = t.shape
        k = labels.n_classes
        x = np.add(t, 0.0, dtype=np.float64)  # a float64 copy; + 0.0 turns -0.0 into 0.0
        points, ids = _distinct_rows(x)
        del x
        points -= points.mean(axis=0)  # centring keeps |p|^2 small: distances lose fewer digits
        counts = np.bincount(ids * k + labels.codes, minlength=len(points) * k)
        counts = counts.reshape(len(points), k).astype(np.float64)
        sums = _kernel_class_sums(points, counts, width)  # [a, c] = sum over class c of k(a, b)
        np.maximum(sums, counts, out=sums)  # each point's own copies add exp(0) = 1 apiece
        log_all = np.log(sums.sum(axis=1) / n)
        i_xt = -float(counts.sum(axis=1) @ log_all) / n
        a, c = np.nonzero(counts)
        log_class = np.log(sums[a, c] / counts.sum(axis=0)[c])
        i_ty = float(counts[a, c] @ (log_class - log_all[a])) / n
        h_noise = d / 2 * (math.log(2 * math.pi * s2) + 1)
        return make_result(
            self,
            i_xt=i_xt / math.log(2),
            i_ty=max(i_ty, 0.0) / math.log(2),
            h_t=(i_xt + h_noise) / math.log(2),
            h_t_given_x=h_noise / math.log(2),
            labels=labels,
            n_states=len(points),
            n_samples=n,
        )


def _distinct_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of x (compacted in place into x's first rows) and each row's id among them."""
    ids, representative = unique_row_ids(x)
    order = np.argsort(representative)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    rows = representative[order]  # increasing, so rows[i] >= i: each copy reads an unwritten row
    u = len(rows)
    for i in range(0, u if u < len(x) else 0, _COMPACT_ROWS):
        j = min(i + _COMPACT_ROWS, u)
        x[i:j] = x[rows[i:j]]
    return x[: len(rows)], rank[ids]


def _kernel_class_sums(points: np.ndarray, weights: np.ndarray, width: float) -> np.ndarray:
    """sum_b weights[b, c] exp(-|p_a - p_b|^2 / width) for every point a and class c.

    The kernel is symmetric, so each block of rows [i, j) is computed against columns >= i only
    and also credits its columns >= j: half the products and exponentials of the full matrix.
    """
    u = len(points)
    sq_w = np.einsum("ij,ij->i", points, points) / width
    rows = _CACHE_BYTES // (8 * u) if points.shape[1] < 64 else _WIDE_ROWS
    step = max(1, min(u, rows, _MAX_BLOCK_BYTES // (8 * u)))
    buffer = np.empty(step * u)
    sums = np.zeros((u, weights.shape[1]))
    for i in range(0, u, step):
        j = min(i + step, u)
        b = buffer[: (j - i) * (u - i)].reshape(j - i, u - i)
        # -|p_a - p_b|^2 / w = 2 p_a.p_b / w - |p_a|^2 / w - |p_b|^2 / w
        np.matmul(points[i:j] * (2.0 / width), points[i:].T, out=b)
        b -= sq_w[i:j, None]
        b -= sq_w[i:]
        np.clip(b, _MIN_EXPONENT, 0.0, out=b)  # distances are >= 0; rounding may say otherwise
        np.exp(b, out=b)
        sums[i:j] += b @ weights[i:]
        sums[j:] += b[:, j - i :].T @ weights[i:j]
    return sums
