"""What a sweep's runs hold in MLflow: metric keys, params, tags and run names, defined once.

The sweep writes them (the driver and every trial) and the analysis reads them; both take the
names from here. Metrics have step = epoch on the MI schedule (epoch 0: the untrained network).
"""

from __future__ import annotations

# per epoch, one value per run
LOSS, TRAIN_ACC, TEST_ACC = "loss", "train_acc", "test_acc"
EPOCH_METRICS: tuple[str, ...] = (LOSS, TRAIN_ACC, TEST_ACC)
# per epoch and layer k = 1..L (L: the output layer)
I_XT, I_TY, GRAD_SNR = "I_XT", "I_TY", "grad_snr"
LAYER_METRICS: tuple[str, ...] = (I_XT, I_TY, GRAD_SNR)

# params: flattened with dots (model.kind, train.lr, ...); these are read back by name
SEED = "seed"
N_LAYERS = "model.n_layers"
N_SAMPLES = "mi.n_samples"
EPOCHS = "train.epochs"
SEARCH_TRIAL = "search.trial"
NON_CONFIG_PARAMS: tuple[str, ...] = (SEED, SEARCH_TRIAL)  # every other param is configuration

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


def layer_key(metric: str, layer: int) -> str:
    """The key of a per-layer metric, e.g. ``I_XT/layer3``."""
    return f"{metric}/layer{layer}"


def run_metric_keys(n_layers: int) -> list[str]:
    """Every per-epoch metric key of a run whose network has ``n_layers`` measured layers."""
    keys = list(EPOCH_METRICS)
    for k in range(1, n_layers + 1):
        keys += [layer_key(m, k) for m in LAYER_METRICS]
    return keys


def parse_layer_key(key: str) -> tuple[str, int] | None:
    """(metric, layer) of a per-layer metric key, or None for any other key."""
    metric, sep, layer = key.partition("/layer")
    if not sep or metric not in LAYER_METRICS or not layer.isdigit():
        return None
    return metric, int(layer)


def estimator_param(layer: int) -> str:
    """The param holding the estimator of a layer, e.g. ``mi.layer3.estimator``."""
    return f"mi.layer{layer}.estimator"


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
