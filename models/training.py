"""Training one configuration for one or several seeds, epoch by epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ibsweep.models.config import ModelConfig, TrainConfig
from ibsweep.models.datasets import Dataset, measure_indices, split_indices
from ibsweep.models.flat_optimizer import FlatAdam, FlatSGD
from ibsweep.models.network import StackedMLP, UnitsPass
from ibsweep.models.shuffle import epoch_orders

MEASURE_SETS: tuple[str, ...] = ("full", "train", "test")


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch produced, for every seed s of the stack (arrays lead with the seed axis).

    ``epoch`` 0 is the untrained network. ``layers`` holds every layer's representation of the
    measurement set, (S, n_measure, width) per layer, or None on epochs not measured; the arrays
    are transposed views of units-first (S, width, n_measure) arrays, fresh each epoch.
    ``active[s]`` is False once seed s has diverged; its numbers are then meaningless.
    """

    epoch: int
    loss: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    grad_snr: np.ndarray
    layers: list[np.ndarray] | None
    active: np.ndarray


def cross_entropy_units(
    logits: torch.Tensor, onehot: torch.Tensor, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample cross-entropy (S, B) and softmax probabilities (S, C, B) of logits (S, C, B).

    ``onehot`` (S or 1, C, B) holds the labels one-hot; a gather along the short class axis is
    much slower on CPU than this product. ``out`` may receive the probabilities.
    """
    shifted = logits - logits.amax(dim=1, keepdim=True)
    probs = torch.exp(shifted, out=out)
    total = probs.sum(dim=1, keepdim=True)
    loss = total.log().squeeze(1).sub_(shifted.mul_(onehot).sum(dim=1))
    return loss, probs.div_(total)


def predicted_class(logits: np.ndarray) -> np.ndarray:
    """argmax over the class axis of (S, C, B) logits (the first class wins ties).

    A loop over the few classes: an argmax along a strided axis is very slow in torch and numpy.
    """
    n_classes = logits.shape[1]
    best = logits[:, 0] if n_classes == 2 else logits[:, 0].copy()
    pred = np.zeros(best.shape, dtype=np.int64)
    for c in range(1, n_classes):
        np.putmask(pred, logits[:, c] > best, c)
        if c < n_classes - 1:
            np.maximum(best, logits[:, c], out=best)
    return pred


class Trainer:
    """Trains S seeds of one configuration at once; each seed as if it ran alone.

    Every seed keeps its own split, data order, initialisation and optimiser state (Adam and SGD
    are element-wise, and the loss is a sum of per-seed losses), so seed s's numbers equal a
    run of seed s alone. A seed whose loss turns NaN or inf is marked diverged and dropped
    from the loss; the others go on. Steps run on the network's hand-written units-first path
    (``StackedMLP.forward_units``/``backward_units``); one optimiser updates the flat tensor that
    holds every parameter of every seed.
    """

    def __init__(
        self,
        model: ModelConfig,
        train: TrainConfig,
        data: Dataset,
        seeds: Sequence[int],
        measure_on: str | None = None,
    ) -> None:
        measure_on = measure_on or data.default_measure
        if measure_on not in MEASURE_SETS:
            raise ValueError(
                f"measure_on '{measure_on}' unknown; allowed: {', '.join(MEASURE_SETS)}"
            )
        self.model_config, self.train_config, self.data = model, train, data
        self.seeds = tuple(int(s) for s in seeds)
        self.measure_on = measure_on
        self.net = StackedMLP(
            model, data.n_features, data.n_classes, self.seeds, data.binary_inputs
        )
        self.x = torch.as_tensor(data.x, dtype=torch.float32)
        self.y = torch.as_tensor(data.y, dtype=torch.long)
        self.inputs = self.net.model_inputs(self.x)
        self.net.init_batchnorm_(self.inputs.t())
        # labels one-hot, units first (C, n): a batch's columns are gathered contiguous in B
        self.onehot = torch.nn.functional.one_hot(self.y, data.n_classes).float().t().contiguous()
        # a small input table is also kept units first: gathering its columns is the cheapest
        # way to each seed's row-major (d, B) block; a large one is gathered by rows
        small = self.inputs.numel() * self.inputs.element_size() <= _SMALL_TABLE_BYTES
        self.inputs_units = self.inputs.t().contiguous() if small else None
        splits = [split_indices(data, seed) for seed in self.seeds]
        self.train_idx = torch.as_tensor(np.stack([s[0] for s in splits]), dtype=torch.long)
        self.test_idx = torch.as_tensor(np.stack([s[1] for s in splits]), dtype=torch.long)
        self.measure_idx = np.stack([measure_indices(data, s, measure_on) for s in splits])
        self.train_mask = _rows_mask(self.train_idx, data.n)
        self.test_mask = _rows_mask(self.test_idx, data.n)
        self.grad = torch.zeros_like(self.net.flat)
        self.grad_views = self.net.views_of(self.grad)
        self.net.flat.grad = self.grad
        self.optimizer = _optimizer(train, self.net.flat)
        self.epoch = 0
        self.active = np.ones(len(self.seeds), dtype=bool)
        self.failure: list[str | None] = [None] * len(self.seeds)
        self._scratch: list[torch.Tensor] = []

    def _workspace(self, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """Tensors of these shapes, the same ones on every call (overwritten each time)."""
        if [tuple(t.shape) for t in self._scratch] != shapes:
            self._scratch = [torch.empty(s) for s in shapes]
        return self._scratch

    @property
    def n_layers(self) -> int:
        """Number of measured layers (hidden layers plus output)."""
        return self.net.n_layers

    @property
    def measure_labels(self) -> np.ndarray:
        """Labels of the measurement set, (S, n_measure)."""
        return self.data.y[self.measure_idx]

    def run(self, measure: Callable[[int], bool] | None = None) -> Iterator[EpochRecord]:
        """Yield epoch 0 (if not done yet), then each further epoch up to ``epochs``."""
        measure = measure or (lambda _epoch: True)
        if self.epoch == 0:
            yield self._evaluate(np.full((len(self.seeds), self.n_layers), np.nan), measure(0))
        while self.epoch < self.train_config.epochs and self.active.any():
            self.epoch += 1
            snr = self._train_epoch()
            yield self._evaluate(snr, measure(self.epoch))

    def _epoch_order(self) -> torch.Tensor:
        """Each seed's training rows in its own shuffled order for this epoch, (S, n_train)."""
        # rows[np.random.default_rng([seed, epoch]).permutation(n_train)] per seed, exactly
        return torch.from_numpy(epoch_orders(self.train_idx.numpy(), self.seeds, self.epoch))

    def _batch_inputs(self, rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The model inputs of the rows, (S, d, B) with each seed's (d, B) block row-major.

        The weight-gradient matmul of the first layer is several times slower on a transposed
        block.
        """
        if self.inputs_units is not None:
            return self.inputs_units.index_select(1, rows).view(-1, *shape).transpose(0, 1)
        batch = self.inputs.index_select(0, rows).view(*shape, -1)
        return batch.transpose(1, 2).contiguous()

    def _train_epoch(self) -> np.ndarray:
        """One pass over each seed's training set; returns gradient SNR per seed and layer."""
        net, bs = self.net, self.train_config.batch_size
        self.optimizer.lr = self.train_config.lr_at(self.epoch)
        net.train()
        order = self._epoch_order()
        n_seeds, n_train = order.shape
        grad_w = self.grad[: net.n_weight_values]
        g_sum = torch.zeros(grad_w.shape, dtype=torch.float64)
        g_sq = torch.zeros_like(g_sum)
        n_batches = 0
        for start in range(0, n_train, bs):
            idx = order[:, start : start + bs]
            rows = idx.reshape(-1)
            kept = UnitsPass()
            logits = net.forward_units(self._batch_inputs(rows, idx.shape), kept)
            onehot = self.onehot.index_select(1, rows).view(-1, *idx.shape).transpose(0, 1)
            loss, grad_logits = cross_entropy_units(logits, onehot)
            # d(sum over active seeds of the batch-mean loss) / d logits = (p - onehot) / B
            grad_logits.sub_(onehot)
            self._mark_diverged(loss.mean(dim=1), "training loss")
            weight = torch.as_tensor(self.active / idx.shape[1], dtype=torch.float32)
            net.backward_units(kept, grad_logits.mul_(weight.view(-1, 1, 1)), self.grad_views)
            g = grad_w.double()
            g_sum += g
            g_sq.addcmul_(g, g)
            self.optimizer.step()
            net.clip_latent_()
            n_batches += 1
        mean = g_sum / n_batches
        var = (g_sq / n_batches - mean * mean).clamp_(min=0)
        sizes = [w[0].numel() for w in net.weights]
        blocks = [n_seeds * s for s in sizes]
        signal = torch.stack([m.view(n_seeds, -1).norm(dim=1) for m in mean.split(blocks)], dim=1)
        noise = torch.stack(
            [v.view(n_seeds, -1).sum(dim=1) for v in var.split(blocks)], dim=1
        ).sqrt()
        return (signal / noise).numpy()

    @torch.no_grad()
    def _evaluate(self, snr: np.ndarray, keep_layers: bool) -> EpochRecord:
        self.net.eval()
        n_seeds, n = len(self.seeds), self.data.n
        shapes = [(n_seeds, w, n) for w in self.net.dims[1:]]
        direct = keep_layers and self.measure_on == "full"
        # full-set activations go straight into the record's arrays, or into a workspace
        outputs = [torch.empty(s) for s in shapes] if direct else self._workspace(shapes)
        logits = self.net.forward_units(self.inputs.t(), out=outputs[:-1])
        loss_all, _ = cross_entropy_units(logits, self.onehot, out=outputs[-1])
        correct = torch.from_numpy(
            (predicted_class(logits.numpy()) == self.data.y).astype(np.float32)
        )
        loss = (loss_all * self.train_mask).sum(dim=1).div_(self.train_idx.shape[1])
        self._mark_diverged(loss, "loss")
        kept = None
        if direct:
            kept = [t.numpy().transpose(0, 2, 1) for t in outputs]
        elif keep_layers:
            midx = torch.as_tensor(self.measure_idx).unsqueeze(1)
            kept = [
                t.gather(2, midx.expand(-1, t.shape[1], -1)).numpy().transpose(0, 2, 1)
                for t in outputs
            ]
        return EpochRecord(
            epoch=self.epoch,
            loss=loss.numpy().astype(np.float64),
            train_acc=_mean_over(correct, self.train_mask, self.train_idx.shape[1]),
            test_acc=_mean_over(correct, self.test_mask, self.test_idx.shape[1]),
            grad_snr=np.where(self.active[:, None], snr, np.nan),
            layers=kept,
            active=self.active.copy(),
        )

    def _mark_diverged(self, loss: torch.Tensor, what: str) -> None:
        bad = ~np.isfinite(loss.numpy()) & self.active
        for i in np.flatnonzero(bad):
            self.failure[i] = f"diverged at epoch {self.epoch}: {what} is {loss[i].item()}"
        self.active &= ~bad

    def state_dict(self) -> dict:
        """Everything needed to continue training exactly where it stopped."""
        return {
            "epoch": self.epoch,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "active": self.active.copy(),
            "failure": list(self.failure),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state saved by ``state_dict``."""
        self.epoch = int(state["epoch"])
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.active = np.asarray(state["active"], dtype=bool).copy()
        self.failure = list(state["failure"])


def _optimizer(train: TrainConfig, flat: torch.Tensor) -> FlatAdam | FlatSGD:
    """Adam or SGD over the one flat parameter tensor (torch's fused CPU kernels)."""
    if train.optimizer == "adam":
        return FlatAdam(flat, lr=train.lr)
    return FlatSGD(flat, lr=train.lr, momentum=train.momentum)


_SMALL_TABLE_BYTES = 1 << 20


def _rows_mask(idx: torch.Tensor, n: int) -> torch.Tensor:
    """(S, n) float mask with ones at each seed's rows ``idx[s]``."""
    mask = torch.zeros(idx.shape[0], n)
    return mask.scatter_(1, idx, 1.0)


def _mean_over(values: torch.Tensor, mask: torch.Tensor, count: int) -> np.ndarray:
    """Per seed mean of (S, n) values over the rows where ``mask`` is one, as float64."""
    return ((values * mask).sum(dim=1) / count).numpy().astype(np.float64)
