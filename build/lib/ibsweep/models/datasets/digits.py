"""scikit-learn's bundled 8x8 handwritten digits (no download)."""

from __future__ import annotations

import numpy as np

from ibsweep.models.datasets.base import Dataset

MAX_PIXEL = 16  # the digits' pixel values are counts 0..16


def load_digits_dataset() -> Dataset:
    """The 1797 digits, pixels scaled to [0, 1]; no official split, MI measured on all rows."""
    from sklearn.datasets import load_digits  # imported here: sklearn is slow to import

    bunch = load_digits()
    return Dataset(
        name="digits",
        x=(bunch.data / MAX_PIXEL).astype(np.float32),
        y=bunch.target.astype(np.int64),
        n_classes=10,
        input_shape=(8, 8),
        binary_inputs=False,
        official_split=None,
        default_measure="full",
    )
