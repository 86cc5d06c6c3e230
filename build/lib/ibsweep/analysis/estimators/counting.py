"""Fast counting of distinct rows and the plug-in entropies H(T) and H(T,Y) built on it.

A row of small integer codes is packed into one int64 key (mixed radix) when the product of the
radices times the number of classes fits in int64; otherwise rows are sorted as byte strings and
numbered. Labels are appended as the least significant digit, so one sort of the joint keys
yields the counts of both T (runs of key // n_classes) and (T, Y) (runs of the key); joint key
spaces not much larger than n are counted by bincount instead. O(n log n), no Python loop over
samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ibsweep.analysis.estimators.base import (
    EstimatorInputError,
    Labels,
    encode_labels,
    entropy_bits,
)

MAX_KEY = 2**63 - 1
_FLOAT_EXACT = 2**53
_BINCOUNT_SLACK = 1024  # joint key spaces up to 4 n + this are counted by bincount, not sorting
_BLOCK_BYTES = 1 << 22  # rows compared per block in unique_row_ids: bounded temporaries


@dataclass(frozen=True, slots=True)
class KeyEntropies:
    """Plug-in entropies in bits per row of keys: H(T), distinct states and, with labels, H(T,Y)."""

    h_t: np.ndarray
    n_states: np.ndarray
    h_ty: np.ndarray | None = None
    h_y: float | None = None

    @property
    def i_ty(self) -> np.ndarray | None:
        """Plug-in I(T;Y) = H(T) + H(Y) - H(T,Y), or None without labels."""
        if self.h_ty is None or self.h_y is None:
            return None
        return self.h_t + self.h_y - self.h_ty


def fits_in_key(radices: Sequence[int], n_classes: int = 1) -> bool:
    """Whether rows with these per-column radices, times n_classes, pack into one int64 key."""
    if sum(math.log2(max(r, 1)) for r in radices) + math.log2(n_classes) > 64:
        return False
    return math.prod(radices) * n_classes <= MAX_KEY + 1


def pack_rows(codes: np.ndarray, radices: Sequence[int]) -> np.ndarray:
    """Pack each row of non-negative codes (codes[:, j] < radices[j]) into one int64 key."""
    if not fits_in_key(radices):
        raise EstimatorInputError(f"rows with radices {list(radices)} do not fit in an int64 key")
    weights = np.ones(len(radices), dtype=np.int64)
    for j in range(len(radices) - 2, -1, -1):
        weights[j] = weights[j + 1] * radices[j + 1]
    if math.prod(radices) <= _FLOAT_EXACT:
        # Every partial sum is an integer below 2^53, so the (faster) float product is exact.
        return (codes.astype(np.float64) @ weights.astype(np.float64)).astype(np.int64)
    return codes.astype(np.int64, copy=False) @ weights


def unique_row_ids(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids (0..u-1) of the distinct rows of `a`, compared as bytes, and one row index per id.

    Rows are sorted as byte strings, then neighbours are compared block by block, so the extra
    memory is a few arrays of n integers plus one block. Floating -0.0 and 0.0 differ as bytes:
    callers normalise them (x + 0.0) first where it matters.
    """
    a = np.ascontiguousarray(a)
    n = a.shape[0]
    row_bytes = a.shape[1] * a.itemsize
    rows = a.view(np.dtype((np.void, row_bytes))).ravel()
    order = np.argsort(rows)
    new = np.empty(n, dtype=bool)
    new[0] = True
    step = max(1, _BLOCK_BYTES // row_bytes)
    for i in range(1, n, step):
        block = rows[order[i - 1 : i + step]]
        new[i : i + step] = block[1:] != block[:-1]
    group = np.cumsum(new) - 1
    ids = np.empty(n, dtype=np.int64)
    ids[order] = group
    return ids, order[new]


def row_keys(codes: np.ndarray, radices: Sequence[int], n_classes: int) -> tuple[np.ndarray, int]:
    """Keys equal exactly for equal rows, below the returned bound; bound * n_classes fits int64."""
    if fits_in_key(radices, n_classes):
        return pack_rows(codes, radices), math.prod(radices)
    if all(r <= 2 for r in radices):
        compact = np.packbits(codes.astype(bool, copy=False), axis=1)
    else:
        compact = codes.astype(np.min_scalar_type(max(radices) - 1), copy=False)
    ids = unique_row_ids(compact)[0]
    return ids, int(ids.max()) + 1


def _run_starts(sorted_rows: np.ndarray) -> np.ndarray:
    new = np.empty(sorted_rows.shape, dtype=bool)
    new[:, 0] = True
    np.not_equal(sorted_rows[:, 1:], sorted_rows[:, :-1], out=new[:, 1:])
    return new


def _run_entropies(new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entropy in bits and number of runs per row, from a mask of run starts over sorted rows."""
    m, n = new.shape
    starts = np.flatnonzero(new)
    counts = np.diff(starts, append=m * n).astype(np.float64)
    if m == 1:
        h = max(math.log2(n) - float(counts @ np.log2(counts)) / n, 0.0)
        return np.array([h]), np.array([len(counts)])
    rows = starts // n
    plogp = np.bincount(rows, weights=counts * np.log2(counts), minlength=m)
    h = np.maximum(math.log2(n) - plogp / n, 0.0)
    return h, np.bincount(rows, minlength=m)


def _joint_entropies(keys: np.ndarray, labels: Labels) -> KeyEntropies:
    """Entropies of (m, n) non-negative keys and of keys joined with labels, one sort per row."""
    k = labels.n_classes
    if int(keys.max()) <= MAX_KEY // k:
        joint = np.sort(keys * k + labels.codes, axis=1, kind="stable")  # faster here
        new_joint = _run_starts(joint)
        new_t = _run_starts(joint // k) if k > 1 else new_joint
    else:
        order = np.lexsort((np.broadcast_to(labels.codes, keys.shape), keys), axis=1)
        new_t = _run_starts(np.take_along_axis(keys, order, axis=1))
        new_joint = new_t | _run_starts(labels.codes[order])
    h_t, n_states = _run_entropies(new_t)
    h_ty, _ = _run_entropies(new_joint)
    return KeyEntropies(h_t=h_t, n_states=n_states, h_ty=h_ty, h_y=labels.h_y)


def layer_entropies(codes: np.ndarray, radices: Sequence[int], labels: Labels) -> KeyEntropies:
    """H(T), H(T,Y) and distinct states of one layer of codes (n x d, codes[:, j] < radices[j])."""
    keys, bound = row_keys(codes, radices, labels.n_classes)
    n, k = len(keys), labels.n_classes
    if bound * k > 4 * n + _BINCOUNT_SLACK:
        return _joint_entropies(keys[None, :], labels)
    joint = np.bincount(keys * k + labels.codes, minlength=bound * k)
    marginal = joint.reshape(bound, k).sum(axis=1)
    marginal = marginal[marginal > 0]
    return KeyEntropies(
        h_t=np.array([entropy_bits(marginal, n)]),
        n_states=np.array([len(marginal)]),
        h_ty=np.array([entropy_bits(joint[joint > 0], n)]),
        h_y=labels.h_y,
    )


def entropies_of_keys(keys: np.ndarray, y: np.ndarray | None = None) -> KeyEntropies:
    """Plug-in entropies of many key rows at once (e.g. layers x seeds on the same samples).

    `keys` is (m, n) or (n,) of non-negative integers, equal exactly where the patterns are equal
    (as from `pack_rows`); `y`, if given, holds the n integer labels shared by all rows.
    """
    keys = np.asarray(keys)
    if keys.ndim == 1:
        keys = keys[None, :]
    if keys.ndim != 2 or keys.shape[1] == 0 or not np.issubdtype(keys.dtype, np.integer):
        raise EstimatorInputError(
            f"keys must be a non-empty (m, n) integer array, got {keys.dtype} of shape {keys.shape}"
        )
    keys = keys.astype(np.int64, copy=False)
    if int(keys.min()) < 0:
        raise EstimatorInputError("keys must be non-negative")
    if y is None:
        h_t, n_states = _run_entropies(_run_starts(np.sort(keys, axis=1)))
        return KeyEntropies(h_t=h_t, n_states=n_states)
    return _joint_entropies(keys, encode_labels(y, keys.shape[1]))
