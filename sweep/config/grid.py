"""Expanding a sweep into trials: one per configuration and group of packed seeds."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from ibsweep.analysis import run_schema as rs
from ibsweep.models.config import ACTIVATIONS, ModelConfig, TrainConfig
from ibsweep.sweep.config.schedule import measured_epochs
from ibsweep.sweep.config.spec import SweepSpec


@dataclass(frozen=True)
class Configuration:
    """Everything that defines a run except its seed."""

    model: ModelConfig
    dataset: str

    @property
    def label(self) -> str:
        """Readable name, e.g. 'bnn-ste-10x7x5x4x3-tishby'."""
        m = self.model
        extra = ""
        if m.kind == "bnn" and m.activation == "swish_sign":
            extra += f"-b{m.beta:g}"
        if m.kind == "bnn" and m.bnn_norm == "batchnorm":
            extra += "-bn"
        return f"{m.kind}-{m.activation}{extra}-{m.widths_label}-{self.dataset}"


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

    @property
    def schedule(self) -> list[int]:
        """Epochs on which MI and metrics are recorded."""
        mi = self.spec.mi
        return sorted(measured_epochs(self.spec.train.epochs, mi.every, mi.log_points))

    @property
    def seed_epochs(self) -> int:
        """Training work: runs times epochs."""
        return self.n_runs * self.spec.train.epochs


def train_config(spec: SweepSpec) -> TrainConfig:
    """The training settings of every trial."""
    return TrainConfig(**spec.train.model_dump())


def expand(spec: SweepSpec) -> Plan:
    """All trials of the grid, in a stable order; combinations that make no sense are skipped."""
    g = spec.grid
    skipped: list[tuple[str, str]] = []
    configs: list[Configuration] = []
    for kind, widths, dataset in itertools.product(g.kind, g.widths, g.dataset):
        activations = g.activation[kind] if isinstance(g.activation, dict) else g.activation
        for act, beta, norm in itertools.product(activations, g.beta, g.bnn_norm):
            name = f"{kind}-{act}-{'x'.join(map(str, widths))}-{dataset} beta={beta:g} {norm}"
            if act not in ACTIVATIONS[kind]:
                skipped.append((name, f"activation '{act}' does not fit kind '{kind}'"))
                continue
            model = ModelConfig(
                kind=kind,
                activation=act,
                widths=tuple(widths),
                beta=beta if (kind, act) == ("bnn", "swish_sign") else 5.0,
                bnn_norm=norm if kind == "bnn" else "scale",
            )
            config = Configuration(model, dataset)
            if config in configs:
                reason = "beta applies to swish_sign only" if len(g.beta) > 1 else "duplicate"
                if len(g.bnn_norm) > 1 and kind == "dnn":
                    reason = "bnn_norm applies to bnn only"
                skipped.append((name, f"same as {config.label} ({reason})"))
                continue
            configs.append(config)
    seeds = g.seed_list
    k = spec.seeds_per_trial
    trials = [
        Trial(config, tuple(seeds[i : i + k]))
        for config in configs
        for i in range(0, len(seeds), k)
    ]
    return Plan(spec, trials, skipped)
