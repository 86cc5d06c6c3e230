"""Information per layer for one epoch's representations, for every seed of a stack and every
estimator of a panel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ibsweep.analysis import run_schema as rs
from ibsweep.analysis.estimators import (
    Estimator,
    StackedEstimates,
    default_estimator,
    estimate_panel,
    layer_estimator,
    make_estimator,
)
from ibsweep.models.config import ModelConfig
from ibsweep.sweep.errors import UsageError

EstimatorSpec = tuple[str, dict[str, object]]
"""A registry name and its parameters, e.g. ("binning", {"n_bins": 2})."""

# the permutation of a run's labels is drawn from its seed and this stream (not the training's)
_PERMUTATION_STREAM = 0x1B5


def parse_estimator_spec(spec: str) -> EstimatorSpec:
    """Split 'name' or 'name:key=value,key=value' into a registry name and parameters."""
    name, _, rest = spec.partition(":")
    params: dict[str, object] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(
                f"estimator parameter '{item}' must be key=value, e.g. binning:n_bins=30"
            )
        params[key.strip()] = _parse_scalar(value.strip())
    return name.strip(), params


def _parse_scalar(value: str) -> object:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def check_panel_names(names: Sequence[str], field: str) -> None:
    """Refuse member names that cannot name MLflow keys, or that clash ignoring case."""
    seen: dict[str, str] = {}
    for name in names:
        problem = rs.member_name_problem(name)
        if problem is not None:
            raise UsageError(f"{field}: {problem}")
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise UsageError(
                f"{field}: names {other!r} and {name!r} differ only in case; give distinct names"
            )


def permuted_labels(labels: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """Each seed's measurement labels (S, n) under one fixed permutation, drawn from the seed:
    the same at every epoch of a run and after a resume (the plug-in bias baseline)."""
    order = [
        np.random.default_rng([seed, _PERMUTATION_STREAM]).permutation(labels.shape[1])
        for seed in seeds
    ]
    return np.stack([row[o] for row, o in zip(labels, order, strict=True)])


class LayerMeter:
    """Estimates every layer's I(X;T), I(T;Y), I(T;Y) under permuted labels and its distinct
    states, for each member of an estimator panel.

    Without ``panel``: the per-layer defaults (see ``analysis.estimators.defaults``), or
    ``override`` for every layer, as the one member ``default``. With ``panel`` (member name ->
    estimator spec): each member on every layer, with the layer type's defaults for the
    parameters its spec leaves out. Everything is built here, so bad settings fail before
    training; ``labels`` names each member (or ``rs.DEFAULT_MEMBER``: the override) in messages.
    """

    def __init__(
        self,
        model: ModelConfig,
        override: EstimatorSpec | None = None,
        panel: Mapping[str, EstimatorSpec] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if override is not None and panel:
            raise UsageError("give one estimator for every layer or a panel of them, not both")
        types = model.layer_types()
        self.model = model
        self.panel = bool(panel)
        self.estimators: dict[str, list[Estimator]] = {}
        if panel:
            check_panel_names(list(panel), "mi.estimators")
        members = panel or {rs.DEFAULT_MEMBER: override}
        for member, spec in members.items():
            field = (labels or {}).get(member) or (
                f"mi.estimators.{member}" if panel else "mi.estimator"
            )
            try:
                if spec is None:
                    ests = [default_estimator(t) for t in types]
                elif panel:
                    ests = [layer_estimator(t, spec[0], spec[1]) for t in types]
                else:
                    ests = [make_estimator(spec[0], **spec[1])] * len(types)
            except ValueError as err:
                raise UsageError(f"{field}: {str(err).splitlines()[0]}") from err
            for est in ests:
                if est.requires_fit:
                    raise UsageError(
                        f"{field}: {est.describe()} needs every epoch's activations before its "
                        "first estimate (range 'global'), which a run that measures as it trains "
                        "cannot give; allowed ranges: fixed, layer, neuron"
                    )
            self.estimators[member] = ests

    @property
    def members(self) -> tuple[str, ...]:
        """The member names, in order (``default`` without a panel)."""
        return tuple(self.estimators)

    def describe(self) -> dict[str, list[str]]:
        """Each member's estimator of each layer, as logged (layer 1 first)."""
        return {m: [est.describe() for est in ests] for m, ests in self.estimators.items()}

    def max_bits(self, widths: Sequence[int]) -> dict[str, list[float]]:
        """Per member and layer, log2 of the most states it can tell apart there: width x log2
        levels, or less where the layer itself has fewer states (binary, a BNN's output).

        ``widths`` are the measured layers' widths (the hidden widths, then the classes).
        """
        bound = self.model.state_bits()
        return {
            m: [min(est.max_bits(w), b) for est, w, b in zip(ests, widths, bound, strict=True)]
            for m, ests in self.estimators.items()
        }

    def estimate(
        self, layers: Sequence[np.ndarray], labels: np.ndarray, perm: np.ndarray | None = None
    ) -> dict[str, StackedEstimates]:
        """Per member, the estimates of every seed and layer as (S, L) arrays; ``layers[l]`` is
        (S, n, width), ``labels`` and ``perm`` (permuted labels) (S, n).

        All seeds, layers and members in one vectorised pass (``estimate_panel``), with the
        same numbers as each layer's estimator applied seed by seed.
        """
        return estimate_panel(self.estimators, layers, labels, perm)
