"""Live progress of a sweep: trials done/running/pending/failed, work done and an ETA."""

from __future__ import annotations

import time
from typing import TextIO

from ray.tune import Callback


def _duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class SweepProgress(Callback):
    """Prints one progress line every ``every_s`` seconds (in place on a terminal)."""

    def __init__(
        self, n_trials: int, seed_epochs: int, stream: TextIO, every_s: float = 5.0
    ) -> None:
        self.n_trials, self.total_work = n_trials, seed_epochs
        self.every_s = every_s
        self.stream = stream
        self.start = time.time()
        self.last_print = 0.0
        self.epochs: dict[str, int] = {}
        self.first_epochs: dict[str, int] = {}
        self.seeds: dict[str, int] = {}
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.running: set[str] = set()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        """A trial started (or restarted)."""
        self.running.add(trial.trial_id)
        self.seeds[trial.trial_id] = len(trial.config.get("trial", {}).get("seeds", [0]))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        """A trial reported its epoch."""
        epoch = int(result.get("epoch", 0))
        searched = "search" in trial.config.get("trial", {})  # search trials report no start
        self.first_epochs.setdefault(trial.trial_id, 0 if searched else epoch)
        self.epochs[trial.trial_id] = epoch
        self._maybe_print()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        """A trial finished."""
        self.running.discard(trial.trial_id)
        self.done.add(trial.trial_id)
        self._maybe_print(force=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        """A trial failed for good."""
        self.running.discard(trial.trial_id)
        self.failed.add(trial.trial_id)
        self._maybe_print(force=True)

    def on_step_end(self, iteration, trials, **info) -> None:
        """Periodic refresh."""
        self._maybe_print()

    def on_experiment_end(self, trials, **info) -> None:
        """Final line."""
        self._maybe_print(force=True, final=True)

    def line(self) -> str:
        """The current progress line."""
        work = sum(self.epochs[t] * self.seeds.get(t, 1) for t in self.epochs)
        fresh = sum(
            (self.epochs[t] - self.first_epochs.get(t, 0)) * self.seeds.get(t, 1)
            for t in self.epochs
        )
        elapsed = time.time() - self.start
        rate = fresh / elapsed if elapsed > 0 else 0.0
        eta = (self.total_work - work) / rate if rate > 0 else float("nan")
        pending = self.n_trials - len(self.done) - len(self.failed) - len(self.running)
        return (
            f"trials {len(self.done)} done, {len(self.running)} running, {max(pending, 0)} pending,"
            f" {len(self.failed)} failed | seed-epochs {work}/{self.total_work} "
            f"({rate:.0f}/s) | elapsed {_duration(elapsed)}, ETA {_duration(eta)}"
        )

    def _maybe_print(self, force: bool = False, final: bool = False) -> None:
        now = time.time()
        if not force and now - self.last_print < self.every_s:
            return
        self.last_print = now
        tty = self.stream.isatty()
        end = "\n" if final or not tty else "\r"
        print(self.line(), end=end, file=self.stream, flush=True)
