"""A test hook: trials hold at chosen epochs, so tests can act on a sweep at a known moment.

Set ``IBSWEEP_TEST_HOLD`` in the driver's environment (it reaches every trial's worker, on
local Ray and on a cluster) to JSON: ``{"dir": FOLDER, "epochs": [E, ...]}``, with an
optional ``"labels": [TEXT, ...]`` that limits the hold to trials whose label contains one of
them. A trial that reaches epoch E takes a checkpoint there and, once the checkpoint is saved
(so MLflow holds every point up to E and Tune holds the state), creates
``FOLDER/<trial>@E.held`` and waits until ``FOLDER/go@E`` exists. Epochs listed under
``"reached"`` instead hold as soon as they are reached, saved or not (while the tracking store
is down, say). A trial restored past E does not hold again. Tests kill a driver or a node, or
stop the tracking server, while trials are held, instead of training long to catch them
mid-way.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

ENV = "IBSWEEP_TEST_HOLD"
_POLL_S = 0.05


@dataclass(frozen=True)
class Hold:
    """One trial's hold at one epoch."""

    folder: Path
    trial: str
    epoch: int
    saved: bool = True  # whether the hold waits for the epoch's checkpoint to be saved

    def done(self, checkpointed: bool) -> bool:
        """Whether the trial may go on; marks it held (once its checkpoint is saved)."""
        if checkpointed or not self.saved:
            marker = self.folder / f"{self.trial}@{self.epoch}.held"
            if not marker.exists():
                marker.touch()
            if (self.folder / f"go@{self.epoch}").exists():
                return True
        time.sleep(_POLL_S)
        return False


@dataclass(frozen=True)
class TestHolds:
    """The holds the environment asks of one trial (none when ``IBSWEEP_TEST_HOLD`` is unset)."""

    folder: Path | None = None
    epochs: frozenset[int] = frozenset()
    reached: frozenset[int] = frozenset()
    trial: str = ""

    @classmethod
    def from_env(cls, trial: str) -> TestHolds:
        """The holds for the trial named ``trial`` (its label and seeds)."""
        raw = os.environ.get(ENV)
        if not raw:
            return cls()
        spec = json.loads(raw)
        labels = spec.get("labels")
        if labels and not any(text in trial for text in labels):
            return cls()
        return cls(
            Path(spec["dir"]),
            frozenset(int(e) for e in spec.get("epochs", ())),
            frozenset(int(e) for e in spec.get("reached", ())),
            trial,
        )

    def at(self, epoch: int) -> Hold | None:
        """The hold at ``epoch``, if one is asked for."""
        if self.folder is None or epoch not in self.epochs | self.reached:
            return None
        return Hold(self.folder, self.trial, epoch, saved=epoch in self.epochs)
