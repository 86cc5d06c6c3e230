"""Short human-readable summaries printed at the end of a command."""

from __future__ import annotations

import pyarrow.compute as pc

from ibsweep.models.config import ModelConfig, TrainConfig
from ibsweep.sweep.training.single_run import RunResult


def print_run_summary(
    model: ModelConfig, train: TrainConfig, dataset: str, result: RunResult
) -> None:
    """Final accuracies and the last measured epoch's information per layer (seed means)."""
    t = result.table
    options = (
        f" ({model.bnn_norm}, first layer {model.bnn_first}, last layer {model.bnn_last})"
        if model.kind == "bnn"
        else ""
    )
    decay = f", {train.schedule} to {train.final_lr_factor:g}x" * (train.schedule != "constant")
    print(
        f"{model.kind}-{model.activation}-{model.widths_label}{options} on {dataset}: "
        f"{train.epochs} epochs ({train.optimizer}, lr {train.lr:g}{decay}, batch "
        f"{train.batch_size}) in {result.seconds:.1f}s"
    )
    seeds = sorted(set(t.column("seed").to_pylist()))
    for seed, status in zip(seeds, result.status, strict=False):
        print(f"  seed {seed}: {status}")
    measured = t.filter(pc.is_valid(t.column("i_xt")))
    if measured.num_rows == 0:
        return
    last = pc.max(measured.column("epoch")).as_py()
    final = measured.filter(pc.equal(measured.column("epoch"), last))
    grouped = (
        final.group_by("layer")
        .aggregate(
            [(c, "mean") for c in ("loss", "train_acc", "test_acc", "i_xt", "i_ty", "n_states")]
        )
        .sort_by("layer")
    )
    first = grouped.to_pylist()[0]
    print(
        f"epoch {last}: loss {first['loss_mean']:.4f}  train_acc {first['train_acc_mean']:.4f}"
        f"  test_acc {first['test_acc_mean']:.4f}"
    )
    print(f"{'layer':>5}  {'I(X;T)':>8}  {'I(T;Y)':>8}  {'states':>7}  estimator")
    for row in grouped.to_pylist():
        est = result.estimators[row["layer"] - 1] if result.estimators else ""
        print(
            f"{row['layer']:>5}  {row['i_xt_mean']:8.3f}  {row['i_ty_mean']:8.3f}  "
            f"{row['n_states_mean']:7.0f}  {est}"
        )
