"""``PiecewisePolynomial.moments`` at a single (mean, sigma) with Python floats.

The same arithmetic as the array code in ``_piecewise`` (same pieces, Taylor coefficients,
tail moments, Gauss-Legendre rules and narrowness test), written for one point: numpy's per-call
overhead (~0.3-3 us per operation on 1-element arrays) would otherwise dominate a scalar
``varprop.moments`` call. The two agree to a few ulps of the magnitudes (tests/test_closed_forms.py).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
from scipy import special

from ._piecewise_layout import Layout
from ._tails import tail_moments_list

__all__ = ["PointLayout", "point_layout", "point_moments"]


def _trim(row: list[float]) -> list[float]:
    """Without trailing zeros (an all-zero row becomes empty: its sums are 0 without any work)."""
    while row and row[-1] == 0.0:
        row = row[:-1]
    return row


@dataclass(frozen=True)
class _Piece:
    lower: float
    upper: float
    lower_end: int  # index into the finite ends, -1 if infinite
    upper_end: int
    lower_taylor: list[list[float]]  # rows phi, phi^2, phi'^2: Taylor coefficients at the lower end
    upper_taylor: list[list[float]]
    lower_abs: list[list[float]]
    upper_abs: list[list[float]]
    width: float
    node_y: np.ndarray | None  # Gauss-Legendre nodes of a finite piece (None if infinite)
    node_weights: np.ndarray
    node_values: np.ndarray  # (3, nodes)
    node_abs: np.ndarray


@dataclass(frozen=True)
class PointLayout:
    """Python-float copy of a ``Layout``."""

    ends: list[float]
    terms: int
    narrow: float
    zero_tails: list[float]  # P_k(0)
    half_nodes: np.ndarray  # (1 + x_j)/2 of the Gauss-Legendre nodes x_j
    half_weights: np.ndarray  # w_j / (2 sqrt(2 pi))
    pieces: list[_Piece]


def point_layout(lay: Layout, narrow: float, nodes: np.ndarray, weights: np.ndarray) -> PointLayout:
    finite = {int(index): row for row, index in enumerate(lay.finite)}
    count = lay.ends.size
    pieces = []
    for index in range(lay.lower.size):
        if not lay.taylor[index].any():
            continue  # phi = 0 on this piece: it adds nothing
        row = finite.get(index)
        lower_end, upper_end = (int(end) if end < count else -1 for end in lay.end_index[index])
        pieces.append(
            _Piece(
                lower=float(lay.lower[index]),
                upper=float(lay.upper[index]),
                lower_end=lower_end,
                upper_end=upper_end,
                lower_taylor=[_trim(r) for r in lay.taylor[index, 0].tolist()],
                upper_taylor=[_trim(r) for r in lay.taylor[index, 1].tolist()],
                lower_abs=[_trim(r) for r in lay.abs_taylor[index, 0].tolist()],
                upper_abs=[_trim(r) for r in lay.abs_taylor[index, 1].tolist()],
                width=float(lay.upper[index] - lay.lower[index]),
                node_y=None if row is None else lay.node_y[row],
                node_weights=lay.node_weights[row] if row is not None else np.zeros(0),
                node_values=lay.node_values[row] if row is not None else np.zeros((3, 0)),
                node_abs=np.abs(lay.node_values[row]) if row is not None else np.zeros((3, 0)),
            )
        )
    return PointLayout(
        ends=lay.ends.tolist(),
        terms=lay.taylor.shape[-1],
        narrow=narrow,
        zero_tails=lay.abs_tails.tolist(),
        half_nodes=0.5 * (1.0 + nodes),
        half_weights=0.5 * weights / math.sqrt(2.0 * math.pi),
        pieces=pieces,
    )


def point_moments(layout: PointLayout, mu: float, sigma: float) -> tuple[float, ...]:
    """(E[phi], E[phi^2], E[phi'^2], their magnitudes, E[|phi|]) at one (mean, sigma > 0)."""
    terms = layout.terms
    powers = [1.0]
    for _ in range(terms - 1):
        powers.append(powers[-1] * sigma)
    reach: list[float] = []
    signed: list[list[float]] = []
    absolute: list[list[float]] = []
    for end in layout.ends:
        distance = (mu - end) / sigma
        u = abs(distance)
        size = list(map(operator.mul, tail_moments_list(u, terms - 1), powers))
        sign = -1.0 if distance >= 0 else 1.0  # +1: the end lies right of the mean
        signed.append([value * sign if k % 2 == 0 else value for k, value in enumerate(size)])
        absolute.append(size)
        reach.append(u)
    values, sizes, abs_first = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0.0
    for piece in layout.pieces:
        low, high = piece.lower_end, piece.upper_end
        if piece.node_y is not None and piece.width / sigma * max(1.0, reach[low], reach[high]) <= layout.narrow:
            ratio = (piece.node_y - mu) / sigma
            density = np.exp(-0.5 * ratio * ratio) * (piece.node_weights / sigma)
            piece_values = (piece.node_values @ density).tolist()
            piece_sizes = (piece.node_abs @ density).tolist()
        else:
            zeros = [0.0, 0.0, 0.0]
            mul = operator.mul
            lower_tails = [sum(map(mul, row, signed[low])) for row in piece.lower_taylor] if low >= 0 else zeros
            upper_tails = [sum(map(mul, row, signed[high])) for row in piece.upper_taylor] if high >= 0 else zeros
            lower_sizes = [sum(map(mul, row, absolute[low])) for row in piece.lower_abs] if low >= 0 else zeros
            upper_sizes = [sum(map(mul, row, absolute[high])) for row in piece.upper_abs] if high >= 0 else zeros
            if piece.lower <= mu < piece.upper and (low < 0 or high < 0):
                piece_values, piece_sizes = _one_sided(piece, sigma, powers, reach, absolute)
            elif piece.lower <= mu < piece.upper:
                piece_values, piece_sizes = _halves(
                    layout,
                    piece,
                    mu,
                    sigma,
                    powers,
                    (lower_tails, upper_tails, lower_sizes, upper_sizes),
                    (reach[low] if low >= 0 else math.inf, reach[high] if high >= 0 else math.inf),
                )
            else:
                piece_values = list(map(operator.sub, lower_tails, upper_tails))
                piece_sizes = list(map(operator.add, lower_sizes, upper_sizes))
        values = list(map(operator.add, values, piece_values))
        sizes = list(map(operator.add, sizes, piece_sizes))
        abs_first += abs(piece_values[0])
    return (*values, *sizes, abs_first)


def _one_sided(
    piece: _Piece, sigma: float, powers: list[float], reach: list[float], absolute: list[list[float]]
) -> tuple[list[float], list[float]]:
    """An infinite piece holding the mean: one tail from its finite end (``_random_unguarded``)."""
    upper = piece.lower_end < 0  # the finite end is the upper one
    end = piece.upper_end if upper else piece.lower_end
    t = reach[end]
    distance = t * sigma
    raw = [1.0, distance]
    for k in range(2, len(powers)):
        raw.append(distance * raw[k - 1] + (k - 1) * sigma * sigma * raw[k - 2])
    inside = [m - (p if k % 2 == 0 else -p) for k, (m, p) in enumerate(zip(raw, absolute[end], strict=True))]
    inside[0] = float(special.ndtr(t))
    signed = [value if not (upper and k % 2) else -value for k, value in enumerate(inside)]
    rows = piece.upper_taylor if upper else piece.lower_taylor
    magnitudes = piece.upper_abs if upper else piece.lower_abs
    mul = operator.mul
    return [sum(map(mul, row, signed)) for row in rows], [sum(map(mul, row, inside)) for row in magnitudes]


def _halves(
    layout: PointLayout,
    piece: _Piece,
    mu: float,
    sigma: float,
    powers: list[float],
    tails: tuple[list[float], list[float], list[float], list[float]],
    reaches: tuple[float, float],
) -> tuple[list[float], list[float]]:
    """The piece holding the mean as two halves (``_piecewise``, ``_random_unguarded``)."""
    lower_tails, upper_tails, lower_sizes, upper_sizes = tails
    near_upper = (piece.upper - mu) < (mu - piece.lower)
    offset = mu - (piece.upper if near_upper else piece.lower)
    spread = list(map(operator.mul, powers, layout.zero_tails))  # sigma^k P_k(0)
    centre: list[list[float]] = []
    even, odd, head_size = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for r, taylor in enumerate(piece.upper_taylor if near_upper else piece.lower_taylor):
        row = list(taylor)
        if offset:
            for i in range(len(row) - 1):  # Taylor shift by offset (repeated Horner)
                for k in range(len(row) - 2, i - 1, -1):
                    row[k] += offset * row[k + 1]
        centre.append(row)
        heads = list(map(operator.mul, row, spread))
        even[r], odd[r], head_size[r] = sum(heads[0::2]), sum(heads[1::2]), sum(map(abs, heads))
    values, sizes = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for far, reach, direction, half_tails, half_tail_sizes in (
        (piece.upper, reaches[1], 1.0, upper_tails, upper_sizes),
        (piece.lower, reaches[0], -1.0, lower_tails, lower_sizes),
    ):
        if far == mu:
            continue  # an empty half
        if reach * max(1.0, reach) <= layout.narrow:
            half_values, half_sizes = _half_quadrature(layout, centre, mu, sigma, far)
        else:  # upper: even + odd - tail; lower: even - odd + (signed) tail
            half_values = [e + direction * (o - t) for e, o, t in zip(even, odd, half_tails, strict=True)]
            half_sizes = list(map(operator.add, head_size, half_tail_sizes))
        values = list(map(operator.add, values, half_values))
        sizes = list(map(operator.add, sizes, half_sizes))
    return values, sizes


def _half_quadrature(
    layout: PointLayout, centre: list[list[float]], mu: float, sigma: float, far: float
) -> tuple[list[float], list[float]]:
    """int_mean^far g(y) N(y; mean, sigma^2) dy by Gauss-Legendre from the Taylor coefficients at the mean."""
    span = far - mu
    offsets = span * layout.half_nodes
    ratio = offsets / sigma
    density = np.exp(-0.5 * ratio * ratio) * (abs(span) / sigma * layout.half_weights)
    terms = max(map(len, centre))
    coefficients = np.array([row + [0.0] * (terms - len(row)) for row in centre])
    node_values = np.repeat(coefficients[:, -1:], offsets.size, axis=1)
    for k in range(coefficients.shape[1] - 2, -1, -1):
        node_values = node_values * offsets + coefficients[:, k : k + 1]
    return (node_values @ density).tolist(), (np.abs(node_values) @ density).tolist()
