"""Which params make a configuration, a model, and which follow from others.

A configuration is every param of a run but its seed (MLflow names). The model is its kind and
activation together (with SwishSign's beta and a BNN's options where they matter); the
per-layer estimator descriptions (``mi.layer{k}.estimator``) and the layer count follow from
the model and the widths, so comparisons and claims never treat them as settings of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ibsweep.analysis import run_schema as rs
from ibsweep.models.config import ModelConfig

MODEL_AXIS = "model"
KIND, ACTIVATION = "model.kind", "model.activation"
BNN_OPTIONS: tuple[str, ...] = ("bnn_norm", "bnn_first", "bnn_last")
MODEL_PARTS: tuple[str, ...] = (
    KIND,
    ACTIVATION,
    "model.beta",
    *(f"model.{o}" for o in BNN_OPTIONS),
)
_BNN_DEFAULTS = {o: ModelConfig.model_fields[o].default for o in BNN_OPTIONS}
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
    """Per row, the model as one label: kind-activation[-b<beta>][-<BNN option not at its default>].

    A dnn records the BNN options' defaults as params too; they are named for BNNs only.
    """

    def text(col: str) -> pd.Series:  # missing values as 'nan', not as a missing label
        return df[col].astype(object).map(str)

    label = text(KIND) + "-" + text(ACTIVATION)
    if "model.beta" in df.columns:
        swish = text(ACTIVATION) == "swish_sign"
        label = label.where(~swish, label + "-b" + text("model.beta"))
    bnn = text(KIND) == "bnn"
    for option, default in _BNN_DEFAULTS.items():
        col = f"model.{option}"
        if col in df.columns:
            value = text(col)
            other = bnn & (value != default) & (value != "nan")
            suffix = value if option == "bnn_norm" else option.removeprefix("bnn_") + "_" + value
            label = label.where(~other, label + "-" + suffix)
    return label
