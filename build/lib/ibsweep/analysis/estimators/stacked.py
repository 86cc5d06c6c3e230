"""Estimates for every layer of a stack of networks (one per seed) in a few vectorised passes.

``estimate_stacked`` gives, for layers of shape (S, n, width) and an estimator per layer, the
numbers that ``estimators[l].estimate(layers[l][s], y[s])`` gives for every seed s and layer l
(entropies agree to float rounding, ~1e-12 bits) without a Python loop over seeds:

- the binning estimator (fixed, layer and neuron ranges) codes a chunk of seeds at once with the
  same float64 arithmetic as ``BinningEstimator``, so the codes are identical; the exact
  estimator does the same for layers with at most two values per seed (+-1 BNN layers);
- each row of codes becomes one integer key (mixed radix), exact in float64;
- with numba (``hashcount``), one compiled call per float layer codes every seed, counts its
  distinct keys and (key, label) pairs in a hash table (O(n), no sort) and checks what the numpy
  path checks beforehand (finite values; two values per seed for exact);
- without it (or with ``_USE_KERNEL`` False) the label is the key's last digit, the keys come
  from one matmul and are sorted in the narrowest integer type that holds them (a radix sort for
  16 bits), and the runs of the sorted keys give H(T), H(T,Y) and the number of states; a row
  whose keys are all distinct needs no counting; work runs on cache-sized chunks of seeds, which
  also keeps temporary memory small.

Other estimators, a global binning range and rows these paths do not cover (more than two
values for exact, keys that would need more than 53 bits) run seed by seed through the estimator
itself, so their errors and results are the estimator's own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ibsweep.analysis.estimators import hashcount
from ibsweep.analysis.estimators.base import (
    SATURATION_MARGIN_BITS,
    Estimator,
    EstimatorInputError,
    Labels,
    encode_labels,
    validate_layer,
)
from ibsweep.analysis.estimators.binning import BinningEstimator
from ibsweep.analysis.estimators.exact import ExactEstimator

_FLOAT_EXACT = 2**53
_CHUNK_VALUES = 1 << 18  # about this many layer values are coded at once (2 MiB in float64)
_ROUNDING = 1e-9
_USE_KERNEL = True  # the compiled counting kernel where numba is installed (False: numpy)


@dataclass(frozen=True, slots=True)
class StackedEstimates:
    """I(X;T) and I(T;Y) in bits, distinct states and saturation, each (S, L): seed, layer."""

    i_xt: np.ndarray
    i_ty: np.ndarray
    n_states: np.ndarray
    saturated: np.ndarray


@dataclass(frozen=True)
class _Coding:
    """How one layer's values become codes: floor(clip((t - lo) * inv, 0, top)) per unit.

    ``lo``, ``inv`` and ``top`` broadcast against a units-first chunk (S, width, n). A binary
    coding instead gives 1 to the values equal to ``lo`` (there: each seed's maximum) and 0 to
    the others.
    ``weights`` (S, width) are the mixed-radix place values times the number of classes,
    ``bound`` (S,) the size of the joint key space, ``fast[s]`` whether seed s is coded this way.
    """

    lo: np.ndarray | float
    inv: np.ndarray | float
    top: np.ndarray | float
    weights: np.ndarray
    bound: np.ndarray
    fast: np.ndarray
    binary: bool


def estimate_stacked(
    estimators: Sequence[Estimator], layers: Sequence[Any], y: Any
) -> StackedEstimates:
    """Estimate every layer of every seed: ``layers[l]`` is (S, n, width), ``y`` (S, n) or (n,).

    As with the per-layer estimators, I(X;T) = H(T) for the counting estimators: the networks
    are deterministic and the n inputs distinct, so H(T|X) = 0.
    """
    if len(estimators) != len(layers):
        raise EstimatorInputError(
            f"got {len(estimators)} estimators for {len(layers)} layers; give one per layer"
        )
    if not layers:
        raise EstimatorInputError("layers must hold at least one (S, n, width) array")
    stacks = [_as_stack(t, f"layers[{i}]") for i, t in enumerate(layers)]
    n_seeds, n = stacks[0].shape[:2]
    if any(t.shape[:2] != (n_seeds, n) for t in stacks):
        shapes = ", ".join(str(t.shape) for t in stacks)
        raise EstimatorInputError(f"every layer must be (S, n, width) with the same S, n: {shapes}")
    labels = _stack_labels(y, n_seeds, n)
    n_classes = max(lab.n_classes for lab in labels)
    shared = all(lab is labels[0] for lab in labels)
    y_codes = np.stack([lab.codes for lab in labels[: 1 if shared else n_seeds]])
    h_y = np.array([lab.h_y for lab in labels])
    shape = (n_seeds, len(stacks))
    i_xt, h_ty = np.zeros(shape), np.full(shape, np.nan)
    i_ty = np.zeros(shape)
    n_states = np.zeros(shape, dtype=np.int64)
    compiled = _USE_KERNEL and hashcount.fits(n, n_classes) and hashcount.available()
    for li, (est, t) in enumerate(zip(estimators, stacks, strict=True)):
        kernel = compiled and t.dtype in (np.float32, np.float64)
        coding = _coding(est, t, n_classes, checked=not kernel)
        fast = coding.fast if coding is not None else np.zeros(n_seeds, dtype=bool)
        if fast.any() and kernel:
            fast = _count_layer_compiled(t, coding, y_codes, n_classes, li, i_xt, h_ty, n_states)
        elif fast.any():
            _count_layer(t, coding, y_codes.astype(float), n_classes, li, i_xt, h_ty, n_states)
        for s in np.flatnonzero(~fast):
            r = est.estimate(t[s], labels[s].codes)
            i_xt[s, li], i_ty[s, li], n_states[s, li] = r.i_xt, r.i_ty, r.n_states
    counted = ~np.isnan(h_ty)
    plug_in = i_xt + h_y[:, None] - h_ty
    # rounding may carry I(T;Y) just past its bounds; move it back only then (as make_result)
    upper = np.minimum(i_xt, h_y[:, None])
    plug_in = np.where((plug_in < 0) & (plug_in >= -_ROUNDING), 0.0, plug_in)
    plug_in = np.where((plug_in > upper) & (plug_in <= upper + _ROUNDING), upper, plug_in)
    i_ty = np.where(counted, plug_in, i_ty)
    return StackedEstimates(
        i_xt=i_xt,
        i_ty=i_ty,
        n_states=n_states,
        saturated=i_xt >= math.log2(n) - SATURATION_MARGIN_BITS,
    )


def _as_stack(t: Any, what: str) -> np.ndarray:
    if hasattr(t, "detach"):  # a torch tensor: checked and converted like single layers
        t = np.stack([validate_layer(t[s], what) for s in range(t.shape[0])])
    arr = np.asarray(t)
    if arr.ndim != 3 or 0 in arr.shape:
        raise EstimatorInputError(
            f"{what} must be a non-empty (S seeds, n samples, width) array, got shape {arr.shape}"
        )
    return arr.view(np.uint8) if arr.dtype == np.bool_ else arr


def _stack_labels(y: Any, n_seeds: int, n: int) -> list[Labels]:
    """Each seed's encoded labels; seeds with equal labels share one encoding."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[0] == n_seeds and arr.shape[1] == n and (arr == arr[:1]).all():
        arr = arr[0]
    if arr.ndim == 1:
        return [encode_labels(arr, n)] * n_seeds
    if arr.ndim != 2 or arr.shape[0] != n_seeds:
        raise EstimatorInputError(
            f"labels y must be (n,) or (S, n) = ({n_seeds}, {n}), got shape {arr.shape}"
        )
    return [encode_labels(row, n) for row in arr]


def _coding(est: Estimator, t: np.ndarray, n_classes: int, checked: bool = True) -> _Coding | None:
    """The coding of a layer for the fast path, or None if the estimator must run itself.

    ``checked`` False leaves to the compiled kernel what it checks itself: finite values for
    a fixed binning range, and for the exact estimator that each seed holds two values at most
    (``top`` then carries each seed's minimum, the value coded 0).
    """
    if not (np.issubdtype(t.dtype, np.floating) or np.issubdtype(t.dtype, np.integer)):
        return None
    n_seeds, _, width = t.shape
    binning = isinstance(est, BinningEstimator) and est.params.range in ("fixed", "layer", "neuron")
    exact = isinstance(est, ExactEstimator)
    if not (binning or exact):
        return None
    flat = _seed_rows(t)
    if binning and est.params.range == "fixed":  # only finiteness to check: one pass
        if checked:
            with np.errstate(over="ignore"):
                if not (np.isfinite(flat.sum(axis=1)).all() or np.isfinite(flat).all()):
                    return None  # the estimator reports the bad values
    else:
        lo, hi = flat.min(axis=1), flat.max(axis=1)
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            return None
    if exact:
        # the value hi becomes 1 and the other value 0: one bit per unit (one state if constant)
        constant = lo == hi
        radices = np.where(constant[:, None], 1, np.full((n_seeds, width), 2))
        one = np.ones((n_seeds, 1, 1))
        if not checked:  # the kernel checks for two values; top carries the lower one
            fast = np.ones(n_seeds, dtype=bool)
            return _with_keys(
                hi[:, None, None], one, lo[:, None, None], radices, n_classes, fast, True
            )
        two = ((flat == lo[:, None]) | (flat == hi[:, None])).all(axis=1)
        return _with_keys(hi[:, None, None], one, one, radices, n_classes, two, binary=True)
    p = est.params
    if p.range == "fixed":
        lo = np.full((n_seeds, 1), np.float64(p.lo))
        hi = np.full((n_seeds, 1), np.float64(p.hi))
    elif p.range == "layer":
        lo = lo.astype(np.float64)[:, None]
        hi = hi.astype(np.float64)[:, None]
    else:
        lo = t.min(axis=1).astype(np.float64)
        hi = t.max(axis=1).astype(np.float64)
    # the arithmetic of BinningEstimator._estimate, element by element
    span = hi - lo
    bin_width = span / p.n_bins if p.bin_width is None else p.bin_width
    bin_width = np.where(span > 0, bin_width, 1.0)
    n_bins = np.maximum(np.ceil(span / bin_width - 1e-9), 1).astype(np.int64)
    inv, top = 1.0 / bin_width, (n_bins - 1).astype(np.float64)
    if p.range == "fixed":  # one scalar for all seeds: numpy's faster scalar loops
        params = float(lo[0, 0]), float(inv[0, 0]), float(top[0, 0])
    else:
        params = lo[:, :, None], inv[:, :, None], top[:, :, None]
    return _with_keys(
        *params,
        np.broadcast_to(n_bins, (n_seeds, width)),
        n_classes,
        np.ones(n_seeds, dtype=bool),
        binary=False,
    )


def _seed_rows(t: np.ndarray) -> np.ndarray:
    """The values of each seed as one row, (S, n * width), without a copy where possible."""
    units = t.transpose(0, 2, 1)
    if units.flags.c_contiguous:
        return units.reshape(len(t), -1)
    return t.reshape(len(t), -1)


def _with_keys(
    lo: np.ndarray,
    inv: np.ndarray,
    top: np.ndarray,
    radices: np.ndarray,
    n_classes: int,
    fast: np.ndarray,
    binary: bool,
) -> _Coding:
    """Add the place values; seeds whose joint keys would exceed 2^53 leave the fast path."""
    # products in float64 are exact up to 2^53 and only grow, so the test below is exact
    suffix = np.cumprod(radices[:, ::-1].astype(np.float64), axis=1)[:, ::-1]
    bound = suffix[:, 0] * n_classes
    weights = np.concatenate([suffix[:, 1:], np.ones((len(radices), 1))], axis=1) * n_classes
    fits = bound <= _FLOAT_EXACT
    bound = np.where(fits, bound, 0).astype(np.int64)
    return _Coding(lo, inv, top, weights, bound, fast & fits, binary)


def _count_layer(
    t: np.ndarray,
    coding: _Coding,
    y_keys: np.ndarray,
    k: int,
    layer: int,
    i_xt: np.ndarray,
    h_ty: np.ndarray,
    n_states: np.ndarray,
) -> None:
    """Code, key, sort and count every fast seed of one layer, a chunk of seeds at a time."""
    n, width = t.shape[1:]
    units = t.transpose(0, 2, 1)  # (S, width, n); a view, contiguous when t came units-first
    seeds = np.flatnonzero(coding.fast)
    step = max(1, _CHUNK_VALUES // (n * width))
    buf = np.empty(min(step, len(seeds)) * width * n)
    for a in range(0, len(seeds), step):
        idx = seeds[a : a + step]
        part = slice(idx[0], idx[-1] + 1) if idx[-1] - idx[0] == len(idx) - 1 else idx
        block = buf[: len(idx) * width * n].reshape(len(idx), width, n)
        lo, inv, top = (_part(v, idx) for v in (coding.lo, coding.inv, coding.top))
        if coding.binary:
            np.copyto(block, units[part] == lo)
        else:
            np.subtract(units[part], lo, out=block)
            block *= inv
            np.clip(block, 0.0, top, out=block)
            np.floor(block, out=block)
        keys = np.matmul(coding.weights[idx, None, :], block)[:, 0, :]
        keys += y_keys[idx] if len(y_keys) > 1 else y_keys
        bound = int(coding.bound[idx].max())
        dtype = np.uint16 if bound <= 1 << 16 else np.int32 if bound <= 1 << 31 else np.int64
        keys = keys.astype(dtype)
        keys.sort(axis=1, kind="stable" if dtype == np.uint16 else "quicksort")
        h_t_part, h_ty_part, states = _sorted_entropies(keys, k)
        i_xt[idx, layer] = h_t_part
        h_ty[idx, layer] = h_ty_part
        n_states[idx, layer] = states


def _count_layer_compiled(
    t: np.ndarray,
    coding: _Coding,
    y_codes: np.ndarray,
    k: int,
    layer: int,
    i_xt: np.ndarray,
    h_ty: np.ndarray,
    n_states: np.ndarray,
) -> np.ndarray:
    """Count every fast seed of one layer with the compiled kernel; the seeds it counted."""
    n_seeds, n, width = t.shape
    units = t.transpose(0, 2, 1)  # (S, width, n); a view, contiguous when t came units-first
    lo, inv, top = (_per_unit(v, n_seeds, width) for v in (coding.lo, coding.inv, coding.top))
    places = coding.weights / k  # exact: the weights are integer multiples of k below 2^53
    h_t, h_ty_s, states, done = hashcount.count_stacked(
        units, lo, inv, top, places, coding.bound // k, y_codes, k, np.flatnonzero(coding.fast),
        coding.binary,
        _plogp(n),
    )  # fmt: skip
    i_xt[done, layer] = h_t[done]
    h_ty[done, layer] = h_ty_s[done]
    n_states[done, layer] = states[done]
    return done


def _per_unit(values: np.ndarray | float, n_seeds: int, width: int) -> np.ndarray:
    """A coding parameter as a contiguous (S, width) float64 array."""
    if isinstance(values, float):
        return np.full((n_seeds, width), values)
    arr = np.asarray(values, dtype=np.float64)[:, :, 0]
    return np.ascontiguousarray(np.broadcast_to(arr, (n_seeds, width)))


def _part(values: np.ndarray | float, idx: np.ndarray) -> np.ndarray | float:
    return values if isinstance(values, float) else values[idx]


def _sorted_entropies(joint: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H(T), H(T,Y) and distinct states per row of sorted joint keys (key * k + label)."""
    m, n = joint.shape
    if k == 1:
        keys = joint
    elif k & (k - 1) == 0:
        keys = joint >> joint.dtype.type(k.bit_length() - 1)
    else:
        keys = joint // joint.dtype.type(k)
    new_t = _run_starts(keys)
    states = np.count_nonzero(new_t, axis=1)
    h_t = np.full(m, math.log2(n))
    h_ty = h_t.copy()
    mixed = states < n  # rows with a repeated state need counting
    if mixed.any():
        rows = slice(None) if mixed.all() else np.flatnonzero(mixed)
        new_t = new_t[rows]
        h_t[rows] = _run_entropies(new_t, states[rows])
        new_ty = _run_starts(joint[rows]) if k > 1 else new_t
        h_ty[rows] = _run_entropies(new_ty, np.count_nonzero(new_ty, axis=1))
    return h_t, h_ty, states


def _run_starts(rows: np.ndarray) -> np.ndarray:
    new = np.empty(rows.shape, dtype=bool)
    new[:, 0] = True
    np.not_equal(rows[:, 1:], rows[:, :-1], out=new[:, 1:])
    return new


def _run_entropies(new: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Plug-in entropy in bits per row from the run starts of sorted rows."""
    m, n = new.shape
    counts = np.diff(np.flatnonzero(new), append=m * n)
    first = np.concatenate([[0], np.cumsum(runs)[:-1]])
    plogp = _plogp(n)[counts]
    return np.maximum(math.log2(n) - np.add.reduceat(plogp, first) / n, 0.0)


@functools.lru_cache(maxsize=8)
def _plogp(n: int) -> np.ndarray:
    """c log2 c for the counts c = 0..n (0 for c = 0), looked up instead of computed."""
    c = np.arange(n + 1, dtype=np.float64)
    c[0] = 1.0
    return c * np.log2(c)
