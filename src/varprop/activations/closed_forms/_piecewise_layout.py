"""The layout of a piecewise polynomial activation, built once per activation: its pieces split at the real roots
of phi and phi' (so that every zero of phi, phi^2 and phi'^2 is a piece end), the Taylor coefficients of phi, phi^2
and phi'^2 at both ends of each piece, and Gauss-Legendre nodes on the finite pieces. The array code
(``_piecewise``) and the one-point code (``_piecewise_point``) both evaluate it.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import polynomial as npoly
from numpy.typing import NDArray

from ._tails import tail_moments

__all__ = ["GL_NODES", "Layout", "gauss_legendre", "layout"]

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]

_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
GL_NODES = 12  # exact to ~1e-17 where the Gaussian factor varies by at most e^2 (see ``_piecewise``)


@functools.lru_cache(maxsize=1)
def gauss_legendre() -> tuple[FloatArray, FloatArray]:
    nodes, weights = np.polynomial.legendre.leggauss(GL_NODES)
    return nodes, weights


def _taylor(coefficients: FloatArray, centre: float) -> FloatArray:
    """Taylor coefficients g^(k)(centre)/k! of sum_j c_j x^j, k = 0..deg."""
    degree = len(coefficients) - 1
    out = np.zeros(degree + 1)
    for k in range(degree + 1):
        total = 0.0
        for j in range(degree, k - 1, -1):  # Horner in centre for sum_j C(j, k) c_j centre^(j-k)
            total = total * centre + math.comb(j, k) * float(coefficients[j])
        out[k] = total
    return out


def _split_at_roots(
    lower: float, upper: float, *polynomials: Sequence[float] | FloatArray
) -> list[tuple[float, float]]:
    """Sub-intervals of (lower, upper) split at the real roots of the polynomials."""
    cuts = [lower, upper]
    for coefficients in polynomials:
        trimmed = np.trim_zeros(np.asarray(coefficients, dtype=np.float64), "b")
        if len(trimmed) > 1:
            for root in npoly.polyroots(trimmed):
                if abs(root.imag) < 1e-300 and lower < root.real < upper:
                    cuts.append(float(root.real))
    cuts = sorted(set(cuts))
    return list(itertools.pairwise(cuts))


@dataclass(frozen=True)
class Layout:
    """The arrays the vectorized engine works on (built once per activation)."""

    lower: FloatArray  # (pieces,) piece ends after splitting at roots; lower[0] = -inf
    upper: FloatArray
    ends: FloatArray  # (ends,) the finite piece ends, increasing
    end_index: IndexArray  # (pieces, 2) index of each piece's lower/upper end in ends, len(ends) if infinite
    taylor: FloatArray  # (pieces, 2, 3, terms) Taylor coefficients of phi, phi^2, phi'^2 at both ends
    signed_taylor: FloatArray  # the same with the upper ends negated
    taylor_by_order: FloatArray  # (terms, 3, pieces, 2)
    abs_taylor: FloatArray
    abs_tails: FloatArray  # (terms,) P_k(0)
    finite: IndexArray  # pieces with two finite ends
    finite_row: IndexArray  # (pieces,) each piece's row in ``finite``, -1 for an infinite piece
    width: FloatArray  # (finite,) their widths
    node_y: FloatArray  # (finite, nodes) Gauss-Legendre nodes in x
    node_values: FloatArray  # (finite, 3, nodes) phi, phi^2, phi'^2 there
    node_weights: FloatArray  # (finite, nodes) weights / sqrt(2 pi)


def layout(breaks: tuple[float, ...], coefficients: tuple[tuple[float, ...], ...]) -> Layout:
    edges = [-math.inf, *breaks, math.inf]
    pieces: list[tuple[float, float, list[FloatArray]]] = []
    for k, coefficient in enumerate(coefficients):
        phi = np.asarray(coefficient, dtype=np.float64)
        slope = np.asarray(npoly.polyder(phi) if len(phi) > 1 else np.zeros(1), dtype=np.float64)
        rows: list[FloatArray] = [
            phi,
            np.asarray(np.atleast_1d(npoly.polymul(phi, phi)), dtype=np.float64),
            np.asarray(np.atleast_1d(npoly.polymul(slope, slope)), dtype=np.float64),
        ]
        # Split where phi changes sign (for E[|phi|]) and where phi' vanishes: every zero of phi,
        # phi^2 and phi'^2 is then a piece end, from which Taylor coefficients are exact.
        for lower, upper in _split_at_roots(edges[k], edges[k + 1], coefficient, slope):
            pieces.append((lower, upper, rows))
    if len(pieces) == 1:  # no finite end: cut at 0, where both halves have the same polynomial
        pieces = [(-math.inf, 0.0, pieces[0][2]), (0.0, math.inf, pieces[0][2])]
    terms = max(2, *(len(row) for piece in pieces for row in piece[2]))
    ends = sorted({end for lower, upper, _ in pieces for end in (lower, upper) if math.isfinite(end)})
    end_index = np.full((len(pieces), 2), len(ends), dtype=np.intp)
    taylor = np.zeros((len(pieces), 2, 3, terms))
    for index, (lower, upper, rows) in enumerate(pieces):
        for side, end in enumerate((lower, upper)):
            if math.isfinite(end):
                end_index[index, side] = ends.index(end)
                for row, polynomial in enumerate(rows):
                    taylor[index, side, row, : len(polynomial)] = _taylor(polynomial, end)
    at_zero = tail_moments(np.zeros(1), terms - 1)[:, 0]
    nodes, weights = gauss_legendre()
    finite = [index for index, (lower, upper, _) in enumerate(pieces) if math.isfinite(lower) and math.isfinite(upper)]
    node_y = np.zeros((len(finite), GL_NODES))
    node_values = np.zeros((len(finite), 3, GL_NODES))
    node_weights = np.zeros((len(finite), GL_NODES))
    for row_index, index in enumerate(finite):
        lower, upper = pieces[index][:2]
        half = 0.5 * (upper - lower)
        from_lower, from_upper = half * (1.0 + nodes), half * (1.0 - nodes)
        first_half = nodes <= 0  # each node is expanded from the nearer end (exact near roots)
        node_y[row_index] = np.where(first_half, lower + from_lower, upper - from_upper)
        for row in range(3):
            near_lower = npoly.polyval(from_lower, taylor[index, 0, row])
            near_upper = npoly.polyval(-from_upper, taylor[index, 1, row])
            node_values[row_index, row] = np.where(first_half, near_lower, near_upper)
        node_weights[row_index] = half * weights * _INV_SQRT_2PI
    return Layout(
        lower=np.array([piece[0] for piece in pieces]),
        upper=np.array([piece[1] for piece in pieces]),
        ends=np.array(ends),
        end_index=end_index,
        taylor=taylor,
        signed_taylor=taylor * np.array([1.0, -1.0])[None, :, None, None],
        taylor_by_order=np.ascontiguousarray(taylor.transpose(3, 2, 0, 1)),
        abs_taylor=np.abs(taylor),
        abs_tails=at_zero,
        finite=np.array(finite, dtype=np.intp),
        finite_row=np.array([finite.index(index) if index in finite else -1 for index in range(len(pieces))]),
        width=np.array([pieces[index][1] - pieces[index][0] for index in finite]),
        node_y=node_y,
        node_values=node_values,
        node_weights=node_weights,
    )
