"""Each BNN surrogate: sign() forward, its published gradient backward (checked by autograd)."""

import pytest
import torch

from ibsweep.models.surrogates import SURROGATE_GRADS, binarize_weights, sign_activation

BETA = 5.0


def _antiderivatives(beta: float):
    """Smooth functions whose autograd derivative is each surrogate's published gradient."""

    def swish(x):
        s = torch.sigmoid(beta * x)
        return 2 * s * (1 + beta * x * (1 - s)) - 1

    return {
        "ste": torch.nn.functional.hardtanh,
        "approx_sign": lambda x: torch.where(x.abs() <= 1, 2 * x - x * x.abs(), torch.sign(x)),
        "swish_sign": swish,
        "identity": lambda x: x,
    }


X = torch.linspace(-2.5, 2.5, 1001, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SURROGATE_GRADS))
def test_forward_is_binary_sign(name):
    y = sign_activation(X, name, BETA)
    assert set(y.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(y, torch.where(X >= 0, 1.0, -1.0).double())


@pytest.mark.parametrize("name", sorted(SURROGATE_GRADS))
def test_backward_equals_derivative_of_surrogate(name):
    x = X.clone().requires_grad_(True)
    sign_activation(x, name, BETA).backward(torch.ones_like(x))
    ref = X.clone().requires_grad_(True)
    _antiderivatives(BETA)[name](ref).sum().backward()
    # hardtanh's kink at |x| = 1: both conventions are fine there
    keep = (X.abs() - 1).abs() > 1e-9
    torch.testing.assert_close(x.grad[keep], ref.grad[keep], atol=1e-9, rtol=1e-7)


def test_surrogate_formulas_at_known_points():
    x = torch.tensor([0.0, 0.5, 1.5, -0.5], dtype=torch.float64, requires_grad=True)
    sign_activation(x, "ste").backward(torch.ones_like(x))
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 1.0]
    x.grad = None
    sign_activation(x, "approx_sign").backward(torch.ones_like(x))
    assert x.grad.tolist() == [2.0, 1.0, 0.0, 1.0]
    x.grad = None
    sign_activation(x, "swish_sign", 5.0).backward(torch.ones_like(x))
    assert x.grad[0].item() == pytest.approx(5.0)  # b * 2 / (1 + cosh 0) = b


def test_swish_beta_changes_gradient():
    x = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    sign_activation(x, "swish_sign", 2.0).backward()
    g2 = x.grad.item()
    x.grad = None
    sign_activation(x, "swish_sign", 10.0).backward()
    assert g2 != pytest.approx(x.grad.item())


def test_weight_binarisation_passes_gradient_straight_through():
    w = torch.tensor([-0.3, 0.0, 0.7], requires_grad=True)
    out = binarize_weights(w)
    assert out.tolist() == [-1.0, 1.0, 1.0]
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert w.grad.tolist() == [1.0, 2.0, 3.0]
