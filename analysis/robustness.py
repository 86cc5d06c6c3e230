"""Whether a configuration's verdict holds under every estimator of the panel.

A verdict that holds under one estimator only is a statement about that estimator
(science.md, "Resolution confound"): per configuration and layer, the configuration verdict
under each panel member side by side, and whether they all agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def robustness_table(verdicts: pd.DataFrame, config_cols: Sequence[str]) -> pd.DataFrame:
    """One row per configuration and layer: ``verdict[<estimator>]`` for every estimator,
    the verdicts in one line, and ``holds_under_all`` (yes, no, or one estimator only)."""
    keys = [*config_cols, "layer"]
    estimators = sorted(verdicts["estimator"].astype(str).unique()) if len(verdicts) else []
    columns = [*keys, "n_estimators", *(f"verdict[{e}]" for e in estimators), "verdicts",
               "holds_under_all"]  # fmt: skip
    rows = []
    for key, group in verdicts.groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, key, strict=True))
        by = dict(zip(group["estimator"].astype(str), group["verdict"], strict=True))
        row["n_estimators"] = len(by)
        row.update({f"verdict[{e}]": by.get(e, "") for e in estimators})
        row["verdicts"] = "; ".join(f"{e}: {v}" for e, v in sorted(by.items()))
        if len(by) < 2:
            row["holds_under_all"] = "one estimator only"
        else:
            row["holds_under_all"] = "yes" if len(set(by.values())) == 1 else "no"
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
