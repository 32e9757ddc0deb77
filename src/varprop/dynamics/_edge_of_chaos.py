"""The edge of chaos: weight and bias scales where chi1 = 1 (Poole et al. 2016; Schoenholz et al. 2017).

At a fixed point q* of the variance map, chi1 = weight_std^2 E[phi'(sqrt(q*) z)^2] is the slope of
the correlation map at c = 1 and the per-layer factor of the gradient's second moment. chi1 < 1 is
the ordered phase (inputs become correlated, gradients vanish), chi1 > 1 the chaotic phase (inputs
decorrelate, gradients explode), chi1 = 1 the edge of chaos, where signals propagate deepest.

For a given bias_std the edge of chaos solves, for q > 0,

    weight_std^2 = 1 / E[phi'(sqrt(q) z)^2]                (chi1 = 1)
    q = E[phi(sqrt(q) z)^2] / E[phi'(sqrt(q) z)^2] + bias_std^2     (q is the fixed point),

one equation in q, scanned on a log grid and polished with brentq; its derivative in q comes from the
heat-equation identity, as in ``varprop.dynamics._variance_map``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import VarpropValueError
from .._validation import as_real_array
from ..activations import activation as resolve_activation
from ..activations._activation import Activation
from ..gaussian import ROOT_NOISE, scan_roots
from ._variance_map import (
    SEARCH_RANGE,
    _deriv_second_moment_at_zero,
    check_std,
    classify,
    gaussian_rows,
    variance_map,
)

__all__ = ["EdgeOfChaos", "PhaseDiagram", "edge_of_chaos", "edge_of_chaos_curve", "phase_diagram"]

FloatArray = NDArray[np.float64]
_POINTS_PER_DECADE = 8
_IDENTITY_TOLERANCE = 1e-12
# Where E[phi'^2] < 1e-200 (hardshrink at tiny q) chi1 = 1 would need weight_std > 1e100: those q are skipped.
_DEAD = 1e-200


@dataclass(frozen=True)
class EdgeOfChaos:
    """A point on the edge of chaos.

    Attributes:
        bias_std: sigma_b (given).
        weight_std: sigma_w with chi1 = 1 at the fixed point.
        q: the fixed point q* of the variance map at (bias_std, weight_std).
        slope: slope of the variance map at q* (its stability: < 1 stable).
        kind: ``"stable"``, ``"neutral"`` or ``"unstable"`` (of q* under the variance map).
        continuum: True when every q >= 0 is a fixed point with chi1 = 1 (positively homogeneous
            activations such as ReLU at bias_std 0); ``q`` is then reported as 0.
        others: further solutions (q, weight_std) for the same bias_std, if the equation has several.
    """

    bias_std: float
    weight_std: float
    q: float
    slope: float
    kind: str
    continuum: bool = False
    others: tuple[tuple[float, float], ...] = ()


def _eoc_grid(act: Activation, q: FloatArray, bias_var: float) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
    """h(q) = E[phi^2] / (q E[phi'^2]) + sigma_b^2 / q - 1, dh/dln q, and where E[phi'^2] > 0."""
    second, second_dvar, deriv, deriv_dvar = gaussian_rows(
        act, 0.0, q, ["second", "second_dvar", "deriv", "deriv_dvar"]
    )
    alive = deriv > _DEAD
    safe = np.where(alive, deriv, 1.0)
    ratio = second / safe
    ratio_dlog = (second_dvar - ratio * deriv_dvar) / safe
    value = (ratio + bias_var) / q - 1.0
    dvalue = (ratio_dlog - ratio - bias_var) / q
    return np.where(alive, value, np.nan), np.where(alive, dvalue, np.nan), alive


def edge_of_chaos(act: Any, bias_std: Any = 0.0) -> EdgeOfChaos:
    """The weight scale on the edge of chaos (chi1 = 1) for a given bias scale.

    Solves q = E[phi(sqrt(q) z)^2] / E[phi'(sqrt(q) z)^2] + bias_std^2 for q* (log-grid scan over
    ``SEARCH_RANGE`` and brentq to ~1e-15 relative), then weight_std = E[phi'(sqrt(q*) z)^2]^(-1/2)
    (Schoenholz et al. 2017, fig. 1). With bias_std = 0 and phi(0) = 0 the zero signal q* = 0 solves
    it with weight_std = 1 / |phi'(0)| (tanh: 1) when no q* > 0 does. Checked values: tanh at 0.3 ->
    1.39558397515490 (q* 0.763474766910464), at 1.0 -> 1.85558910113889 (q* 3.03639639462370);
    ReLU -> sqrt(2) at bias_std 0 only; ELU at 0.1 -> 1.17614847370737 (q* 0.437829230128171; Hayou
    et al. 2019 report 1.1775 by Monte Carlo).

    Args:
        act: activation spec, ``Activation`` or callable.
        bias_std: sigma_b >= 0.

    Returns:
        ``EdgeOfChaos``; if several q* solve the equation, the one that is a stable fixed point of the
        variance map (else the smallest) is returned and the rest are listed in ``others``.

    Raises:
        VarpropValueError: bad input, or no edge of chaos exists for this bias_std (e.g. ReLU with
            bias_std > 0, whose chi1 = weight_std^2 / 2 is 1 only where the map has no fixed point).

    Example:
        >>> point = edge_of_chaos("tanh", 0.3)
        >>> round(point.weight_std, 12), round(point.q, 12)
        (1.395583975155, 0.76347476691)
    """
    activation = resolve_activation(act)
    sigma_b = check_std("bias_std", bias_std)
    bias_var = sigma_b * sigma_b
    q_grid = np.logspace(
        math.log10(SEARCH_RANGE[0]),
        math.log10(SEARCH_RANGE[1]),
        _POINTS_PER_DECADE * round(math.log10(SEARCH_RANGE[1] / SEARCH_RANGE[0])) + 1,
    )
    h_grid, dh_grid, alive = _eoc_grid(activation, q_grid, bias_var)
    if alive.all() and np.all(np.abs(h_grid) <= _IDENTITY_TOLERANCE):
        weight = 1.0 / math.sqrt(float(gaussian_rows(activation, 0.0, 1.0, ["deriv"])[0]))
        return EdgeOfChaos(bias_std=sigma_b, weight_std=weight, q=0.0, slope=1.0, kind="neutral", continuum=True)

    def h_at(q: float) -> float:
        return float(_eoc_grid(activation, np.array([q]), bias_var)[0][0])

    def dh_at(q: float) -> float:
        return float(_eoc_grid(activation, np.array([q]), bias_var)[1][0])

    solutions: list[float] = []
    # Scan each run of consecutive grid points where E[phi'^2] > 0.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], alive.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        run = slice(int(start), int(stop))
        found = scan_roots(np.log(q_grid[run]), h_grid[run], dh_grid[run], h_at, dh_at, ROOT_NOISE)
        solutions += [q for q, _ in found]
    with np.errstate(all="ignore"):
        at_zero = float(activation(np.array([0.0]))[0])
    zero_slope_sq = _deriv_second_moment_at_zero(activation, 0.0)
    if sigma_b == 0.0 and at_zero == 0.0 and zero_slope_sq > 0 and not solutions:
        solutions = [0.0]
    if not solutions:
        raise VarpropValueError(
            f"no edge of chaos for {activation.spec!r} at bias_std={sigma_b!r}: no weight_std makes chi1 = 1 at a "
            "fixed point of the variance map (q = E[phi^2]/E[phi'^2] + bias_std^2 has no solution for q in "
            f"[{SEARCH_RANGE[0]:g}, {SEARCH_RANGE[1]:g}])"
        )
    points = []
    for q in solutions:
        deriv = zero_slope_sq if q == 0.0 else float(gaussian_rows(activation, 0.0, q, ["deriv"])[0])
        weight = 1.0 / math.sqrt(deriv)
        slope = float(variance_map(activation, weight, sigma_b).slope(q))
        points.append((q, weight, slope))
    stable = [point for point in points if abs(point[2]) < 1.0]
    chosen = stable[0] if stable else points[0]
    return EdgeOfChaos(
        bias_std=sigma_b,
        weight_std=chosen[1],
        q=chosen[0],
        slope=chosen[2],
        kind=classify(chosen[2]),
        others=tuple((q, weight) for q, weight, _ in points if q != chosen[0]),
    )


def edge_of_chaos_curve(act: Any, bias_std: Any) -> list[EdgeOfChaos]:
    """``edge_of_chaos`` at every sigma_b of a 1-D array, skipping those with no edge of chaos.

    Args:
        act: activation spec, ``Activation`` or callable.
        bias_std: 1-D array of sigma_b >= 0.

    Returns:
        The solutions, in the order of ``bias_std`` (possibly fewer, never an error for a missing one).

    Example:
        >>> [round(p.weight_std, 6) for p in edge_of_chaos_curve("relu", [0.0, 0.5])]
        [1.414214]
    """
    activation = resolve_activation(act)
    values = [check_std("bias_std", float(value)) for value in np.ravel(as_real_array("bias_std", bias_std))]
    points = []
    for value in values:
        try:
            points.append(edge_of_chaos(activation, value))
        except VarpropValueError:  # the input is valid (checked above): no edge of chaos at this bias
            continue
    return points


@dataclass(frozen=True)
class PhaseDiagram:
    """chi1 over a grid of (bias_std, weight_std) at the fixed point reached from ``start_var``.

    Attributes:
        bias_std: 1-D grid of sigma_b.
        weight_std: 1-D grid of sigma_w.
        q: shape ``(len(weight_std), len(bias_std))``: the fixed point reached by iterating the variance
            map from ``start_var`` (``inf`` where the variance grows without bound, 0 where it dies).
        chi1: same shape; weight_std^2 E[phi'(sqrt(q) z)^2] at that fixed point (``nan`` where q = inf).
        start_var: the initial variance.
    """

    bias_std: FloatArray
    weight_std: FloatArray
    q: FloatArray
    chi1: FloatArray
    start_var: float


def phase_diagram(
    act: Any,
    bias_std: Any,
    weight_std: Any,
    *,
    start_var: float = 1.0,
    q_range: tuple[float, float] = (1e-12, 1e12),
    points_per_decade: int = 40,
) -> PhaseDiagram:
    """Ordered (chi1 < 1) and chaotic (chi1 > 1) phases over a (bias_std, weight_std) grid.

    E[phi^2] and E[phi'^2] are computed once on a log grid of q (one vectorized quadrature call);
    for every (sigma_b, sigma_w) the fixed point reached from ``start_var`` is the first sign change
    of F(q) - q in the direction the map moves (the map is increasing for the usual activations),
    located by linear interpolation in ln q, and chi1 is interpolated there. This is for pictures
    (relative accuracy ~1e-4); ``edge_of_chaos`` gives the exact boundary.

    Args:
        act: activation spec, ``Activation`` or callable.
        bias_std: 1-D array of sigma_b >= 0.
        weight_std: 1-D array of sigma_w >= 0.
        start_var: the input variance the iteration starts from.
        q_range: the q grid's range.
        points_per_decade: the q grid's resolution.

    Returns:
        A ``PhaseDiagram``.
    """
    activation = resolve_activation(act)
    sigma_b = np.atleast_1d(as_real_array("bias_std", bias_std, minimum=0.0))
    sigma_w = np.atleast_1d(as_real_array("weight_std", weight_std, minimum=0.0))
    decades = math.log10(q_range[1] / q_range[0])
    q = np.logspace(math.log10(q_range[0]), math.log10(q_range[1]), max(2, int(points_per_decade * decades) + 1))
    second, deriv = gaussian_rows(activation, 0.0, q, ["second", "deriv"])
    with np.errstate(all="ignore"):
        at_zero = float(activation(np.array([0.0]))[0])
    deriv_zero = _deriv_second_moment_at_zero(activation, 0.0)
    log_q = np.log(q)
    start = int(np.clip(np.searchsorted(q, start_var), 1, q.size - 2))
    q_star = np.empty((sigma_w.size, sigma_b.size))
    chi1 = np.empty_like(q_star)
    for j, sb in enumerate(sigma_b):
        h = sigma_w[:, None] ** 2 * second[None, :] + sb * sb - q[None, :]  # (weights, q)
        for i in range(sigma_w.size):
            row = h[i]
            if row[start] >= 0:
                # Moves up: first k >= start with row[k] >= 0 > row[k + 1].
                crossings = np.flatnonzero((row[start:-1] >= 0) & (row[start + 1 :] < 0))
                if crossings.size == 0:
                    q_star[i, j], chi1[i, j] = np.inf, np.nan
                    continue
                k = start + int(crossings[0])
            else:
                crossings = np.flatnonzero((row[:start] > 0) & (row[1 : start + 1] <= 0))
                if crossings.size == 0:
                    zero_fixed = sb == 0 and at_zero == 0.0
                    q_star[i, j] = 0.0 if zero_fixed else q[0]
                    chi1[i, j] = sigma_w[i] ** 2 * (deriv_zero if zero_fixed else deriv[0])
                    continue
                k = int(crossings[-1])
            fraction = row[k] / (row[k] - row[k + 1])
            log_root = log_q[k] + fraction * (log_q[k + 1] - log_q[k])
            q_star[i, j] = math.exp(log_root)
            chi1[i, j] = sigma_w[i] ** 2 * float(np.interp(log_root, log_q, deriv))
    return PhaseDiagram(bias_std=sigma_b, weight_std=sigma_w, q=q_star, chi1=chi1, start_var=float(start_var))
