"""The Tishby 12-bit synthetic dataset, generated from its icosahedron rule (see science.md)."""

from __future__ import annotations

import math

import numpy as np

from ibsweep.models.datasets.base import Dataset

N_BITS = 12
ICOSAHEDRON_NEIGHBOURS: dict[int, tuple[int, ...]] = {
    0: (1, 3, 5, 10, 11),
    1: (0, 2, 3, 4, 11),
    2: (1, 3, 4, 8, 9),
    3: (0, 1, 2, 8, 10),
    4: (1, 2, 6, 9, 11),
    5: (0, 6, 7, 10, 11),
    6: (4, 5, 7, 9, 11),
    7: (5, 6, 8, 9, 10),
    8: (2, 3, 7, 9, 10),
    9: (2, 4, 6, 7, 8),
    10: (0, 3, 5, 7, 8),
    11: (0, 1, 4, 5, 6),
}
ANTIPODAL_PAIRS: tuple[tuple[int, int], ...] = ((0, 9), (1, 7), (2, 5), (3, 6), (4, 10), (8, 11))
# y = 1 iff w - QUADRATIC w^2 + SPHERICAL S > THRESHOLD; reproduces every label of var_u.mat.
QUADRATIC = 0.0517729
SPHERICAL = 0.14114255
THRESHOLD = 4.5262664


def tishby_bits() -> np.ndarray:
    """All 2^12 patterns as uint8 (4096, 12): row i is i in binary, most significant bit first."""
    i = np.arange(2**N_BITS)[:, None]
    return ((i >> np.arange(N_BITS - 1, -1, -1)) & 1).astype(np.uint8)


def tishby_labels(bits: np.ndarray) -> np.ndarray:
    """The icosahedron-rule label (int64 0/1) of each row of 12 bits."""
    b = bits.astype(np.int64)
    edges = [(a, c) for a, ns in ICOSAHEDRON_NEIGHBOURS.items() for c in ns if a < c]
    w = b.sum(axis=1)
    n1 = sum(b[:, a] * b[:, c] for a, c in edges)
    n3 = sum(b[:, a] * b[:, c] for a, c in ANTIPODAL_PAIRS)
    n2 = w * (w - 1) // 2 - n1 - n3
    s = w + 2 * ((n1 - n2) / math.sqrt(5) - n3)
    return (w - QUADRATIC * w**2 + SPHERICAL * s > THRESHOLD).astype(np.int64)


def make_tishby() -> Dataset:
    """The full 4096-pattern Tishby set; no official split, MI measured on all patterns."""
    bits = tishby_bits()
    return Dataset(
        name="tishby",
        x=bits.astype(np.float32),
        y=tishby_labels(bits),
        n_classes=2,
        input_shape=(N_BITS,),
        binary_inputs=True,
        official_split=None,
        default_measure="full",
    )
