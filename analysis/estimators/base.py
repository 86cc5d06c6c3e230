"""Result model, parameter base, estimator base class and input validation shared by estimators."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

SATURATION_MARGIN_BITS = 0.1


class EstimatorError(ValueError):
    """Base class of the errors raised by the estimators."""


class EstimatorParameterError(EstimatorError):
    """An estimator was configured with an unknown name or an invalid parameter."""


class EstimatorInputError(EstimatorError):
    """Data given to `estimate` (or `fit_range`) is not a valid layer representation or labels."""


class NotFittedError(EstimatorError):
    """An estimator that needs `fit_range` was used before it."""


def _reject_bool(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        raise ValueError("a boolean is not a count")
    return value


Count = Annotated[int, BeforeValidator(_reject_bool)]
"""An integer parameter that refuses booleans (pydantic would otherwise read True as 1)."""


class EstimatorParams(BaseModel):
    """Base of every estimator's parameters: frozen, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, slots=True)
class MIResult:
    """Mutual-information estimate of one layer, in bits.

    `i_xt` is I(X;T) and `i_ty` is I(T;Y). Counting estimators give I(X;T) = H(T), assuming a
    deterministic network fed distinct inputs (H(T|X) = 0); the kernel estimator subtracts its
    noise entropy `h_t_given_x`. `ceiling` is log2 n, the most a plug-in estimate on n samples
    can reach, and `saturated` says whether `i_xt` lies within 0.1 bit of it.
    """

    estimator: str
    i_xt: float
    i_ty: float
    h_t: float
    h_t_given_x: float
    h_t_given_y: float
    h_y: float
    n_states: int
    n_samples: int
    ceiling: float
    saturated: bool
    clipped_fraction: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (params copied)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Labels:
    """Integer labels re-coded to 0..n_classes-1, with their plug-in entropy in bits."""

    codes: np.ndarray
    n_classes: int
    h_y: float


class Estimator(ABC):
    """Base of the estimators: parameters validated at construction, data given to `estimate`."""

    name: ClassVar[str]
    Params: ClassVar[type[EstimatorParams]]

    def __init__(self, **params: Any) -> None:
        self.params = validate_params(self.name, self.Params, params)

    @property
    def requires_fit(self) -> bool:
        """Whether `estimate` needs a fit on the whole run first (so cannot run as data streams)."""
        return False

    def max_bits(self, width: int) -> float:
        """log2 of the most states this estimator can tell apart on `width` units (inf: no bound
        but the sample size)."""
        return math.inf

    def describe(self) -> str:
        """Short stable description, e.g. `binning(n_bins=30,range=fixed,lo=-1,hi=1)`."""
        values = self.params.model_dump(exclude_none=True)
        return f"{self.name}({','.join(f'{k}={_fmt(v)}' for k, v in values.items())})"

    def __repr__(self) -> str:
        return self.describe()

    def estimate(self, t: Any, y: Any) -> MIResult:
        """Estimate I(X;T) and I(T;Y) of one layer `t` (n x d, numpy or torch), labels `y` (n,)."""
        t_arr, labels = validate_inputs(t, y)
        return self._estimate(t_arr, labels)

    @abstractmethod
    def _estimate(self, t: np.ndarray, labels: Labels) -> MIResult:
        """Estimate from validated inputs."""


def _fmt(value: Any) -> str:
    """Floats in their shortest form (-1 rather than -1.0) unless that would round them."""
    if isinstance(value, float):
        short = format(value, "g")
        return short if float(short) == value else repr(value)
    return str(value)


def validate_params(name: str, model: type[EstimatorParams], params: dict[str, Any]) -> Any:
    """Build `model` from `params`, turning pydantic's report into one clear line."""
    try:
        return model(**params)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "parameters"
            if e["type"] == "extra_forbidden":
                allowed = ", ".join(model.model_fields) or "none"
                problems.append(f"unknown parameter {loc!r} (allowed: {allowed})")
            else:
                msg = e["msg"].removeprefix("Value error, ")
                got = f" (got {e['input']!r})" if e["loc"] else ""
                problems.append(f"{loc}: {msg}{got}")
        raise EstimatorParameterError(f"{name}: {'; '.join(problems)}") from None


def _as_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor; duck-typed so that torch is not imported here
        a = a.detach().cpu()
        if str(a.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            a = a.float()
        a = a.numpy()
    return np.asarray(a)


def validate_layer(t: Any, what: str = "t") -> np.ndarray:
    """Return `t` as a finite real 2-D numpy array (n >= 1 samples x d >= 1 units) or raise."""
    arr = _as_numpy(t)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise EstimatorInputError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise EstimatorInputError(
            f"{what} must be a 2-D array (n samples x d units), got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise EstimatorInputError(
            f"{what} needs at least one sample and one unit, got shape {arr.shape}"
        )
    # One summing pass finds NaN/inf; the exact check runs only if the sum is not finite
    # (possibly an overflow of huge but finite values).
    if np.issubdtype(arr.dtype, np.floating):
        with np.errstate(over="ignore"):
            finite = np.isfinite(arr.sum()) or np.isfinite(arr).all()
        if not finite:
            raise EstimatorInputError(
                f"{what} contains NaN or infinite values; only finite allowed"
            )
    return arr


def encode_labels(y: Any, n: int) -> Labels:
    """Check that `y` holds `n` integer labels and re-code them to 0..K-1."""
    arr = _as_numpy(y)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise EstimatorInputError(
            f"labels y must have an integer dtype, got {arr.dtype}; convert with .astype(int)"
        )
    if arr.ndim != 1:
        raise EstimatorInputError(f"labels y must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise EstimatorInputError(f"t has {n} samples but y has {arr.shape[0]} labels")
    lo, hi = int(arr.min()), int(arr.max())
    if hi - lo <= 4 * n + 1024:  # a small value range: re-code through a lookup table
        if np.issubdtype(arr.dtype, np.unsignedinteger):
            shifted = (arr - arr.dtype.type(lo)).astype(np.intp)
        else:  # widen first so that hi - lo cannot overflow a narrow signed type
            shifted = arr.astype(np.int64, copy=False)
            shifted = shifted - lo if lo else shifted
        counts = np.bincount(shifted, minlength=hi - lo + 1)
        present = counts > 0
        if present.all():  # already 0..K-1 after the shift
            codes = shifted
        else:
            codes = (np.cumsum(present) - 1)[shifted]
            counts = counts[present]
    else:
        _, codes, counts = np.unique(arr, return_inverse=True, return_counts=True)
    return Labels(
        codes=codes.astype(np.int64, copy=False), n_classes=len(counts), h_y=entropy_bits(counts, n)
    )


def validate_inputs(t: Any, y: Any) -> tuple[np.ndarray, Labels]:
    """Validate one layer's representation and its labels."""
    arr = validate_layer(t)
    return arr, encode_labels(y, arr.shape[0])


def entropy_bits(counts: np.ndarray, n: int) -> float:
    """Plug-in entropy in bits of a distribution given by positive counts summing to n."""
    c = counts.astype(np.float64)
    return max(0.0, math.log2(n) - float(c @ np.log2(c)) / n)


def counting_result(
    estimator: Estimator,
    ent: Any,
    labels: Labels,
    n_samples: int,
    clipped_fraction: float = 0.0,
    params: dict[str, Any] | None = None,
) -> MIResult:
    """The result of a counting estimator from its layer's entropies (I(X;T) = H(T))."""
    h_t = float(ent.h_t[0])
    return make_result(
        estimator,
        i_xt=h_t,
        i_ty=float(ent.i_ty[0]),
        h_t=h_t,
        h_t_given_x=0.0,
        labels=labels,
        n_states=int(ent.n_states[0]),
        n_samples=n_samples,
        clipped_fraction=clipped_fraction,
        params=params,
    )


def make_result(
    estimator: Estimator,
    *,
    i_xt: float,
    i_ty: float,
    h_t: float,
    h_t_given_x: float,
    labels: Labels,
    n_states: int,
    n_samples: int,
    clipped_fraction: float = 0.0,
    params: dict[str, Any] | None = None,
) -> MIResult:
    """Assemble a result; floating-point rounding of I(T;Y) past its bounds is removed."""
    i_ty = _within_rounding(i_ty, 0.0, min(i_xt, labels.h_y))
    ceiling = math.log2(n_samples)
    return MIResult(
        estimator=estimator.name,
        i_xt=i_xt,
        i_ty=i_ty,
        h_t=h_t,
        h_t_given_x=h_t_given_x,
        h_t_given_y=h_t - i_ty,
        h_y=labels.h_y,
        n_states=n_states,
        n_samples=n_samples,
        ceiling=ceiling,
        saturated=i_xt >= ceiling - SATURATION_MARGIN_BITS,
        clipped_fraction=clipped_fraction,
        params=estimator.params.model_dump() if params is None else params,
    )


def _within_rounding(value: float, lo: float, hi: float, tol: float = 1e-9) -> float:
    """Clamp `value` to [lo, hi] only where it lies outside by no more than rounding error."""
    if lo - tol <= value < lo:
        return lo
    if hi < value <= hi + tol:
        return hi
    return value
