"""CIFAR-10 from the standard python pickle batches."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ibsweep.models.datasets.base import Dataset
from ibsweep.models.datasets.files import DataFiles, DataRoot

N_CLASSES = 10
INPUT_SHAPE = (3, 32, 32)
N_FEATURES = 3 * 32 * 32
TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
SOURCE = "the 'CIFAR-10 python version' archive from www.cs.toronto.edu/~kriz/cifar.html, unpacked"
SUBFOLDER = "cifar-10-batches-py"

# Everything a CIFAR-10 batch (numpy arrays, lists, bytes) needs to unpickle, old and new numpy
# module names; any other global is refused, so a planted pickle cannot run code.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a CIFAR-10 batch uses."""

    def find_class(self, module: str, name: str) -> Any:
        """The named global, if it is one a batch needs; refuse anything else."""
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")
        return super().find_class(module, name)


def load_cifar10(root: DataRoot) -> Dataset:
    """cifar10 from root/ or root/cifar-10-batches-py/; official split: 5 batches, then test."""
    files = DataFiles("cifar10", tuple((b,) for b in (*TRAIN_BATCHES, TEST_BATCH)), SOURCE)
    paths = files.locate(root, (root.path, root.path / SUBFOLDER))
    batches = [_read_batch(p, files) for p in paths]
    n = sum(len(labels) for _, labels in batches)
    x = np.empty((n, N_FEATURES), np.float32)
    y = np.empty(n, np.int64)
    start = 0
    for data, labels in batches:
        stop = start + len(labels)
        x[start:stop] = data  # uint8 -> float32 straight into place, no float64 temporary
        y[start:stop] = labels
        start = stop
    x /= np.float32(255)
    n_train = n - len(batches[-1][1])
    return Dataset(
        name="cifar10",
        x=x,
        y=y,
        n_classes=N_CLASSES,
        input_shape=INPUT_SHAPE,
        binary_inputs=False,
        official_split=(np.arange(n_train), np.arange(n_train, n)),
        default_measure="test",
    )


def _read_batch(path: Path, files: DataFiles) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 (N, 3072), labels int64 (N,)) of one batch file, validated."""
    try:
        with path.open("rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can fail in many ways; all mean a bad file
        raise files.bad_file(path, f"not a readable pickle ({type(e).__name__}: {e})") from e
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise files.bad_file(path, "not a CIFAR-10 batch (a dict with b'data' and b'labels')")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise files.bad_file(path, "b'data' is not a 2-d uint8 array")
    if data.shape[1] != N_FEATURES:
        raise files.bad_file(path, f"b'data' rows have {data.shape[1]} values, not {N_FEATURES}")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise files.bad_file(path, f"b'labels' is not {len(data)} integers, one per image")
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise files.bad_file(path, f"labels outside 0..{N_CLASSES - 1}")
    return data, labels.astype(np.int64)
