"""The Dataset record, its error type, and the train/test/measure index splits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MEASURES: tuple[str, ...] = ("full", "train", "test")


class DatasetError(ValueError):
    """A dataset cannot be loaded or used as asked; the message says why and what is allowed."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset held in memory: flattened float32 inputs and int64 labels.

    Rows are in the dataset's canonical order (for official splits: training rows first).
    Without an official split, ``stratified`` makes the seeded split keep each class's share.
    `eq=False` because numpy arrays have no single truth value; datasets compare by identity.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    input_shape: tuple[int, ...]
    binary_inputs: bool
    official_split: tuple[np.ndarray, np.ndarray] | None
    default_measure: str
    stratified: bool = False

    def __post_init__(self) -> None:
        problem = _shape_problem(self)
        if problem:
            raise DatasetError(f"invalid dataset {self.name!r}: {problem}")

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        """Number of input features per example (the product of input_shape)."""
        return int(self.x.shape[1])

    @property
    def label_entropy(self) -> float:
        """Entropy H(Y) of the empirical label distribution over all n examples, in bits."""
        counts = np.bincount(self.y, minlength=self.n_classes)
        p = counts[counts > 0] / self.n
        return float(-(p * np.log2(p)).sum())


def _shape_problem(ds: Dataset) -> str:
    """What breaks the Dataset invariants, or '' when nothing does."""
    if ds.x.dtype != np.float32 or ds.x.ndim != 2:
        return f"x must be a 2-d float32 array, got {ds.x.ndim}-d {ds.x.dtype}"
    if ds.y.dtype != np.int64 or ds.y.shape != (ds.x.shape[0],):
        return f"y must be int64 of shape ({ds.x.shape[0]},), got {ds.y.dtype} {ds.y.shape}"
    if math.prod(ds.input_shape) != ds.x.shape[1]:
        return f"input_shape {ds.input_shape} does not match {ds.x.shape[1]} features"
    if ds.y.size and (ds.y.min() < 0 or ds.y.max() >= ds.n_classes):
        return f"labels must lie in 0..{ds.n_classes - 1}"
    if ds.default_measure not in MEASURES:
        return f"default_measure must be one of {', '.join(MEASURES)}, got {ds.default_measure!r}"
    return ""


def split_indices(
    ds: Dataset, seed: int, test_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx): the official split if there is one, else a seeded random split.

    A stratified dataset splits each class on its own (``round(n_class * test_fraction)`` of
    each to test, drawn by one generator seeded with ``seed``, class by class); the others
    draw one permutation of all rows (tishby's and digits' published splits).
    """
    if ds.official_split is not None:
        return ds.official_split
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    n_test = round(ds.n * test_fraction)
    if not 0 < n_test < ds.n:
        raise DatasetError(
            f"test_fraction {test_fraction} of {ds.n} examples leaves an empty train or test set"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    if not ds.stratified:
        perm = rng.permutation(ds.n)
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])
    test = []
    for c in range(ds.n_classes):
        rows = np.flatnonzero(ds.y == c)
        test.append(rng.permutation(rows)[: round(len(rows) * test_fraction)])
    test_idx = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(ds.n), test_idx), test_idx


def measure_indices(ds: Dataset, split: tuple[np.ndarray, np.ndarray], which: str) -> np.ndarray:
    """The rows mutual information is measured on: "full" (all n), "train" or "test"."""
    if which == "full":
        return np.arange(ds.n)
    if which == "train":
        return split[0]
    if which == "test":
        return split[1]
    raise DatasetError(f"unknown measure set {which!r}; allowed: {', '.join(MEASURES)}")
