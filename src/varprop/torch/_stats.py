"""The signal statistics propagated through a model, and activation moments evaluated for many units at once.

A ``Stat`` describes the entries of one tensor at initialization: channel c (units of a ``Linear``, channels of a
convolution) holds y = mean[c] + d + e, where e ~ N(0, var[c]) varies over samples and positions, and d ~ N(0, shared)
is a per-channel offset that is constant over samples and positions but not known individually (it is known only when
the weights that produce it are, which is what the realized-weights mode uses: it keeps ``shared`` at 0 and the exact
per-channel means instead). The pooled moments over all entries are
E[y] = mean(mean[c]) and E[y^2] = mean(mean[c]^2 + var[c]) + shared.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._activation import Activation
from .._moments import moments

__all__ = ["IndexStat", "Stat", "UnitMoments", "collapse", "scalar_stat"]

FloatArray = NDArray[np.float64]

# Units evaluated directly by the moment engine up to this count; above it, through a Chebyshev table built from
# the engine (``UnitMoments``), whose interpolation error is ~1e-11 relative on its domain (see ``_Table``).
_DIRECT_LIMIT = 96
_MAX_PANELS = 64
_VAR_FLOOR = 1e-10
# Gauss-Hermite nodes for averaging over an unknown per-channel offset d ~ N(0, shared) (``apply_activation``): the
# integrand E[phi(m + d + e) | d] is smooth in d (a Gaussian blur of phi), so 24 nodes are accurate to ~1e-10.
_OFFSET_NODES = 24


@dataclass(frozen=True)
class Stat:
    """Moments of a floating tensor at initialization (see the module docstring).

    Attributes:
        mean: per-channel means, shape ``(C,)``; ``(1,)`` when channels are not tracked.
        var: per-channel variance over samples and positions, shape ``(C,)`` or ``(1,)``.
        shared: variance of unknown per-channel offsets (constant over samples and positions).
        axis: the tensor dimension that indexes ``mean``/``var`` (non-negative), or ``None``.
        ndim: the tensor's number of dimensions (``None`` when unknown).
        spatial: for convolution outputs with realized weights, the map shape ``(H, W, ...)``: then ``mean`` and
            ``var`` hold one value per (channel, position), channel-major (``C * prod(spatial)`` entries), so that
            zero-padding borders and other position-dependent means propagate exactly. ``()`` otherwise.
    """

    mean: FloatArray
    var: FloatArray
    shared: float = 0.0
    axis: int | None = None
    ndim: int | None = None
    spatial: tuple[int, ...] = ()

    @property
    def channels(self) -> int:
        return int(self.mean.size) // math.prod(self.spatial) if self.spatial else int(self.mean.size)

    @property
    def pooled_mean(self) -> float:
        return float(np.mean(self.mean))

    @property
    def second_moment(self) -> float:
        """E[y^2] pooled over all entries."""
        return float(np.mean(self.mean * self.mean + self.var) + self.shared)

    @property
    def variance(self) -> float:
        """Var[y] pooled over all entries (what ``tensor.var()`` estimates)."""
        return float(np.var(self.mean) + np.mean(self.var) + self.shared)

    def scaled(self, factor: float) -> Stat:
        """Moments of ``factor * y``."""
        return replace(self, mean=self.mean * factor, var=self.var * factor * factor, shared=self.shared * factor**2)

    def with_axis(self, axis: int | None, ndim: int | None) -> Stat:
        if axis is None or self.channels == 1:
            return replace(self, axis=None if self.channels == 1 else axis, ndim=ndim)
        return replace(self, axis=axis, ndim=ndim)


@dataclass(frozen=True)
class IndexStat:
    """An integer tensor (token indices): what an ``Embedding`` consumes. ``counts`` is the index histogram."""

    counts: NDArray[np.int64] | None = None
    ndim: int | None = None


def scalar_stat(mean: float, second_moment: float, ndim: int | None = None) -> Stat:
    """A ``Stat`` without channels from a mean and a second moment."""
    variance = max(second_moment - mean * mean, 0.0)
    return Stat(np.array([float(mean)]), np.array([variance]), 0.0, None, ndim)


def channel_view(stat: Stat) -> Stat:
    """Per-channel moments of a spatial Stat: the spread of a channel's mean map counts as variance within it."""
    if not stat.spatial:
        return stat
    count = math.prod(stat.spatial)
    means = stat.mean.reshape(-1, count)
    variances = stat.var.reshape(-1, count)
    return Stat(means.mean(axis=1), variances.mean(axis=1) + means.var(axis=1), stat.shared, stat.axis, stat.ndim)


def collapse(stat: Stat) -> Stat:
    """Forget the channels: the spread of the channel means becomes an unknown offset (``shared``)."""
    stat = channel_view(stat)
    if stat.channels == 1:
        return replace(stat, axis=None)
    return Stat(
        np.array([stat.pooled_mean]),
        np.array([float(np.mean(stat.var))]),
        float(np.var(stat.mean)) + stat.shared,
        None,
        stat.ndim,
    )


def _chebyshev_nodes(count: int, low: float, high: float) -> FloatArray:
    """Chebyshev points of the second kind on [low, high] (including the ends), increasing."""
    angles = np.pi * np.arange(count) / (count - 1)
    return np.asarray(0.5 * (low + high) - 0.5 * (high - low) * np.cos(angles))


def _barycentric_weights(count: int) -> FloatArray:
    """Barycentric weights of Chebyshev points of the second kind (Berrut & Trefethen 2004, eq. 5.4)."""
    weights = np.ones(count)
    weights[1::2] = -1.0
    weights[0] *= 0.5
    weights[-1] *= 0.5
    return weights


def _digits(values: FloatArray) -> FloatArray:
    return np.array([float(f"{value:.10g}") for value in values.ravel()])


def evaluate(act: Activation, mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
    """E[phi] and E[phi^2] at each (mean, var): the activation's closed form where it is valid, else the engine
    (``varprop.moments``). Only these two are needed here, so the engine's cancellation-free variance is skipped."""
    first = np.empty_like(mean)
    second = np.empty_like(mean)
    valid = np.zeros(mean.shape, dtype=bool)
    if act.closed_form is not None and mean.size:
        closed_first, closed_second, _deriv, trusted = act.closed_form(mean, var)
        valid = np.asarray(trusted, dtype=bool).reshape(mean.shape)
        first[valid] = np.asarray(closed_first, dtype=np.float64).reshape(mean.shape)[valid]
        second[valid] = np.asarray(closed_second, dtype=np.float64).reshape(mean.shape)[valid]
    if not valid.all():
        rest = ~valid
        result = moments(act, var=var[rest], mean=mean[rest])
        first[rest] = np.asarray(result.mean, dtype=np.float64)
        second[rest] = np.asarray(result.second_moment, dtype=np.float64)
    return first, second


def _closed_form(act: Activation, mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray] | None:
    """E[phi], E[phi^2] from the activation's closed form when it is valid at every point (exact and ~0.5 us per
    point: cheaper than a table lookup), else ``None``."""
    if act.closed_form is None:
        return None
    first, second, _deriv, trusted = act.closed_form(mean, var)
    if not bool(np.all(trusted)):
        return None
    return (
        np.broadcast_to(np.asarray(first, dtype=np.float64), mean.shape).copy(),
        np.broadcast_to(np.asarray(second, dtype=np.float64), mean.shape).copy(),
    )


@dataclass
class _Axis:
    """[low, high] cut into equal panels no wider than ``max_width``, each with ``count`` Chebyshev points."""

    low: float
    high: float
    max_width: float
    count: int

    def __post_init__(self) -> None:
        self.panels = max(1, math.ceil((self.high - self.low) / self.max_width))
        edges = np.linspace(self.low, self.high, self.panels + 1)
        self.nodes = np.stack([_chebyshev_nodes(self.count, a, b) for a, b in itertools.pairwise(edges)])
        self.weights = _barycentric_weights(self.count)

    def locate(self, points: FloatArray) -> tuple[NDArray[np.intp], FloatArray]:
        """Panel index of each point and its row of interpolation coefficients over that panel's nodes."""
        width = (self.high - self.low) / self.panels
        panel = np.clip(((points - self.low) / width).astype(np.intp), 0, self.panels - 1)
        diff = points[:, None] - self.nodes[panel]
        exact = diff == 0.0
        diff[exact] = 1.0
        terms = self.weights / diff
        rows = terms / terms.sum(axis=1, keepdims=True)
        hit = exact.any(axis=1)
        rows[hit] = exact[hit].astype(np.float64)
        return panel, rows


@dataclass
class _Table:
    """E[phi], E[phi^2] of phi(m + sqrt(s) z) on a piecewise Chebyshev grid in (m, c(s)), from the moment engine.

    The variance coordinate c(s) is s itself for activations without kinks (the Gaussian blur is then analytic in
    s, down to s = 0), log s for kinked ones (near a kink the blur behaves like sqrt(s)). For a smooth activation the
    blur is analytic in a strip around the real m axis at least as wide as its smooth features (>= 1 for tanh, SiLU,
    ...), so mean panels of width 2 with 16 points and variance panels of width 0.5 (or ln 4 in log s) with 9 points
    interpolate to ~1e-9 relative; near a kink the mean panels shrink to the blur's width sqrt(s). Checked against
    direct engine calls in tests/test_torch_stats.py.
    """

    act: Activation
    mean_low: float
    mean_high: float
    var_low: float
    var_high: float
    mean_width: float = 2.0
    log_scale: bool = False

    def __post_init__(self) -> None:
        self.mean_axis = _Axis(self.mean_low, self.mean_high, self.mean_width, 16)
        self.var_axis = _Axis(self.var_low, self.var_high, math.log(4.0) if self.log_scale else 0.5, 9)
        grid_mean, grid_coordinate = np.meshgrid(
            self.mean_axis.nodes.reshape(-1), self.var_axis.nodes.reshape(-1), indexing="ij"
        )
        grid_var = np.exp(grid_coordinate) if self.log_scale else np.maximum(grid_coordinate, 0.0)
        first, second = evaluate(self.act, grid_mean.ravel(), grid_var.ravel())
        shape = (self.mean_axis.panels, self.mean_axis.count, self.var_axis.panels, self.var_axis.count)
        # values[i, j] is the (count_m, count_s) block of mean panel i and variance panel j
        self.first = first.reshape(shape).transpose(0, 2, 1, 3)
        self.second = second.reshape(shape).transpose(0, 2, 1, 3)
        self.points = grid_mean.size
        self.data = (self.mean_low, self.mean_high, self.var_low, self.var_high)

    def coordinate(self, var: FloatArray) -> FloatArray:
        # Below _VAR_FLOOR the blur changes E[phi] and E[phi^2] by O(var sup|phi''|), far below what matters here
        # (deep networks drive the within-unit variance of some units towards 0 while their means stay O(1)).
        return np.log(np.maximum(var, _VAR_FLOOR)) if self.log_scale else var

    def covers(self, mean: FloatArray, var: FloatArray) -> bool:
        coordinate = self.coordinate(var)
        return bool(
            mean.min() >= self.mean_low
            and mean.max() <= self.mean_high
            and coordinate.min() >= self.var_low
            and coordinate.max() <= self.var_high
        )

    def __call__(self, mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
        panel_m, rows_m = self.mean_axis.locate(mean)
        panel_s, rows_s = self.var_axis.locate(self.coordinate(var))
        first = np.einsum("nm,nms,ns->n", rows_m, self.first[panel_m, panel_s], rows_s)
        second = np.einsum("nm,nms,ns->n", rows_m, self.second[panel_m, panel_s], rows_s)
        return first, second


@dataclass
class UnitMoments:
    """E[phi(y)] and E[phi(y)^2] for many units y ~ N(mean_i, var_i): for up to ``_DIRECT_LIMIT`` units, wherever
    the activation's closed form is valid at every unit, and wherever a table would need too many panels, the
    closed form or the moment engine; otherwise a Chebyshev table built from them and kept for the whole
    ``init_model`` call (a 100-layer MLP builds a few)."""

    tables: dict[tuple[object, ...], _Table] = field(default_factory=dict)
    cache: dict[tuple[object, ...], tuple[FloatArray, FloatArray]] = field(default_factory=dict)
    engine_points: int = 0

    def __call__(self, act: Activation, mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
        mean, var = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64))
        mean, var = mean.copy(), np.maximum(var, 0.0)
        if mean.size <= _DIRECT_LIMIT:
            # Cache key at 10 significant digits: repeated blocks of a deep network hit it.
            key = (act.key, _digits(mean).tobytes(), _digits(var).tobytes())
            cached = self.cache.get(key)
            if cached is None:
                self.engine_points += int(mean.size)
                cached = self.cache[key] = evaluate(act, mean, var)
            return cached[0].copy(), cached[1].copy()
        exact = _closed_form(act, mean, var)
        if exact is not None:
            return exact
        kinked = self._kink_inside(act, mean, var)
        width = 2.0
        if kinked:
            # A kink blurred by sqrt(var): panels as narrow as the blur (bounded count, else direct evaluation);
            # half of that, so that slowly shrinking variances do not rebuild the table at every layer.
            width = min(2.0, math.sqrt(float(var.min())))
            if width <= 0.0 or 2.0 * max(float(mean.max() - mean.min()), 1.0) / width > _MAX_PANELS:
                self.engine_points += int(mean.size)
                return evaluate(act, mean, var)
        return self._table(act, mean, var, width, kinked)

    @staticmethod
    def _kink_inside(act: Activation, mean: FloatArray, var: FloatArray) -> bool:
        reach = 8.0 * math.sqrt(float(var.max()))
        low, high = float(mean.min()) - reach, float(mean.max()) + reach
        return any(low <= kink <= high for kink in act.kinks)

    def _table(
        self, act: Activation, mean: FloatArray, var: FloatArray, width: float, kinked: bool
    ) -> tuple[FloatArray, FloatArray]:
        key = (act.key, kinked)
        table = self.tables.get(key)
        if table is None or not table.covers(mean, var) or table.mean_width > 2.0 * width:
            coordinate = np.log(np.maximum(var, _VAR_FLOOR)) if kinked else var
            low, high = float(mean.min()), float(mean.max())
            var_low, var_high = float(coordinate.min()), float(coordinate.max())
            if table is not None:  # cover what the previous table was built for too (its data, not its margins)
                low, high = min(low, table.data[0]), max(high, table.data[1])
                var_low, var_high = min(var_low, table.data[2]), max(var_high, table.data[3])
                width = min(width, table.mean_width)
            data = (low, high, var_low, var_high)
            span = max(high - low, 1.0)
            if kinked:
                var_span = max(var_high - var_low, 1.0)
                var_low, var_high = var_low - 0.5 * var_span, var_high + 0.5 * var_span
            else:
                var_low, var_high = 0.0, 1.5 * var_high
            table = _Table(act, low - 0.5 * span, high + 0.5 * span, var_low, var_high, width, kinked)
            table.data = data
            self.tables[key] = table
            self.engine_points += table.points
        return table(mean, var)


@functools.cache
def _offset_rule() -> tuple[FloatArray, FloatArray]:
    """Gauss-Hermite nodes and weights (normalized to sum 1) for E over d ~ N(0, 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(_OFFSET_NODES)
    return nodes, weights / weights.sum()


def apply_activation(act: Activation, stat: Stat, unit_moments: UnitMoments) -> Stat:
    """Moments of phi(y) for y described by ``stat`` (each channel Gaussian, the mean-field assumption).

    With an unknown offset d ~ N(0, shared), channel c's output mean over samples is g(m_c + d) with
    g(m) = E[phi(m + e)], e ~ N(0, var_c): its pooled value and second moment come from N(m_c, var_c + shared)
    exactly, and the new unknown offset's variance Var_d[g(m_c + d)] from Gauss-Hermite nodes over d.
    """
    mean, var = stat.mean, stat.var
    if stat.shared <= 0.0:
        first, second = unit_moments(act, mean, var)
        return Stat(first, np.maximum(second - first * first, 0.0), 0.0, stat.axis, stat.ndim, stat.spatial)
    total_first, total_second = unit_moments(act, mean, var + stat.shared)
    nodes, weights = _offset_rule()
    offsets = mean[:, None] + math.sqrt(stat.shared) * nodes[None, :]
    inner_first, _ = unit_moments(act, offsets.ravel(), np.repeat(var, _OFFSET_NODES))
    inner_first = inner_first.reshape(offsets.shape)
    centre = inner_first @ weights
    offset_var = np.maximum((inner_first * inner_first) @ weights - centre * centre, 0.0)
    within = np.maximum(total_second - total_first * total_first - offset_var, 0.0)
    return Stat(total_first, within, float(np.mean(offset_var)), stat.axis, stat.ndim, stat.spatial)


def as_array(value: Any) -> FloatArray:
    return np.atleast_1d(np.asarray(value, dtype=np.float64))
