"""The analysis report: claims first, then verdicts, robustness, sensitivity, generalisation,
statistics, comparisons, settings and figures, as Markdown and HTML.

report.md links the figures by paths relative to the output folder. report.html embeds them
as data URIs: MLflow's artifact viewer shows an HTML artifact on its own, where relative links
to sibling artifacts do not resolve, so only a self-contained page opens whole from the UI.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ibsweep.analysis.statistics import KEY_STATS

_MAX_COMPARISONS = 50


class ReportInputError(ValueError):
    """Raised when the tables handed to the report lack the columns it shows."""


def write_report(
    out_dir: str | Path,
    aggregate_df: pd.DataFrame,
    compare_df: pd.DataFrame,
    figure_paths: Mapping[str, str | Path] | Sequence[str | Path],
    meta: Mapping[str, Any],
    extra: ReportTables | None = None,
) -> Path:
    """Write report.md and report.html under out_dir; return the path of report.md.

    aggregate_df comes from statistics.aggregate (its config columns are those before
    `estimator`), compare_df from statistics.compare; figure_paths maps captions to PNG paths
    (absolute or relative to the working directory, as make_figures returns them; a plain
    sequence uses file names as captions); ``extra`` holds the claims, robustness,
    sensitivity and generalisation tables and the settings. The report opens with the claims.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not {"layer", "verdict", "estimator"} <= set(aggregate_df.columns):
        raise ReportInputError("aggregate_df needs the columns of statistics.aggregate")
    if not isinstance(figure_paths, Mapping):
        figure_paths = {Path(p).stem: p for p in figure_paths}
    figures = {caption: Path(p) for caption, p in figure_paths.items()}
    sections = _sections(aggregate_df, compare_df, meta, extra or ReportTables())

    md = [f"# {_title(meta)}", ""]
    for heading, intro, table in sections:
        md += [f"## {heading}", "", intro, ""]
        if table is not None:
            md += [_markdown_table(table), ""]
    md += ["## Figures", ""]
    for caption, path in figures.items():
        md += [f"### {caption}", "", f"![{caption}]({_relative(path, out_dir)})", ""]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md))

    body = [f"<h1>{html.escape(_title(meta))}</h1>"]
    for heading, intro, table in sections:
        body += [f"<h2>{html.escape(heading)}</h2>", f"<p>{html.escape(intro)}</p>"]
        if table is not None:
            body.append(_html_table(table))
    body.append("<h2>Figures</h2>")
    for caption, path in figures.items():
        data = base64.b64encode(path.read_bytes())
        body += [
            f"<h3>{html.escape(caption)}</h3>",
            f'<img alt="{html.escape(caption)}" src="data:image/png;base64,{data.decode()}">',
        ]
    page = _HTML.format(title=html.escape(_title(meta)), body="\n".join(body))
    (out_dir / "report.html").write_text(page)
    return md_path


@dataclass
class ReportTables:
    """The tables of the report beyond verdicts and comparisons (None: not computed)."""

    claims: pd.DataFrame | None = None
    robustness: pd.DataFrame | None = None
    sensitivity: pd.DataFrame | None = None
    sensitivity_summary: pd.DataFrame | None = None
    generalisation: pd.DataFrame | None = None
    settings: Mapping[str, str] = field(default_factory=dict)


Section = tuple[str, str, "pd.DataFrame | None"]


def _sections(
    aggregate_df: pd.DataFrame,
    compare_df: pd.DataFrame,
    meta: Mapping[str, Any],
    extra: ReportTables,
) -> list[Section]:
    config_cols = list(aggregate_df.columns[: aggregate_df.columns.get_loc("estimator")])
    keys = [*config_cols, "estimator", "layer"]
    meta_table = pd.DataFrame({"item": list(meta), "value": [str(v) for v in meta.values()]})
    sections = [_claims_section(extra.claims)]
    sections.append(("Run", "Sweep and settings of this analysis.", meta_table))

    verdicts = aggregate_df[[*keys, "n_seeds", "verdict"]].copy()
    verdicts["reproducibility"] = aggregate_df["reproducibility"].map(_share)
    verdicts["split"] = aggregate_df["split"]
    verdicts["train acc"] = aggregate_df["train_acc"].map(lambda v: _cell(float(v)))
    verdicts["unreliable because"] = aggregate_df["unreliable_reason"].fillna("")
    sections.append(
        (
            "Verdicts",
            "Per configuration, estimator and layer: the seeds' plurality verdict if it "
            "reproduces (share of bootstrap draws of the seeds that give it again) at least at "
            "the set level, else undetermined; the split of the seeds' verdicts; median final "
            "train accuracy (undertrained below the floor: phases are not read into it); why "
            "unreliable seeds are (near-injective, at the ceiling, or I(T;Y) mostly bias).",
            verdicts,
        )
    )
    if extra.robustness is not None:
        sections.append(
            (
                "Robustness across estimators",
                "Per configuration and layer: its verdict under each estimator of the panel, "
                "and whether it holds under all of them. A verdict that holds under one "
                "estimator only is a statement about that estimator.",
                extra.robustness,
            )
        )
    if extra.sensitivity is not None and extra.sensitivity_summary is not None:
        sections += _sensitivity_sections(extra.sensitivity, extra.sensitivity_summary)
    if extra.generalisation is not None:
        sections.append(
            (
                "Compression and generalisation",
                "Spearman correlation across runs of each layer's compression with final test "
                "accuracy and with the generalisation gap (train minus test), with bootstrap "
                "intervals; per configuration, or pooled over a model kind where a "
                "configuration has few runs (scope). Unreliable layers are left out.",
                _generalisation_view(extra.generalisation, config_cols),
            )
        )

    stats = aggregate_df[keys].copy()
    for name in KEY_STATS:
        if f"{name}_median" not in aggregate_df.columns:
            continue
        fmt = "{:.3g}" if name.startswith(("t", "boundary", "snr")) else "{:.2f}"
        stats[name] = [
            _interval(m, lo, hi, fmt) + f" (n={n})"
            for m, lo, hi, n in aggregate_df[
                [f"{name}_median", f"{name}_ci_low", f"{name}_ci_high", f"{name}_n"]
            ].itertuples(index=False)
        ]
    sections.append(
        (
            "Statistics",
            "Median over seeds [bootstrap CI] (n = seeds where defined). I(X;T) changes in "
            "bits; t50, t95, boundaries and the gradient-SNR transition in epochs; the start "
            "is epoch 0, the untrained network.",
            stats,
        )
    )
    sections.append(_comparison_section(compare_df))
    if extra.settings:
        settings = pd.DataFrame(
            {"setting": list(extra.settings), "value": list(extra.settings.values())}
        )
        sections.append(("Settings", "Every analysis setting this report was made with.", settings))
    return sections


def _claims_section(claims: pd.DataFrame | None) -> Section:
    if claims is None or claims.empty:
        return (
            "Claims",
            "No two configurations differ only in the model kind (dnn against bnn with the "
            "same widths, dataset and training): there is no claim to test.",
            None,
        )
    shown = claims.copy()
    settings = [
        c for c in claims.columns[2 : claims.columns.get_loc("layer")]
        if claims[c].astype(str).nunique() > 1
    ]  # fmt: skip
    shown["effect [CI]"] = [
        _interval(e, lo, hi, "{:+.2f}")
        for e, lo, hi in claims[["effect", "effect_ci_low", "effect_ci_high"]].itertuples(
            index=False
        )
    ]
    cols = ["dnn_model", "bnn_model", *settings, "layer", "estimator", "statistic", "test",
            "n_pairs", "effect [CI]", "p_value", "p_adjusted", "seeds_for_80pct_power",
            "supported", "note"]  # fmt: skip
    counts = claims["supported"].value_counts()
    intro = (
        "Pre-specified one-sided tests, per DNN-BNN pair that differs only in the model kind, "
        "hidden layer and estimator: DNN expansion > BNN expansion, and BNN compression "
        "before t95 > DNN's. Effect: Hodges-Lehmann shift in bits (positive: the way the "
        "claim says) with its interval; p-value of the sign-flip permutation test paired by "
        "seed (two-sample where no seed is shared), Holm-adjusted within each statistic; "
        "seeds for 80% power by a normal approximation. Supported: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + ". Undertrained configurations and layers mostly unreliable under an estimator are "
        "not tested (note)."
    )
    return "Claims", intro, shown[cols]


def _sensitivity_sections(table: pd.DataFrame, summary: pd.DataFrame) -> list[Section]:
    view = summary.assign(
        seed_verdicts_moved=summary["seed_verdicts_moved"].map(_share),
        moved=[f"{m} of {n}" for m, n in summary[
            ["configuration_verdicts_moved", "configuration_verdicts"]].itertuples(index=False)],
    )[["threshold", "factor", "value", "seed_verdicts_moved", "moved"]]  # fmt: skip
    keys = list(table.columns[: table.columns.get_loc("verdict") + 1])
    moved = table[table["moved_by"].astype(bool)][[*keys, "moved_by"]]
    return [
        (
            "Sensitivity to thresholds",
            "Each threshold halved and doubled, one at a time: the share of per-seed verdicts "
            "and the number of configuration verdicts that move.",
            view,
        ),
        (
            "Configuration verdicts that move",
            f"{len(moved)} of {len(table)} configuration verdicts move under some variant "
            "(sensitivity.csv has every variant's verdict)."
            if len(moved)
            else f"None of the {len(table)} configuration verdicts moves under any variant.",
            moved if len(moved) else None,
        ),
    ]


def _generalisation_view(table: pd.DataFrame, config_cols: Sequence[str]) -> pd.DataFrame:
    keys = [c for c in config_cols if c in table.columns and table[c].notna().any()]
    view = table[[*keys, "estimator", "layer", "scope", "n_runs"]].copy()
    for target in ("test_acc", "gap"):
        view[f"rho {target} [CI]"] = [
            _interval(r, lo, hi, "{:+.2f}")
            for r, lo, hi in table[
                [f"rho_{target}", f"rho_{target}_ci_low", f"rho_{target}_ci_high"]
            ].itertuples(index=False)
        ]
        view[f"p {target}"] = table[f"p_{target}"]
    return view


def _comparison_section(compare_df: pd.DataFrame) -> Section:
    columns = ["axis", "value_a", "value_b", "estimator", "layer", "stat", "n_a", "n_b",
               "median_a", "median_b", "median_diff", "cliffs_delta", "p_value",
               "p_adjusted"]  # fmt: skip
    columns = [c for c in columns if c in compare_df.columns or c != "estimator"]
    if compare_df.empty:
        intro = "No two configurations differ in exactly one config column: nothing to compare."
        return "Comparisons", intro, pd.DataFrame(columns=columns)
    significant = compare_df[compare_df["significant"].fillna(False).astype(bool)]
    shown = (significant if len(significant) else compare_df).sort_values("p_adjusted")
    intro = (
        f"{len(significant)} of {len(compare_df)} two-sided tests significant after correction "
        f"for multiple comparisons (reliable seeds only). Pairs differ in one config column "
        f"(axis), under the same estimator; median_diff and Cliff's delta are b against a. "
        f"Showing the {min(len(shown), _MAX_COMPARISONS)} smallest adjusted p-values"
        f"{'' if len(significant) else ' (none significant)'}."
    )
    return "Comparisons", intro, shown[columns].head(_MAX_COMPARISONS)


def _share(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.0%}"


def _title(meta: Mapping[str, Any]) -> str:
    name = meta.get("sweep") or meta.get("name")
    return f"Phase analysis: {name}" if name else "Phase analysis"


def _interval(value: float, low: float, high: float, fmt: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    text = fmt.format(value)
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{fmt.format(low)}, {fmt.format(high)}]"
    return text


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def _markdown_table(df: pd.DataFrame) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rows = [line([str(c) for c in df.columns]), line(["---"] * len(df.columns))]
    rows += [line([_cell(v) for v in r]) for r in df.itertuples(index=False)]
    return "\n".join(rows)


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r) + "</tr>"
        for r in df.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _relative(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()


_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; font-size: 0.8em; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
</style></head>
<body>
{body}
</body></html>
"""
