"""``ibsweep run``: a sweep on Ray Tune, tracked in MLflow, resumable after interruption."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from ibsweep.models.datasets import DatasetError, load_dataset, measure_indices, split_indices
from ibsweep.sweep.errors import UsageError
from ibsweep.sweep.grid import Plan, Trial, expand, train_config
from ibsweep.sweep.measure import LayerMeter
from ibsweep.sweep.spec import SweepSpec, load_spec, uri_has_password
from ibsweep.sweep.store import (
    child_runs,
    create_child,
    latest_parent,
    log_params,
    open_experiment,
    package_version,
    set_tags,
)
from ibsweep.sweep.tracking import (
    DEFAULT_RETRY_S,
    UNAVAILABLE,
    Spool,
    TrackingUnavailable,
    resolve_tracking_uri,
    server_reachable,
)

DEFAULT_STORAGE = ".ibsweep/tune"
SHARED_STORAGE_ENV = "IBSWEEP_SHARED_STORAGE"


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


def resolve_storage(raw: str | None) -> str:
    """Tune's storage: a URI (s3://, gs://, ...) as given, else an absolute path."""
    raw = raw or DEFAULT_STORAGE
    if "://" in raw and not raw.startswith("file://"):
        return raw.rstrip("/")
    return str(Path(raw.removeprefix("file://")).expanduser().resolve())


def storage_is_shared(storage: str) -> bool:
    """Whether every node sees ``storage``: a URI, or a path under $IBSWEEP_SHARED_STORAGE."""
    if "://" in storage:
        return True
    roots = [r for r in os.environ.get(SHARED_STORAGE_ENV, "").split(os.pathsep) if r.strip()]
    path = Path(storage)
    return any(path.is_relative_to(Path(r).expanduser().resolve()) for r in roots)


def tracking_is_local(uri: str) -> bool:
    """Whether a tracking URI is a store on this machine's disk (SQLite, file:, a plain path)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    return scheme in ("", "file", "sqlite")


def _loopback(uri: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(uri).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def check_cluster(where: Path, nodes: list[dict], uri: str, storage: str) -> None:
    """Refuse stores a multi-node cluster cannot share; ``nodes`` are Ray's alive nodes."""
    if len(nodes) <= 1:
        return
    n, hosts = len(nodes), {node["NodeManagerAddress"] for node in nodes}
    if tracking_is_local(uri):
        raise UsageError(
            f"{where}: tracking URI {uri} is a store on one machine's disk, but the Ray cluster "
            f"has {n} nodes; use the cluster's MLflow server (http://HEAD:5000) or a database "
            "server (postgresql://...)"
        )
    if len(hosts) > 1 and _loopback(uri):
        raise UsageError(
            f"{where}: tracking URI {uri} is a loopback address, but the Ray cluster's {n} nodes "
            "are on different hosts; use the server's address on the cluster's private network"
        )
    if not storage_is_shared(storage):
        declared = os.environ.get(SHARED_STORAGE_ENV) or "unset"
        raise UsageError(
            f"{where}: storage {storage} is local to this machine, but the Ray cluster has {n} "
            f"nodes; give a storage every node shares: s3://..., gs://..., or a path under "
            f"${SHARED_STORAGE_ENV} (now {declared})"
        )


def data_dir(spec: SweepSpec) -> str:
    """The absolute data directory trials read from (they run in other folders)."""
    raw = spec.data.get("dir") or os.environ.get("IBSWEEP_DATA_DIR") or "data"
    return str(Path(raw).expanduser().resolve())


def check_inputs(plan: Plan, data_root: str) -> dict[str, tuple[str, int]]:
    """Load every dataset and build every estimator now, so bad input fails before anything.

    Returns, per dataset, the measurement set's name and size.
    """
    spec = plan.spec
    measured: dict[str, tuple[str, int]] = {}
    for name in dict.fromkeys(c.dataset for c in plan.configurations):
        try:
            ds = load_dataset(name, data_root)
        except DatasetError as err:
            raise UsageError(str(err)) from None
        which = spec.mi.measure_on or ds.default_measure
        measured[name] = (which, len(measure_indices(ds, split_indices(ds, 0), which)))
    for config in plan.configurations:
        LayerMeter(config.model, spec.mi.estimator_override())
    return measured


def run_params(
    plan: Plan, trial: Trial, seed: int, measured: dict[str, tuple[str, int]]
) -> dict[str, str]:
    """Every configuration value of one run, flattened with dots (MLflow params)."""
    spec, m = plan.spec, trial.config.model
    which, n = measured[trial.config.dataset]
    mi = spec.mi
    params = {
        "model.kind": m.kind,
        "model.activation": m.activation,
        "model.widths": m.widths_label,
        "model.n_layers": len(m.widths) + 1,
        "model.beta": m.beta,
        "model.bnn_norm": m.bnn_norm,
        "data.name": trial.config.dataset,
        "data.measure_on": which,
        "mi.n_samples": n,
        "mi.schedule": f"log_points={mi.log_points}" if mi.log_points else f"every={mi.every or 1}",
        "seed": seed,
        "sweep.seeds_per_trial": spec.seeds_per_trial,
        **{f"train.{k}": v for k, v in spec.train.model_dump().items()},
    }
    meter = LayerMeter(m, mi.estimator_override())
    for k, desc in enumerate(meter.describe(), start=1):
        params[f"mi.layer{k}.estimator"] = desc
    return {k: str(v) for k, v in params.items()}


def prepare_execution(
    client: MlflowClient,
    plan: Plan,
    spec_path: Path,
    measured: dict[str, tuple[str, int]],
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
                "ibsweep.role": "parent",
                "ibsweep.sweep": spec.name,
                "ibsweep.digest": digest,
                "ibsweep.version": package_version(),
            },
        )
        parent_id = parent_run.info.run_id
        tune_path = f"{storage}/{spec.name}-{parent_id[:8]}"
        set_tags(client, parent_id, {"ibsweep.tune_path": tune_path})
        log_params(
            client,
            parent_id,
            {
                "sweep.name": spec.name,
                "sweep.grid_size": plan.n_runs,
                "sweep.trials": len(plan.trials),
                "sweep.configurations": len(plan.configurations),
                "sweep.epochs": spec.train.epochs,
                "sweep.seeds_per_trial": spec.seeds_per_trial,
            },
        )
        client.log_artifact(parent_id, str(spec_path), artifact_path="sweep")
    else:
        parent_id = parent.info.run_id
        tune_path = parent.data.tags["ibsweep.tune_path"]
        if parent.info.status == "FINISHED":
            return Execution(exp_id, parent_id, True, tune_path, {}, complete=True)
        client.update_run(parent_id, status="RUNNING")
    if spec.search is not None:
        return Execution(exp_id, parent_id, resumed, tune_path, {})
    existing = {k: r.info.run_id for k, r in child_runs(client, exp_id, parent_id).items()}
    tags = {"ibsweep.sweep": spec.name, "ibsweep.version": package_version()}
    run_ids = {}
    for trial in plan.trials:
        for seed in trial.seeds:
            key = trial.run_name(seed)
            run_ids[key] = existing.get(key) or create_child(
                client, exp_id, parent_id, key, key, run_params(plan, trial, seed, measured), tags
            )
    return Execution(exp_id, parent_id, resumed, tune_path, run_ids)


def trial_space(plan: Plan, execution: Execution, uri: str, data_root: str) -> tuple[dict, list]:
    """Settings common to every trial, and one entry per trial for ``tune.grid_search``."""
    spec = plan.spec
    common = {
        "tracking_uri": uri,
        "threads": max(1, int(spec.resources.get("cpu", 1))),
        "data_dir": data_root,
        "train": train_config(spec).model_dump(),
        "schedule": plan.schedule,
        "measure_on": spec.mi.measure_on,
        "estimator": spec.mi.estimator_override(),
        "tracking_retry_s": spec.tracking.retry_s or DEFAULT_RETRY_S,
        "spool": execution.spool.root,
    }
    per_trial = [
        {
            "label": t.config.label,
            "model": t.config.model.model_dump(mode="json"),
            "dataset": t.config.dataset,
            "seeds": list(t.seeds),
            "run_ids": [execution.run_ids.get(t.run_name(s)) for s in t.seeds],
        }
        for t in plan.trials
    ]
    return common, per_trial


def search_trial(plan: Plan, execution: Execution, measured: dict[str, tuple[str, int]]) -> dict:
    """The one configuration an Optuna search tunes, with every seed packed in each sample."""
    config = plan.configurations[0]
    seeds = tuple(plan.spec.grid.seed_list)
    trial = Trial(config, seeds)
    return {
        "label": config.label,
        "model": config.model.model_dump(mode="json"),
        "dataset": config.dataset,
        "seeds": list(seeds),
        "run_ids": None,
        "search": {
            "experiment_id": execution.experiment_id,
            "parent_id": execution.parent_id,
            "sweep": plan.spec.name,
            "params": [run_params(plan, trial, s, measured) for s in seeds],
        },
    }


def ray_token_available() -> bool:
    """Whether a Ray token is at hand: $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).expanduser().is_file()


def use_ray_token() -> bool:
    """Turn on Ray token authentication when RAY_AUTH_MODE is unset and a token is at hand.

    As Ray does for a cluster it finds by itself; RAY_AUTH_MODE=disabled never sends a token.
    Ray reads the mode when it is first imported, so this runs before ``import ray``.
    Returns whether token authentication is on.
    """
    if "RAY_AUTH_MODE" not in os.environ and ray_token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"


def init_ray(address: str | None, cpus: int | None = None) -> None:
    """Connect to a cluster (``--address`` or RAY_ADDRESS), else start local Ray."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        use_ray_token()
    import ray

    kwargs = {"logging_level": logging.WARNING, "log_to_driver": False}
    if not address:
        ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, **kwargs)
        return
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError) as err:
        raise UsageError(
            f"cannot connect to the Ray cluster at {address} ({str(err).splitlines()[0]}); check "
            "the address, and for token authentication RAY_AUTH_MODE=token with RAY_AUTH_TOKEN "
            "or RAY_AUTH_TOKEN_PATH"
        ) from None


def alive_nodes() -> list[dict]:
    """The alive nodes of the connected Ray cluster."""
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def deliver_spool(client: MlflowClient, execution: Execution, retry_s: float) -> None:
    """Deliver the points trials spooled in an earlier execution, before any trial starts."""
    held, runs = execution.spool.count()
    if held:
        written = execution.spool.deliver(client, retry_s=retry_s)
        print(
            f"delivered {written} spooled points of {runs} runs "
            f"({held - written} were already in MLflow)",
            file=sys.stderr,
        )


def stopped_by_tracking(
    client: MlflowClient, execution: Execution, errors: dict[str, str], uri: str, path: Path
) -> int | None:
    """After Tune: exit code 1 with a clear error when the tracking store stopped trials.

    Such trials stay unfinished (their runs are not marked), so the next ``ibsweep run`` of
    the same file delivers the spooled points and resumes them from their checkpoints.
    """
    stopped = sorted(label for label, reason in errors.items() if UNAVAILABLE in reason)
    held, runs = execution.spool.count()
    if held and server_reachable(uri):
        try:
            deliver_spool(client, execution, 60.0)
            held, runs = execution.spool.count()
        except TrackingUnavailable:
            pass
    if not stopped and not held:
        return None
    what = (
        f"stopped {len(stopped)} trials ({errors[stopped[0]]})"
        if stopped
        else "did not take the spooled points"
    )
    kept = f"; {held} points of {runs} runs are kept in {execution.spool.root}" if held else ""
    print(
        f"ibsweep: error: the tracking store {uri} {what}{kept}. When it is back, run "
        f"`ibsweep run {path}` again: spooled points are delivered first and the trials resume "
        "from their checkpoints",
        file=sys.stderr,
    )
    return 1


def run_sweep(
    spec_path: str,
    tracking_uri: str | None = None,
    address: str | None = None,
    restart: bool = False,
    analyze: bool = True,
) -> int:
    """Run (or resume) a sweep file; returns the process exit code."""
    path = Path(spec_path)
    spec = load_spec(path)
    plan = expand(spec)
    if not plan.trials:
        raise UsageError(f"{path}: the grid has no runnable configuration (all were skipped)")
    if spec.search is not None and len(plan.configurations) != 1:
        raise UsageError(
            f"{path}: search tunes one configuration, but the grid expands to "
            f"{len(plan.configurations)} ({', '.join(c.label for c in plan.configurations[:3])}"
            f"{', ...' if len(plan.configurations) > 3 else ''}); give one value per grid axis"
        )
    data_root = data_dir(spec)
    measured = check_inputs(plan, data_root)
    uri = resolve_tracking_uri(tracking_uri, spec.tracking.uri)
    if uri_has_password(uri):
        raise UsageError(
            "the tracking URI holds a password; put credentials in MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD (environment) instead"
        )
    storage = resolve_storage(spec.storage)
    address = address or os.environ.get("RAY_ADDRESS")
    if address:  # on a cluster, refuse what its nodes cannot share before anything starts
        init_ray(address)
        check_cluster(path, alive_nodes(), uri, storage)
    if not server_reachable(uri):
        raise UsageError(f"the tracking server {uri} does not answer; is it running?")
    client = MlflowClient(uri)
    execution = prepare_execution(client, plan, path, measured, storage, restart)
    if execution.complete:
        print(
            f"sweep '{spec.name}' is already complete (parent run {execution.parent_id}); "
            "--restart runs it again",
            file=sys.stderr,
        )
        return 0
    verb = "resuming" if execution.resumed else "starting"
    print(
        f"{verb} sweep '{spec.name}': {len(plan.trials)} trials, {plan.n_runs} runs, "
        f"{plan.seed_epochs} seed-epochs; MLflow {uri} (parent run {execution.parent_id})",
        file=sys.stderr,
    )
    try:
        deliver_spool(client, execution, spec.tracking.retry_s or DEFAULT_RETRY_S)
    except TrackingUnavailable as err:
        raise UsageError(f"{err}; the points stay in {execution.spool.root}") from None
    from ibsweep.sweep.tuning import run_tuner

    outcome = run_tuner(plan, execution, uri, data_root, address, measured)
    code = stopped_by_tracking(client, execution, outcome.errors, uri, path)
    if code is not None:
        return code
    from ibsweep.sweep.outcome import finish_execution

    return finish_execution(client, plan, execution, outcome, uri, analyze)
