"""Short human-readable summaries printed at the end of a command."""

from __future__ import annotations

import pyarrow.compute as pc

from ibsweep.models.config import ModelConfig, TrainConfig
from ibsweep.sweep.training.single_run import RunResult

_MEANS = ("loss", "train_acc", "test_acc", "i_xt", "i_ty", "i_ty_perm", "n_states")


def print_run_summary(
    model: ModelConfig, train: TrainConfig, dataset: str, result: RunResult
) -> None:
    """Final accuracies and the last measured epoch's information per layer and estimator
    (seed means), with the layer's ceiling under that estimator."""
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
    grouped = final.group_by(["estimator", "layer"]).aggregate(
        [(c, "mean") for c in _MEANS] + [("layer_ceiling", "max")]
    )
    rows = {(r["estimator"], r["layer"]): r for r in grouped.to_pylist()}
    first = next(iter(rows.values()))
    print(
        f"epoch {last}: loss {first['loss_mean']:.4f}  train_acc {first['train_acc_mean']:.4f}"
        f"  test_acc {first['test_acc_mean']:.4f}"
    )
    print(
        f"{'layer':>5}  {'member':<10}  {'I(X;T)':>8}  {'I(T;Y)':>8}  {'perm':>6}  {'states':>7}"
        f"  {'ceiling':>7}  estimator"
    )
    n_layers = max(len(layers) for layers in result.estimators.values())
    for k in range(1, n_layers + 1):  # the members of each layer together
        for member, layers in result.estimators.items():
            row, desc = rows.get((member, k)), layers[k - 1]
            if row is None:
                continue
            print(
                f"{k:>5}  {member:<10}  {row['i_xt_mean']:8.3f}  {row['i_ty_mean']:8.3f}  "
                f"{row['i_ty_perm_mean']:6.3f}  {row['n_states_mean']:7.0f}  "
                f"{row['layer_ceiling_max']:7.2f}  {desc}"
            )
