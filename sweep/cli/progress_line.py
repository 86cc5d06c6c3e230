"""``ibsweep train``'s progress: one line on stderr, rewritten in place on a terminal."""

from __future__ import annotations

import sys
import time

import numpy as np

from ibsweep.models.training import EpochRecord


class ProgressLine:
    """A one-line progress display on stderr (rewritten in place on a terminal)."""

    def __init__(self, total: int, stream=None) -> None:
        self.total, self.stream = total, stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()
        self.step = max(1, total // 10)

    def __call__(self, record: EpochRecord) -> None:
        """Show epoch, loss and accuracy (seed mean) and the time left."""
        e = record.epoch
        if not (self.tty or e % self.step == 0 or e == self.total):
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / e * (self.total - e) if e else float("nan")
        act = record.active
        line = (
            f"epoch {e:>5}/{self.total}  loss {np.mean(record.loss[act]):.4f}  "
            f"train {np.mean(record.train_acc[act]):.3f}  test {np.mean(record.test_acc[act]):.3f}"
            f"  {elapsed:6.1f}s elapsed, ~{eta:5.1f}s left"
        )
        end = "\r" if self.tty and e < self.total else "\n"
        print(line, end=end, file=self.stream, flush=True)
