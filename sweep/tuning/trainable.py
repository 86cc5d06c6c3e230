"""The Ray Tune trainable: trains one trial's packed seeds and logs them to MLflow."""

from __future__ import annotations

import copy
import functools
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from ray import tune

from ibsweep.analysis import run_schema as rs
from ibsweep.analysis.estimators import StackedEstimates
from ibsweep.analysis.series_artifact import write_series_artifact
from ibsweep.analysis.sqlite_metrics import bulk_writer
from ibsweep.models.allocator import keep_freed_memory
from ibsweep.models.config import ModelConfig, TrainConfig
from ibsweep.models.datasets import Dataset, load_dataset
from ibsweep.models.training import EpochRecord, Trainer
from ibsweep.sweep.config.grid import trial_name
from ibsweep.sweep.tracking.retry import DEFAULT_RETRY_S, call_with_retry
from ibsweep.sweep.tracking.sink import MetricSink
from ibsweep.sweep.tracking.spool import Spool
from ibsweep.sweep.tracking.store import (
    child_runs,
    create_child,
    logged_steps,
    package_version,
)
from ibsweep.sweep.training.meter import LayerMeter, permuted_labels
from ibsweep.sweep.tuning.test_hold import TestHolds

REPORT_S = 2.0


CHECKPOINT_S = 10.0


_STATE_FILE = "trainer.pt"
CHECKPOINT_PREFIX = "ibsweep-ckpt-"


@functools.lru_cache(maxsize=4)
def _dataset(name: str, data_dir: str | None) -> Dataset:
    return load_dataset(name, data_dir)


# the field of StackedEstimates that each MI metric logs
_MI_FIELDS = {rs.I_XT: "i_xt", rs.I_TY: "i_ty", rs.I_TY_PERM: "i_ty_perm", rs.STATES: "n_states"}


@functools.lru_cache(maxsize=8)
def _mi_keys(n_layers: int, members: tuple[str, ...]) -> tuple[str, ...]:
    """The MI keys of one seed-epoch, in the order of ``mi_values``' columns."""
    return tuple(
        rs.layer_key(metric, k, member)
        for member in members
        for metric in _MI_FIELDS
        for k in range(1, n_layers + 1)
    )


def mi_values(mi: dict[str, StackedEstimates]) -> np.ndarray:
    """Every seed's MI numbers (S, members x metrics x layers), in ``_mi_keys`` order."""
    rows = [
        np.stack([getattr(e, f).astype(float) for f in _MI_FIELDS.values()], axis=1)
        for e in mi.values()
    ]
    return np.concatenate([r.reshape(len(r), -1) for r in rows], axis=1)


def epoch_metrics(
    record: EpochRecord, s: int, mi: np.ndarray | None = None, members: tuple[str, ...] = ()
) -> dict[str, float]:
    """The MLflow metrics of seed s at one epoch; ``mi`` its row of ``mi_values`` (None on an
    epoch not measured), ``members`` the panel's names (``("default",)`` without a panel)."""
    out = {
        rs.LOSS: float(record.loss[s]),
        rs.TRAIN_ACC: float(record.train_acc[s]),
        rs.TEST_ACC: float(record.test_acc[s]),
    }
    n_layers = record.grad_snr.shape[1]
    if record.epoch > 0:  # NaN when the gradient vanished: logged, so every epoch has one
        for k in range(n_layers):
            out[rs.layer_key(rs.GRAD_SNR, k + 1)] = float(record.grad_snr[s, k])
    if mi is not None:
        out.update(zip(_mi_keys(n_layers, members), mi.tolist(), strict=True))
    return out


def _report_checkpoint(metrics: dict, state: dict) -> None:
    """Report ``metrics`` with the trainer's state as a checkpoint, from a temporary folder.

    Tune copies the folder into the trial's storage during ``report``; it is removed after.
    """
    with tempfile.TemporaryDirectory(prefix=CHECKPOINT_PREFIX) as folder:
        torch.save(state, Path(folder) / _STATE_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _summary(record: EpochRecord | None, active: np.ndarray, done: bool) -> dict[str, float]:
    if record is None or not active.any():
        nan = float("nan")
        epoch = record.epoch if record else 0
        return {
            "epoch": epoch,
            "loss": nan,
            "train_acc": nan,
            "test_acc": nan,
            "seeds_active": 0,
            "done": done,
        }
    return {
        "epoch": record.epoch,
        "loss": float(np.mean(record.loss[active])),
        "train_acc": float(np.mean(record.train_acc[active])),
        "test_acc": float(np.mean(record.test_acc[active])),
        "seeds_active": int(active.sum()),
        "done": done,
    }


def _search_runs(client: MlflowClient, config: dict) -> list[str]:
    """A search trial's child runs, created once per (Tune trial, seed) even across retries."""
    search = config["search"]
    trial_id = tune.get_context().get_trial_id()
    existing = child_runs(client, search["experiment_id"], search["parent_id"])
    overrides = {f"train.{k}": str(v) for k, v in config["overrides"].items()}
    tags = {rs.SWEEP: search["sweep"], rs.VERSION: package_version()}
    run_ids = []
    for seed, params in zip(config["seeds"], search["params"], strict=True):
        key = f"{config['label']}-{trial_id}-s{seed}"
        run = existing.get(key)
        run_ids.append(
            run.info.run_id
            if run
            else create_child(
                client,
                search["experiment_id"],
                search["parent_id"],
                key,
                key,
                {**params, **overrides, rs.SEARCH_TRIAL: trial_id},
                tags,
            )
        )
    return run_ids


def train_trial(config: dict) -> None:
    """Train the trial described by ``config`` (see ``sweep.runner``), resuming if possible."""
    config = {**config, **config["trial"]}
    # the trial's worker process is this function's: its settings are set here
    torch.set_num_threads(int(config["threads"]))
    keep_freed_memory()
    retry_s = float(config.get("tracking_retry_s", DEFAULT_RETRY_S))
    spool = Spool(config["spool"]) if config.get("spool") else None
    client = MlflowClient(config["tracking_uri"])
    run_ids: list[str] = config.get("run_ids") or call_with_retry(
        lambda: _search_runs(client, config), retry_s, "creating the runs"
    )
    statuses = call_with_retry(
        lambda: [client.get_run(r).info.status for r in run_ids], retry_s, "reading the runs"
    )
    if all(s in ("FINISHED", "FAILED") for s in statuses):
        tune.report({"done": True, "skipped": True})
        return
    model = ModelConfig(**config["model"])
    train = TrainConfig(**config["train"])
    if "overrides" in config:
        train = train.model_copy(update=config["overrides"])
    data = _dataset(config["dataset"], config["data_dir"])
    trainer = Trainer(model, train, data, config["seeds"], config["measure_on"])
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(torch.load(Path(folder) / _STATE_FILE, weights_only=False))
    meter = LayerMeter(model, config["estimator"], config.get("panel"))
    schedule = set(config["schedule"])
    labels = trainer.measure_labels
    perm = permuted_labels(labels, config["seeds"])
    if spool is not None:  # points an earlier attempt could not deliver go first
        spool.deliver(client, run_ids, retry_s)
    sink = MetricSink(
        client, retry_s=retry_s, spool=spool, bulk=bulk_writer(config["tracking_uri"])
    )
    keys = rs.run_metric_keys(trainer.n_layers, meter.members if meter.panel else None)
    for run_id in run_ids:
        steps = call_with_retry(
            lambda r=run_id: logged_steps(client, r, keys), retry_s, "reading logged steps"
        )
        sink.skip_through(run_id, steps)
    if "search" not in config:  # a searcher needs its metric in every result
        tune.report({"epoch": trainer.epoch, "done": False})
    holds = TestHolds.from_env(trial_name(config["label"], config["seeds"]))
    last_report = last_ckpt = time.monotonic()
    record = None
    # (state, summary, ticket) of a checkpoint taken but not saved until MLflow holds its epochs
    waiting: tuple[dict, dict, int] | None = None
    try:
        for record in trainer.run(measure=schedule.__contains__):
            if record.epoch in schedule:
                live = np.flatnonzero(record.active)
                values = None
                if record.layers is not None and len(live):
                    every = len(live) == len(record.active)  # no copy of every layer then
                    values = mi_values(
                        meter.estimate(
                            record.layers if every else [rep[live] for rep in record.layers],
                            labels if every else labels[live],
                            perm if every else perm[live],
                        )
                    )
                for j, s in enumerate(live):
                    row = None if values is None else values[j]
                    metrics = epoch_metrics(record, s, row, meter.members)
                    sink.add(run_ids[s], metrics, record.epoch)
            now = time.monotonic()
            hold = holds.at(record.epoch)
            # A checkpoint never runs ahead of what MLflow holds: its state is copied now and
            # saved once the sink has stored every point up to this epoch, while training goes
            # on (and the sink retries if the store is failing).
            if waiting is None and ((hold and hold.saved) or now - last_ckpt >= CHECKPOINT_S):
                state = copy.deepcopy(trainer.state_dict())
                waiting = state, _summary(record, record.active, False), sink.request_flush()
                last_ckpt = now
            while True:
                if waiting is not None and sink.stored(waiting[2]):
                    _report_checkpoint(waiting[1], waiting[0])
                    waiting, last_report = None, now
                elif now - last_report >= REPORT_S:
                    tune.report(_summary(record, record.active, False))
                    last_report = now
                if hold is None or hold.done(checkpointed=waiting is None):
                    break
                now = time.monotonic()
        sink.close()
    except BaseException:
        sink.close()
        raise
    for s, run_id in enumerate(run_ids):
        if statuses[s] in ("FINISHED", "FAILED"):
            continue
        failure = trainer.failure[s]
        if failure is not None:
            call_with_retry(
                lambda r=run_id, f=failure: client.set_tag(r, rs.FAILURE, f),
                retry_s,
                "tagging a run",
            )
        if failure is None and urlparse(config["tracking_uri"]).scheme in ("http", "https"):
            # one file per run lets an analysis read a big sweep fast through the server
            call_with_retry(
                lambda r=run_id: write_series_artifact(client, r, keys),
                retry_s,
                "storing the series artifact",
            )
        status = RunStatus.to_string(RunStatus.FAILED if failure else RunStatus.FINISHED)
        call_with_retry(
            lambda r=run_id, st=status: client.set_terminated(r, st), retry_s, "ending a run"
        )
    _report_checkpoint(_summary(record, trainer.active, True), trainer.state_dict())
