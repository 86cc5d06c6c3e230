"""Compiled counting of distinct rows: H(T), H(T,Y), H(T,Y') and the states of a stack of seeds.

``count_stacked`` codes one layer of every seed (units first, (S, width, n)) as
``estimate_stacked``'s numpy path does, and counts the distinct rows with a hash table instead
of a sort: O(n) per seed, one call per layer and estimator for all seeds. Codes and keys are
exact, so the states and counts are those of the per-layer estimators; the entropies differ from
theirs only by the order of a floating-point sum (well below 1e-12 bits). Three codings:

- ``BINNING``: code = floor(clip((float64(t) - lo) * inv, 0, top)) per unit, the arithmetic of
  ``BinningEstimator``; lo, inv and top are given per seed and unit (top below 2^31: the floor
  is a truncation to int32, which vectorises). A seed with a value that is not finite (read
  off its bits, which vectorises too) is marked not done.
- ``BINARY`` (exact, two values): the seed's first value and the first other one are its two
  values (both finite, or the seed is not done); the larger gets code 1, the other 0, and a
  seed with a third value is marked not done.
- ``ROWS`` (exact, any values): a row's key is a 63-bit hash of its values' bits (-0.0 read as
  0.0); rows with equal keys are compared value by value, so a hash collision never merges two
  states. A seed with a value that is not finite is marked not done.

The row key of the first two codings is the mixed-radix number of the codes (``places``), exact
below 2^53. Each key gets a slot in an open-addressing table (multiplicative hash, linear
probing, at most a quarter full) that numbers the distinct rows 0..u-1; where few rows are
possible (``space`` times the classes at most n) the key itself is the row's number. Counters
per (number, label) then give the plug-in entropies; a second label vector (``perm``, e.g. the
labels under a fixed permutation) is a second set of counters on the same numbers. Only numbers
held by two rows or more are counted per label (a singleton adds 1 log2 1 = 0 to every sum), so
a near-injective layer costs little more than its numbering, and one whose n rows are all
distinct nothing more: every entropy is log2 n.

Seeds marked not done are left to the caller (``estimate_stacked`` runs the estimator itself on
them, which reports bad values as it always does).

numba compiles the kernel on first use and caches it beside this file (or in numba's user-wide
cache folder when this one is read-only); without a usable cache it compiles once per process.
Without numba, ``available()`` is False and ``estimate_stacked`` keeps its numpy path.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ibsweep.models.compiled import compile_loop

# Samples x classes up to which the kernel is used. Its counters (4-8 per sample and class) are
# reached at random: beyond this they fall out of the caches, and the numpy path's sorts win
# (measured, 5 tanh layers, per seed: 10,000 x 10 classes 1.8 ms against 2.1; 60,000 x 2 4.9
# against 11.7; 20,000 x 10 3.9 against 3.7; 60,000 x 10 28 against 15).
_MAX_SAMPLE_CLASSES = 1 << 17
_LOAD = 4  # table slots per sample: at most a quarter of them are used
_SPARSE = 8  # rows to tell apart below 1 in this many: hashed one by one, not unit by unit
_MULTIPLIER = 0x9E3779B97F4A7C15  # Fibonacci hashing: the key times 2^64 / golden ratio
_ROW_MIX = 0xFF51AFD7ED558CCD  # mixes a row's value bits into its hash (MurmurHash3's finaliser)
MAX_CODE = 2**31 - 1  # codes are truncated to int32

BINNING, BINARY, ROWS = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Counts:
    """Per seed (S,): H(T), H(T,Y), H(T,Y') in bits (NaN where not counted or no Y'), the
    number of distinct rows, whether the seed was counted, and (``BINARY``, (S, 2)) the two
    values a counted seed holds, lower first (equal for a constant seed)."""

    h_t: np.ndarray
    h_ty: np.ndarray
    h_ty_perm: np.ndarray
    states: np.ndarray
    done: np.ndarray
    values: np.ndarray


def available() -> bool:
    """Whether the compiled kernel can run here (numba importable and compiling)."""
    return _kernel() is not None


def fits(n: int, n_classes: int) -> bool:
    """Whether the kernel pays for n samples with this many classes (else the numpy path)."""
    return n * n_classes <= _MAX_SAMPLE_CLASSES


def count_stacked(
    units: np.ndarray,
    mode: int,
    lo: np.ndarray,
    inv: np.ndarray,
    top: np.ndarray,
    places: np.ndarray,
    space: np.ndarray,
    labels: np.ndarray,
    perm: np.ndarray | None,
    n_classes: int,
    seeds: np.ndarray,
    plogp: np.ndarray,
    rows: np.ndarray | None = None,
    repeated: np.ndarray | None = None,
) -> Counts:
    """Count the seeds listed in ``seeds`` of one layer; the others are left NaN, 0, not done.

    ``units`` is (S, width, n) float32 or float64; ``lo``, ``inv``, ``top`` and ``places`` are
    (S, width) float64 (``BINARY``: only ``places`` is read; ``ROWS``: none); ``space`` (S,)
    the number of possible rows (keys below it); ``labels`` and
    ``perm`` (1 or S, n) int64 codes below ``n_classes`` (``perm`` None: no second count);
    ``plogp`` c log2 c for c = 0..n.

    ``rows`` (S, n) bool, ``ROWS`` only: the rows to tell apart; the others are known to be
    alone in their state (another partition that this one refines told them apart), so they
    are counted as singletons without hashing, and known to be finite (the kernel that
    counted that partition checked them). ``repeated`` (S, n) bool, if given, receives for
    each counted seed whether each row's state is held by another row too.
    """
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("the compiled counting kernel needs numba")
    if units.dtype == np.float32:
        bits, sign, exponent = units.view(np.uint32), np.uint32(1 << 31), np.uint32(0x7F800000)
    elif units.dtype == np.float64:
        bits, sign, exponent = units.view(np.uint64), np.uint64(1 << 63), np.uint64(0x7FF << 52)
    else:
        raise TypeError(f"the counting kernel takes float32 or float64 layers, not {units.dtype}")
    n_seeds = units.shape[0]
    h_t = np.full(n_seeds, np.nan)
    h_ty = np.full(n_seeds, np.nan)
    h_ty_perm = np.full(n_seeds, np.nan)
    states = np.zeros(n_seeds, dtype=np.int64)
    done = np.zeros(n_seeds, dtype=np.bool_)
    values = np.full((n_seeds, 2), np.nan)
    no_perm = np.zeros((0, labels.shape[1]), dtype=np.int64)
    none = np.zeros((0, 0), dtype=np.bool_)
    kernel(
        units, bits, sign, exponent, mode, lo, inv, top, places, space, labels,
        no_perm if perm is None else perm, n_classes, seeds, plogp,
        none if rows is None else rows, none if repeated is None else repeated,
        h_t, h_ty, h_ty_perm, states, done, values,
    )  # fmt: skip
    return Counts(h_t, h_ty, h_ty_perm, states, done, values)


def _count(
    units, bits, sign, exponent, mode, lo, inv, top, places, space, labels, perm, k, seeds,
    plogp, rows, repeated, h_t, h_ty, h_ty_perm, states, done, values,
):  # fmt: skip
    n_units, n = units.shape[1], units.shape[2]
    table_bits = 4
    while (1 << table_bits) < _LOAD * n:
        table_bits += 1
    size = 1 << table_bits
    shift = np.uint64(64 - table_bits)
    mask = np.uint64(size - 1)
    slot_key = np.full(size, -1, dtype=np.int64)
    slot_id = np.zeros(size, dtype=np.int64)
    used = np.zeros(n, dtype=np.int64)  # the slot of each row number
    first = np.zeros(n, dtype=np.int64)  # a sample holding each row number (rows are compared)
    ids = np.zeros(n, dtype=np.int64)
    keys = np.zeros(n, dtype=np.float64)
    hashes = np.zeros(n, dtype=np.uint64)
    # number n: rows known to be alone (``rows``), never counted (its per_id stays 0)
    per_id = np.zeros(n + 1, dtype=np.int32)  # zero between seeds: used cells are reset
    multi = np.zeros(n, dtype=np.int64)
    counts = np.zeros((n + 1) * k, dtype=np.int32)
    counts_perm = np.zeros((n + 1) * k, dtype=np.int32)
    some_rows = rows.shape[0] > 0
    with_repeated = repeated.shape[0] > 0
    log_n = math.log2(n)
    shared = labels.shape[0] == 1
    with_perm = perm.shape[0] > 0
    shared_perm = perm.shape[0] == 1
    for s in seeds:
        # 1. one key per row
        if mode == BINNING:
            keys[:] = 0.0
            bad = 0
            for j in range(n_units):
                low, scale, last, p = lo[s, j], inv[s, j], top[s, j], places[s, j]
                for i in range(n):
                    bad += (bits[s, j, i] & exponent) == exponent  # NaN or infinite
                    b = (np.float64(units[s, j, i]) - low) * scale
                    b = min(max(b, 0.0), last)
                    keys[i] += np.float64(np.int32(b)) * p  # b >= 0: truncation is floor
            if bad:
                continue
        elif mode == BINARY:
            keys[:] = 0.0
            big = small = np.float64(units[s, 0, 0])
            finite = (bits[s, 0, 0] & exponent) != exponent
            for j in range(n_units):  # the first value that differs from the first
                for i in range(n):
                    if units[s, j, i] != units[s, 0, 0]:
                        finite &= (bits[s, j, i] & exponent) != exponent
                        big = max(big, np.float64(units[s, j, i]))
                        small = min(small, np.float64(units[s, j, i]))
                        break
                if big != small:
                    break
            if not finite:
                continue
            two = True
            for j in range(n_units):
                p = places[s, j] if big > small else 0.0
                n_two = 0
                for i in range(n):
                    v = np.float64(units[s, j, i])
                    upper = v == big
                    n_two += upper | (v == small)
                    keys[i] += p if upper else 0.0
                if n_two != n:
                    two = False
                    break
            if not two:
                continue
            values[s, 0] = small
            values[s, 1] = big
        else:
            hashes[:] = 0
            bad = 0
            n_hashed = n
            if some_rows:
                n_hashed = 0
                for i in range(n):
                    n_hashed += rows[s, i]
            if n_hashed * _SPARSE >= n:  # unit by unit over every row: vectorised
                for j in range(n_units):
                    for i in range(n):
                        b = bits[s, j, i]
                        bad += (b & exponent) == exponent  # NaN or infinite
                        b = 0 if b == sign else b  # -0.0 is 0.0
                        hashes[i] = (hashes[i] ^ np.uint64(b)) * np.uint64(_ROW_MIX)
            else:  # few rows to tell apart: only theirs
                for i in range(n):
                    if rows[s, i]:
                        for j in range(n_units):
                            b = bits[s, j, i]
                            bad += (b & exponent) == exponent
                            b = 0 if b == sign else b
                            hashes[i] = (hashes[i] ^ np.uint64(b)) * np.uint64(_ROW_MIX)
            if bad:
                continue
        y = labels[0] if shared else labels[s]
        yp = (perm[0] if shared_perm else perm[s]) if with_perm else y
        sum_t = 0.0
        sum_ty = 0.0
        sum_typ = 0.0
        if mode != ROWS and space[s] * k <= n:
            # 2a. few possible rows: the key is the row's number; one pass counts everything
            n_ids = space[s]
            for i in range(n):  # keys lie below space (clamped only to keep memory safe)
                c = min(max(np.int64(keys[i]), 0), n_ids - 1)
                ids[i] = c
                counts[c * k + y[i]] += 1
                counts_perm[c * k + yp[i]] += 1
            u = 0
            for c in range(n_ids):
                held = 0
                for cell in range(c * k, c * k + k):
                    held += counts[cell]
                    sum_ty += plogp[counts[cell]]
                    sum_typ += plogp[counts_perm[cell]]
                    counts[cell] = 0
                    counts_perm[cell] = 0
                per_id[c] = held
                if held:
                    u += 1
                    sum_t += plogp[held]
            if with_repeated:
                for i in range(n):
                    repeated[s, i] = per_id[ids[i]] > 1
            for c in range(n_ids):
                per_id[c] = 0
            h_t[s] = max(log_n - sum_t / n, 0.0)
            h_ty[s] = max(log_n - sum_ty / n, 0.0)
            if with_perm:
                h_ty_perm[s] = max(log_n - sum_typ / n, 0.0)
            states[s] = u
            done[s] = True
            continue
        # 2b. a number per row (the slot's in the hash table), and the count of each number;
        # ``multi`` lists the numbers held by more than one row
        m = 0
        u = 0
        alone = 0
        for i in range(n):
            if some_rows and not rows[s, i]:
                ids[i] = n
                alone += 1
                continue
            if mode == ROWS:
                hh = hashes[i]
                key = np.int64((hh ^ (hh >> np.uint64(33))) >> np.uint64(1))  # non-negative
            else:
                key = np.int64(keys[i])
            h = (np.uint64(key) * np.uint64(_MULTIPLIER)) >> shift
            while True:  # linear probing
                found = slot_key[h]
                if found == -1:
                    slot_key[h] = key
                    slot_id[h] = u
                    used[u] = h
                    first[u] = i
                    ids[i] = u
                    per_id[u] = 1
                    u += 1
                    break
                if found == key:
                    same = True
                    if mode == ROWS:  # equal hashes: equal only if every value is
                        other = first[slot_id[h]]
                        for j in range(n_units):
                            if units[s, j, i] != units[s, j, other]:
                                same = False
                                break
                    if same:
                        c = slot_id[h]
                        ids[i] = c
                        per_id[c] += 1
                        if per_id[c] == 2:
                            multi[m] = c
                            m += 1
                        break
                h = (h + np.uint64(1)) & mask
        for c in range(u):
            slot_key[used[c]] = -1
        n_ids = u
        u += alone
        if with_repeated:
            for i in range(n):
                repeated[s, i] = per_id[ids[i]] > 1
        # 3. counters per (row number, label) of the numbers held more than once: a number
        # held by one row adds nothing to any sum of c log2 c (1 log2 1 = 0)
        if m:
            if with_perm:  # one pass for both label vectors, without branches
                for i in range(n):
                    c = ids[i]
                    held = np.int32(per_id[c] > 1)
                    counts[c * k + y[i]] += held
                    counts_perm[c * k + yp[i]] += held
            else:
                for i in range(n):
                    c = ids[i]
                    counts[c * k + y[i]] += np.int32(per_id[c] > 1)
            for r in range(m):
                c = multi[r]
                sum_t += plogp[per_id[c]]
                for cell in range(c * k, c * k + k):
                    sum_ty += plogp[counts[cell]]
                    counts[cell] = 0
                    if with_perm:
                        sum_typ += plogp[counts_perm[cell]]
                        counts_perm[cell] = 0
        for c in range(n_ids):
            per_id[c] = 0
        h_t[s] = max(log_n - sum_t / n, 0.0)
        h_ty[s] = max(log_n - sum_ty / n, 0.0)
        if with_perm:
            h_ty_perm[s] = max(log_n - sum_typ / n, 0.0)
        states[s] = u
        done[s] = True


@functools.cache
def _kernel() -> Callable[..., Any] | None:
    """The compiled counting kernel; None without numba."""
    return compile_loop(_count)
