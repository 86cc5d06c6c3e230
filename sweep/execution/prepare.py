"""Before any trial starts: every input checked, and the parent and child runs in MLflow."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from ibsweep.analysis import run_schema as rs
from ibsweep.models.datasets import DatasetError, load_dataset, measure_indices, split_indices
from ibsweep.sweep.config.grid import Plan, Trial
from ibsweep.sweep.config.spec import SweepSpec
from ibsweep.sweep.errors import UsageError
from ibsweep.sweep.tracking.spool import Spool
from ibsweep.sweep.tracking.store import (
    child_runs,
    create_child,
    latest_parent,
    log_params,
    open_experiment,
    package_version,
    set_tags,
)
from ibsweep.sweep.training.meter import LayerMeter


@dataclass
class Execution:
    """One execution of a sweep in MLflow: the parent run and each child run by key.

    ``tune_path`` is Tune's experiment folder: a path, or a URI such as s3://bucket/x.
    """

    experiment_id: str
    parent_id: str
    resumed: bool
    tune_path: str
    run_ids: dict[str, str]
    complete: bool = False

    @property
    def spool(self) -> Spool:
        """Where trials keep the points the tracking store did not take."""
        storage, name = self.tune_path.rstrip("/").rsplit("/", 1)
        return Spool(f"{storage}/spool/{name}")


def data_dir(spec: SweepSpec) -> str:
    """The absolute data directory trials read from (they run in other folders)."""
    raw = spec.data.get("dir") or os.environ.get("IBSWEEP_DATA_DIR") or "data"
    return str(Path(raw).expanduser().resolve())


@dataclass(frozen=True)
class MeasureSet:
    """The set a dataset's MI is measured on: its name, size and number of classes."""

    name: str
    n: int
    n_classes: int


def check_inputs(plan: Plan, data_root: str) -> dict[str, MeasureSet]:
    """Load every dataset and build every estimator now, so bad input fails before anything.

    Returns, per dataset, the measurement set.
    """
    spec = plan.spec
    measured: dict[str, MeasureSet] = {}
    for name in dict.fromkeys(c.dataset for c in plan.configurations):
        try:
            ds = load_dataset(name, data_root)
        except DatasetError as err:
            raise UsageError(str(err)) from None
        which = spec.mi.measure_on or ds.default_measure
        n = len(measure_indices(ds, split_indices(ds, 0), which))
        measured[name] = MeasureSet(which, n, ds.n_classes)
    for config in plan.configurations:
        LayerMeter(config.model, spec.mi.estimator_override(), spec.mi.panel())
    return measured


def run_params(
    plan: Plan, trial: Trial, seed: int, measured: dict[str, MeasureSet]
) -> dict[str, str]:
    """Every configuration value of one run, flattened with dots (MLflow params), and how each
    layer is measured: per estimator (panel member) and layer, the estimator and log2 of the
    most states it can tell apart there (for the layer's own ceiling)."""
    spec, m = plan.spec, trial.config.model
    where = measured[trial.config.dataset]
    mi = spec.mi
    params = {
        "model.kind": m.kind,
        "model.activation": m.activation,
        "model.widths": m.widths_label,
        rs.N_LAYERS: len(m.widths) + 1,
        "model.beta": m.beta,
        "model.bnn_norm": m.bnn_norm,
        "model.bnn_first": m.bnn_first,
        "model.bnn_last": m.bnn_last,
        "data.name": trial.config.dataset,
        "data.measure_on": where.name,
        rs.N_SAMPLES: where.n,
        "mi.schedule": f"log_points={mi.log_points}" if mi.log_points else f"every={mi.every or 1}",
        rs.SEED: seed,
        "sweep.seeds_per_trial": spec.seeds_per_trial,
        **{f"train.{k}": v for k, v in trial.config.train.model_dump().items()},
    }
    meter = LayerMeter(m, mi.estimator_override(), mi.panel())
    if meter.panel:
        params[rs.PANEL] = ",".join(meter.members)
    member_bits = meter.max_bits((*m.widths, where.n_classes))
    for member, descriptions in meter.describe().items():
        for k, (desc, bits) in enumerate(zip(descriptions, member_bits[member], strict=True), 1):
            params[rs.estimator_param(k, member)] = desc
            params[rs.max_bits_param(k, member)] = _shortest(bits)
    return {k: str(v) for k, v in params.items()}


def _shortest(value: float) -> str:
    """A float as text that reads back exactly: 3, 9.813781191217037, inf."""
    return str(int(value)) if value.is_integer() else repr(value)


def prepare_execution(
    client: MlflowClient,
    plan: Plan,
    spec_path: Path,
    measured: dict[str, MeasureSet],
    storage: str,
    restart: bool,
) -> Execution:
    """Create (or find, to resume) the parent run and every child run, before any trial starts."""
    spec = plan.spec
    exp_id = open_experiment(client, spec.name)
    digest = spec.digest()
    parent = None if restart else latest_parent(client, exp_id, digest)
    resumed = parent is not None
    if parent is None:
        parent_run = client.create_run(
            exp_id,
            run_name=f"{spec.name}-sweep",
            tags={
                rs.ROLE: rs.PARENT_ROLE,
                rs.SWEEP: spec.name,
                rs.DIGEST: digest,
                rs.VERSION: package_version(),
            },
        )
        parent_id = parent_run.info.run_id
        tune_path = f"{storage}/{spec.name}-{parent_id[:8]}"
        set_tags(client, parent_id, {rs.TUNE_PATH: tune_path})
        log_params(
            client,
            parent_id,
            {
                "sweep.name": spec.name,
                "sweep.grid_size": plan.n_runs,
                "sweep.trials": len(plan.trials),
                "sweep.configurations": len(plan.configurations),
                "sweep.epochs": ",".join(map(str, spec.train.epochs)),
                "sweep.seeds_per_trial": spec.seeds_per_trial,
            },
        )
        client.log_artifact(parent_id, str(spec_path), artifact_path=rs.SPEC_ARTIFACTS)
    else:
        parent_id = parent.info.run_id
        tune_path = parent.data.tags[rs.TUNE_PATH]
        if parent.info.status == "FINISHED":
            return Execution(exp_id, parent_id, True, tune_path, {}, complete=True)
        client.update_run(parent_id, status="RUNNING")
    if spec.search is not None:
        return Execution(exp_id, parent_id, resumed, tune_path, {})
    existing = {k: r.info.run_id for k, r in child_runs(client, exp_id, parent_id).items()}
    tags = {rs.SWEEP: spec.name, rs.VERSION: package_version()}
    run_ids = {}
    for trial in plan.trials:
        for seed in trial.seeds:
            key = trial.run_name(seed)
            run_ids[key] = existing.get(key) or create_child(
                client, exp_id, parent_id, key, key, run_params(plan, trial, seed, measured), tags
            )
    return Execution(exp_id, parent_id, resumed, tune_path, run_ids)
