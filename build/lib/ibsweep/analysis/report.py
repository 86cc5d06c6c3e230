"""The analysis report: verdicts, statistics, comparisons and figures as Markdown and HTML.

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
) -> Path:
    """Write report.md and report.html under out_dir; return the path of report.md.

    aggregate_df comes from statistics.aggregate (its config columns are those before
    `layer`), compare_df from statistics.compare; figure_paths maps captions to PNG paths
    (absolute or relative to the working directory, as make_figures returns them; a plain
    sequence uses file names as captions).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if "layer" not in aggregate_df.columns or "verdict" not in aggregate_df.columns:
        raise ReportInputError("aggregate_df needs the columns of statistics.aggregate")
    if not isinstance(figure_paths, Mapping):
        figure_paths = {Path(p).stem: p for p in figure_paths}
    figures = {caption: Path(p) for caption, p in figure_paths.items()}
    sections = _sections(aggregate_df, compare_df, meta)

    md = [f"# {_title(meta)}", ""]
    for heading, intro, table in sections:
        md += [f"## {heading}", "", intro, "", _markdown_table(table), ""]
    md += ["## Figures", ""]
    for caption, path in figures.items():
        md += [f"### {caption}", "", f"![{caption}]({_relative(path, out_dir)})", ""]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md))

    body = [f"<h1>{html.escape(_title(meta))}</h1>"]
    for heading, intro, table in sections:
        body += [f"<h2>{html.escape(heading)}</h2>", f"<p>{html.escape(intro)}</p>"]
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


def _sections(
    aggregate_df: pd.DataFrame, compare_df: pd.DataFrame, meta: Mapping[str, Any]
) -> list[tuple[str, str, pd.DataFrame]]:
    config_cols = list(aggregate_df.columns[: aggregate_df.columns.get_loc("layer")])
    keys = [*config_cols, "layer"]
    meta_table = pd.DataFrame({"item": list(meta), "value": [str(v) for v in meta.values()]})

    verdicts = aggregate_df[[*keys, "n_seeds", "verdict"]].copy()
    verdicts["agreement [95% CI]"] = [
        _interval(r.verdict_confidence, r.verdict_ci_low, r.verdict_ci_high, "{:.2f}")
        for r in aggregate_df.itertuples()
    ]
    counts = [c for c in aggregate_df.columns if c.startswith("n_") and c != "n_seeds"]
    verdicts["votes"] = [
        ", ".join(f"{c[2:].replace('_', ' ')} {row[c]}" for c in counts if row[c])
        for _, row in aggregate_df.iterrows()
    ]

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

    sections = [
        ("Run", "Sweep and settings of this analysis.", meta_table),
        (
            "Verdicts",
            "Per configuration and layer: plurality verdict over seeds, the share of seeds "
            "that agree with its Wilson 95% interval, and the votes.",
            verdicts,
        ),
        (
            "Statistics",
            "Median over seeds [bootstrap 95% CI] (n = seeds where defined). I(X;T) changes in "
            "bits; t50, t95, boundaries and the gradient-SNR transition in epochs.",
            stats,
        ),
    ]
    columns = ["axis", "value_a", "value_b", "layer", "stat", "n_a", "n_b", "median_a",
               "median_b", "median_diff", "cliffs_delta", "p_value", "p_adjusted"]  # fmt: skip
    if compare_df.empty:
        intro = "No two configurations differ in exactly one config column: nothing to compare."
        sections.append(("Comparisons", intro, pd.DataFrame(columns=columns)))
        return sections
    significant = compare_df[compare_df["significant"].fillna(False).astype(bool)]
    shown = (significant if len(significant) else compare_df).sort_values("p_adjusted")
    intro = (
        f"{len(significant)} of {len(compare_df)} tests significant after correction for "
        f"multiple comparisons. Pairs differ in one config column (axis); median_diff "
        f"and Cliff's delta are b against a. Showing the "
        f"{min(len(shown), _MAX_COMPARISONS)} smallest adjusted p-values"
        f"{'' if len(significant) else ' (none significant)'}."
    )
    sections.append(("Comparisons", intro, shown[columns].head(_MAX_COMPARISONS)))
    return sections


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
