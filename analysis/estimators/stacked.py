"""Estimates for every layer of a stack of networks (one per seed) in a few vectorised passes.

``estimate_stacked`` gives, for layers of shape (S, n, width) and an estimator per layer, the
numbers that ``estimators[l].estimate(layers[l][s], y[s])`` gives for every seed s and layer l
(entropies agree to float rounding, ~1e-12 bits) without a Python loop over seeds;
``estimate_panel`` does so for several estimators per layer (a panel) on the same activations,
checking and ranging each layer once for all of them. Given a second label vector ``y_perm``
(e.g. the labels under a fixed permutation), I(T;Y') comes from the same pass.

- the binning estimator (fixed, layer and neuron ranges) codes a chunk of seeds at once with the
  same float64 arithmetic as ``BinningEstimator``, so the codes are identical; the exact
  estimator does the same for layers with at most two values per seed (+-1 BNN layers);
- each row of codes becomes one integer key (mixed radix), exact in float64;
- with numba (``hashcount``), one compiled call per float layer and estimator codes every seed,
  counts its distinct keys and (key, label) pairs in a hash table (O(n), no sort) and checks
  what the numpy path checks beforehand (two values per seed for exact); the exact estimator's
  other layers (real values: every distinct row a state) are hashed row by row in one more call;
- without it (or with ``_USE_KERNEL`` False) the label is the key's last digit, the keys come
  from one matmul and are sorted in the narrowest integer type that holds them (a radix sort for
  16 bits), and the runs of the sorted keys give H(T), H(T,Y) and the number of states; a row
  whose keys are all distinct needs no counting; work runs on cache-sized chunks of seeds, which
  also keeps temporary memory small.

Other estimators, a global binning range and rows these paths do not cover (more than two
values for exact without numba, keys that would need more than 53 bits, values that are not
finite) run seed by seed through the estimator itself, so their errors and results are the
estimator's own.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ibsweep.analysis.estimators import hashcount
from ibsweep.analysis.estimators.base import (
    SATURATION_MARGIN_BITS,
    Estimator,
    EstimatorInputError,
    Labels,
    encode_labels,
    validate_layer,
)
from ibsweep.analysis.estimators.binning import BinningEstimator
from ibsweep.analysis.estimators.exact import ExactEstimator

_FLOAT_EXACT = 2**53
_CHUNK_VALUES = 1 << 18  # about this many layer values are coded at once (2 MiB in float64)
_ROUNDING = 1e-9
_USE_KERNEL = True  # the compiled counting kernel where numba is installed (False: numpy)


@dataclass(frozen=True, slots=True)
class StackedEstimates:
    """Per seed and layer (S, L): I(X;T) and I(T;Y) in bits, I(T;Y') under the second label
    vector (NaN without one), the number of distinct states, and saturation."""

    i_xt: np.ndarray
    i_ty: np.ndarray
    i_ty_perm: np.ndarray
    n_states: np.ndarray
    saturated: np.ndarray


@dataclass(frozen=True)
class _Coding:
    """How one layer's values become codes: floor(clip((t - lo) * inv, 0, top)) per unit.

    ``lo``, ``inv`` and ``top`` broadcast against a units-first chunk (S, width, n). A binary
    coding instead gives 1 to the values equal to ``lo`` (there: each seed's maximum) and 0 to
    the others (with the kernel, ``top`` carries each seed's minimum, the value coded 0).
    ``places`` (S, width) are the mixed-radix place values, ``space`` (S,) the number of
    possible rows, ``fast[s]`` whether seed s is coded this way.
    """

    lo: np.ndarray | float
    inv: np.ndarray | float
    top: np.ndarray | float
    places: np.ndarray
    space: np.ndarray
    fast: np.ndarray
    binary: bool


class _Layer:
    """One layer of every seed, with what every estimator of a panel needs from it, computed
    once: units-first view, each seed's values as one row, their range, their finiteness."""

    def __init__(self, t: np.ndarray) -> None:
        self.t = t
        self.n_seeds, self.n, self.width = t.shape
        self.units = t.transpose(0, 2, 1)  # (S, width, n); contiguous when t came units-first

    @functools.cached_property
    def flat(self) -> np.ndarray:
        """The values of each seed as one row, (S, n * width), without a copy where possible."""
        if self.units.flags.c_contiguous:
            return self.units.reshape(self.n_seeds, -1)
        return self.t.reshape(self.n_seeds, -1)

    @functools.cached_property
    def seed_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Each seed's minimum and maximum (S,)."""
        return self.flat.min(axis=1), self.flat.max(axis=1)

    @functools.cached_property
    def unit_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Each seed's and unit's minimum and maximum (S, width)."""
        return self.t.min(axis=1), self.t.max(axis=1)

    @functools.cached_property
    def finite(self) -> np.ndarray:
        """Whether each seed's values are all finite (S,): one summing pass, exact if needed."""
        if "seed_range" in self.__dict__:
            lo, hi = self.seed_range
            return np.isfinite(lo) & np.isfinite(hi)
        with np.errstate(over="ignore", invalid="ignore"):
            ok = np.isfinite(self.flat.sum(axis=1))
        if not ok.all():  # an overflow of huge but finite values, or a bad value
            ok = np.isfinite(self.flat).all(axis=1)
        return ok


def estimate_stacked(
    estimators: Sequence[Estimator], layers: Sequence[Any], y: Any, y_perm: Any = None
) -> StackedEstimates:
    """Estimate every layer of every seed: ``layers[l]`` is (S, n, width), ``y`` (S, n) or (n,).

    As with the per-layer estimators, I(X;T) = H(T) for the counting estimators: the networks
    are deterministic and the n inputs distinct, so H(T|X) = 0. ``y_perm``, shaped like ``y``,
    adds I(T;Y') for a second label vector (``i_ty_perm``).
    """
    return estimate_panel({"": estimators}, layers, y, y_perm)[""]


def estimate_panel(
    panel: Mapping[str, Sequence[Estimator]], layers: Sequence[Any], y: Any, y_perm: Any = None
) -> dict[str, StackedEstimates]:
    """``estimate_stacked`` for each member of a panel (name -> one estimator per layer), on the
    same layers: each layer is checked and ranged once, and a member whose estimator on a layer
    equals another's (same description) shares its numbers.

    Exact counting runs after the binnings of a layer and learns from them without changing its
    numbers: a row alone in a binning's state is alone in the exact partition, which refines
    every binning, so only the rows that no binning told apart are hashed (none where a binning
    found n states)."""
    if not panel:
        raise EstimatorInputError("the panel must hold at least one member")
    for member, estimators in panel.items():
        if len(estimators) != len(layers):
            name = f"member {member!r}: " if member else ""
            raise EstimatorInputError(
                f"{name}got {len(estimators)} estimators for {len(layers)} layers; "
                "give one per layer"
            )
    if not layers:
        raise EstimatorInputError("layers must hold at least one (S, n, width) array")
    stacks = [_as_stack(t, f"layers[{i}]") for i, t in enumerate(layers)]
    n_seeds, n = stacks[0].shape[:2]
    if any(t.shape[:2] != (n_seeds, n) for t in stacks):
        shapes = ", ".join(str(t.shape) for t in stacks)
        raise EstimatorInputError(f"every layer must be (S, n, width) with the same S, n: {shapes}")
    labels = _LabelSet(_stack_labels(y, n_seeds, n))
    perm = None if y_perm is None else _LabelSet(_stack_labels(y_perm, n_seeds, n))
    n_classes = max(labels.n_classes, perm.n_classes if perm else 0)
    compiled = _USE_KERNEL and hashcount.fits(n, n_classes) and hashcount.available()
    shape = (n_seeds, len(stacks))
    out = {m: _Results(shape, n) for m in panel}
    for li, t in enumerate(stacks):
        layer = _Layer(t)
        kernel = compiled and t.dtype in (np.float32, np.float64)
        # exact counting last: where a binning already told every row apart, so does it;
        # the finest binning first, as the one whose partition it learns from
        order = sorted(panel, key=lambda m: _counting_order(panel[m][li]))
        lead = next((m for m in order if isinstance(panel[m][li], ExactEstimator)), None)
        # but a binary layer (two values per seed) first: its exact count is every binning's
        # that keeps the two values apart
        two, values = np.zeros(n_seeds, dtype=bool), np.zeros((n_seeds, 2))
        if kernel and lead is not None:
            two, values = _count_binary(layer, labels, perm, n_classes, out[lead], li)
        shared: dict[str, _Results] = {}
        injective = np.zeros(n_seeds, dtype=bool)
        # rows that no binning so far told apart from every other row: the only ones exact
        # counting must hash (a row alone in a binning's state is alone in every finer one)
        apart: np.ndarray | None = None
        for member in order:
            est, res = panel[member][li], out[member]
            same = shared.get(_identity(est))
            if same is not None:
                res.copy_layer(same, li)
                continue
            exact = isinstance(est, ExactEstimator)
            binning = isinstance(est, BinningEstimator)
            seeds = None
            if exact and kernel:
                res.set_injective(li, injective & ~two, perm is not None)
                seeds = ~(injective | two)
            elif exact:
                res.set_injective(li, injective, perm is not None)
                seeds = ~injective
            elif binning and two.any():
                alike = two & _keeps_apart(est, values)
                res.copy_layer(out[lead], li, alike)
                seeds = ~alike
            repeated = None
            if kernel and lead is not None and binning and apart is None:
                repeated = np.ones((n_seeds, n), dtype=bool)  # stays so where not counted
            _estimate_layer(
                est, layer, labels, perm, n_classes, kernel, res, li,
                seeds, apart if exact else None, repeated,
            )  # fmt: skip
            shared[_identity(est)] = res
            if repeated is not None:
                apart = repeated if apart is None else apart & repeated
            if binning or exact:  # partitions of the rows
                injective |= res.n_states[:, li] == n
    return {m: r.finish(labels, perm, n) for m, r in out.items()}


def _counting_order(est: Estimator) -> tuple[bool, float]:
    """Exact counting after every other estimator; finer binnings before coarser ones."""
    return isinstance(est, ExactEstimator), -est.max_bits(1)


def _identity(est: Estimator) -> str | int:
    """What makes two estimators give the same numbers: the description, unless fitted."""
    return id(est) if est.requires_fit else est.describe()


@dataclass(frozen=True)
class _LabelSet:
    """Each seed's encoded labels, the distinct rows of codes (1 when shared), and H(Y)."""

    per_seed: list[Labels]

    @functools.cached_property
    def shared(self) -> bool:
        """Whether every seed has the same labels."""
        return all(lab is self.per_seed[0] for lab in self.per_seed)

    @functools.cached_property
    def codes(self) -> np.ndarray:
        """(1 or S, n) int64 label codes."""
        rows = self.per_seed[: 1 if self.shared else len(self.per_seed)]
        return np.stack([lab.codes for lab in rows])

    @functools.cached_property
    def h_y(self) -> np.ndarray:
        """H(Y) per seed (S,)."""
        return np.array([lab.h_y for lab in self.per_seed])

    @property
    def n_classes(self) -> int:
        """The most classes of any seed."""
        return max(lab.n_classes for lab in self.per_seed)


class _Results:
    """One member's numbers as they are filled in, layer by layer: H(T), H(T,Y), H(T,Y')."""

    def __init__(self, shape: tuple[int, int], n: int) -> None:
        self.n = n
        self.h_t = np.zeros(shape)
        self.h_ty = np.full(shape, np.nan)  # counted seeds: H(T,Y); NaN: the estimator ran
        self.h_ty_perm = np.full(shape, np.nan)
        self.i_ty = np.zeros(shape)  # where the estimator ran itself
        self.i_ty_perm = np.full(shape, np.nan)
        self.n_states = np.zeros(shape, dtype=np.int64)

    def set_injective(self, li: int, seeds: np.ndarray, with_perm: bool) -> None:
        """Layer ``li`` of ``seeds`` (a mask) has its n rows distinct: every entropy is log2 n."""
        log_n = math.log2(self.n)
        self.h_t[seeds, li] = self.h_ty[seeds, li] = log_n
        if with_perm:
            self.h_ty_perm[seeds, li] = log_n
        self.n_states[seeds, li] = self.n

    def copy_layer(self, other: _Results, li: int, seeds: np.ndarray | None = None) -> None:
        """Take layer ``li``'s numbers (of the ``seeds`` of a mask) from another member."""
        rows = slice(None) if seeds is None else seeds
        for name in ("h_t", "h_ty", "h_ty_perm", "i_ty", "i_ty_perm", "n_states"):
            getattr(self, name)[rows, li] = getattr(other, name)[rows, li]

    def finish(self, labels: _LabelSet, perm: _LabelSet | None, n: int) -> StackedEstimates:
        """The estimates: plug-in I(T;Y) = H(T) + H(Y) - H(T,Y) where counted."""
        i_ty = _plug_in(self.h_t, labels.h_y, self.h_ty, self.i_ty)
        i_ty_perm = self.i_ty_perm
        if perm is not None:
            i_ty_perm = _plug_in(self.h_t, perm.h_y, self.h_ty_perm, self.i_ty_perm)
        return StackedEstimates(
            i_xt=self.h_t,
            i_ty=i_ty,
            i_ty_perm=i_ty_perm,
            n_states=self.n_states,
            saturated=self.h_t >= math.log2(n) - SATURATION_MARGIN_BITS,
        )


def _plug_in(h_t: np.ndarray, h_y: np.ndarray, h_ty: np.ndarray, own: np.ndarray) -> np.ndarray:
    """H(T) + H(Y) - H(T,Y) where counted (else ``own``), rounding past its bounds removed."""
    plug_in = h_t + h_y[:, None] - h_ty
    # rounding may carry I(T;Y) just past its bounds; move it back only then (as make_result)
    upper = np.minimum(h_t, h_y[:, None])
    plug_in = np.where((plug_in < 0) & (plug_in >= -_ROUNDING), 0.0, plug_in)
    plug_in = np.where((plug_in > upper) & (plug_in <= upper + _ROUNDING), upper, plug_in)
    return np.where(np.isnan(h_ty), own, plug_in)


def _estimate_layer(
    est: Estimator,
    layer: _Layer,
    labels: _LabelSet,
    perm: _LabelSet | None,
    n_classes: int,
    kernel: bool,
    res: _Results,
    li: int,
    seeds: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    repeated: np.ndarray | None = None,
) -> None:
    """One estimator on one layer of every seed (or the ``seeds`` of a mask): counted where
    possible, else itself. ``rows`` and ``repeated``: see ``hashcount.count_stacked``."""
    wanted = np.ones(layer.n_seeds, dtype=bool) if seeds is None else seeds
    if not wanted.any():
        return
    if kernel and isinstance(est, ExactEstimator):  # binary seeds: ``_count_binary`` did them
        coding = None
    else:
        coding = _coding(est, layer, n_classes, checked=not kernel)
    fast = coding.fast & wanted if coding is not None else np.zeros(layer.n_seeds, dtype=bool)
    if coding is not None and not fast.all():
        coding = dataclasses.replace(coding, fast=fast)
    if fast.any() and kernel:
        fast = _count_compiled(layer, coding, labels, perm, n_classes, res, li, repeated=repeated)
    elif fast.any():
        _count_layer(layer, coding, labels, perm, n_classes, res, li)
    if kernel and isinstance(est, ExactEstimator) and (wanted & ~fast).any():
        # real values (a BNN's softmax, a quantised layer): every distinct row is a state
        left = wanted & ~fast
        fast = fast | _count_compiled(layer, None, labels, perm, n_classes, res, li, left, rows)
    for s in np.flatnonzero(wanted & ~fast):
        r = est.estimate(layer.t[s], labels.per_seed[s].codes)
        res.h_t[s, li], res.i_ty[s, li], res.n_states[s, li] = r.i_xt, r.i_ty, r.n_states
        if perm is not None:
            res.i_ty_perm[s, li] = est.estimate(layer.t[s], perm.per_seed[s].codes).i_ty


def _as_stack(t: Any, what: str) -> np.ndarray:
    if hasattr(t, "detach"):  # a torch tensor: checked and converted like single layers
        t = np.stack([validate_layer(t[s], what) for s in range(t.shape[0])])
    arr = np.asarray(t)
    if arr.ndim != 3 or 0 in arr.shape:
        raise EstimatorInputError(
            f"{what} must be a non-empty (S seeds, n samples, width) array, got shape {arr.shape}"
        )
    return arr.view(np.uint8) if arr.dtype == np.bool_ else arr


def _stack_labels(y: Any, n_seeds: int, n: int) -> list[Labels]:
    """Each seed's encoded labels; seeds with equal labels share one encoding."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[0] == n_seeds and arr.shape[1] == n and (arr == arr[:1]).all():
        arr = arr[0]
    if arr.ndim == 1:
        return [encode_labels(arr, n)] * n_seeds
    if arr.ndim != 2 or arr.shape[0] != n_seeds:
        raise EstimatorInputError(
            f"labels y must be (n,) or (S, n) = ({n_seeds}, {n}), got shape {arr.shape}"
        )
    return [encode_labels(row, n) for row in arr]


def _coding(est: Estimator, layer: _Layer, n_classes: int, checked: bool = True) -> _Coding | None:
    """The coding of a layer for the fast path, or None if the estimator must run itself.

    ``checked`` False leaves to the compiled kernel what it checks itself: finite values, and
    for the exact estimator that each seed holds two values at most (it finds them itself).
    """
    t = layer.t
    if not (np.issubdtype(t.dtype, np.floating) or np.issubdtype(t.dtype, np.integer)):
        return None
    n_seeds, width = layer.n_seeds, layer.width
    binning = isinstance(est, BinningEstimator) and est.params.range in ("fixed", "layer", "neuron")
    exact = isinstance(est, ExactEstimator)
    if not (binning or exact):
        return None
    every = np.ones(n_seeds, dtype=bool)
    if exact and not checked:  # one bit per unit, wherever the kernel finds two values
        zero = np.zeros((n_seeds, 1, 1))
        radices = np.full((n_seeds, width), 2)
        return _with_places(zero, zero, zero, radices, n_classes, every, True)
    if binning and est.params.range == "fixed":
        finite = every if not checked else layer.finite
    else:
        lo, hi = layer.seed_range
        finite = np.isfinite(lo) & np.isfinite(hi)
    if exact:
        # the value hi becomes 1 and the other value 0: one bit per unit (one state if constant)
        constant = lo == hi
        radices = np.where(constant[:, None], 1, np.full((n_seeds, width), 2))
        one = np.ones((n_seeds, 1, 1))
        two = ((layer.flat == lo[:, None]) | (layer.flat == hi[:, None])).all(axis=1)
        return _with_places(hi[:, None, None], one, one, radices, n_classes, two & finite, True)
    p = est.params
    if p.range == "fixed":
        lo = np.full((n_seeds, 1), np.float64(p.lo))
        hi = np.full((n_seeds, 1), np.float64(p.hi))
    elif p.range == "layer":
        lo = lo.astype(np.float64)[:, None]
        hi = hi.astype(np.float64)[:, None]
    else:
        lo, hi = (a.astype(np.float64) for a in layer.unit_range)
    # the arithmetic of BinningEstimator._estimate, element by element
    span = hi - lo
    bin_width = span / p.n_bins if p.bin_width is None else p.bin_width
    bin_width = np.where(span > 0, bin_width, 1.0)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite seeds are not fast
        n_bins = np.maximum(np.ceil(span / bin_width - 1e-9), 1)
    n_bins = np.where(np.isfinite(n_bins), n_bins, 1).astype(np.int64)
    inv, top = 1.0 / bin_width, (n_bins - 1).astype(np.float64)
    if p.range == "fixed":  # one scalar for all seeds: numpy's faster scalar loops
        params = float(lo[0, 0]), float(inv[0, 0]), float(top[0, 0])
    else:
        params = lo[:, :, None], inv[:, :, None], top[:, :, None]
    radices = np.broadcast_to(n_bins, (n_seeds, width))
    return _with_places(*params, radices, n_classes, finite, binary=False)


def _with_places(
    lo: np.ndarray | float,
    inv: np.ndarray | float,
    top: np.ndarray | float,
    radices: np.ndarray,
    n_classes: int,
    fast: np.ndarray,
    binary: bool,
) -> _Coding:
    """Add the place values; seeds whose keys joined with a label would exceed 2^53, or whose
    codes would exceed int32 (the kernel's codes), leave the fast path."""
    # products in float64 are exact up to 2^53 and only grow, so the test below is exact
    suffix = np.cumprod(radices[:, ::-1].astype(np.float64), axis=1)[:, ::-1]
    places = np.concatenate([suffix[:, 1:], np.ones((len(radices), 1))], axis=1)
    space = suffix[:, 0]
    fits = (space * n_classes <= _FLOAT_EXACT) & (radices.max(axis=1) <= hashcount.MAX_CODE + 1)
    space = np.where(fits, space, 0).astype(np.int64)
    return _Coding(lo, inv, top, places, space, fast & fits, binary)


def _count_layer(
    layer: _Layer,
    coding: _Coding,
    labels: _LabelSet,
    perm: _LabelSet | None,
    k: int,
    res: _Results,
    li: int,
) -> None:
    """Code, key, sort and count every fast seed of one layer, a chunk of seeds at a time."""
    n, width = layer.n, layer.width
    units = layer.units
    seeds = np.flatnonzero(coding.fast)
    step = max(1, _CHUNK_VALUES // (n * width))
    buf = np.empty(min(step, len(seeds)) * width * n)
    y = labels.codes.astype(float)
    y_perm = perm.codes.astype(float) if perm is not None else None
    for a in range(0, len(seeds), step):
        idx = seeds[a : a + step]
        part = slice(idx[0], idx[-1] + 1) if idx[-1] - idx[0] == len(idx) - 1 else idx
        block = buf[: len(idx) * width * n].reshape(len(idx), width, n)
        lo, inv, top = (_part(v, idx) for v in (coding.lo, coding.inv, coding.top))
        if coding.binary:
            np.copyto(block, units[part] == lo)
        else:
            np.subtract(units[part], lo, out=block)
            block *= inv
            np.clip(block, 0.0, top, out=block)
            np.floor(block, out=block)
        keys = np.matmul(coding.places[idx, None, :] * k, block)[:, 0, :]
        bound = int(coding.space[idx].max()) * k
        h_t, h_ty, states = _sorted_entropies(_joint(keys, y, idx, bound), k)
        res.h_t[idx, li], res.h_ty[idx, li], res.n_states[idx, li] = h_t, h_ty, states
        if y_perm is not None:
            res.h_ty_perm[idx, li] = _sorted_entropies(_joint(keys, y_perm, idx, bound), k)[1]


def _joint(keys: np.ndarray, y: np.ndarray, idx: np.ndarray, bound: int) -> np.ndarray:
    """Sorted joint keys (key * k + label) in the narrowest integer type that holds them."""
    joint = keys + (y[idx] if len(y) > 1 else y)
    dtype = np.uint16 if bound <= 1 << 16 else np.int32 if bound <= 1 << 31 else np.int64
    joint = joint.astype(dtype)
    joint.sort(axis=1, kind="stable" if dtype == np.uint16 else "quicksort")
    return joint


def _count_binary(
    layer: _Layer, labels: _LabelSet, perm: _LabelSet | None, k: int, res: _Results, li: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact counting of the seeds of a layer that hold two values (+-1): those seeds (S,)
    and their two values (S, 2), lower first."""
    coding = _coding(ExactEstimator(), layer, k, checked=False)
    if coding is None:
        return np.zeros(layer.n_seeds, dtype=bool), np.zeros((layer.n_seeds, 2))
    return _count_compiled(layer, coding, labels, perm, k, res, li, with_values=True)


def _keeps_apart(est: BinningEstimator, values: np.ndarray) -> np.ndarray:
    """Per seed holding two values (S, 2), whether the binning puts them in different bins
    (or the seed is constant): then its partition of the rows is the exact one, unit by unit.
    Decided with the binning's own float64 arithmetic."""
    p = est.params
    small, big = values[:, 0], values[:, 1]
    constant = small == big
    if p.range == "fixed":
        span = p.hi - p.lo
        width = span / p.n_bins if p.bin_width is None else p.bin_width
        top = max(math.ceil(span / width - 1e-9), 1) - 1
        inv = 1.0 / width
        codes = [np.floor(np.clip((v - p.lo) * inv, 0, top)) for v in (small, big)]
        return constant | (codes[0] != codes[1])
    if p.range in ("layer", "neuron"):  # the two values are the range's ends: bins 0 and top
        if p.n_bins is not None:
            return constant | (p.n_bins >= 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return constant | (np.ceil((big - small) / p.bin_width - 1e-9) >= 2)
    return np.zeros(len(values), dtype=bool)


def _count_compiled(
    layer: _Layer,
    coding: _Coding | None,
    labels: _LabelSet,
    perm: _LabelSet | None,
    k: int,
    res: _Results,
    li: int,
    seeds: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    repeated: np.ndarray | None = None,
    with_values: bool = False,
) -> Any:
    """Count seeds of one layer with the compiled kernel; the seeds it counted (and, with
    ``with_values``, the two values of each binary seed).

    With a coding: its fast seeds, binned or binary. Without: the ``seeds`` of a mask, each
    distinct row a state (the exact estimator on real values), hashing only ``rows`` if given.
    """
    n_seeds, width, n = layer.n_seeds, layer.width, layer.n
    if coding is None:
        mode, listed = hashcount.ROWS, np.flatnonzero(seeds)
        lo = inv = top = places = np.zeros((n_seeds, width))
        space = np.zeros(n_seeds, dtype=np.int64)
    else:
        mode = hashcount.BINARY if coding.binary else hashcount.BINNING
        listed = np.flatnonzero(coding.fast)
        lo, inv, top = (_per_unit(v, n_seeds, width) for v in (coding.lo, coding.inv, coding.top))
        places, space = coding.places, coding.space
    counts = hashcount.count_stacked(
        layer.units, mode, lo, inv, top, places, space, labels.codes,
        None if perm is None else perm.codes, k, listed, _plogp(n), rows, repeated,
    )  # fmt: skip
    done = counts.done
    res.h_t[done, li] = counts.h_t[done]
    res.h_ty[done, li] = counts.h_ty[done]
    res.h_ty_perm[done, li] = counts.h_ty_perm[done]
    res.n_states[done, li] = counts.states[done]
    return (done, counts.values) if with_values else done


def _per_unit(values: np.ndarray | float, n_seeds: int, width: int) -> np.ndarray:
    """A coding parameter as a contiguous (S, width) float64 array."""
    if isinstance(values, float):
        return np.full((n_seeds, width), values)
    arr = np.asarray(values, dtype=np.float64)[:, :, 0]
    return np.ascontiguousarray(np.broadcast_to(arr, (n_seeds, width)))


def _part(values: np.ndarray | float, idx: np.ndarray) -> np.ndarray | float:
    return values if isinstance(values, float) else values[idx]


def _sorted_entropies(joint: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H(T), H(T,Y) and distinct states per row of sorted joint keys (key * k + label)."""
    m, n = joint.shape
    if k == 1:
        keys = joint
    elif k & (k - 1) == 0:
        keys = joint >> joint.dtype.type(k.bit_length() - 1)
    else:
        keys = joint // joint.dtype.type(k)
    new_t = _run_starts(keys)
    states = np.count_nonzero(new_t, axis=1)
    h_t = np.full(m, math.log2(n))
    h_ty = h_t.copy()
    mixed = states < n  # rows with a repeated state need counting
    if mixed.any():
        rows = slice(None) if mixed.all() else np.flatnonzero(mixed)
        new_t = new_t[rows]
        h_t[rows] = _run_entropies(new_t, states[rows])
        new_ty = _run_starts(joint[rows]) if k > 1 else new_t
        h_ty[rows] = _run_entropies(new_ty, np.count_nonzero(new_ty, axis=1))
    return h_t, h_ty, states


def _run_starts(rows: np.ndarray) -> np.ndarray:
    new = np.empty(rows.shape, dtype=bool)
    new[:, 0] = True
    np.not_equal(rows[:, 1:], rows[:, :-1], out=new[:, 1:])
    return new


def _run_entropies(new: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Plug-in entropy in bits per row from the run starts of sorted rows."""
    m, n = new.shape
    counts = np.diff(np.flatnonzero(new), append=m * n)
    first = np.concatenate([[0], np.cumsum(runs)[:-1]])
    plogp = _plogp(n)[counts]
    return np.maximum(math.log2(n) - np.add.reduceat(plogp, first) / n, 0.0)


@functools.lru_cache(maxsize=8)
def _plogp(n: int) -> np.ndarray:
    """c log2 c for the counts c = 0..n (0 for c = 0), looked up instead of computed."""
    c = np.arange(n + 1, dtype=np.float64)
    c[0] = 1.0
    return c * np.log2(c)
