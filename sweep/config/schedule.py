"""The MI schedule: the epochs on which a run is measured."""

from __future__ import annotations

import numpy as np


def measured_epochs(
    epochs: int, every: int | None = None, log_points: int | None = None
) -> set[int]:
    """The MI schedule: epoch 0, then every k-th epoch or N log-spaced epochs, and the last."""
    if log_points is not None:
        pts = np.unique(np.round(np.logspace(0, np.log10(epochs), log_points)).astype(int))
        return {0, *pts.tolist(), epochs}
    step = every or 1
    return {0, *range(step, epochs + 1, step), epochs}
