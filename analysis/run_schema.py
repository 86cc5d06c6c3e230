"""What a sweep's runs hold in MLflow: metric keys, params, tags and run names, defined once.

The sweep writes them (the driver and every trial) and the analysis reads them; both take the
names from here. Metrics have step = epoch on the MI schedule (epoch 0: the untrained network).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

# per epoch, one value per run
LOSS, TRAIN_ACC, TEST_ACC = "loss", "train_acc", "test_acc"
EPOCH_METRICS: tuple[str, ...] = (LOSS, TRAIN_ACC, TEST_ACC)
# per epoch, layer k = 1..L (L: the output layer) and estimator: I(X;T), I(T;Y), I(T;Y) under
# one fixed permutation of the labels (the plug-in bias baseline), and the distinct states.
# A run measured with a panel of estimators has them per member m (``I_XT/m/layer3``), a run
# without one under today's names (``I_XT/layer3``).
I_XT, I_TY, I_TY_PERM, STATES = "I_XT", "I_TY", "I_TY_perm", "states"
MI_METRICS: tuple[str, ...] = (I_XT, I_TY, I_TY_PERM, STATES)
# per epoch and layer, whatever the estimators
GRAD_SNR = "grad_snr"
LAYER_METRICS: tuple[str, ...] = (*MI_METRICS, GRAD_SNR)
DEFAULT_MEMBER = "default"  # the estimator of a run without a panel (the series' estimator)

# params: flattened with dots (model.kind, train.lr, ...); these are read back by name
SEED = "seed"
N_LAYERS = "model.n_layers"
N_SAMPLES = "mi.n_samples"
EPOCHS = "train.epochs"
SEARCH_TRIAL = "search.trial"
NON_CONFIG_PARAMS: tuple[str, ...] = (SEED, SEARCH_TRIAL)  # every other param is configuration,
# but for those that describe the measurement of each layer (``is_measurement_param``)
PANEL = "mi.estimators"  # a panel's member names in order, comma-separated; absent without one
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9_]{1,50}$")
_LAYER_WORD = re.compile(r"^layer[0-9]*$", re.IGNORECASE)

# the estimator of a run measured without a panel (one estimator per layer)
DEFAULT_ESTIMATOR = "default"
# parent run: the sweep file as an artifact under SPEC_ARTIFACTS, the analysis under
# ANALYSIS_ARTIFACTS, and the analysis settings as params analysis.<setting>
SPEC_ARTIFACTS = "sweep"
ANALYSIS_ARTIFACTS = "analysis"
ANALYSIS_PARAM_PREFIX = "analysis."

# tags
ROLE = "ibsweep.role"  # "parent" on the run of one execution of a sweep
PARENT_ROLE = "parent"
SWEEP = "ibsweep.sweep"
VERSION = "ibsweep.version"
DIGEST = "ibsweep.digest"  # of the normalised sweep file, to find an execution to resume
TUNE_PATH = "ibsweep.tune_path"
KEY = "ibsweep.key"  # a child run's (configuration, seed) key
FAILURE = "ibsweep.failure"
SERIES = "ibsweep.series"  # a finished run's series stored as one artifact (its row count)
# MLflow 3's UI opens an experiment without this tag on its GenAI pages
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


class LayerKey(NamedTuple):
    """What a per-layer metric key names: metric, layer and panel member."""

    metric: str
    layer: int
    member: str  # DEFAULT_MEMBER for a run without a panel, and for grad_snr


def layer_key(metric: str, layer: int, member: str | None = None) -> str:
    """The key of a per-layer metric, e.g. ``I_XT/layer3``, or ``I_XT/sign/layer3`` for the
    panel member ``sign``."""
    if member is None or member == DEFAULT_MEMBER:
        return f"{metric}/layer{layer}"
    return f"{metric}/{member}/layer{layer}"


def run_metric_keys(n_layers: int, members: Sequence[str] | None = None) -> list[str]:
    """Every per-epoch metric key of a run whose network has ``n_layers`` measured layers,
    measured by the panel ``members`` (None: no panel)."""
    keys = list(EPOCH_METRICS)
    for k in range(1, n_layers + 1):
        for member in members or [None]:
            keys += [layer_key(m, k, member) for m in MI_METRICS]
        keys.append(layer_key(GRAD_SNR, k))
    return keys


def parse_layer_key(key: str) -> LayerKey | None:
    """(metric, layer, member) of a per-layer metric key, or None for any other key."""
    head, sep, layer = key.rpartition("/layer")
    if not sep or not layer.isdigit():
        return None
    metric, slash, member = head.partition("/")
    if metric not in LAYER_METRICS:
        return None
    if not slash:
        return LayerKey(metric, int(layer), DEFAULT_MEMBER)
    if metric == GRAD_SNR or member_name_problem(member) is not None:
        return None
    return LayerKey(metric, int(layer), member)


def member_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a panel member (None if it can)."""
    if not isinstance(name, str) or not _MEMBER_NAME.match(name):
        return f"{name!r} is not a usable estimator name; allowed: letters, digits, '_' (1-50)"
    if name.lower() == DEFAULT_MEMBER or _LAYER_WORD.match(name):
        return f"{name!r} is reserved (it names runs without a panel, or layers)"
    return None


def panel_members(params: Mapping[str, str]) -> list[str]:
    """The panel members of a run from its params; [DEFAULT_MEMBER] without a panel."""
    listed = params.get(PANEL)
    return listed.split(",") if listed else [DEFAULT_MEMBER]


def estimator_param(layer: int, member: str | None = None) -> str:
    """The param holding a layer's estimator: ``mi.layer3.estimator`` without a panel,
    ``mi.estimators.sign.layer3`` for the member ``sign``."""
    if member is None or member == DEFAULT_MEMBER:
        return f"mi.layer{layer}.estimator"
    return f"{PANEL}.{member}.layer{layer}"


def max_bits_param(layer: int, member: str | None = None) -> str:
    """The param holding log2 of the most states the layer's estimator can tell apart there
    (width x log2 levels, or the layer's own bound; ``inf``: none but the sample size)."""
    return f"{estimator_param(layer, member).removesuffix('.estimator')}.max_bits"


def is_measurement_param(name: str) -> bool:
    """Whether a param describes how each layer is measured (follows from the model and the
    sweep's estimators, so it does not define a configuration)."""
    if name == PANEL or name.startswith(f"{PANEL}."):
        return True
    return name.startswith("mi.layer") and name.endswith((".estimator", ".max_bits"))


def phase_key(layer: int, stat: str, estimator: str = DEFAULT_ESTIMATOR) -> str:
    """The metric an analysis logs back for one phase statistic of a layer, e.g.
    ``phase/layer3/t50`` (one estimator per layer) or ``phase/bin30/layer3/t50`` (a panel)."""
    if estimator == DEFAULT_ESTIMATOR:
        return f"phase/layer{layer}/{stat}"
    return f"phase/{estimator}/layer{layer}/{stat}"


def verdict_tag(layer: int, estimator: str = DEFAULT_ESTIMATOR) -> str:
    """The tag an analysis logs back with a layer's per-seed verdict, e.g.
    ``phase.layer3.verdict`` or ``phase.bin30.layer3.verdict``."""
    if estimator == DEFAULT_ESTIMATOR:
        return f"phase.layer{layer}.verdict"
    return f"phase.{estimator}.layer{layer}.verdict"


def analysis_param(setting: str) -> str:
    """The parent-run param holding an analysis setting, e.g. ``analysis.alpha``."""
    return f"{ANALYSIS_PARAM_PREFIX}{setting}"


def run_name(label: str, seed: int) -> str:
    """A child run's name: configuration label and seed, e.g. 'dnn-tanh-10x7x5x4x3-tishby-s2'."""
    return f"{label}-s{seed}"
