"""E[phi(y)] and E[phi(y)^2] for many units y ~ N(m, s) by interpolation on a fixed lattice of Chebyshev panels.

The (m, log2 s) plane is cut into panels [(i - 1/2) w, (i + 1/2) w] x [j - 1/2, j + 1/2]: mean panels of width w = 2
(near a kink, a power of 2 no wider than 4 times the blur sqrt(s)), variance panels from s = 2^(j - 1/2) to 2^(j + 1/2)
(the panels i = 0, j = 0 hold the means in [-w/2, w/2] and the variances in [0.71, 1.41], where the units of a
network at the default target variance sit). log s rather than s: near a kink the blur behaves like sqrt(s), and
deep networks drive some units' variances over decades towards 0. Away from kinks the blur is analytic in s down to
s = 0, so there one panel, linear in s, holds all s < 2^-2.5 = 0.18 (the units of saturated layers, down to 1e-11,
would otherwise visit some 30 panels; as accurate there as the log panels, while up to 2^-1.5 tanh's error grows
tenfold). Each panel holds the moments at 16 x 9 Chebyshev points of the second kind, from the moment engine (closed
forms where valid, else quadrature; one engine call per panel, so a panel's values do not depend on what else was
computed), and is filled the first time a unit falls in it. For a smooth activation the blur is analytic in a strip
around the real m axis at least as wide as its smooth features (>= 1 for tanh, SiLU, ...), so these panels
interpolate to ~1e-9 relative, 4e-8 at worst over the registry (checked against direct engine calls in
tests/test_torch_stats.py).

Panels are kept for the whole process (bounded), keyed by the activation: a deep network visits a few panels per
activation, and the next ``init_model`` call with the same activation computes none. Evaluation is barycentric
(Berrut & Trefethen 2004) in both coordinates: for n units, two n x 16 and n x 9 weight matrices, then one small
matrix product per panel visited.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ...activations import Activation
from ...gaussian import expectations

__all__ = ["Lattice", "Placement", "lattice"]

FloatArray = NDArray[np.float64]

_MEAN_NODES = 16
_VAR_NODES = 9
_VAR_FLOOR = 1e-10  # below it, log2 s is taken at the floor (kinked lattices)
# Smooth lattices: the panel j = _LINEAR_PANEL holds s in [0, _LINEAR_VAR), linear in s (its upper end is the lower
# end of the log panel above it).
_LINEAR_PANEL = -3
_LINEAR_VAR = 2.0 ** (_LINEAR_PANEL + 0.5)
# Panel keys counted with a histogram up to this many (else with a sort).
_COUNTED_KEYS = 1 << 16
# Panels kept per process, over all lattices (each 16 x 18 floats, 2.3 kB): beyond it, the lattices start afresh.
_MAX_KEPT_PANELS = 8192


@functools.cache
def _unit_nodes(count: int) -> tuple[FloatArray, FloatArray]:
    """Chebyshev points of the second kind on [0, 1], increasing, and their barycentric weights (Berrut & Trefethen
    2004, eq. 5.4: alternating signs, halved at both ends)."""
    nodes = 0.5 - 0.5 * np.cos(np.pi * np.arange(count) / (count - 1))
    weights = np.ones(count)
    weights[1::2] = -1.0
    weights[0] *= 0.5
    weights[-1] *= 0.5
    return nodes, weights


def _interpolation_rows(local: FloatArray, count: int) -> FloatArray:
    """Row k: the weights that interpolate values at the ``count`` nodes to the point ``local[k]`` in [0, 1]."""
    nodes, weights = _unit_nodes(count)
    terms = local[:, None] - nodes
    exact = terms == 0.0
    any_exact = bool(exact.any())  # (rare: a unit on a node)
    if any_exact:
        terms[exact] = 1.0
    np.divide(weights, terms, out=terms)
    terms /= terms @ _ones_column(count)
    if any_exact:
        hit = exact.any(axis=1)
        terms[hit] = exact[hit]
    return terms


@functools.cache
def _ones_column(count: int) -> FloatArray:
    """A ``(count, 1)`` column of ones (the row sums of ``_interpolation_rows``' terms as one matrix product)."""
    column = np.ones((count, 1))
    column.flags.writeable = False
    return column


@dataclass(frozen=True)
class Placement:
    """Units placed on a lattice: their offsets within their panels (in [0, 1)), and the panels visited, in the order
    of ``order`` (units sorted by panel; ``None`` when all fall in one), the i-th run starting at ``starts[i]``."""

    mean_offset: FloatArray
    var_offset: FloatArray
    order: NDArray[np.intp] | None
    starts: NDArray[np.intp]
    visited: list[tuple[int, int]]


class Lattice:
    """The panels of one activation at one mean width, for units near a kink (``kinked``) or not (see the module
    docstring)."""

    def __init__(self, act: Activation, mean_width: float, kinked: bool) -> None:
        self.act = act
        self.mean_width = mean_width
        self.kinked = kinked
        # (i, j) -> [first | second] at the panel's nodes, shape (16, 2 * 9)
        self.panels: dict[tuple[int, int], FloatArray] = {}

    def _variance_coordinate(self, var: FloatArray) -> FloatArray:
        """j + offset: the variance panel j and the offset in [0, 1) within it."""
        if self.kinked:
            # Below _VAR_FLOOR the blur changes E[phi] and E[phi^2] by O(var sup|phi''|), far below what matters.
            return np.asarray(np.log2(np.maximum(var, _VAR_FLOOR)) + 0.5)
        logarithmic = np.log2(np.maximum(var, _LINEAR_VAR)) + 0.5
        return np.asarray(np.where(var < _LINEAR_VAR, _LINEAR_PANEL + var / _LINEAR_VAR, logarithmic))

    def _panel_variances(self, j: int, nodes: FloatArray) -> FloatArray:
        """The variances at ``nodes`` (in [0, 1]) of variance panel ``j``."""
        if j == _LINEAR_PANEL and not self.kinked:
            return np.asarray(nodes * _LINEAR_VAR)
        return np.asarray(np.exp2(j - 0.5 + nodes))

    def place(self, mean: FloatArray, var: FloatArray, limit: int | None = None) -> Placement | None:
        """Which panel each unit falls in; ``None`` when the units fall in more than ``limit`` panels (counted
        before sorting them: the caller then takes a closed form instead)."""
        scaled_mean = mean / self.mean_width + 0.5
        scaled_var = self._variance_coordinate(var)
        mean_panel, var_panel = np.floor(scaled_mean), np.floor(scaled_var)
        mean_index, var_index = mean_panel.astype(np.int64), var_panel.astype(np.int64)
        low_i, low_j = int(mean_index.min()), int(var_index.min())
        span_i, span_j = int(mean_index.max()) - low_i + 1, int(var_index.max()) - low_j + 1
        key = (mean_index - low_i) * span_j + (var_index - low_j)
        if span_i * span_j == 1:  # one panel (the usual case: the units of a layer at similar means and variances)
            return Placement(
                scaled_mean - mean_panel, scaled_var - var_panel, None, np.zeros(1, np.intp), [(low_i, low_j)]
            )
        if limit is not None and span_i * span_j > limit:
            distinct = np.count_nonzero(np.bincount(key)) if span_i * span_j <= _COUNTED_KEYS else np.unique(key).size
            if distinct > limit:
                return None
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        # (where the key changes; the first unit starts a run: np.diff(sorted_key, prepend=-1) without its copies)
        starts = np.flatnonzero(sorted_key[1:] != sorted_key[:-1])
        starts = np.concatenate((np.zeros(1, np.intp), starts + 1))
        visited = [(low_i + k // span_j, low_j + k % span_j) for k in sorted_key[starts].tolist()]
        return Placement(scaled_mean - mean_panel, scaled_var - var_panel, order, starts, visited)

    def interpolate(self, placed: Placement) -> tuple[tuple[FloatArray, FloatArray], int]:
        """(E[phi], E[phi^2]) at each placed unit, and the number of engine evaluations it took (new panels only)."""
        computed = self._fill([panel for panel in placed.visited if panel not in self.panels])
        mean_rows = _interpolation_rows(placed.mean_offset, _MEAN_NODES)
        var_rows = _interpolation_rows(placed.var_offset, _VAR_NODES)
        count = mean_rows.shape[0]
        if placed.order is None:
            part = mean_rows @ self.panels[placed.visited[0]]
            out = np.einsum("nks,ns->kn", part.reshape(count, 2, _VAR_NODES), var_rows, order="C")
            return (out[0], out[1]), computed
        # Units sorted by panel: one matrix product per run of units in the same panel, then one scatter back.
        order = placed.order
        mean_rows, var_rows = mean_rows[order], var_rows[order]
        by_panel = np.empty((count, 2, _VAR_NODES))
        stops = [*placed.starts[1:].tolist(), count]
        for start, stop, panel in zip(placed.starts.tolist(), stops, placed.visited, strict=True):
            np.matmul(mean_rows[start:stop], self.panels[panel], out=by_panel[start:stop].reshape(stop - start, -1))
        out = np.empty((2, count))
        out[:, order] = np.einsum("nks,ns->kn", by_panel, var_rows)
        return (out[0], out[1]), computed

    def _fill(self, panels: list[tuple[int, int]]) -> int:
        """Compute and keep the moments at the nodes of ``panels``: one call of the moment engine per panel (closed
        form where valid, else quadrature), so that a panel's values do not depend on what else is computed."""
        if not panels:
            return 0
        mean_nodes, _ = _unit_nodes(_MEAN_NODES)
        var_nodes, _ = _unit_nodes(_VAR_NODES)
        shape = (len(panels), _MEAN_NODES, _VAR_NODES)
        grid_mean = np.empty(shape)
        grid_var = np.empty(shape)
        for index, (i, j) in enumerate(panels):
            grid_mean[index] = ((i - 0.5 + mean_nodes) * self.mean_width)[:, None]
            grid_var[index] = self._panel_variances(j, var_nodes)[None, :]
        for index, panel in enumerate(panels):
            first, second = expectations(self.act, grid_mean[index], grid_var[index], ("mean", "second_moment"))
            self.panels[panel] = np.concatenate([first, second], axis=1)
        return len(panels) * _MEAN_NODES * _VAR_NODES


_LATTICES: dict[tuple[object, ...], Lattice] = {}


def lattice(act: Activation, mean_width: float, kinked: bool) -> Lattice:
    """The process's lattice of ``act`` at this mean width, near a kink or not (created on first use)."""
    if sum(len(kept.panels) for kept in _LATTICES.values()) > _MAX_KEPT_PANELS:
        _LATTICES.clear()
    key = (act.key, mean_width, kinked)
    found = _LATTICES.get(key)
    if found is None:
        found = _LATTICES[key] = Lattice(act, mean_width, kinked)
    return found
