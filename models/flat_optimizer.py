"""Adam and SGD over the trainer's one flat parameter tensor: torch's fused CPU kernels, called
as ``torch.optim`` calls them with ``fused=True``, without ``torch.optim`` itself.

Making the first ``torch.optim`` optimiser in a process imports ``torch._dynamo`` (about 330
modules, 1.6 s of CPU), a cost every trial's process paid at its start for an optimiser whose
step the trainer already took as one fused call. These give the same numbers as
``torch.optim.Adam``/``SGD(fused=True)`` and keep their state in ``torch.optim``'s
``state_dict`` layout, so a checkpoint of either loads into the other.
"""

from __future__ import annotations

from typing import Any

import torch


class FlatAdam:
    """Adam (no weight decay, no amsgrad) over one tensor whose ``.grad`` is kept up to date."""

    def __init__(self, param: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.param, self.lr, self.betas, self.eps = param, lr, tuple(betas), eps
        self.state: dict[str, torch.Tensor] = {}

    def step(self) -> None:
        """One update from ``param.grad``: the step count, then the param and both moments."""
        if not self.state:  # as torch.optim creates them on the first step
            self.state = {
                "step": torch.zeros((), dtype=torch.float32),
                "exp_avg": torch.zeros_like(self.param, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(self.param, memory_format=torch.preserve_format),
            }
        s = self.state
        torch._foreach_add_([s["step"]], 1)
        beta1, beta2 = self.betas
        torch._fused_adam_(
            [self.param], [self.param.grad], [s["exp_avg"]], [s["exp_avg_sq"]], [], [s["step"]],
            amsgrad=False, lr=self.lr, beta1=float(beta1), beta2=float(beta2), weight_decay=0.0,
            eps=self.eps, maximize=False, grad_scale=None, found_inf=None,
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """The state as ``torch.optim.Adam(fused=True).state_dict()`` lays it out."""
        group = {
            "lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": 0,
            "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
            "differentiable": False, "fused": True, "decoupled_weight_decay": False, "params": [0],
        }  # fmt: skip
        return {"state": {0: dict(self.state)} if self.state else {}, "param_groups": [group]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by ``state_dict`` (or by ``torch.optim.Adam``)."""
        group = state["param_groups"][0]
        self.lr, self.betas, self.eps = group["lr"], tuple(group["betas"]), group["eps"]
        saved = state["state"].get(0, {})
        self.state = {k: saved[k].clone() for k in ("step", "exp_avg", "exp_avg_sq") if k in saved}


class FlatSGD:
    """SGD with (heavy-ball) momentum, no dampening or weight decay, over one tensor."""

    def __init__(self, param: torch.Tensor, lr: float, momentum: float = 0.0):
        self.param, self.lr, self.momentum = param, lr, momentum
        self.buffer: torch.Tensor | None = None

    def step(self) -> None:
        """One update from ``param.grad`` (the first with momentum sets the buffer to it)."""
        first = self.momentum != 0 and self.buffer is None
        if first:
            self.buffer = torch.empty_like(self.param.grad)
        torch._fused_sgd_(
            [self.param], [self.param.grad], [] if self.momentum == 0 else [self.buffer],
            weight_decay=0.0, momentum=self.momentum, lr=self.lr, dampening=0.0,
            nesterov=False, maximize=False, is_first_step=first, grad_scale=None, found_inf=None,
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """The state as ``torch.optim.SGD(fused=True).state_dict()`` lays it out."""
        group = {
            "lr": self.lr, "momentum": self.momentum, "dampening": 0, "weight_decay": 0,
            "nesterov": False, "maximize": False, "foreach": None, "differentiable": False,
            "fused": True, "params": [0],
        }  # fmt: skip
        state = {0: {"momentum_buffer": self.buffer}} if self.buffer is not None else {}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by ``state_dict`` (or by ``torch.optim.SGD``)."""
        group = state["param_groups"][0]
        self.lr, self.momentum = group["lr"], group["momentum"]
        buffer = state["state"].get(0, {}).get("momentum_buffer")
        self.buffer = None if buffer is None else buffer.clone()
