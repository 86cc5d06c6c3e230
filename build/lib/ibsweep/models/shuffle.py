"""Each seed's data order for an epoch: numpy's permutation, exactly, at a fraction of its cost.

``Generator.permutation(n)`` of ``np.random.default_rng([seed, epoch])`` draws, for i = n-1 down
to 1, a 32-bit word from PCG64's buffered stream (the low half of each 64-bit output first),
masks it to the smallest all-ones mask >= i, rejects values > i, and swaps positions i and j
(numpy's ``random_interval`` and Fisher-Yates). ``epoch_orders`` draws each seed's raw outputs
in bulk (``random_raw``) and replays that loop compiled (numba), so the orders are the same as
numpy's, which a test checks. A seed whose rejections would need more words than were drawn (in
practice never) and machines without numba take numpy's own ``permutation``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ibsweep.models.compiled import compile_loop

_SPARE_WORDS = 64  # 32-bit words drawn beyond two per position


def epoch_orders(rows: np.ndarray, seeds: Sequence[int], epoch: int) -> np.ndarray:
    """``rows[s][np.random.default_rng([seeds[s], epoch]).permutation(n)]`` for every seed s.

    ``rows`` is (S, n) int64: each seed's training rows.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    n_seeds, n = rows.shape
    kernel = _kernel()
    if kernel is None or n < 2 or n >= 2**32 or sys.byteorder != "little":
        return _numpy_orders(rows, seeds, epoch, range(n_seeds))
    n_raw = n + _SPARE_WORDS // 2  # two 32-bit words per 64-bit output
    raw = np.empty((n_seeds, n_raw), dtype=np.uint64)
    for s, seed in enumerate(seeds):
        raw[s] = np.random.PCG64([seed, epoch]).random_raw(n_raw)
    out = rows.copy()
    done = kernel(raw, out)
    if not done.all():
        out[~done] = _numpy_orders(rows, seeds, epoch, np.flatnonzero(~done))
    return out


def _numpy_orders(
    rows: np.ndarray, seeds: Sequence[int], epoch: int, which: Sequence[int]
) -> np.ndarray:
    n = rows.shape[1]
    return np.stack(
        [rows[s][np.random.default_rng([seeds[s], epoch]).permutation(n)] for s in which]
    )


def _shuffle(raw, out):
    n_seeds, n = out.shape
    done = np.ones(n_seeds, dtype=np.bool_)
    for s in range(n_seeds):
        row = out[s]
        words = raw[s].view(np.uint32)  # little-endian: each output's low half first
        i = n - 1
        mask = i | (i >> 1)  # the smallest all-ones mask >= i, kept as i falls
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        for pos in range(words.shape[0]):  # without branches: a rejected word swaps i with i
            if i == 0:
                break
            value = np.int64(words[pos]) & mask
            accept = value <= i
            j = value if accept else i
            kept = row[i]
            row[i] = row[j]
            row[j] = kept
            i -= accept
            mask >>= i <= (mask >> 1)
        done[s] = i == 0
    return done


@functools.cache
def _kernel() -> Callable[..., Any] | None:
    """The compiled shuffle; None without numba."""
    return compile_loop(_shuffle)
