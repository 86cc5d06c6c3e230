"""The trainer's optimisers against torch.optim's fused ones: the same numbers at every step,
state_dicts that load either way, and no torch._dynamo import."""

import subprocess
import sys

import pytest
import torch

from ibsweep.models.flat_optimizer import FlatAdam, FlatSGD

CASES = {
    "adam": (lambda p, lr: FlatAdam(p, lr), lambda p, lr: torch.optim.Adam([p], lr, fused=True)),
    "sgd-momentum": (
        lambda p, lr: FlatSGD(p, lr, momentum=0.9),
        lambda p, lr: torch.optim.SGD([p], lr, momentum=0.9, fused=True),
    ),
    "sgd": (lambda p, lr: FlatSGD(p, lr), lambda p, lr: torch.optim.SGD([p], lr, fused=True)),
}


def _set_lr(opt, lr: float) -> None:
    if isinstance(opt, torch.optim.Optimizer):
        opt.param_groups[0]["lr"] = lr
    else:
        opt.lr = lr


def _steps(opts, params, draw: torch.Generator, n: int, first: int = 0) -> None:
    """``n`` steps of every optimiser on the same gradients, a new learning rate each step."""
    for i in range(first, first + n):
        grad = torch.randn(params[0].shape, generator=draw)
        for opt, p in zip(opts, params, strict=True):
            p.grad = grad.clone()
            _set_lr(opt, 1e-2 / (1 + i))
            opt.step()


def _state_tensors(state: dict) -> dict:
    return state["state"].get(0, {})


@pytest.mark.parametrize("case", CASES)
def test_every_step_equals_torch_optims_fused_optimiser(case):
    flat, reference = CASES[case]
    draw = torch.Generator().manual_seed(0)
    start = torch.randn(257, generator=draw)
    params = [start.clone().requires_grad_(), start.clone().requires_grad_()]
    opts = [flat(params[0], 1e-2), reference(params[1], 1e-2)]
    assert opts[0].state_dict() == opts[1].state_dict()  # before the first step
    with torch.no_grad():
        for i in range(25):
            _steps(opts, params, draw, 1, i)
            assert torch.equal(params[0], params[1]), f"step {i + 1}"
    ours, theirs = (o.state_dict() for o in opts)
    assert ours["param_groups"] == theirs["param_groups"]
    assert _state_tensors(ours).keys() == _state_tensors(theirs).keys()
    for key, value in _state_tensors(theirs).items():
        assert torch.equal(_state_tensors(ours)[key], value), key
        assert _state_tensors(ours)[key].dtype == value.dtype, key


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("direction", ["torch-to-flat", "flat-to-torch"])
def test_a_state_dict_of_either_resumes_in_the_other(case, direction):
    """Five steps of one kind, then five more either by it or, from its state_dict, by the
    other kind: the same parameters."""
    flat, reference = CASES[case]
    make_first, make_second = (
        (reference, flat) if direction == "torch-to-flat" else (flat, reference)
    )
    draw = torch.Generator().manual_seed(1)
    start = torch.randn(64, generator=draw)
    params = [start.clone().requires_grad_(), start.clone().requires_grad_()]
    opts = [make_first(params[0], 1e-2), make_first(params[1], 1e-2)]
    with torch.no_grad():
        _steps(opts, params, draw, 5)
        resumed = make_second(params[1], 0.5)
        resumed.load_state_dict(opts[1].state_dict())
        _steps([opts[0], resumed], params, draw, 5, 5)
    assert torch.equal(params[0], params[1])


def test_training_imports_no_torch_dynamo():
    """torch.optim's first optimiser imports torch._dynamo (1.6 s of CPU); training does not."""
    code = (
        "import sys, torch\n"
        "from ibsweep.models.config import ModelConfig, TrainConfig\n"
        "from ibsweep.models.datasets import load_dataset\n"
        "from ibsweep.models.training import Trainer\n"
        "sgd = TrainConfig(epochs=1, optimizer='sgd', momentum=0.9)\n"
        "for train in (TrainConfig(epochs=1), sgd):\n"
        "    trainer = Trainer(ModelConfig(), train, load_dataset('tishby'), [0, 1])\n"
        "    records = list(trainer.run())\n"
        "    trainer.load_state_dict(trainer.state_dict())\n"
        "print(len(records), 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "False"]
