"""The contract every registered estimator keeps: interface, result fields, bounds, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import BaseModel

from ibsweep.analysis.estimators import (
    Estimator,
    EstimatorInputError,
    MIResult,
    available_estimators,
    make_estimator,
)

RESULT_FIELDS = {"i_xt", "i_ty", "n_states", "ceiling", "saturated", "params", "clipped_fraction"}


@pytest.fixture(scope="module")
def layer() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.tanh(rng.normal(size=(300, 4)))
    y = (t[:, 0] > 0).astype(int) + rng.integers(0, 2, size=300)
    return t, y


def test_the_four_estimators_are_registered() -> None:
    assert set(available_estimators()) == {"exact", "binning", "adaptive", "kde"}


@pytest.mark.parametrize("name", available_estimators())
def test_estimator_interface(name: str) -> None:
    est = make_estimator(name)
    assert isinstance(est, Estimator)
    assert est.name == name
    assert isinstance(est.params, BaseModel)
    assert est.describe().startswith(f"{name}(") and "\n" not in est.describe()
    rebuilt = make_estimator(name, **est.params.model_dump(exclude_none=True))
    assert rebuilt.describe() == est.describe()


@pytest.mark.parametrize("name", available_estimators())
def test_result_fields_and_bounds(name: str, layer: tuple[np.ndarray, np.ndarray]) -> None:
    t, y = layer
    res = make_estimator(name).estimate(t, y)
    assert isinstance(res, MIResult)
    assert set(res.as_dict()) >= RESULT_FIELDS
    assert isinstance(res.i_xt, float) and isinstance(res.i_ty, float)
    assert isinstance(res.n_states, int) and 1 <= res.n_states <= len(t)
    assert res.ceiling == math.log2(len(t))
    assert 0.0 <= res.i_xt <= res.ceiling + 1e-9
    assert 0.0 <= res.i_ty <= min(res.i_xt, res.h_y) + 1e-9
    assert res.saturated == (res.i_xt >= res.ceiling - 0.1)
    assert 0.0 <= res.clipped_fraction <= 1.0
    assert isinstance(res.params, dict)
    with pytest.raises(AttributeError):
        res.i_xt = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("name", available_estimators())
def test_same_result_for_torch_and_shuffled_and_relabelled_inputs(
    name: str, layer: tuple[np.ndarray, np.ndarray]
) -> None:
    t, y = layer
    est = make_estimator(name)
    ref = est.estimate(t, y)
    perm = np.random.default_rng(1).permutation(len(t))
    for tt, yy in (
        (torch.from_numpy(t), torch.from_numpy(y)),
        (t[perm], y[perm]),
        (t, 5 * y - 100),
    ):
        res = est.estimate(tt, yy)
        assert res.i_xt == pytest.approx(ref.i_xt, abs=1e-9)
        assert res.i_ty == pytest.approx(ref.i_ty, abs=1e-9)
        assert res.n_states == ref.n_states


@pytest.mark.parametrize("name", available_estimators())
@pytest.mark.parametrize(
    ("t", "y", "message"),
    [
        (np.array([[0.1, np.nan], [0.2, 0.3]]), np.array([0, 1]), "NaN or infinite"),
        (np.array([[0.1, np.inf], [0.2, 0.3]]), np.array([0, 1]), "NaN or infinite"),
        (np.array([[1e308, 1e308], [1e308, np.inf]]), np.array([0, 1]), "NaN or infinite"),
        (np.zeros((3, 2)), np.array([0, 1]), "3 samples but y has 2"),
        (np.zeros(3), np.array([0, 1, 0]), "2-D"),
        (np.zeros((3, 2, 2)), np.array([0, 1, 0]), "2-D"),
        (np.zeros((0, 2)), np.array([], dtype=int), "at least one sample"),
        (np.zeros((3, 0)), np.array([0, 1, 0]), "at least one"),
        (np.zeros((3, 2)), np.array([0.0, 1.0, 0.0]), "integer dtype"),
        (np.zeros((3, 2)), np.array([[0], [1], [0]]), "1-D"),
        (np.zeros((3, 2), dtype=complex), np.array([0, 1, 0]), "real numbers"),
        (np.array([["a"], ["b"]]), np.array([0, 1]), "real numbers"),
    ],
)
def test_bad_input_is_a_clear_error(name: str, t: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(EstimatorInputError, match=message) as info:
        make_estimator(name).estimate(t, y)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
