"""Compiled counting of distinct binned rows: H(T), H(T,Y) and the states of a stack of seeds.

``count_stacked`` codes one layer of every seed (units first, (S, width, n)) as
``estimate_stacked``'s numpy path does, and counts the distinct rows with a hash table instead
of a sort: O(n) per seed, one call per layer for all seeds. Codes and keys are exact, so the
states and counts are those of the per-layer estimators; the entropies differ from theirs only
by the order of a floating-point sum (well below 1e-12 bits).

- Binning (``binary`` False): code = floor(clip((float64(t) - lo) * inv, 0, top)) per unit,
  the arithmetic of ``BinningEstimator``; lo, inv and top are given per seed and unit. A seed
  with a value that is not finite is marked not done.
- Binary exact (``binary`` True): ``lo[s, 0]`` and ``top[s, 0]`` hold the seed's maximum and
  minimum (finite: the caller checks); the maximum gets code 1, the minimum 0, and a seed with
  any other value is marked not done.

The row key is the mixed-radix number of the codes (``places``), exact below 2^53. Each key gets
a slot in an open-addressing table (multiplicative hash, linear probing, at most a quarter
full) whose counters count its (key, label) pairs; where few rows are possible (``space`` times
the classes at most n) the key itself indexes the counters. The counters give both plug-in
entropies. Seeds marked not done are left to the caller (``estimate_stacked`` runs the
estimator itself on them, which reports bad values as it always does).

numba compiles the kernel on first use and caches it beside this file (or in numba's user-wide
cache folder when this one is read-only); without a usable cache it compiles once per process.
Without numba, ``available()`` is False and ``estimate_stacked`` keeps its numpy path.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ibsweep.models.compiled import compile_loop

# Samples x classes up to which the kernel is used. Its counters (4-8 per sample and class) are
# reached at random: beyond this they fall out of the caches, and the numpy path's sorts win
# (measured, 5 tanh layers, per seed: 10,000 x 10 classes 1.8 ms against 2.1; 60,000 x 2 4.9
# against 11.7; 20,000 x 10 3.9 against 3.7; 60,000 x 10 28 against 15).
_MAX_SAMPLE_CLASSES = 1 << 17
_LOAD = 4  # table slots per sample: at most a quarter of them are used
_MULTIPLIER = 0x9E3779B97F4A7C15  # Fibonacci hashing: the key times 2^64 / golden ratio


def available() -> bool:
    """Whether the compiled kernel can run here (numba importable and compiling)."""
    return _kernel() is not None


def fits(n: int, n_classes: int) -> bool:
    """Whether the kernel pays for n samples with this many classes (else the numpy path)."""
    return n * n_classes <= _MAX_SAMPLE_CLASSES


def count_stacked(
    units: np.ndarray,
    lo: np.ndarray,
    inv: np.ndarray,
    top: np.ndarray,
    places: np.ndarray,
    space: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    seeds: np.ndarray,
    binary: bool,
    plogp: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """H(T), H(T,Y), states and done per seed (S,) for the seeds listed in ``seeds``.

    ``units`` is (S, width, n) float32 or float64; ``lo``, ``inv``, ``top`` and ``places`` are
    (S, width) float64 (binary: only ``places`` is read); ``space`` (S,) the number of possible
    rows (keys below it); ``labels`` (1 or S, n) int64 codes
    below ``n_classes``; ``plogp`` c log2 c for c = 0..n. Seeds not listed are left as NaN, 0,
    False.
    """
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("the compiled counting kernel needs numba")
    n_seeds = units.shape[0]
    h_t = np.full(n_seeds, np.nan)
    h_ty = np.full(n_seeds, np.nan)
    states = np.zeros(n_seeds, dtype=np.int64)
    done = np.zeros(n_seeds, dtype=np.bool_)
    kernel(
        units, lo, inv, top, places, space, labels, n_classes, seeds, binary, plogp,
        h_t, h_ty, states, done,
    )  # fmt: skip
    return h_t, h_ty, states, done


def _count(
    units, lo, inv, top, places, space, labels, k, seeds, binary, plogp, h_t, h_ty, states, done
):
    n_units, n = units.shape[1], units.shape[2]
    bits = 4
    while (1 << bits) < _LOAD * n:
        bits += 1
    size = 1 << bits
    shift = np.uint64(64 - bits)
    mask = np.uint64(size - 1)
    slot_key = np.full(size, -1, dtype=np.int64)
    joint = np.zeros(size * k, dtype=np.int32)  # zero between seeds: used cells are reset
    used = np.zeros(n, dtype=np.int64)
    keys = np.zeros(n, dtype=np.float64)
    hashes = np.zeros(n, dtype=np.uint64)
    log_n = math.log2(n)
    shared = labels.shape[0] == 1
    for s in seeds:
        keys[:] = 0.0
        finite = True
        if binary:
            big, small = lo[s, 0], top[s, 0]
            n_two = 0
            for j in range(n_units):
                row = units[s, j]
                p = places[s, j] if big > small else 0.0
                for i in range(n):
                    v = np.float64(row[i])
                    upper = v == big
                    n_two += upper | (v == small)
                    keys[i] += p if upper else 0.0
            if n_two != n_units * n:
                continue
        else:
            for j in range(n_units):
                row = units[s, j]
                low, scale, last, p = lo[s, j], inv[s, j], top[s, j], places[s, j]
                bad = 0
                for i in range(n):
                    v = np.float64(row[i])
                    bad += v - v != 0.0  # NaN or infinite
                    b = (v - low) * scale
                    b = b if b > 0.0 else 0.0
                    b = b if b < last else last
                    keys[i] += math.floor(b) * p
                if bad:
                    finite = False
                    break
            if not finite:
                continue
        y = labels[0] if shared else labels[s]
        u = 0
        sum_t = 0.0
        sum_ty = 0.0
        if space[s] * k <= n:  # few possible rows: the key is the slot, and all are scanned
            outside = 0
            for i in range(n):
                h = np.int64(keys[i])
                outside += (h < 0) | (h >= space[s])  # cannot happen; kept off other memory
                h = min(max(h, 0), space[s] - 1)
                joint[h * k + y[i]] += 1
            if outside:
                joint[: space[s] * k] = 0
                continue
            for h in range(space[s]):
                c_t = 0
                for c_y in range(h * k, h * k + k):
                    c = joint[c_y]
                    if c:
                        c_t += c
                        sum_ty += plogp[c]
                        joint[c_y] = 0
                if c_t:
                    u += 1
                    sum_t += plogp[c_t]
        else:
            for i in range(n):  # hashes first: a loop without branches, vectorised
                hashes[i] = (np.uint64(np.int64(keys[i])) * np.uint64(_MULTIPLIER)) >> shift
            for i in range(n):
                key = np.int64(keys[i])
                h = hashes[i]
                found = slot_key[h]
                while found != key and found != -1:  # linear probing
                    h = (h + np.uint64(1)) & mask
                    found = slot_key[h]
                slot_key[h] = key
                used[u] = h
                u += found == -1
                joint[h * k + y[i]] += 1
            for c in range(u):
                h = used[c]
                slot_key[h] = -1
                c_t = 0
                for c_y in range(h * k, h * k + k):
                    c = joint[c_y]
                    c_t += c
                    sum_ty += plogp[c]
                    joint[c_y] = 0
                sum_t += plogp[c_t]
        h_t[s] = max(log_n - sum_t / n, 0.0)
        h_ty[s] = max(log_n - sum_ty / n, 0.0)
        states[s] = u
        done[s] = True


@functools.cache
def _kernel() -> Callable[..., Any] | None:
    """The compiled counting kernel; None without numba."""
    return compile_loop(_count)
