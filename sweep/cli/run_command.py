"""``ibsweep run`` (and the default job): a sweep run, its summary printed, its exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from ibsweep.sweep.execution.outcome import SweepResult
from ibsweep.sweep.execution.run import run_sweep

INTERRUPTED = 130


def run_command(
    file: str | Path,
    tracking_uri: str | None = None,
    address: str | None = None,
    restart: bool = False,
    analyze: bool = True,
) -> int:
    """Run a sweep with progress on stderr, print what it did; returns the exit code."""
    result = run_sweep(file, tracking_uri, address, restart, analyze, progress=sys.stderr)
    return report(result)


def report(result: SweepResult) -> int:
    """Print a sweep's result: counts, failures, the best sample, the analysis; the exit code."""
    if result.already_complete:
        print(
            f"sweep '{result.name}' is already complete (parent run {result.parent_id}); "
            "--restart runs it again",
            file=sys.stderr,
        )
        return 0
    if result.tracking_error:
        print(f"ibsweep: error: {result.tracking_error}", file=sys.stderr)
        return 1
    print(
        f"\nsweep '{result.name}': {result.runs} runs — {result.finished} finished, "
        f"{result.failed} failed, {result.unfinished} unfinished"
    )
    for name, reason in result.failures:
        print(f"  FAILED {name}: {reason}")
    if result.best is not None:
        overrides, value = result.best
        chosen = ", ".join(
            f"train.{k}={v:.4g}" if isinstance(v, float) else f"train.{k}={v}"
            for k, v in overrides.items()
        )
        print(f"best: {chosen} ({result.search_metric} {value:.4f}, seed mean)")
    if result.interrupted:
        print(
            "interrupted: run the same command again to resume "
            "(finished runs are kept; unfinished ones continue from their checkpoints)",
            file=sys.stderr,
        )
        return INTERRUPTED
    if result.analysis is not None:
        # the analysis modules cost a driver seconds to import: only when there is one to print
        from ibsweep.sweep.cli.analyze_command import print_analysis

        print_analysis(result.analysis)
    elif result.analysis_error:
        print(
            f"analysis failed: {result.analysis_error}; rerun with: ibsweep analyze {result.name}",
            file=sys.stderr,
        )
    print(f"results: ibsweep ui --tracking-uri {result.tracking_uri}")
    return 1 if result.failures else 0
