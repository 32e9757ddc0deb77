"""Gaussian expectations E[g(mean + sqrt(var) z)], z ~ N(0, 1), by graded composite Gauss-Legendre.

Method. Write the expectation as an integral over z with weight exp(-z^2/2)/sqrt(2 pi) on
[-Z, Z] (Z = 37.5: the weight there is ~1e-306 of its peak, so the neglected tails are below
double precision for any integrand of polynomial growth). The line is split exactly at every kink
of g (mapped to z = (kink - mean)/sigma), at every smooth feature of g (a bend of width w in x is
a bend of width w/sigma in z) and at z = 0. Each gap between two split points is covered by
panels that grow geometrically (ratio 2) away from both ends, starting at the width of the local
feature (or of the Gaussian itself, 1/max(1, |z|)), and each panel gets an n-point Gauss-Legendre
rule. On such a graded mesh every panel sees the nearest singularity of the integrand at least
~one panel width away, so Gauss-Legendre converges geometrically (error ~ rho^(-2n) with
rho ~ 5.8) on every panel: a kink, a near-step (tanh at var 1e6) or a kink 300 sigma away
(hardswish at var 1e-4) cost only a logarithmic number of extra panels.

Cost: (number of gaps) x 2 x ceil(log2(gap / finest width)) panels x n nodes; for a smooth
activation at var 1 about 1,000 function evaluations. The whole computation is vectorized over
any number of (mean, var) pairs: panels are laid out for all pairs at once and summed with
``numpy.bincount``.

Error estimate: the same panels integrated with a lower-order rule (n_low nodes); the difference
bounds the low-order error and is therefore a pessimistic estimate for the high-order result,
provided the rules converge: a third, 7-node rule checks that (see ``CHECK_ORDER``), and 128 eps E[|g|]
covers rounding.

Breakdown: integrands that grow faster than exp(z^2/2) (moments diverge) or overflow are
detected (non-finite values, or a non-negligible integrand at z = +-Z) and reported with
``ConvergenceError``; singularities that are not declared as kinks or features (a custom
function with an undeclared jump) reduce the accuracy to what the mesh happens to resolve.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .._errors import ConvergenceError

__all__ = ["DEFAULT_ORDER", "Z_MAX", "QuadratureResult", "gaussian_expectation"]

FloatArray = NDArray[np.float64]

# Truncation of the standard normal: exp(-37.5^2/2) = 1.6e-306, the smallest scale that is still a
# normal double (1e-308) after multiplying by moderate integrand values.
Z_MAX = 37.5
# Nodes per panel: 14 reaches ~1e-16 relative error on the graded mesh (12 stalls near 3e-14 on
# the Gaussian's own panels); the error estimate compares with an 11-node rule on the same panels.
DEFAULT_ORDER = 14
ERROR_ORDER = 11
# A third, coarser rule tells converged from unresolved panels: where Q11 - Q7 is not at least 10x
# Q14 - Q11 the rules do not converge (sin at var 1e6 oscillates faster than the panels), and the
# estimate becomes max(|Q14 - Q11|, |Q11 - Q7|). Rounding adds 128 eps E[|g|] (the sums run over ~1e3
# terms; observed errors reach ~80 eps E[|g|] in far tails, hardtanh at mean -5, var 0.01).
CHECK_ORDER = 7
_ROUNDING = 128 * float(np.finfo(np.float64).eps)
_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
_TAIL_WEIGHT = math.exp(-0.5 * Z_MAX * Z_MAX) * _INV_SQRT_2PI  # the weight at the truncation points
_MAX_LEVELS = 80  # 2**80 > any ratio between the domain (75) and a feature width that is not 0


@functools.lru_cache(maxsize=8)
def _gauss_legendre(order: int) -> tuple[FloatArray, FloatArray]:
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return nodes, weights


@dataclass(frozen=True)
class QuadratureResult:
    """Gaussian expectations with their error estimates.

    Attributes:
        value: shape ``(k, *shape)``: E[g_i(mean + sigma z)] for each of the k integrand rows.
        abserr: same shape; |high-order - low-order| on the same mesh (``nan`` if not requested).
        scale: same shape; E[|g_i|], the natural scale for absolute errors (cancellation).
        evaluations: number of points at which the integrand was evaluated.
    """

    value: FloatArray
    abserr: FloatArray
    scale: FloatArray
    evaluations: int


@dataclass(frozen=True)
class _Mesh:
    """Quadrature panels for many (mean, sigma) pairs, each anchored at a split point.

    A node of panel p sits at z = anchor_z[p] + offset, i.e. y = anchor_y[p] + sigma * offset, with
    the offset measured from the split point the panel grows from. Evaluating y from the anchor keeps
    y - kink exact in floating point next to a kink far out in the tail (mean + sigma z would lose
    |mean| * 1e-16 of absolute accuracy there, which is all there is of y - kink).
    """

    anchor_y: FloatArray
    anchor_z: FloatArray
    lower: FloatArray
    upper: FloatArray
    owner: NDArray[np.intp]


def _mesh(
    mean: FloatArray,
    sigma: FloatArray,
    kinks: Sequence[float],
    features: Sequence[tuple[float, float]],
) -> _Mesh:
    """Graded panels for every (mean, sigma > 0) pair."""
    count = mean.shape[0]
    ends = Z_MAX * sigma
    node_y = [mean, mean - ends, mean + ends]
    node_y += [np.full(count, float(kink)) for kink in kinks]
    node_y += [np.full(count, float(location)) for location, _ in features]
    y_all = np.stack(node_y, axis=1)
    z_all = (y_all - mean[:, None]) / sigma[:, None]
    z_all[:, :3] = (0.0, -Z_MAX, Z_MAX)  # exactly: the centre and the truncation points
    outside = np.abs(z_all) > Z_MAX
    z_all = np.clip(z_all, -Z_MAX, Z_MAX)
    y_all = np.where(outside, mean[:, None] + sigma[:, None] * z_all, y_all)
    order = np.argsort(z_all, axis=1, kind="stable")
    z_nodes = np.take_along_axis(z_all, order, axis=1)
    y_nodes = np.take_along_axis(y_all, order, axis=1)
    # The local length scale at a split point: the Gaussian's own, 1/max(1, |z|) (the weight
    # exp(-z^2/2) decays on that scale), or that of a nearby feature, its width plus its distance
    # (a bend of width w at distance d is resolved by panels of width ~ w + d). The truncation
    # points +-Z_MAX need no refinement.
    widths = np.where(np.abs(z_nodes) >= Z_MAX, 4 * Z_MAX, 1.0 / np.maximum(1.0, np.abs(z_nodes)))
    for location, width in features:
        feature_z = (location - mean) / sigma
        widths = np.minimum(widths, (width / sigma)[:, None] + np.abs(z_nodes - feature_z[:, None]))
    half_gap = 0.5 * (z_nodes[:, 1:] - z_nodes[:, :-1])
    left_width, right_width = widths[:, :-1], widths[:, 1:]
    finest = np.minimum(left_width, right_width)
    levels = int(np.clip(np.ceil(np.log2(np.max(half_gap / finest, initial=0.0) + 1.0)), 1, _MAX_LEVELS))
    growth = np.exp2(np.arange(levels + 1, dtype=np.float64)) - 1.0  # 0, 1, 3, 7, ...
    left = np.minimum(left_width[..., None] * growth, half_gap[..., None])  # offsets from the lower node
    right = np.minimum(right_width[..., None] * growth, half_gap[..., None])  # offsets back from the upper node
    shape = (count, half_gap.shape[1], levels)
    lower = np.concatenate([left[..., :-1], -right[..., 1:]], axis=-1)
    upper = np.concatenate([left[..., 1:], -right[..., :-1]], axis=-1)
    anchor_z = np.concatenate(
        [np.broadcast_to(z_nodes[:, :-1, None], shape), np.broadcast_to(z_nodes[:, 1:, None], shape)], axis=-1
    )
    anchor_y = np.concatenate(
        [np.broadcast_to(y_nodes[:, :-1, None], shape), np.broadcast_to(y_nodes[:, 1:, None], shape)], axis=-1
    )
    owner = np.broadcast_to(np.arange(count)[:, None, None], anchor_z.shape)
    keep = upper != lower
    return _Mesh(anchor_y[keep], anchor_z[keep], lower[keep], upper[keep], owner[keep])


def _scalar_panels(
    mean: float,
    sigma: float,
    kinks: Sequence[float],
    features: Sequence[tuple[float, float]],
) -> list[tuple[float, float, float, float]]:
    """The panels of ``_mesh`` for one (mean, sigma) as (anchor_y, anchor_z, lower, upper) tuples.

    Built with Python floats: for a single point this is several times faster than the array version.
    """
    nodes = [(0.0, mean), (-Z_MAX, mean - Z_MAX * sigma), (Z_MAX, mean + Z_MAX * sigma)]
    for location in [*kinks, *(location for location, _ in features)]:
        z_node = (location - mean) / sigma
        if abs(z_node) > Z_MAX:
            z_node = math.copysign(Z_MAX, z_node)
            nodes.append((z_node, mean + sigma * z_node))
        else:
            nodes.append((z_node, float(location)))
    nodes.sort(key=lambda node: node[0])
    feature_nodes = [((location - mean) / sigma, width / sigma) for location, width in features]
    widths = []
    for z_node, _ in nodes:
        width = 4 * Z_MAX if abs(z_node) >= Z_MAX else 1.0 / max(1.0, abs(z_node))
        for feature_z, feature_width in feature_nodes:
            width = min(width, feature_width + abs(z_node - feature_z))
        widths.append(width)
    panels = []
    for index in range(len(nodes) - 1):
        (z_left, y_left), (z_right, y_right) = nodes[index], nodes[index + 1]
        half_gap = 0.5 * (z_right - z_left)
        if half_gap <= 0.0:
            continue
        for z_anchor, y_anchor, width, sign in (
            (z_left, y_left, widths[index], 1.0),
            (z_right, y_right, widths[index + 1], -1.0),
        ):
            start, size = 0.0, width
            while start < half_gap:
                stop = min(start + size, half_gap)
                panels.append((y_anchor, z_anchor, sign * start, sign * stop))
                start, size = stop, 2.0 * size
    return panels


def _scalar_expectation(
    integrand: Integrand,
    mean: float,
    sigma: float,
    kinks: Sequence[float],
    features: Sequence[tuple[float, float]],
    order: int,
    check_tails: bool,
) -> tuple[list[float], int]:
    """``gaussian_expectation`` for one (mean, sigma > 0) without error estimate: lean, ~15 numpy calls."""
    panels = np.array(_scalar_panels(mean, sigma, kinks, features))
    anchor_y, anchor_z, lower, upper = panels.T
    t, w = _gauss_legendre(order)
    half = 0.5 * (upper - lower)
    offset = (0.5 * (upper + lower))[:, None] + half[:, None] * t
    z = (anchor_z[:, None] + offset).ravel()
    y = (anchor_y[:, None] + sigma * offset).ravel()
    weight = (np.abs(half)[:, None] * (w * _INV_SQRT_2PI)).ravel() * np.exp(-0.5 * z * z)
    nodes = y.size
    if check_tails:
        y = np.append(y, (mean - Z_MAX * sigma, mean + Z_MAX * sigma))
    with np.errstate(over="ignore", invalid="ignore"):
        rows = _rows(integrand(y, np.zeros(y.size, dtype=np.intp)))
    sums = []
    for row in rows:
        total = float(np.dot(row[:nodes], weight))
        if not math.isfinite(total):
            raise ConvergenceError(
                "the integrand overflows or is not finite at some quadrature point: the Gaussian "
                "expectation diverges or exceeds the float64 range"
            )
        if check_tails:
            tail = max(abs(float(row[-2])), abs(float(row[-1]))) * _TAIL_WEIGHT
            if not tail <= 1e-300:
                magnitude = float(np.dot(np.abs(row[:nodes]), weight))
                _check_tails([row[nodes:]], np.array([mean]), np.array([sigma]), np.array([[magnitude]]))
        sums.append(total)
    return sums, y.size


Integrand = Callable[[FloatArray, NDArray[np.intp]], "FloatArray | Sequence[FloatArray]"]


def _rows(values: FloatArray | Sequence[FloatArray]) -> list[FloatArray]:
    if isinstance(values, np.ndarray):
        return list(np.atleast_2d(values))
    return [np.asarray(row, dtype=np.float64) for row in values]


def _weighted_sums(rows: list[FloatArray], weight: FloatArray, starts: NDArray[np.intp]) -> FloatArray:
    """Sum each row times ``weight`` over the consecutive runs of nodes that belong to one point."""
    return np.stack([np.add.reduceat(row * weight, starts) for row in rows])


def _magnitudes(rows: list[FloatArray], sums: FloatArray, weight: FloatArray, starts: NDArray[np.intp]) -> FloatArray:
    """E[|g|] for each row; rows without negative values reuse their sums."""
    return np.stack(
        [
            sums[i] if row.min(initial=0.0) >= 0.0 else np.add.reduceat(np.abs(row) * weight, starts)
            for i, row in enumerate(rows)
        ]
    )


def gaussian_expectation(
    integrand: Integrand,
    mean: FloatArray,
    var: FloatArray,
    *,
    kinks: Sequence[float] = (),
    features: Sequence[tuple[float, float]] = (),
    order: int = DEFAULT_ORDER,
    with_error: bool = False,
    check_tails: bool = True,
) -> QuadratureResult:
    """Compute E[g(mean + sqrt(var) z)] for z ~ N(0, 1), vectorized over broadcast (mean, var).

    Args:
        integrand: ``integrand(y, point)`` maps a 1-D array of y values, and for each the index of
            the (flattened, broadcast) (mean, var) pair it belongs to, to k rows of values of the same
            length (a 2-D array or a sequence of arrays): k integrands evaluated together (e.g. phi,
            phi^2 and phi'^2).
        mean: means of y, any shape (broadcast with ``var``).
        var: variances of y (>= 0; a zero variance gives g(mean)).
        kinks: y-locations where g is not smooth.
        features: ``(y, width)`` smooth bends of g.
        order: Gauss-Legendre nodes per panel.
        with_error: also integrate with a lower-order rule and return the difference as ``abserr``,
            and E[|g|] as ``scale``.
        check_tails: raise ``ConvergenceError`` when the integrand is not negligible at +-Z_MAX.

    Returns:
        QuadratureResult with arrays of shape ``(k, *broadcast_shape)`` (``abserr`` and ``scale`` are
        NaN unless ``with_error``).

    Raises:
        ConvergenceError: the integrand overflows or does not decay (the expectation diverges).
    """
    if not with_error and np.ndim(mean) == 0 and np.ndim(var) == 0 and var > 0:
        sums, evaluations = _scalar_expectation(
            integrand, float(mean), math.sqrt(float(var)), kinks, features, order, check_tails
        )
        column = np.array(sums)
        return QuadratureResult(column, np.full_like(column, np.nan), np.full_like(column, np.nan), evaluations)
    mean_b, var_b = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64))
    shape = mean_b.shape
    mean_f = mean_b.ravel()
    var_f = var_b.ravel()
    count = mean_f.shape[0]
    random = var_f > 0
    pieces: list[tuple[NDArray[np.intp], FloatArray, FloatArray, FloatArray]] = []
    evaluations = 0
    degenerate = np.flatnonzero(~random)
    if degenerate.size:
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite values are refused by the caller
            point_values = np.stack(_rows(integrand(mean_f[degenerate], degenerate)))
        pieces.append((degenerate, point_values, np.zeros_like(point_values), np.abs(point_values)))
        evaluations += degenerate.size
    active = np.flatnonzero(random)
    if active.size:
        act_mean, act_sigma = mean_f[active], np.sqrt(var_f[active])
        mesh = _mesh(act_mean, act_sigma, kinks, features)
        half = 0.5 * (mesh.upper - mesh.lower)
        centre = 0.5 * (mesh.upper + mesh.lower)
        # Each point's panels are consecutive in the mesh: point i owns one run of nodes.
        first_panel = np.flatnonzero(np.diff(mesh.owner, prepend=-1))
        results = []
        for rule_order in [order, ERROR_ORDER, CHECK_ORDER] if with_error else [order]:
            t, w = _gauss_legendre(rule_order)
            offset = (centre[:, None] + half[:, None] * t).ravel()
            z = np.repeat(mesh.anchor_z, rule_order) + offset
            who = np.repeat(mesh.owner, rule_order)
            y = np.repeat(mesh.anchor_y, rule_order) + act_sigma[who] * offset
            weight = (np.abs(half)[:, None] * (w * _INV_SQRT_2PI)).ravel() * np.exp(-0.5 * z * z)
            nodes = y.size
            if check_tails:  # the truncation points ride along in the same call
                y = np.concatenate([y, act_mean - Z_MAX * act_sigma, act_mean + Z_MAX * act_sigma])
                who = np.concatenate([who, np.arange(active.size), np.arange(active.size)])
            with np.errstate(over="ignore", invalid="ignore"):
                rows = _rows(integrand(y, active[who]))
            evaluations += y.size
            tails = [row[nodes:] for row in rows]
            rows = [row[:nodes] for row in rows]
            if not all(np.isfinite(row).all() for row in rows):
                raise ConvergenceError(
                    "the integrand overflows or is not finite at some quadrature point: the Gaussian "
                    "expectation diverges or exceeds the float64 range"
                )
            starts = first_panel * rule_order
            results.append(_weighted_sums(rows, weight, starts))
            if rule_order == order and (with_error or check_tails):
                magnitude = _magnitudes(rows, results[0], weight, starts)
                if check_tails:
                    _check_tails(tails, act_mean, act_sigma, magnitude)
        if with_error:
            fine, coarse = np.abs(results[0] - results[1]), np.abs(results[1] - results[2])
            abserr = np.where(coarse >= 10 * fine, fine, np.maximum(fine, coarse)) + _ROUNDING * magnitude
        else:
            abserr = np.full_like(results[0], np.nan)
        pieces.append((active, results[0], abserr, magnitude if with_error else np.full_like(abserr, np.nan)))
    rows_count = pieces[0][1].shape[0]
    value = np.empty((rows_count, count))
    abserr_all = np.empty((rows_count, count))
    scale = np.empty((rows_count, count))
    for index, piece_value, piece_error, piece_scale in pieces:
        value[:, index], abserr_all[:, index], scale[:, index] = piece_value, piece_error, piece_scale
    return QuadratureResult(
        value=value.reshape((rows_count, *shape)),
        abserr=abserr_all.reshape((rows_count, *shape)),
        scale=scale.reshape((rows_count, *shape)),
        evaluations=evaluations,
    )


def _check_tails(tails: list[FloatArray], mean: FloatArray, sigma: FloatArray, magnitude: FloatArray) -> None:
    """Refuse results whose integrand is still significant at the truncation points z = +-Z_MAX."""
    count = mean.size
    with np.errstate(over="ignore", invalid="ignore"):
        size = np.stack([np.maximum(np.abs(row[:count]), np.abs(row[count:])) for row in tails]) * _TAIL_WEIGHT
    bad = (~np.isfinite(size) | (size > 1e-17 * magnitude)) & ~(size <= 1e-300)
    if bad.any():
        where = np.argwhere(bad)[0][1]
        raise ConvergenceError(
            f"the Gaussian expectation at mean={mean[where]!r}, var={sigma[where] ** 2!r} does not converge: "
            "the integrand grows too fast in the tails (the moment is infinite or beyond float64)"
        )
