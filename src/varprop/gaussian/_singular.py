"""Gaussian expectations of functions with algebraic or logarithmic singularities (poles of user formulas).

The singular points themselves (where, and the growth exponent b of |g| ~ |d|^-b; E[phi] needs
b_phi < 1, E[phi^2] needs 2 b_phi < 1 and E[phi'^2] needs 2 b_phi' < 1) are found by
``varprop.activations.expression._singular_points``.

``singular_expectation`` integrates an integrable singularity exactly. The line is split at every
singular point p; a window |y - p| < w is cut out (w = min(sigma, half the distance to the next split
point, the narrowest feature)) and the rest integrated by the graded Gauss-Legendre engine of
``_quadrature`` with the integrand set to 0 in the windows (and each singular point declared a feature of
width w, so that the panels outside grow from width w). Each half window is integrated by tanh-sinh
quadrature (Takahasi & Mori 1974) in the distance d = w expit(pi sinh t) from p: the nodes cluster
double-exponentially at d = 0 and are computed as distances (no rounding of p + d against p when
p = 0), so d^-b h(d) with analytic h converges exponentially for every b < 1.

Error estimate of a half window: with I_h, I_2h, I_4h the sums at steps h, 2h, 4h (nested nodes),
|I_h - I_2h|^2 / |I_2h - I_4h| (the error squares when h halves, Bailey's estimate), at least
|I_h - I_2h| / 1e3, plus the rounding bound sum |w g| (eps + b eps |p| / d) (the node p + d is
rounded to |p| eps, which moves g by b |p| eps / d relative). The part of the window below the
smallest node d_min is added as the power law integrated, g(d_min) d_min / (1 - b), with Euler-Maclaurin's
end corrections. Formulas are evaluated at p + d with exact offsets d (``near``: each affine
subexpression a x + b as a d + (a p + b)), so d_min = 1e-304 w at any p and the exponent b is measured
exactly; a black-box function is evaluated at the rounded p + d, and its windows stop at d = 1e-12 |p|
(the estimate then carries the rounding, b eps |p| / d relative per node).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from .._errors import ConvergenceError
from ..activations.expression._singular_points import SingularPoint
from ._quadrature import Integrand, _rows, gaussian_expectation

__all__ = ["DIVERGENT_EXPONENT", "NearRows", "refuse_singular", "singular_expectation"]

FloatArray = NDArray[np.float64]
# near rows(point, d) -> the integrand's rows at point + d with exact offsets d (as ``NearFunction``).
NearRows = Callable[[float, FloatArray], list[FloatArray]]

# An integrand growing like d^-b is integrable iff b < 1. The exponent is measured to ~1e-12 for a pure
# power; b within 1e-6 of 1 is treated as divergent (the integral would exceed 1e6 anyway).
DIVERGENT_EXPONENT = 1.0 - 1e-6
_EPS = float(np.finfo(np.float64).eps)
# Nearest node to a singular point p != 0: 1e-12 |p| (p + d then carries d to ~1e-4 relative).
_FLOOR = 1e-12
# Nearest node to a numerically located point p = 0 (a double root of x**2 in log(x**2)): 1e-60 w, so that
# x**4 does not underflow (1e-240); the power law below it is then ~1e-60 of the window.
_ZERO_FLOOR = 1e-60
# tanh-sinh: t in [-T, T] with pi sinh(T) = 774 (expit(-774) underflows: the nodes reach d ~ 1e-304 w),
# finest step h = 2^-6 (with 2h and 4h nested for the error estimate).
_TANH_SINH_T = 6.2
_TANH_SINH_LEVEL = 6


@functools.lru_cache(maxsize=2)
def _tanh_sinh(level: int) -> tuple[FloatArray, FloatArray, NDArray[np.intp]]:
    """Nodes d/w in (0, 1), weights (times h) and the index k of t = k h, for the step h = 2^-level."""
    step = 2.0**-level
    index = np.arange(-round(_TANH_SINH_T / step), round(_TANH_SINH_T / step) + 1)
    t = index * step
    u = math.pi * np.sinh(t)
    node = expit(u)
    weight = step * math.pi * np.cosh(t) * node * expit(-u)
    keep = (node > 0.0) & (weight > 0.0)
    return node[keep], weight[keep], index[keep]


def _window_width(
    point: float, sigma: float, splits: Sequence[float], features: Sequence[tuple[float, float]]
) -> float:
    width = sigma
    for other in splits:
        if other != point:
            width = min(width, 0.5 * abs(other - point))
    for _, feature_width in features:
        width = min(width, feature_width)
    return width


def singular_expectation(
    integrand: Integrand,
    mean: float,
    var: float,
    points: Sequence[float],
    row_exponents: Sequence[float],
    *,
    kinks: Sequence[float] = (),
    features: Sequence[tuple[float, float]] = (),
    near: NearRows | None = None,
    approximate: Sequence[float] = (),
) -> tuple[FloatArray, FloatArray]:
    """E[g_i(y)], y ~ N(mean, var > 0), for rows g_i singular at ``points``, with error estimates.

    Args:
        integrand: as for ``gaussian_expectation`` (the point index passed is always 0).
        mean: mean of y.
        var: variance of y (> 0).
        points: the singular points (each row may be singular there).
        row_exponents: for each row, the largest growth exponent b (< 1) of |g_i| at the points.
        kinks: kinks of the rows (splits of the regular part).
        features: smooth bends of the rows.
        near: the rows at point + d with exact offsets d (see ``NearRows``); without it, p + d is rounded
            and the windows stop at d = 1e-12 |p|.
        approximate: the points located numerically (roots of non-affine sub-expressions): ``near`` is not
            used there and the windows stop at d = 1e-12 |p| (p = 0: 1e-60 w, against underflow).

    Returns:
        ``(values, abserr)``, one entry per row.
    """
    sigma = math.sqrt(var)
    splits = [*kinks, *(location for location, _ in features), *points]
    windows = [(point, _window_width(point, sigma, splits, features)) for point in points]

    def regular(y: FloatArray, who: NDArray[np.intp]) -> list[FloatArray]:
        inside = np.zeros(y.shape, dtype=bool)
        for point, width in windows:
            inside |= np.abs(y - point) < width
        with np.errstate(all="ignore"):
            rows = _rows(integrand(y, who))
        return [np.where(inside, 0.0, row) for row in rows]

    extra = [value for point, width in windows for value in (point - width, point + width)]
    outer = gaussian_expectation(
        regular,
        np.asarray(mean),
        np.asarray(var),
        kinks=sorted({*kinks, *points, *extra}),
        # The singularity is a bend of width w for the panels outside the window: they grow from w.
        features=[*features, *windows],
        with_error=True,
    )
    values = np.array(outer.value, dtype=np.float64).reshape(-1)
    # The regular part's estimate (14- vs 11-point Gauss-Legendre) is pessimistic; at least the rounding.
    errors = np.maximum(np.array(outer.abserr, dtype=np.float64).reshape(-1), 4 * _EPS * np.abs(values))
    node, weight, index = _tanh_sinh(_TANH_SINH_LEVEL)
    exponents = np.minimum(np.maximum(np.asarray(row_exponents, dtype=np.float64), 0.0), DIVERGENT_EXPONENT)
    numeric = set(approximate)
    for point, width in windows:
        point_near = None if point in numeric else near
        for side in (-1.0, 1.0):
            distance = width * node
            # p + d is rounded to |p| eps: without exact offsets, stay where that is ~1e-4 of d.
            floor = 0.0 if point_near is not None else _FLOOR * abs(point)
            if point in numeric and point == 0.0:
                floor = _ZERO_FLOOR * width
            usable = distance > floor
            d, w, k = distance[usable], width * weight[usable], index[usable]
            y = point + side * d
            z = (point - mean) / sigma + side * d / sigma
            density = np.exp(-0.5 * z * z) / (sigma * math.sqrt(2.0 * math.pi))
            with np.errstate(all="ignore"):
                if point_near is not None:
                    rows = np.stack(_rows(point_near(point, side * d)))
                else:
                    rows = np.stack(_rows(integrand(y, np.zeros(y.size, dtype=np.intp))))
            rounded = 0.0 if point_near is not None else abs(point)  # how far p + d is rounded, relative to eps
            weighted = rows * (w * density)
            weighted = np.where(density > 0.0, weighted, 0.0)  # 0 * inf where the Gaussian underflows
            if not np.isfinite(weighted).all():
                raise_at = float(y[np.flatnonzero(~np.isfinite(weighted).all(axis=0))[0]])
                raise ConvergenceError(
                    f"the integrand is not finite at y={raise_at!r} next to its singular point {point!r}"
                )
            fine = weighted.sum(axis=1)
            half = weighted[:, k % 2 == 0].sum(axis=1) * 2.0
            quarter = weighted[:, k % 4 == 0].sum(axis=1) * 4.0
            change, previous = np.abs(fine - half), np.abs(half - quarter)
            with np.errstate(divide="ignore", invalid="ignore"):
                converged = np.where((previous > change) & (previous > 0.0), change * change / previous, change)
            estimate = np.maximum(converged, 1e-3 * change)
            magnitude = np.abs(weighted)
            rounding = (magnitude * (_EPS + exponents[:, None] * _EPS * rounded / d)).sum(axis=1)
            # The sum starts at the smallest node d_min, where the integrand has not decayed: Euler-Maclaurin's
            # end corrections -F_0/2 + (F_1 - F_0)/12 (F_k the weighted terms), and the part closer to p than
            # d_min, g ~ g(d_min) (d/d_min)^-b integrated: g(d_min) d_min / (1 - b). Its uncertainty: the
            # exponent's (1e-12 at p = 0, 1e-6 elsewhere) times d log(term)/db = |log d_min| + 1/(1 - b).
            first, second = weighted[:, 0], weighted[:, 1]  # nodes are in increasing d
            below = first / w[0] * d[0] / (1.0 - exponents)
            end = -0.5 * first + (second - first) / 12.0
            exact = (point == 0.0 or near is not None) and point not in numeric  # exponent measured exactly
            slack = (1e-12 if exact else 1e-6) * (abs(math.log(d[0] / width)) + 1.0 / (1.0 - exponents))
            values += fine + end + below
            errors += estimate + rounding + np.abs(below) * slack + np.abs(second - first) / 12.0
    return values, errors


def refuse_singular(activation_spec: str, points: Sequence[SingularPoint], what: str) -> None:
    """Raise for computations that do not integrate singular points (nested or depth-dynamics quadrature)."""
    if points:
        raise ConvergenceError(
            f"{what} of {activation_spec!r} is not computed: the formula is unbounded at x={points[0][0]!r} "
            "(a pole or singular point), which only moments, gain, weight_std and deriv_mean integrate exactly; "
            "use a formula that stays bounded"
        )
