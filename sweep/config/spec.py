"""The sweep file: YAML validated on load."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ibsweep.analysis.estimators import available_estimators
from ibsweep.analysis.settings import AnalysisConfig
from ibsweep.examples import example_path, examples
from ibsweep.models.config import (
    ACTIVATIONS,
    KINDS,
    ModelConfig,
    TrainConfig,
    describe_validation_error,
)
from ibsweep.models.datasets import DATASETS
from ibsweep.sweep.errors import UsageError
from ibsweep.sweep.training.meter import LayerMeter, check_panel_names

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


METRICS = ("test_acc", "train_acc", "loss")
TRAIN_SETTINGS: tuple[str, ...] = tuple(TrainConfig.model_fields)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GridSpec(_Strict):
    """The axes of the grid; ``activation`` per kind ({dnn: [...], bnn: [...]}) or one list."""

    kind: list[Literal["dnn", "bnn"]] = Field(["dnn"], min_length=1)
    activation: dict[str, list[str]] | list[str] = Field(default_factory=lambda: {"dnn": ["tanh"]})
    widths: list[list[int]] = Field([[10, 7, 5, 4, 3]], min_length=1)
    dataset: list[str] = Field(["tishby"], min_length=1)
    seeds: int | list[int] = 1
    beta: list[float] = Field([5.0], min_length=1)
    bnn_norm: list[Literal["scale", "batchnorm"]] = Field([ModelConfig().bnn_norm], min_length=1)
    bnn_first: list[Literal["binary", "real"]] = Field([ModelConfig().bnn_first], min_length=1)
    bnn_last: list[Literal["binary", "real"]] = Field([ModelConfig().bnn_last], min_length=1)

    @field_validator("widths")
    @classmethod
    def _widths(cls, v: list[list[int]]) -> list[list[int]]:
        for w in v:
            if not w or any(x <= 0 for x in w):
                raise ValueError(
                    f"every entry must be a non-empty list of positive integers, got {w}"
                )
        return v

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in DATASETS:
                raise ValueError(f"unknown dataset '{name}'; allowed: {', '.join(DATASETS)}")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int):
            if v <= 0:
                raise ValueError(f"a seed count must be positive, got {v}")
        elif not v or any(s < 0 for s in v) or len(set(v)) != len(v):
            raise ValueError(f"a seed list must be non-empty, non-negative and unique, got {v}")
        return v

    @field_validator("beta")
    @classmethod
    def _beta(cls, v: list[float]) -> list[float]:
        if any(b <= 0 for b in v):
            raise ValueError(f"beta values must be positive, got {v}")
        return v

    @model_validator(mode="after")
    def _activations(self) -> GridSpec:
        known = {a for acts in ACTIVATIONS.values() for a in acts}
        if isinstance(self.activation, dict):
            for kind, acts in self.activation.items():
                if kind not in KINDS:
                    raise ValueError(
                        f"activation: unknown kind '{kind}'; allowed keys: {', '.join(KINDS)}"
                    )
                bad = [a for a in acts if a not in ACTIVATIONS[kind]]
                if bad:
                    raise ValueError(
                        f"activation.{kind}: {', '.join(map(repr, bad))} not allowed; "
                        f"allowed for {kind}: {', '.join(ACTIVATIONS[kind])}"
                    )
            missing = [k for k in self.kind if not self.activation.get(k)]
            if missing:
                raise ValueError(f"activation: no activations listed for kind {missing[0]}")
        else:
            bad = [a for a in self.activation if a not in known]
            if bad or not self.activation:
                raise ValueError(
                    f"activation: {', '.join(map(repr, bad)) or 'empty list'}; "
                    f"allowed: {', '.join(sorted(known))}"
                )
        return self

    @property
    def seed_list(self) -> list[int]:
        """The seeds: 0..n-1 for a count, else the list."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


class TrainSpec(_Strict):
    """Training settings (see ``TrainConfig``); a list of values makes a setting a grid axis.

    Every field holds the list of its values (a single value in the file becomes a list of
    one), each checked as ``TrainConfig`` checks it.
    """

    epochs: list[int] = [300]
    optimizer: list[str] = ["adam"]
    lr: list[float] = [TrainConfig().lr]
    batch_size: list[int] = [TrainConfig().batch_size]
    momentum: list[float] = [TrainConfig().momentum]
    schedule: list[str] = [TrainConfig().schedule]
    final_lr_factor: list[float] = [TrainConfig().final_lr_factor]

    @field_validator(*TRAIN_SETTINGS, mode="before")
    @classmethod
    def _values(cls, v: object, info: ValidationInfo) -> list:
        values = v if isinstance(v, list) else [v]
        if not values:
            raise ValueError("an empty list; give one value or a list of values")
        checked = []
        for i, value in enumerate(values):
            try:
                checked.append(getattr(TrainConfig(**{info.field_name: value}), info.field_name))
            except ValidationError as err:
                problem = describe_validation_error(err).split(": ", 1)[-1]
                where = f"item {i} ({value!r}): " if isinstance(v, list) else ""
                raise ValueError(f"{where}{problem}") from None
        return checked

    @property
    def axes(self) -> tuple[str, ...]:
        """The settings with more than one value: the training axes of the grid."""
        return tuple(k for k in TRAIN_SETTINGS if len(set(getattr(self, k))) > 1)


class MISpec(_Strict):
    """When MI is measured, on which set, and with which estimators: the per-layer defaults,
    one ``estimator`` for every layer, or a panel ``estimators`` (member name -> estimator and
    parameters, the layer type's defaults for those not given), each measured on every layer."""

    every: int | None = Field(None, gt=0)
    log_points: int | None = Field(None, ge=2)
    measure_on: Literal["full", "train", "test"] | None = None
    estimator: str | dict[str, str | int | float] | None = None
    estimators: dict[str, dict[str, str | int | float]] | None = None

    @field_validator("estimators")
    @classmethod
    def _members(
        cls, v: dict[str, dict[str, str | int | float]] | None
    ) -> dict[str, dict[str, str | int | float]] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("name at least one member, e.g. {bin30: {name: binning}}")
        try:
            check_panel_names(list(v), "names")
        except UsageError as err:
            raise ValueError(str(err)) from None
        for member, params in v.items():
            if not isinstance(params.get("name"), str):
                raise ValueError(
                    f"{member}: give the estimator as 'name' (one of "
                    f"{', '.join(available_estimators())}), e.g. {{name: binning, n_bins: 2}}"
                )
        return v

    @model_validator(mode="after")
    def _one_schedule(self) -> MISpec:
        if self.every is not None and self.log_points is not None:
            raise ValueError("give either every or log_points, not both")
        if self.estimator is not None and self.estimators is not None:
            raise ValueError(
                "give either estimator (one for every layer) or estimators (a panel), not both"
            )
        return self

    def estimator_override(self) -> tuple[str, dict] | None:
        """The override as (registry name, parameters), or None for per-layer defaults."""
        if self.estimator is None:
            return None
        if isinstance(self.estimator, str):
            return self.estimator, {}
        params = dict(self.estimator)
        return str(params.pop("name", "")), params

    def panel(self) -> dict[str, tuple[str, dict]] | None:
        """The panel as member -> (registry name, parameters), or None without one."""
        if self.estimators is None:
            return None
        return {
            member: (str(spec["name"]), {k: v for k, v in spec.items() if k != "name"})
            for member, spec in self.estimators.items()
        }


class SpaceEntry(_Strict):
    """One searched training setting: exactly one of the distributions."""

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    choice: list[float | int | str] | None = None
    randint: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SpaceEntry:
        given = [k for k in ("loguniform", "uniform", "choice", "randint") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of loguniform, uniform, choice, randint")
        lo_hi = self.loguniform or self.uniform or self.randint
        if lo_hi and not lo_hi[0] < lo_hi[1]:
            raise ValueError(f"range must be [low, high] with low < high, got {list(lo_hi)}")
        if self.loguniform and self.loguniform[0] <= 0:
            raise ValueError("loguniform bounds must be positive")
        return self


SEARCHABLE = ("train.lr", "train.batch_size", "train.momentum", "train.optimizer")


class SearchSpec(_Strict):
    """Optuna search over training settings (instead of the grid)."""

    algorithm: Literal["optuna"] = "optuna"
    metric: Literal["test_acc", "train_acc", "loss"] = "test_acc"
    mode: Literal["max", "min"] = "max"
    num_samples: int = Field(8, gt=0)
    max_concurrent: int = Field(2, gt=0)
    space: dict[str, SpaceEntry] = Field(min_length=1)

    @field_validator("space")
    @classmethod
    def _keys(cls, v: dict[str, SpaceEntry]) -> dict[str, SpaceEntry]:
        for key in v:
            if key not in SEARCHABLE:
                raise ValueError(f"cannot search '{key}'; allowed: {', '.join(SEARCHABLE)}")
        return v


_CREDENTIAL_KEYS = ("username", "user", "password", "token", "secret", "key")


class TrackingSpec(_Strict):
    """Where runs are tracked, and how long a trial keeps retrying an unreachable store."""

    uri: str | None = None
    retry_s: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: object) -> object:
        if isinstance(data, dict):
            secret = [k for k in data if any(w in str(k).lower() for w in _CREDENTIAL_KEYS)]
            if secret:
                raise ValueError(
                    f"'{secret[0]}' does not belong in a sweep file; credentials come from the "
                    "environment (MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD or "
                    "MLFLOW_TRACKING_TOKEN); allowed keys: uri, retry_s"
                )
        return data

    @field_validator("uri")
    @classmethod
    def _no_password_in_uri(cls, v: str | None) -> str | None:
        if v is not None and uri_has_password(v):
            raise ValueError(
                "the URI holds a password; put credentials in MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (environment), not in the sweep file"
            )
        return v


def uri_has_password(uri: str) -> bool:
    """Whether a URI carries a password (``scheme://user:secret@host``)."""
    from urllib.parse import urlsplit

    try:
        return bool(urlsplit(uri).password)
    except ValueError:
        return False


class SweepSpec(_Strict):
    """A whole sweep file."""

    name: str
    grid: GridSpec = Field(default_factory=GridSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    mi: MISpec = Field(default_factory=MISpec)
    data: dict[Literal["dir"], str] = Field(default_factory=dict)
    resources: dict[Literal["cpu", "gpu"], float] = Field(default_factory=lambda: {"cpu": 1})
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    storage: str | None = None
    max_failures: int = Field(2, ge=0)
    seeds_per_trial: int = Field(1, gt=0)
    # at most this many trials at once (default: as many as free CPUs allow); a trial's worker
    # then trains the next trial, so a smaller number also starts fewer worker processes
    max_concurrent_trials: int | None = Field(None, gt=0)
    search: SearchSpec | None = None
    # every setting of the analysis (analysis.settings); `ibsweep analyze --set` overrides
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"'{v}' is not a usable name; allowed: letters, digits, '_', '.', '-' "
                "(up to 100, starting with a letter or digit)"
            )
        return v

    @model_validator(mode="after")
    def _estimators_fit_every_layer(self) -> SweepSpec:
        """Build every estimator on every layer type of the grid, so none fails in a trial."""
        g = self.grid
        for kind in g.kind:
            activations = g.activation[kind] if isinstance(g.activation, dict) else g.activation
            for activation in activations:
                if activation not in ACTIVATIONS[kind]:
                    continue  # skipped by the expansion
                model = ModelConfig(kind=kind, activation=activation)
                try:
                    LayerMeter(model, self.mi.estimator_override(), self.mi.panel())
                except UsageError as err:
                    raise ValueError(str(err)) from None
        return self

    @model_validator(mode="after")
    def _one_concurrency_limit(self) -> SweepSpec:
        if self.search is not None and self.max_concurrent_trials is not None:
            raise ValueError(
                "max_concurrent_trials is for a grid; a search takes search.max_concurrent"
            )
        return self

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: dict[str, float]) -> dict[str, float]:
        if v.get("cpu", 1) <= 0:
            raise ValueError(f"cpu must be > 0, got {v}")
        if v.get("gpu", 0) != 0:
            # reserving a GPU the packed trainer would never use only idles the card
            raise ValueError(
                f"gpu: {v['gpu']:g} asked, but training runs on the CPU only (the packed "
                "trainer has no GPU path); remove gpu (allowed: gpu 0)"
            )
        return v

    def digest(self) -> str:
        """A short hash of the normalised spec: the same sweep gives the same digest."""
        # the analysis reads the runs afterwards: its settings are not what the sweep computes
        data = self.model_dump(mode="json", exclude={"analysis"})
        # retry_s is how a run copes with outages, not what it computes
        data["tracking"] = self.tracking.model_dump(exclude_none=True, exclude={"retry_s"})
        del data["max_concurrent_trials"]  # how many train at once, not what they compute
        if self.mi.estimators is None:  # a file without a panel keeps the digest it had
            del data["mi"]["estimators"]
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def sweep_file(path: str | Path) -> Path:
    """The sweep file at ``path``, or else the shipped example of that name ('quick', ...)."""
    path = Path(path)
    if path.exists() or path.parent != Path("."):
        return path
    try:
        return example_path(path.name)
    except FileNotFoundError:
        return path


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; every problem is one line naming file and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        shipped = ", ".join(examples())
        raise UsageError(
            f"{path}: sweep file not found (nor a shipped example: {shipped})"
        ) from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read sweep file ({err.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UsageError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise UsageError(
            f"{path}: a sweep file must be a YAML mapping with at least 'name' and 'grid', "
            f"got {type(raw).__name__}"
        )
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise UsageError(f"{path}: {describe_validation_error(err, model=SweepSpec)}") from None
