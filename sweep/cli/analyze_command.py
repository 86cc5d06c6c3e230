"""``ibsweep analyze``: run the analysis of a sweep, print its claims and verdicts, list files."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ibsweep.analysis.fetch import FetchError
from ibsweep.analysis.settings import AnalysisSettingsError, parse_overrides
from ibsweep.analysis.sweep_analysis import SweepAnalysis
from ibsweep.analysis.sweep_analysis import analyze_sweep as run_analysis
from ibsweep.sweep.errors import UsageError
from ibsweep.sweep.tracking.uri import resolve_tracking_uri

_SHOWN = ("expansion", "compression", "t50")
VERDICT_HEADER = "verdict (reproducibility)"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _print_table(df: pd.DataFrame) -> None:
    cells = [[str(c) for c in df.columns]] + [[_fmt(v) for v in row] for row in df.to_numpy()]
    widths = [max(len(r[i]) for r in cells) for i in range(len(df.columns))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_claims(result: SweepAnalysis) -> None:
    """The claim tests: one line per tested pair, layer, estimator and statistic."""
    print("Claims (one-sided, paired by seed; effect in bits, positive: as the claim says)")
    if result.claims.empty:
        print("  none: no dnn and bnn configurations differ only in the model kind")
        return
    tested = result.claims["supported"] != "not tested"
    c = result.claims[tested]
    settings = [col for col in result.display_cols if col in c.columns]
    view = pd.DataFrame(
        {
            "dnn": c["dnn_model"],
            "bnn": c["bnn_model"],
            **{s.rsplit(".", 1)[-1]: c[s] for s in settings},
            "layer": c["layer"],
            "estimator": c["estimator"],
            "statistic": c["statistic"],
            "pairs": c["n_pairs"],
            "effect": c["effect"],
            "p_adj": c["p_adjusted"],
            "seeds_80%": c["seeds_for_80pct_power"],
            "supported": c["supported"],
        }
    )
    if len(c):
        _print_table(view)
    if (~tested).any():
        print(
            f"  {(~tested).sum()} of {len(tested)} not tested (undertrained, unreliable or no "
            "common data): see claims.csv, columns note and excluded"
        )


def print_verdicts(result: SweepAnalysis) -> None:
    """The verdict table: one line per configuration, estimator and layer."""
    v = result.verdicts
    cols = [c for c in result.display_cols if c in v.columns]
    view = pd.DataFrame({c.rsplit(".", 1)[-1]: v[c] for c in cols})
    view["estimator"] = v["estimator"]
    view["layer"] = v["layer"].astype(int)
    view["seeds"] = v["n_seeds"].astype(int)
    view[VERDICT_HEADER] = [
        f"{verdict} ({_fmt_share(r)})"
        for verdict, r in zip(v["verdict"], v["reproducibility"], strict=True)
    ]
    view["split"] = v["split"].fillna("")
    view["train_acc"] = v["train_acc"]
    for s in _SHOWN:
        view[f"{s} [CI]"] = [
            f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]"
            for m, lo, hi in v[[f"{s}_median", f"{s}_ci_low", f"{s}_ci_high"]].to_numpy()
        ]
    _print_table(view)


def _fmt_share(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.0%}"


def analyze_command(
    name: str,
    tracking_uri: str | None,
    out: str | None,
    settings: Sequence[str] = (),
    log_to_mlflow: bool = False,
) -> int:
    """Analyse sweep ``name``; print the claims, the verdicts and every file written."""
    try:
        overrides = parse_overrides(settings)
    except AnalysisSettingsError as err:
        raise UsageError(str(err)) from None
    uri = resolve_tracking_uri(tracking_uri, None)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        raise UsageError(f"no MLflow store at {uri}; give --tracking-uri (sweeps write one)")
    out_dir = Path(out) if out else Path("ibsweep-results") / name
    try:
        result = run_analysis(uri, name, out_dir, overrides, log_to_mlflow)
    except (FetchError, AnalysisSettingsError) as err:
        raise UsageError(str(err)) from None
    print_analysis(result)
    return 0


def print_analysis(result: SweepAnalysis) -> None:
    """The claims, the verdict table, then what was fetched and every file written."""
    print_claims(result)
    print()
    print_verdicts(result)
    state = "up to date, nothing changed" if result.up_to_date else f"{result.fetched} fetched"
    where = "logged to MLflow" if result.logged else "MLflow store not written"
    print(f"\n{result.n_runs} runs ({state}; {where}); written to {result.out_dir}/:")
    for f in result.files:
        print(f"  {f}")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
