"""Real zeros of the sub-expressions of a formula that can make it unbounded or not real (issue 12).

``varprop.gaussian._singular`` integrates a formula through its singular points once they are known. For the zeros of
affine pieces (``1/(x - 1)``, ``abs(x)**-0.4``) the expression tree gives them exactly; for any other
denominator, base of a negative power, or log / sqrt argument u (``1/(x**2 - 1)``, ``1/sin(x)``,
``1/(exp(x) - 2)``, ``log(x**2)``) they are found here, over the Gaussian's reach mean +- 40 std
(beyond it the density is below e^-800, under float64's smallest number):

1. sample u on a grid of ``GRID_POINTS`` points over the reach (plus given anchors such as the mean and 0);
2. every exact zero on the grid is a root; every sign change of u between neighbours is bracketed and
   refined by Brent's method (``scipy.optimize.brentq``, to a few ulps);
3. a double root (u touches 0 without changing sign: ``x**2`` in ``log(x**2)``, ``(x - 1)**2``) is a
   sign change of u' where |u| is below ``TOUCH_TOLERANCE`` of its size at the neighbouring grid points;
   it is refined as the root of u'.

Whether the formula is really unbounded at a root (``sin(x)/sin(x)`` is not) and how fast (the exponent
b of |phi| ~ |x - p|^-b) is measured by ``_singular_points.singular_points``. At a simple root (u'(p) != 0) the
formula is evaluated with u replaced by its cubic Taylor polynomial in the exact offset d (``_grammar``'s
``_SingularSearch``; u(p) is taken as 0: p is within a few ulps of the root, which moves the integral by
O(ulp)), so the exponent is measured and the window integrated as exactly as at an affine zero (1e-14
relative). At a multiple root the offsets are rounded against p: the exponent carries ~1e-7 relative
(offsets 1e-6 |p| and 1e-9 |p|) and is rounded to ``EXPONENT_DIGITS`` decimals when within
``EXPONENT_SNAP`` of such a value (formula exponents are short decimals), and the windows stop at
d = 1e-12 |p|. Pairs of roots closer than the grid spacing (0.01 std) without a sign change between them
are missed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq

from ..._errors import ConvergenceError

__all__ = ["GRID_POINTS", "MAX_POINTS", "REACH_STD", "negative_intervals", "real_zeros", "snap_exponent"]

FloatArray = NDArray[np.float64]
RealFunction = Callable[[FloatArray], FloatArray]

# exp(-40^2 / 2) = 1.9e-348 < 4.9e-324 (the smallest float64): the density vanishes beyond 40 std.
REACH_STD = 40.0
# Grid over the reach: spacing 80 std / 8000 = 0.01 std.
GRID_POINTS = 8001
# A local minimum of |u| counts as a double root when |u| there is below this fraction of |u| at the
# neighbouring grid points (a true double root c d^2 sampled 0.01 std away: the minimum is rounding, ~1e-16).
TOUCH_TOLERANCE = 1e-10
EXPONENT_DIGITS = 4
EXPONENT_SNAP = 1e-5


# The grid is refined (doubled, at most REFINEMENTS times) until the number of sign changes of u and u' no
# longer changes (sin(x) over a reach of 40000 has 25000 zeros, 3 per 10 grid spacings); more than
# MAX_POINTS zeros in the reach is refused (each is a window of its own).
REFINEMENTS = 4
MAX_POINTS = 500


def _grid(low: float, high: float, anchors: Sequence[float], points: int = GRID_POINTS) -> FloatArray:
    inside = [anchor for anchor in anchors if low < anchor < high and math.isfinite(anchor)]
    return np.union1d(np.linspace(low, high, points), np.asarray(inside, dtype=np.float64))


def _sampled(
    function: RealFunction, derivative: RealFunction, low: float, high: float, anchors: Sequence[float]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The grid, u and u' on it: refined until the sign changes of u and u' are all resolved."""
    points = GRID_POINTS
    counts: tuple[int, int] | None = None
    for _ in range(REFINEMENTS + 1):
        grid = _grid(low, high, anchors, points)
        with np.errstate(all="ignore"):
            values = np.asarray(function(grid), dtype=np.float64)
            slopes = np.asarray(derivative(grid), dtype=np.float64)
        found = (_sign_changes(values).size + int((values == 0.0).sum()), _sign_changes(slopes).size)
        if found[0] > MAX_POINTS:
            break
        if found == counts:
            return grid, values, slopes
        counts, points = found, 2 * points - 1
    how_many = f"more than {MAX_POINTS}" if found[0] > MAX_POINTS else "unresolved"
    raise ConvergenceError(
        f"a denominator, log or sqrt argument has {how_many} zeros in [{low:.6g}, {high:.6g}] "
        f"(mean +- {REACH_STD:g} std; {found[0]} sign changes on a grid of {points} points): too many singular "
        "points to integrate; use a smaller variance"
    )


def _refine(function: RealFunction, left: float, right: float) -> float:
    def scalar(x: float) -> float:
        return float(function(np.array([x]))[0])

    return float(brentq(scalar, left, right, xtol=4 * np.finfo(np.float64).tiny, rtol=4 * np.finfo(np.float64).eps))


def _sign_changes(values: FloatArray) -> NDArray[np.intp]:
    finite = np.isfinite(values[:-1]) & np.isfinite(values[1:])
    return np.flatnonzero(finite & (np.sign(values[:-1]) * np.sign(values[1:]) < 0))


def real_zeros(
    function: RealFunction, derivative: RealFunction, low: float, high: float, anchors: Sequence[float] = ()
) -> list[float]:
    """The real zeros of ``function`` in [low, high]: exact zeros on the grid, sign changes, double roots.

    Example:
        >>> [round(root, 12) for root in real_zeros(lambda x: x**2 - 1, lambda x: 2 * x, -3.0, 3.0)]
        [-1.0, 1.0]
    """
    grid, values, slopes = _sampled(function, derivative, low, high, anchors)
    roots = [float(x) for x in grid[values == 0.0]]
    for index in _sign_changes(values):
        roots.append(_refine(function, float(grid[index]), float(grid[index + 1])))
    magnitude = np.abs(values)
    for index in _sign_changes(slopes):
        left, right = float(grid[index]), float(grid[index + 1])
        if values[index] == 0.0 or values[index + 1] == 0.0:
            continue
        root = _refine(derivative, left, right)
        with np.errstate(all="ignore"):
            touch = abs(float(function(np.array([root]))[0]))
        if touch <= TOUCH_TOLERANCE * min(magnitude[index], magnitude[index + 1]):
            roots.append(root)
    spacing = (high - low) / (grid.size - 1)
    unique: list[float] = []
    for root in sorted(roots):
        if not unique or root - unique[-1] > 1e-9 * spacing:
            unique.append(root + 0.0)  # + 0.0: no -0.0
    return unique


def negative_intervals(function: RealFunction, low: float, high: float, anchors: Sequence[float] = ()) -> list[str]:
    """Where ``function`` is negative in [low, high], as readable intervals (``'x < 0'``, ``'-1 < x < 1'``)."""
    grid = _grid(low, high, anchors)
    with np.errstate(all="ignore"):
        negative = np.asarray(function(grid), dtype=np.float64) < 0.0
    if not negative.any():
        return []
    edges = np.flatnonzero(np.diff(negative.astype(np.int8)))
    boundaries = [_refine(function, float(grid[i]), float(grid[i + 1])) for i in edges]
    starts_negative = bool(negative[0])
    pieces: list[str] = []
    current: float | None = None if starts_negative else math.nan
    inside = starts_negative
    for boundary in boundaries:
        text = f"{boundary:.12g}"
        if inside:
            pieces.append(f"x < {text}" if current is None else f"{current:.12g} < x < {text}")
        current, inside = boundary, not inside
    if inside:
        pieces.append("every x in reach" if current is None else f"x > {current:.12g}")
    return pieces


def snap_exponent(exponent: float) -> float:
    """A measured growth exponent rounded to ``EXPONENT_DIGITS`` decimals when within ``EXPONENT_SNAP``."""
    if not math.isfinite(exponent):
        return exponent
    rounded = round(exponent, EXPONENT_DIGITS)
    return rounded if abs(rounded - exponent) <= EXPONENT_SNAP else exponent
