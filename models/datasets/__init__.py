"""Dataset loaders: the Tishby 12-bit set, sklearn digits, MNIST, Fashion-MNIST and CIFAR-10."""

from models.datasets.base import Dataset, DatasetError, measure_indices, split_indices
from models.datasets.registry import DATASETS, load_dataset

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "load_dataset",
    "measure_indices",
    "split_indices",
]
