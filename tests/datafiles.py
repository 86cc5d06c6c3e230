"""Writers of small dataset files in their standard formats, for tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

MNIST_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000080N, big-endian dims, raw bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim if magic is None else magic)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    """Write data to path (gzipped to path.gz when gz) and return the written path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_idx_set(rng: np.random.Generator, n_train: int = 50, n_test: int = 20, side: int = 28):
    """Random images and labels in the MNIST layout, keyed like MNIST_STEMS."""
    return {
        "train_images": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx_set(folder: Path, arrays: dict[str, np.ndarray], gz: bool) -> dict[str, Path]:
    """Write the four IDX files into folder; return their paths."""
    return {k: write_file(folder / MNIST_STEMS[k], idx_bytes(a), gz) for k, a in arrays.items()}
