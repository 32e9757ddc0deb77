"""Singular points of a formula: where it grows without bound, and how fast (issue 12).

A formula such as ``1/abs(x)**0.4`` or ``log(abs(x))`` is unbounded at a point p. Its Gaussian moments
are finite or infinite depending on how fast it grows there: with |g(p + d)| ~ |d|^-b,

    integral of |g| over |d| < w   is finite  iff  b < 1,

so E[phi] needs b_phi < 1, E[phi^2] needs 2 b_phi < 1 and E[phi'^2] needs 2 b_phi' < 1 (a logarithm is
b = 0+: integrable to every power). ``singular_points`` measures b numerically for the candidate points
that the expression tree proposes (zeros of denominators, of bases of negative powers, of log and sqrt
arguments, and every kink; where such a piece is not affine, ``_singular_search`` finds its real zeros over
each Gaussian's reach by sampling and Brent's method, and those points are integrated as ``approximate``):
b = log(|g(p + d2)| / |g(p + d1)|) / log(d1 / d2) at two tiny offsets,
which is exact for a pure power and ~log(2)/log(d1/d2) for a logarithm.

How such a point is integrated is ``varprop.gaussian._singular``'s business (``singular_expectation``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["NearFunction", "SingularPoint", "SingularSearch", "singular_points"]

FloatArray = NDArray[np.float64]
RealFunction = Callable[[FloatArray], FloatArray]
# (location p, growth exponent of |phi| at p, growth exponent of |phi'| at p): |phi(p + d)| ~ |d|^-b.
SingularPoint = tuple[float, float, float]
# near(point, d) = g(point + d) evaluated without rounding d against the point (formulas: each affine
# subexpression a x + b as a d + (a point + b)).
NearFunction = Callable[[float, FloatArray], FloatArray]
# search(low, high, anchors) -> (the singular points of a formula in [low, high] with the exactly located ones,
# the locations among them found numerically); raises where the formula is not real (``_singular_search``).
SingularSearch = Callable[[float, float, Sequence[float]], tuple[tuple[SingularPoint, ...], tuple[float, ...]]]

# Offsets for measuring the exponent: at p = 0 any tiny distance is exact (1e-40 and 1e-80 keep
# 1/x**3 finite); elsewhere p + d rounds to |p| eps, so d = 1e-6 |p| and 1e-9 |p| (relative error 1e-7).
_ZERO_OFFSETS = (1e-40, 1e-80)
_OFFSETS = (1e-6, 1e-9)
# Growth below these exponents is no singularity (a smooth function changes by ~|g'| d over the offsets;
# a logarithm measures log(2)/log(1e40) = 0.0075 at p = 0 and log(1.5)/log(1e3) = 0.059 elsewhere).
_ZERO_THRESHOLD = 1e-3
_THRESHOLD = 0.02


def _growth(function: RealFunction, point: float, side: float, near: NearFunction | None) -> float:
    """The exponent b of |function(point + side d)| ~ d^-b as d -> 0 (inf if it overflows, nan if undefined).

    ``near(point, d)``, where given, evaluates at point + d without rounding d against the point.
    """
    exact = point == 0.0 or near is not None
    offsets = _ZERO_OFFSETS if exact else tuple(offset * abs(point) for offset in _OFFSETS)
    signed = np.array([side * offsets[0], side * offsets[1]])
    with np.errstate(all="ignore"):
        values = near(point, signed) if near is not None else function(point + signed)
        near_values = np.abs(np.asarray(values, dtype=np.float64))
    if np.isnan(near_values).any():
        return math.nan
    if np.isinf(near_values[1]):
        return math.inf
    if near_values[0] == 0.0 or near_values[1] == 0.0:
        return -math.inf if near_values[1] == 0.0 else math.inf
    return float(math.log(near_values[1] / near_values[0]) / math.log(offsets[0] / offsets[1]))


def singular_points(
    function: RealFunction,
    derivative: RealFunction,
    candidates: Sequence[float],
    near: tuple[NearFunction, NearFunction] | None = None,
) -> tuple[SingularPoint, ...]:
    """The candidates at which ``function`` or ``derivative`` grows without bound, with both exponents.

    Returns:
        ``(p, b_phi, b_dphi)`` for each singular candidate p (sorted): the larger exponent of the two
        sides; a side where the function is undefined (nan, e.g. log of a negative number) is ignored.
    """
    found: list[SingularPoint] = []
    for point in sorted(set(float(candidate) for candidate in candidates)):
        if not math.isfinite(point):
            continue
        threshold = _ZERO_THRESHOLD if point == 0.0 or near is not None else _THRESHOLD
        exponents = []
        for index, part in enumerate((function, derivative)):
            sides = [_growth(part, point, side, None if near is None else near[index]) for side in (-1.0, 1.0)]
            defined = [value for value in sides if not math.isnan(value)]
            exponents.append(max(defined) if defined else -math.inf)
        if max(exponents) > threshold:
            found.append((point + 0.0, max(exponents[0], 0.0), max(exponents[1], 0.0)))  # + 0.0: no -0.0
    return tuple(found)
