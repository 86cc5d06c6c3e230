"""Expanding a sweep into trials: one per configuration and group of packed seeds."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from ibsweep.analysis import run_schema as rs
from ibsweep.models.config import ACTIVATIONS, ModelConfig, TrainConfig
from ibsweep.sweep.config.schedule import measured_epochs
from ibsweep.sweep.config.spec import TRAIN_SETTINGS, SweepSpec
from ibsweep.sweep.errors import UsageError

_MODEL_DEFAULTS = ModelConfig()
_TRAIN_DEFAULTS = TrainConfig()
# how a training setting that is a grid axis shows in a label
_TRAIN_TOKENS = {
    "epochs": "e{}",
    "optimizer": "{}",
    "lr": "lr{:g}",
    "batch_size": "bs{}",
    "momentum": "m{:g}",
    "schedule": "{}",
    "final_lr_factor": "f{:g}",
}


@dataclass(frozen=True)
class Configuration:
    """Everything that defines a run except its seed: model, dataset, training settings.

    ``train_axes`` names the training settings that are grid axes of the sweep: they appear
    in the label, so that two configurations never share a run name.
    """

    model: ModelConfig
    dataset: str
    train: TrainConfig = _TRAIN_DEFAULTS
    train_axes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Readable name, e.g. 'bnn-ste-10x7x5x4x3-tishby' or 'dnn-tanh-10x7x5x4x3-tishby-lr0.001'.

        A BNN option shows when it differs from ModelConfig's default (e.g. '-scale',
        '-binaryfirst', '-binarylast'); swish_sign always shows its beta.
        """
        m = self.model
        extra = ""
        if m.kind == "bnn":
            if m.activation == "swish_sign":
                extra += f"-b{m.beta:g}"
            if m.bnn_norm != _MODEL_DEFAULTS.bnn_norm:
                extra += f"-{m.bnn_norm}"
            if m.bnn_first != _MODEL_DEFAULTS.bnn_first:
                extra += f"-{m.bnn_first}first"
            if m.bnn_last != _MODEL_DEFAULTS.bnn_last:
                extra += f"-{m.bnn_last}last"
        train = "".join(
            "-" + _TRAIN_TOKENS[k].format(getattr(self.train, k)) for k in self.train_axes
        )
        return f"{m.kind}-{m.activation}{extra}-{m.widths_label}-{self.dataset}{train}"


def trial_name(label: str, seeds: Sequence[int]) -> str:
    """A trial's name from its configuration's label and its seeds (Tune's folder names it)."""
    return f"{label}-s{'_'.join(map(str, seeds))}"


@dataclass(frozen=True)
class Trial:
    """One Ray Tune trial: a configuration and the seeds it trains together."""

    config: Configuration
    seeds: tuple[int, ...]

    @property
    def name(self) -> str:
        """The trial's name: its configuration's label and seeds, e.g. '...-tishby-s0_1'."""
        return trial_name(self.config.label, self.seeds)

    def run_name(self, seed: int) -> str:
        """The MLflow child run name of one seed, e.g. 'bnn-ste-10x7x5x4x3-tishby-s2'."""
        return rs.run_name(self.config.label, seed)


@dataclass
class Plan:
    """The expanded sweep: trials, what was skipped and why, and the amount of work."""

    spec: SweepSpec
    trials: list[Trial]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def configurations(self) -> list[Configuration]:
        """Distinct configurations, in grid order."""
        return list(dict.fromkeys(t.config for t in self.trials))

    @property
    def n_runs(self) -> int:
        """Number of (configuration, seed) runs."""
        return sum(len(t.seeds) for t in self.trials)

    def schedule_of(self, config: Configuration) -> list[int]:
        """Epochs on which MI and metrics of a configuration's runs are recorded."""
        mi = self.spec.mi
        return sorted(measured_epochs(config.train.epochs, mi.every, mi.log_points))

    @property
    def seed_epochs(self) -> int:
        """Training work: the sum of every run's epochs."""
        return sum(len(t.seeds) * t.config.train.epochs for t in self.trials)

    @property
    def trial_epochs(self) -> int:
        """Training work of the trials: the sum of every trial's epochs."""
        return sum(t.config.train.epochs for t in self.trials)


def train_configs(spec: SweepSpec) -> list[tuple[dict, TrainConfig]]:
    """Every combination of the training settings' values, as given and normalised (settings
    that do not apply, momentum without sgd and final_lr_factor with a constant lr, take their
    defaults)."""
    out = []
    for values in itertools.product(*(getattr(spec.train, k) for k in TRAIN_SETTINGS)):
        given = dict(zip(TRAIN_SETTINGS, values, strict=True))
        setting = dict(given)
        if setting["optimizer"] != "sgd":
            setting["momentum"] = _TRAIN_DEFAULTS.momentum
        if setting["schedule"] == "constant":
            setting["final_lr_factor"] = _TRAIN_DEFAULTS.final_lr_factor
        out.append((given, TrainConfig(**setting)))
    return out


_NOT_APPLIED = {
    "beta": "beta applies to bnn swish_sign only",
    "bnn_norm": "bnn_norm applies to bnn only",
    "bnn_first": "bnn_first applies to bnn only",
    "bnn_last": "bnn_last applies to bnn only",
    "momentum": "momentum applies to sgd only",
    "final_lr_factor": "final_lr_factor applies to the exponential and cosine schedules only",
}


def _skip_reason(spec: SweepSpec, config: Configuration) -> str:
    """Why a combination repeats one already in the grid: the axes that do not apply to it."""
    m, t = config.model, config.train
    applies = {
        "beta": m.kind == "bnn" and m.activation == "swish_sign",
        "bnn_norm": m.kind == "bnn",
        "bnn_first": m.kind == "bnn",
        "bnn_last": m.kind == "bnn",
        "momentum": t.optimizer == "sgd",
        "final_lr_factor": t.schedule != "constant",
    }
    values = {**spec.grid.model_dump(), **spec.train.model_dump()}
    vain = [
        text for key, text in _NOT_APPLIED.items() if not applies[key] and len(set(values[key])) > 1
    ]
    return "; ".join(vain) or "duplicate"


def expand(spec: SweepSpec) -> Plan:
    """All trials of the grid, in a stable order; combinations that make no sense are skipped."""
    g = spec.grid
    skipped: list[tuple[str, str]] = []
    configs: dict[Configuration, None] = {}
    axes = spec.train.axes
    bnn_options = list(itertools.product(g.beta, g.bnn_norm, g.bnn_first, g.bnn_last))
    for kind, widths, dataset in itertools.product(g.kind, g.widths, g.dataset):
        activations = g.activation[kind] if isinstance(g.activation, dict) else g.activation
        for act, (beta, norm, first, last), (given, train) in itertools.product(
            activations, bnn_options, train_configs(spec)
        ):
            name = (
                f"{kind}-{act}-{'x'.join(map(str, widths))}-{dataset} beta={beta:g} {norm} "
                f"first={first} last={last}" + "".join(f" {k}={given[k]}" for k in axes)
            )
            if act not in ACTIVATIONS[kind]:
                skipped.append((name, f"activation '{act}' does not fit kind '{kind}'"))
                continue
            bnn = {"bnn_norm": norm, "bnn_first": first, "bnn_last": last}
            if act == "swish_sign":
                bnn["beta"] = beta
            model = ModelConfig(
                kind=kind, activation=act, widths=tuple(widths), **(bnn if kind == "bnn" else {})
            )
            config = Configuration(model, dataset, train, axes)
            if config in configs:
                skipped.append((name, f"same as {config.label} ({_skip_reason(spec, config)})"))
                continue
            configs[config] = None
    labels = [c.label for c in configs]
    if len(set(labels)) < len(labels):
        twice = next(label for label in labels if labels.count(label) > 1)
        raise UsageError(
            f"two configurations would share the run name '{twice}': give values that differ "
            "in their first 6 significant digits"
        )
    seeds = g.seed_list
    k = spec.seeds_per_trial
    trials = [
        Trial(config, tuple(seeds[i : i + k]))
        for config in configs
        for i in range(0, len(seeds), k)
    ]
    return Plan(spec, trials, skipped)
