"""Every root of a function of q on a log grid: scan for sign changes and extrema, polish with brentq.

Used by ``fixed_point`` (h = F(q)/q - 1) and ``edge_of_chaos`` (h = E[phi^2]/(q E[phi'^2]) + sigma_b^2/q - 1):
both evaluate h on the whole grid in one vectorized quadrature call and polish each root with the
scalar engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq

__all__ = ["ROOT_NOISE", "scan_roots"]

FloatArray = NDArray[np.float64]
ROOT_NOISE = 1e-13  # |h| below this is rounding noise (h = F(q)/q - 1 is computed to ~1e-15)
_ROOT_RTOL = 4 * np.finfo(np.float64).eps


def scan_roots(
    log_q: FloatArray,
    values: FloatArray,
    log_derivs: FloatArray,
    value_at: Callable[[float], float],
    log_deriv_at: Callable[[float], float],
    noise: float,
) -> list[tuple[float, bool]]:
    """Every root of h(q) on a log grid, polished with brentq in ln q.

    A sign change of h between grid points gives a root. Where h keeps its sign but dh/dln q changes
    sign, the extremum is located (brentq on the derivative) and checked: if h changes sign there the
    interval holds two roots, if |h| <= ``noise`` it is a double (touching) root. Values of h within
    ``noise`` of 0 are indistinguishable from rounding errors: sign changes between two such values
    are ignored (h ~ -q^2 near q = 0 for tanh at the critical gain, for instance).

    Returns:
        ``(q, touching)`` pairs in increasing q.
    """
    roots: list[tuple[float, bool]] = []

    def h_log(t: float) -> float:
        return value_at(math.exp(t))

    def dh_log(t: float) -> float:
        return log_deriv_at(math.exp(t))

    def solve(func: Callable[[float], float], left: float, right: float) -> float | None:
        # The grid comes from the vectorized engine, the polish from the scalar one: they can disagree in
        # the last bits, so a root sitting on a grid point (the exact gain at var = 1, q* = 1) is taken
        # from the endpoint where |h| is at rounding level.
        f_left, f_right = func(left), func(right)
        if (f_left < 0) == (f_right < 0) or f_left == 0.0 or f_right == 0.0:
            closest, value = (left, f_left) if abs(f_left) <= abs(f_right) else (right, f_right)
            return closest if abs(value) <= noise else None
        return float(brentq(func, left, right, xtol=1e-300, rtol=_ROOT_RTOL, maxiter=200))

    for index in range(log_q.size - 1):
        left, right = float(log_q[index]), float(log_q[index + 1])
        h_left, h_right = float(values[index]), float(values[index + 1])
        if abs(h_left) <= noise and abs(h_right) <= noise:
            continue
        if (h_left < 0) != (h_right < 0):
            root = solve(h_log, left, right)
            if root is not None:
                roots.append((math.exp(root), False))
            continue
        d_left, d_right = float(log_derivs[index]), float(log_derivs[index + 1])
        if (d_left < 0) == (d_right < 0) or (h_left > 0) == (d_left > 0):
            continue  # monotone, or moving away from zero first (a maximum of |h|)
        extremum = solve(dh_log, left, right)
        if extremum is None:
            continue
        h_ext = h_log(extremum)
        if abs(h_ext) <= noise:
            roots.append((math.exp(extremum), True))
        elif (h_ext < 0) != (h_left < 0):
            for bracket in ((left, extremum), (extremum, right)):
                root = solve(h_log, *bracket)
                if root is not None:
                    roots.append((math.exp(root), False))
    roots.sort()
    unique: list[tuple[float, bool]] = []
    for candidate in roots:  # a root on a grid point is found from both neighbouring intervals
        if unique and abs(candidate[0] - unique[-1][0]) <= 1e-12 * candidate[0]:
            continue
        unique.append(candidate)
    return unique
