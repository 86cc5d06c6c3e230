"""MNIST and Fashion-MNIST from their standard IDX files (plain or gzipped)."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ibsweep.models.datasets.base import Dataset
from ibsweep.models.datasets.files import DataFiles, DataRoot

N_CLASSES = 10
STEMS: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SOURCES: dict[str, str] = {
    "mnist": "the MNIST distribution files (yann.lecun.com/exdb/mnist or a mirror; "
    "torchvision's MNIST/raw folder has the same files)",
    "fashion_mnist": "the Fashion-MNIST distribution files (github.com/zalandoresearch/"
    "fashion-mnist, folder data/fashion; torchvision's FashionMNIST/raw folder has the same files)",
}
_UBYTE = 0x08  # IDX type code of unsigned bytes, the only type these datasets use


def load_idx_dataset(name: str, root: DataRoot) -> Dataset:
    """mnist or fashion_mnist from root/<name>/ or else root/; official split train then test."""
    files = DataFiles(name, tuple((s, s + ".gz") for s in STEMS), SOURCES[name])
    paths = files.locate(root, (root.path / name, root.path))
    train_x, train_y = _read_part(paths[0], paths[1], files)
    test_x, test_y = _read_part(paths[2], paths[3], files)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise files.bad_file(
            paths[2], f"images are {test_x.shape[1:]} but training images are {train_x.shape[1:]}"
        )
    n_train, n = len(train_x), len(train_x) + len(test_x)
    x = np.concatenate([train_x.reshape(n_train, -1), test_x.reshape(len(test_x), -1)])
    x = x.astype(np.float32)
    x /= np.float32(255)
    return Dataset(
        name=name,
        x=x,
        y=np.concatenate([train_y, test_y]).astype(np.int64),
        n_classes=N_CLASSES,
        input_shape=tuple(train_x.shape[1:]),
        binary_inputs=False,
        official_split=(np.arange(n_train), np.arange(n_train, n)),
        default_measure="test",
    )


def _read_part(
    images_path: Path, labels_path: Path, files: DataFiles
) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the training or test part, checked to match each other."""
    images, labels = read_idx(images_path, 3, files), read_idx(labels_path, 1, files)
    if len(images) != len(labels):
        raise files.bad_file(
            labels_path,
            f"holds {len(labels)} labels but {images_path.name} holds {len(images)} images",
        )
    if labels.size and labels.max() >= N_CLASSES:
        raise files.bad_file(labels_path, f"label {labels.max()} outside 0..{N_CLASSES - 1}")
    return images, labels


def read_idx(path: Path, ndim: int, files: DataFiles) -> np.ndarray:
    """An unsigned-byte IDX array of rank ndim, its header checked against the file's length."""
    buf = _read_bytes(path, files)
    header = 4 + 4 * ndim
    if len(buf) < 4:
        raise files.bad_file(path, f"only {len(buf)} bytes, too short for an IDX header")
    magic = int.from_bytes(buf[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        hint = (
            " (the data is gzip-compressed: name the file with .gz)"
            if buf[:2] == b"\x1f\x8b"
            else ""
        )
        raise files.bad_file(
            path,
            f"bad IDX magic number 0x{magic:08X}, expected 0x{expected:08X} "
            f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''}){hint}",
        )
    if len(buf) < header:
        raise files.bad_file(path, f"only {len(buf)} bytes, shorter than its {header}-byte header")
    dims = tuple(int(d) for d in np.frombuffer(buf, ">u4", count=ndim, offset=4))
    size = header + math.prod(dims)
    if len(buf) != size:
        raise files.bad_file(
            path,
            f"{len(buf)} bytes but its header declares dims {dims}, i.e. {size} bytes "
            f"({'truncated' if len(buf) < size else 'trailing data'})",
        )
    return np.frombuffer(buf, np.uint8, offset=header).reshape(dims)


def _read_bytes(path: Path, files: DataFiles) -> bytes:
    """The file's content, decompressed when its name ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise files.bad_file(path, f"cannot read it ({e})") from e
