"""Training one configuration for one or several seeds, epoch by epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from models.config import ModelConfig, TrainConfig
from models.datasets import Dataset, measure_indices, split_indices
from models.network import StackedMLP

MEASURE_SETS: tuple[str, ...] = ("full", "train", "test")


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch produced, for every seed s of the stack (arrays lead with the seed axis).

    ``epoch`` 0 is the untrained network. ``layers`` holds every layer's representation of the
    measurement set, (S, n_measure, width) per layer, or None on epochs not measured.
    ``active[s]`` is False once seed s has diverged; its numbers are then meaningless.
    """

    epoch: int
    loss: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    grad_snr: np.ndarray
    layers: list[np.ndarray] | None
    active: np.ndarray


class Trainer:
    """Trains S seeds of one configuration at once; each seed as if it ran alone.

    Every seed keeps its own split, data order, initialisation and optimiser state (Adam and SGD
    are element-wise, and the loss is a sum of per-seed losses), so seed s's numbers equal a
    run of seed s alone. A seed whose loss turns NaN or inf is marked diverged and dropped
    from the loss; the others go on.
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
        splits = [split_indices(data, seed) for seed in self.seeds]
        self.train_idx = torch.as_tensor(np.stack([s[0] for s in splits]), dtype=torch.long)
        self.test_idx = torch.as_tensor(np.stack([s[1] for s in splits]), dtype=torch.long)
        self.measure_idx = np.stack([measure_indices(data, s, measure_on) for s in splits])
        params = list(self.net.parameters())
        if train.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                params, lr=train.lr, foreach=True
            )
        else:
            self.optimizer = torch.optim.SGD(
                params, lr=train.lr, momentum=train.momentum, foreach=True
            )
        self.epoch = 0
        self.active = np.ones(len(self.seeds), dtype=bool)
        self.failure: list[str | None] = [None] * len(self.seeds)

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

    def _train_epoch(self) -> np.ndarray:
        """One pass over each seed's training set; returns gradient SNR per seed and layer."""
        net, bs, epoch = self.net, self.train_config.batch_size, self.epoch
        net.train()
        n_train = self.train_idx.shape[1]
        order = torch.stack(
            [
                self.train_idx[
                    i, torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(n_train))
                ]
                for i, seed in enumerate(self.seeds)
            ]
        )
        weights = list(net.weights)
        sizes = [w[0].numel() for w in weights]
        g_sum = torch.zeros(len(self.seeds), sum(sizes), dtype=torch.float64)
        g_sq = torch.zeros_like(g_sum)
        n_batches = 0
        for start in range(0, n_train, bs):
            idx = order[:, start : start + bs]
            logits = net(self.x[idx])
            per_seed = (
                F.cross_entropy(logits.flatten(0, 1), self.y[idx].flatten(), reduction="none")
                .view(idx.shape)
                .mean(dim=1)
            )
            self._mark_diverged(per_seed.detach(), "training loss")
            active = torch.as_tensor(self.active)
            self.optimizer.zero_grad(set_to_none=False)
            torch.where(active, per_seed, 0.0).sum().backward()
            with torch.no_grad():
                g = torch.cat([w.grad.flatten(1) for w in weights], dim=1).double()
                g_sum += g
                g_sq.addcmul_(g, g)
            self.optimizer.step()
            net.clip_latent_()
            n_batches += 1
        mean = g_sum / n_batches
        var = (g_sq / n_batches - mean * mean).clamp_(min=0)
        signal = torch.stack([m.norm(dim=1) for m in mean.split(sizes, dim=1)], dim=1)
        noise = torch.stack([v.sum(dim=1) for v in var.split(sizes, dim=1)], dim=1).sqrt()
        return (signal / noise).numpy()

    @torch.no_grad()
    def _evaluate(self, snr: np.ndarray, keep_layers: bool) -> EpochRecord:
        self.net.eval()
        out = self.net(self.x, return_layers=keep_layers)
        logits, layers = out if keep_layers else (out, None)
        correct = (logits.argmax(dim=-1) == self.y).float()
        seed_axis = torch.arange(len(self.seeds))[:, None]
        train_logits = logits[seed_axis, self.train_idx]
        loss = (
            F.cross_entropy(
                train_logits.flatten(0, 1), self.y[self.train_idx].flatten(), reduction="none"
            )
            .view(self.train_idx.shape)
            .mean(dim=1)
        )
        self._mark_diverged(loss, "loss")
        kept = None
        if layers is not None:
            if self.measure_on == "full":
                kept = [t.numpy() for t in layers]
            else:
                midx = torch.as_tensor(self.measure_idx)
                kept = [t[seed_axis, midx].numpy() for t in layers]
        return EpochRecord(
            epoch=self.epoch,
            loss=loss.numpy().astype(np.float64),
            train_acc=correct.gather(1, self.train_idx).mean(dim=1).numpy().astype(np.float64),
            test_acc=correct.gather(1, self.test_idx).mean(dim=1).numpy().astype(np.float64),
            grad_snr=np.where(self.active[:, None], snr, np.nan),
            layers=kept,
            active=self.active.copy(),
        )

    def _mark_diverged(self, loss: torch.Tensor, what: str) -> None:
        bad = ~torch.isfinite(loss).numpy() & self.active
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
