"""sign() with surrogate gradients: the BNN 'activations'."""

from __future__ import annotations

from collections.abc import Callable

import torch

GradFn = Callable[[torch.Tensor, float], torch.Tensor]


# The gradients are written as chains of in-place float operations: comparisons into bool
# tensors and torch.where with scalars are several times slower on CPU.


def ste_grad(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Straight-through estimator with hardtanh clip: 1 on |x| <= 1, else 0."""
    return x.abs().le_(1)


def approx_sign_grad(x: torch.Tensor, beta: float) -> torch.Tensor:
    """ApproxSign (Bi-Real Net): 2 - 2|x| on |x| <= 1, else 0."""
    return x.abs().mul_(-2).add_(2).clamp_min_(0)


def swish_sign_grad(x: torch.Tensor, beta: float) -> torch.Tensor:
    """SwishSign: b(2 - bx tanh(bx/2)) / (1 + cosh(bx))."""
    bx = beta * x
    return beta * (2 - bx * torch.tanh(bx / 2)) / (1 + torch.cosh(bx))


def identity_grad(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Identity: gradient 1 everywhere."""
    return torch.ones_like(x)


# SwishSign's gradient changes sign where b x tanh(b x / 2) = 2, i.e. at |x| = 2.3994 / b
SWISH_ZERO = 2.3994


def preactivation_scale(surrogate: str, beta: float) -> float:
    """The spread a BNN gives its pre-activations so that the surrogate passes gradient.

    1 for the surrogates with the window |x| <= 1 (ste, approx_sign) and identity; 1/beta for
    swish_sign, whose gradient is negative beyond 2.40/beta: pre-activations of spread 1/beta
    stay inside for all but about 1.6% of a normal (2.4 standard deviations). Only the
    product of this scale and beta matters to swish_sign's sign and gradient; beta still sets
    how far Adam's steps move the pre-activations relative to the window.
    """
    return 1.0 / beta if surrogate == "swish_sign" else 1.0


SURROGATE_GRADS: dict[str, GradFn] = {
    "ste": ste_grad,
    "approx_sign": approx_sign_grad,
    "swish_sign": swish_sign_grad,
    "identity": identity_grad,
}


def binary_sign(x: torch.Tensor) -> torch.Tensor:
    """sign() into {-1, +1}, with sign(+-0) = +1 so the layer stays binary (NaN stays NaN)."""
    return torch.sign(x).add_(0.5).sign_()


class _SignWithSurrogate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, grad_fn: GradFn, beta: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.grad_fn = grad_fn
        ctx.beta = beta
        return binary_sign(x)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.grad_fn(x, ctx.beta), None, None


class _SignStraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:
        return binary_sign(w)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        return grad_out


def sign_activation(x: torch.Tensor, surrogate: str, beta: float = 5.0) -> torch.Tensor:
    """sign(x) forward; backward through the named surrogate gradient."""
    return _SignWithSurrogate.apply(x, SURROGATE_GRADS[surrogate], beta)


def binarize_weights(w: torch.Tensor) -> torch.Tensor:
    """sign(w) forward, gradient passed straight to the latent weights (kept in [-1, 1])."""
    return _SignStraightThrough.apply(w)
