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
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...activations import Activation
from ...gaussian import closed_form_expectations, expectations
from .lattice import lattice

__all__ = ["IndexStat", "Stat", "UnitMoments", "collapse", "scalar_stat"]

FloatArray = NDArray[np.float64]

# Units evaluated directly by the moment engine up to this count; above it, through a Chebyshev lattice filled from
# the engine (``UnitMoments``), whose interpolation error is ~1e-10 relative, 4e-8 at worst (see ``_lattice``).
_DIRECT_LIMIT = 16
# Mean panels a kinked activation's units may span before they are evaluated directly instead.
_MAX_PANELS = 32
# Lattice panels visited by one call beyond which a closed form valid at every unit is used instead (the lattice costs
# ~70 us for 512 units plus ~8 us per panel visited; closed forms 0.2-1.5 us per unit, exact).
_LATTICE_PANELS = 32
# Units per lattice evaluation (its n x 16 temporaries stay in cache), and the count above which a closed form valid at
# every unit is used instead.
_LATTICE_CHUNK = 2048
# The moments propagated: E[phi] and E[phi^2] (the engine's names).
_NEED = ("mean", "second_moment")
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

    # (dot products and sums rather than np.mean / np.var: these are asked for at every layer, and numpy's reductions
    # cost a few microseconds each in Python overhead)
    @property
    def pooled_mean(self) -> float:
        return float(self.mean.sum()) / self.mean.size

    @property
    def second_moment(self) -> float:
        """E[y^2] pooled over all entries."""
        return (float(self.mean @ self.mean) / self.mean.size + float(self.var.sum()) / self.var.size) + self.shared

    @property
    def variance(self) -> float:
        """Var[y] pooled over all entries (what ``tensor.var()`` estimates)."""
        centred = self.mean - self.pooled_mean
        return (float(centred @ centred) / self.mean.size + float(self.var.sum()) / self.var.size) + self.shared

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


def _digits(values: FloatArray) -> FloatArray:
    return np.array([float(f"{value:.10g}") for value in values.ravel()])


def evaluate(act: Activation, mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
    """E[phi] and E[phi^2] at each (mean, var), from the moment engine (closed form where valid, else quadrature of
    these two only: no derivative moment, no cancellation-free variance, not needed here)."""
    first, second = expectations(act, mean, var, _NEED)
    return first, second


def _closed_form(act: Activation, mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray] | None:
    """E[phi], E[phi^2] from the activation's closed form when it is valid at every point (exact and ~0.5 us per
    point: cheaper than a table lookup), else ``None``."""
    exact = closed_form_expectations(act, mean, var, _NEED)
    return None if exact is None else (exact[0], exact[1])


@dataclass
class UnitMoments:
    """E[phi(y)] and E[phi(y)^2] for many units y ~ N(mean_i, var_i): the process's Chebyshev lattice of the
    activation (``_lattice``, ~1e-10 relative, 4e-8 at worst); for up to ``_DIRECT_LIMIT`` units, and for units
    spread over too many panels, the closed form (where valid at every unit) or the moment engine instead."""

    cache: dict[tuple[object, ...], tuple[FloatArray, FloatArray]] = field(default_factory=dict)
    engine_points: int = 0

    def __call__(self, act: Activation, mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
        mean, var = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
        if mean.shape != var.shape:
            mean, var = np.broadcast_arrays(mean, var)
        mean, var = mean.copy(), np.maximum(var, 0.0)
        if mean.size <= _DIRECT_LIMIT:
            # Cache key at 10 significant digits: repeated blocks of a deep network hit it.
            key = (act.key, _digits(mean).tobytes(), _digits(var).tobytes())
            cached = self.cache.get(key)
            if cached is None:
                self.engine_points += int(mean.size)
                cached = self.cache[key] = evaluate(act, mean, var)
            return cached[0].copy(), cached[1].copy()
        mean_low, mean_high = float(mean.min()), float(mean.max())
        kinked = self._kink_inside(act, mean_low, mean_high, float(var.max()))
        width = 2.0
        if kinked:
            # A kink blurred by sqrt(var): mean panels no wider than 4 times the blur, a power of 2 (so that slowly
            # shrinking variances reuse the same lattice; interpolation error <= 7e-9 over the registry's kinked
            # activations, 6e-5 at 8 times the blur), a bounded number of them, else direct evaluation.
            blur = math.sqrt(float(var.min()))
            width = 2.0 ** math.floor(math.log2(min(2.0, 4.0 * blur))) if blur > 0.0 else 0.0
            if width <= 0.0 or max(mean_high - mean_low, 1.0) / width > _MAX_PANELS:
                exact = _closed_form(act, mean, var)
                if exact is not None:
                    return exact
                self.engine_points += int(mean.size)
                return evaluate(act, mean, var)
        if mean.size > _LATTICE_CHUNK:
            # Many units (the maps of a convolution): closed forms cost 0.1-0.5 us per unit (piecewise polynomials
            # 1-3 us), the lattice ~0.2 us per unit in chunks that keep its temporaries in cache.
            exact = _closed_form(act, mean, var)
            if exact is not None:
                return exact
        grid = lattice(act, width, kinked)
        firsts, seconds = [], []
        for start in range(0, mean.size, _LATTICE_CHUNK):
            part_mean, part_var = mean[start : start + _LATTICE_CHUNK], var[start : start + _LATTICE_CHUNK]
            # Units spread over many panels (deep ReLU networks: variances over decades): a closed form is cheaper.
            placed = grid.place(part_mean, part_var, _LATTICE_PANELS if act.closed_form is not None else None)
            if placed is None:
                exact = _closed_form(act, part_mean, part_var)
                if exact is not None:
                    firsts.append(exact[0])
                    seconds.append(exact[1])
                    continue
                placed = grid.place(part_mean, part_var)
                assert placed is not None  # (no limit)
            (first, second), computed = grid.interpolate(placed)
            self.engine_points += computed
            firsts.append(first)
            seconds.append(second)
        if len(firsts) == 1:
            return firsts[0], seconds[0]
        return np.concatenate(firsts), np.concatenate(seconds)

    @staticmethod
    def _kink_inside(act: Activation, mean_low: float, mean_high: float, var_high: float) -> bool:
        """Whether a kink lies within 8 std of the units' means (given by their extremes)."""
        if not act.kinks:
            return False
        reach = 8.0 * math.sqrt(var_high)
        low, high = mean_low - reach, mean_high + reach
        return any(low <= kink <= high for kink in act.kinks)


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
