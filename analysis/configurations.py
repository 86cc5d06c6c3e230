"""Which params make a configuration, a model, and which follow from others.

A configuration is every param of a run but its seed (MLflow names). The model is its kind and
activation together (with SwishSign's beta and a BNN's normalisation where they matter); the
per-layer estimator descriptions (``mi.layer{k}.estimator``) and the layer count follow from
the model and the widths, so comparisons and claims never treat them as settings of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ibsweep.analysis import run_schema as rs

MODEL_AXIS = "model"
KIND, ACTIVATION = "model.kind", "model.activation"
MODEL_PARTS: tuple[str, ...] = (KIND, ACTIVATION, "model.beta", "model.bnn_norm")
_DERIVED_PREFIXES = ("mi.layer", rs.N_LAYERS)


def is_derived(col: str) -> bool:
    """Whether a config column follows from the model and widths (layer count, estimators)."""
    return col.startswith(_DERIVED_PREFIXES)


def varying_columns(table: pd.DataFrame, config_cols: Sequence[str]) -> list[str]:
    """Config columns that differ between configurations (always model kind and activation)."""
    cols = [
        c
        for c in config_cols
        if c in table.columns
        and table[c].nunique(dropna=False) > 1
        and not is_derived(c)
        and c not in (KIND, ACTIVATION)
    ]
    for c in reversed((KIND, ACTIVATION)):
        if c in table.columns and c not in cols:
            cols.insert(0, c)
    return cols


def comparison_columns(config_cols: Sequence[str]) -> list[str]:
    """Axes for comparisons: the model (kind and activation together) and every other setting.

    BNN vs DNN differ in kind, activation and estimator at once; folding the model into one
    axis and leaving out what follows from it pairs them as one comparison.
    """
    return [MODEL_AXIS, *setting_columns(config_cols)]


def setting_columns(config_cols: Sequence[str]) -> list[str]:
    """Config columns that are neither part of the model nor derived from it."""
    return [c for c in config_cols if c not in MODEL_PARTS and not is_derived(c)]


def model_label(df: pd.DataFrame) -> pd.Series:
    """Per row, the model as one label: kind-activation[-b<beta> for swish_sign][-bn]."""

    def text(col: str) -> pd.Series:  # missing values as 'nan', not as a missing label
        return df[col].astype(object).map(str)

    label = text(KIND) + "-" + text(ACTIVATION)
    if "model.beta" in df.columns:
        swish = text(ACTIVATION) == "swish_sign"
        label = label.where(~swish, label + "-b" + text("model.beta"))
    if "model.bnn_norm" in df.columns:
        bn = text("model.bnn_norm") == "batchnorm"
        label = label.where(~bn, label + "-bn")
    return label
