"""``ibsweep analyze``: run the analysis of a sweep and print its verdict table."""

from __future__ import annotations

import math
from pathlib import Path

from ibsweep.analysis.fetch import FetchError
from ibsweep.analysis.sweep_analysis import SweepAnalysis
from ibsweep.analysis.sweep_analysis import analyze_sweep as run_analysis
from ibsweep.sweep.errors import UsageError
from ibsweep.sweep.tracking.uri import resolve_tracking_uri

_SHOWN = ("expansion", "compression", "t50", "boundary_peak")


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}"


def print_verdicts(result: SweepAnalysis) -> None:
    """The verdict table: one line per configuration and layer."""
    v = result.verdicts
    cols = [c for c in result.display_cols if c in v.columns]
    names = [c.rsplit(".", 1)[-1] for c in cols]
    widths = [max(len(n), *(len(str(x)) for x in v[c])) for n, c in zip(names, cols, strict=True)]
    head = "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))
    stats = "  ".join(f"{s + ' [95% CI]':<24}" for s in _SHOWN)
    print(f"{head}  layer  seeds  {'verdict (agreement)':<26}{stats}")
    for _, row in v.iterrows():
        config = "  ".join(str(row[c]).ljust(w) for c, w in zip(cols, widths, strict=True))
        verdict = f"{row['verdict']} ({row['verdict_confidence']:.0%})"
        cells = "  ".join(
            f"{_fmt(row[f'{s}_median']) + ' [' + _fmt(row[f'{s}_ci_low']) + ', '}"
            f"{_fmt(row[f'{s}_ci_high'])}]".ljust(24)
            for s in _SHOWN
        )
        print(f"{config}  {int(row['layer']):>5}  {int(row['n_seeds']):>5}  {verdict:<26}{cells}")


def analyze_command(
    name: str, tracking_uri: str | None, out: str | None, log_to_mlflow: bool = False
) -> int:
    """Analyse sweep ``name``; print the verdicts and where everything was written."""
    uri = resolve_tracking_uri(tracking_uri, None)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        raise UsageError(f"no MLflow store at {uri}; give --tracking-uri (sweeps write one)")
    out_dir = Path(out) if out else Path("ibsweep-results") / name
    try:
        result = run_analysis(uri, name, out_dir, log_to_mlflow)
    except FetchError as err:
        raise UsageError(str(err)) from None
    print_analysis(result)
    return 0


def print_analysis(result: SweepAnalysis) -> None:
    """The verdict table, then what was fetched and where everything was written."""
    print_verdicts(result)
    state = "up to date, nothing changed" if result.up_to_date else f"{result.fetched} fetched"
    print(
        f"\n{result.n_runs} runs ({state}); written to {result.out_dir}/: series.parquet, "
        "verdicts.csv, comparisons.csv, phases.csv, report.md, report.html, figures/"
    )
