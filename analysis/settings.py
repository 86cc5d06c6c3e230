"""Every setting of the analysis, as one pydantic model with its defaults, and how users set them.

`PhaseConfig` holds what is read off each run's trajectory (smoothing, thresholds in bits,
detectors, the reliability rules); `AnalysisConfig` extends it with what is computed across
runs (reproducibility of configuration verdicts, intervals, the claim tests, the `undertrained`
floor, the generalisation correlations). Users set any field by name: in a sweep file's
`analysis:` block, and with `ibsweep analyze NAME --set KEY=VALUE` (which overrides the block).
The settings an analysis used go into its report and, when it logs to MLflow, into params
`analysis.<key>` of the sweep's parent run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class AnalysisSettingsError(ValueError):
    """Raised on an unknown analysis setting or a value it does not allow."""


class PhaseConfig(BaseModel):
    """Per-run settings: smoothing, phase thresholds in bits, detectors, reliability rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bandwidth: float = Field(0.25, gt=0, description="smoothing half-width, decades of epoch")
    n_grid: int = Field(200, ge=20, description="points of the uniform log-epoch grid")
    min_neighbours: int = Field(10, ge=1, description="points the smoothing kernel spans at least")
    min_rise_bits: float = Field(
        0.05, ge=0, description="rise of I(T;Y) below which t50 and t95 are undefined"
    )
    min_compression_bits: float = Field(
        0.25, ge=0, description="fall of I(X;T) from peak to end that counts as compression"
    )
    min_expansion_bits: float = Field(
        0.25, ge=0, description="rise of I(X;T) up to t50 that counts as expansion"
    )
    onset_fraction: float = Field(
        0.2, gt=0, lt=1, description="fraction of the compression that marks its onset"
    )
    min_segment_decades: float = Field(
        0.2, gt=0, description="shortest segment of the two-segment fit and of the segmentation"
    )
    changepoint_penalty: float = Field(
        0.5, gt=0, description="penalty per segment on the range-normalised smoothed I(X;T)"
    )
    min_snr_drop_decades: float = Field(
        0.3, ge=0, description="fall of log10 gradient SNR below which no transition is read"
    )
    injective_share: float = Field(
        0.9, gt=0, description="distinct states >= this share of N: near-injective (> 1: off)"
    )
    ceiling_margin_bits: float = Field(
        0.3, ge=0, description="I(X;T) within this many bits of log2 N: at the ceiling"
    )
    bias_share: float = Field(
        0.5, gt=0, description="I(T;Y) of permuted labels >= this share of I(T;Y): mostly bias"
    )
    bias_floor_bits: float = Field(
        0.05, ge=0, description="a permutation baseline below this many bits is never bias"
    )
    unreliable_share: float = Field(
        0.8, gt=0, le=1, description="share of training (log epoch) a reliability rule must hold"
    )


class AnalysisConfig(PhaseConfig):
    """Every analysis setting: the per-run ones of PhaseConfig and the across-run ones."""

    reproducibility_level: float = Field(
        0.8, ge=0, le=1, description="least reproducibility of a configuration verdict"
    )
    reproducibility_draws: int = Field(
        2000, ge=100, description="bootstrap draws of seeds for the reproducibility"
    )
    ci_level: float = Field(0.95, gt=0, lt=1, description="level of every confidence interval")
    bootstrap_draws: int = Field(2000, ge=100, description="draws of every bootstrap interval")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the tests")
    exact_max_pairs: int = Field(
        16, ge=1, le=20, description="largest n whose sign-flip test enumerates all 2^n flips"
    )
    permutation_draws: int = Field(
        20000, ge=1000, description="Monte Carlo permutations of a test beyond exact sizes"
    )
    undertrained_floor: float = Field(
        0.8, ge=0, le=1, description="median final train accuracy below which: undertrained"
    )
    min_correlation_runs: int = Field(
        8, ge=3, description="runs a configuration needs for its own generalisation correlation"
    )
    random_seed: int = Field(0, ge=0, description="seed of every bootstrap and permutation")


# Thresholds that the sensitivity table halves and doubles (those that decide verdicts).
SENSITIVITY_THRESHOLDS: tuple[str, ...] = (
    "min_rise_bits",
    "min_expansion_bits",
    "min_compression_bits",
    "ceiling_margin_bits",
    "injective_share",
    "bias_share",
)
# Per-run settings that only the reliability rules read, and those that only the verdicts
# read; every other per-run setting changes the phase statistics themselves.
RELIABILITY_SETTINGS: frozenset[str] = frozenset(
    {"injective_share", "ceiling_margin_bits", "bias_share", "bias_floor_bits", "unreliable_share"}
)
VERDICT_SETTINGS: frozenset[str] = frozenset({"min_expansion_bits", "min_compression_bits"})


def setting_names() -> tuple[str, ...]:
    """Every analysis setting, by the name users give it."""
    return tuple(AnalysisConfig.model_fields)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict of settings, each key known and each value valid."""
    out: dict[str, Any] = {}
    allowed = ", ".join(setting_names())
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AnalysisSettingsError(f"--set takes KEY=VALUE, got '{pair}'; keys: {allowed}")
        if key not in AnalysisConfig.model_fields:
            raise AnalysisSettingsError(f"unknown analysis setting '{key}'; allowed: {allowed}")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else text
        except yaml.YAMLError:
            out[key] = text
    make_config(out)  # every value checked now, before anything else happens
    return out


def make_config(settings: Mapping[str, Any], where: str = "") -> AnalysisConfig:
    """The AnalysisConfig of ``settings`` (defaults for the rest); one-line errors."""
    if not isinstance(settings, Mapping):
        raise AnalysisSettingsError(
            f"{where or 'analysis'}: must be a mapping of settings, got {type(settings).__name__}"
        )
    try:
        return AnalysisConfig.model_validate(dict(settings))
    except ValidationError as err:
        raise AnalysisSettingsError(_describe(err, settings, where)) from None


def block_of_sweep_file(text: str) -> dict[str, Any]:
    """The ``analysis:`` block of a sweep file's text (empty if it has none)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise AnalysisSettingsError(f"the sweep file is not valid YAML: {err}") from None
    block = raw.get("analysis") if isinstance(raw, dict) else None
    if block is None:
        return {}
    make_config(block, "analysis")
    return dict(block)


def as_params(config: AnalysisConfig) -> dict[str, str]:
    """The settings as flat strings by name (for MLflow params and the report)."""
    return {k: str(v) for k, v in config.model_dump().items()}


def _describe(err: ValidationError, given: Mapping[str, Any], where: str) -> str:
    allowed = ", ".join(setting_names())
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown analysis setting '{key}'; allowed: {allowed}")
            continue
        value = given.get(key, e.get("input"))
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"analysis setting {key}={value!r}: {msg}")
    text = "; ".join(parts)
    return f"{where}: {text}" if where and not text.startswith(where) else text
