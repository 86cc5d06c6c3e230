"""``ibsweep data``: what a dataset holds, and its export as npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ibsweep.models.datasets import Dataset, DatasetError, load_dataset, split_indices
from ibsweep.sweep.errors import UsageError


def load_or_usage_error(name: str, data_dir: str | None) -> Dataset:
    """Load a dataset by name; a missing or bad one becomes a one-line usage error."""
    try:
        return load_dataset(name, data_dir)
    except DatasetError as err:
        raise UsageError(str(err)) from None


def describe_dataset(name: str, data_dir: str | None, export: str | None, seed: int) -> int:
    """Print size, input shape, classes, label entropy and split; optionally export npz."""
    ds = load_or_usage_error(name, data_dir)
    train_idx, test_idx = split_indices(ds, seed)
    counts = np.bincount(ds.y, minlength=ds.n_classes)
    split = "official" if ds.official_split is not None else f"seeded (seed {seed})"
    if ds.stratified and ds.official_split is None:
        split = f"stratified, {split}"
    print(f"dataset        {ds.name}")
    print(f"samples        {ds.n}")
    print(f"input shape    {ds.input_shape} ({ds.n_features} features)")
    print(f"binary inputs  {'yes' if ds.binary_inputs else 'no'}")
    print(f"classes        {ds.n_classes}  (counts {', '.join(str(c) for c in counts)})")
    print(f"label entropy  {ds.label_entropy:.5f} bits")
    print(f"split          {split}: {len(train_idx)} train / {len(test_idx)} test")
    print(f"MI measured on {ds.default_measure} by default")
    if export:
        path = Path(export)
        if path.suffix != ".npz":
            raise UsageError(f"--export path must end in .npz, got '{export}'")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, x=ds.x, y=ds.y, train_idx=train_idx, test_idx=test_idx)
        print(f"exported       {path}")
    return 0
