"""Exact Gaussian moments of piecewise-polynomial activations (relu, hardtanh, hardswish, ...).

For y = mean + sigma z, z ~ N(0, 1), and phi a polynomial of degree <= 2 on each interval between
breakpoints, E[phi(y)], E[phi(y)^2] and E[phi'(y)^2] are sums over pieces of integrals of polynomials
g (phi, phi^2, phi'^2, degree <= 4) against the Gaussian. The textbook route (truncated moments
M_j = (j - 1) M_{j-2} + a^{j-1} phi_N(a) - b^{j-1} phi_N(b)) cancels catastrophically in the tails
(relu at mean/sigma = -5) and on narrow pieces (the middle of hardtanh at var 1e6). Instead:

* pieces are split once at the real roots of phi and phi' (so E[|phi|] is the sum of |pieces| and
  every zero of phi, phi^2, phi'^2 is a piece end, where Taylor coefficients are exact);
* a piece that does not contain the mean is the difference of two one-sided tails: with its near end
  x_n (the one closer to the mean) and far end x_f, z_e = |x_e - mean| / sigma and s = +-sigma,
  int = sum_k g_k(x_n) s^k P_k(z_n) - sum_k g_k(x_f) s^k P_k(z_f), where g_k(x) are the Taylor
  coefficients of g at x and P_k(u) = int_u^inf (t - u)^k phi_N(t) dt are the Gaussian tail moments
  (``_tails``, positive, a few ulps);
* a finite piece [lo, hi) that contains the mean is split there: each half is
  sum_k g_k(mean) (+-sigma)^k P_k(0) minus the far-end tail, with g_k(mean) expanded from the
  piece's nearest end (so a mean next to a root of g loses nothing to cancellation);
* an infinite piece that contains the mean is one tail seen from its finite end e:
  sum_k g_k(e) (+-sigma)^k J_k(t), t = |mean - e|/sigma, J_k(t) = E[w^k; w > 0] for w ~ N(t, 1)
  = E[w^k] - (-1)^k P_k(t), which is >= E[w^k]/2 (no cancellation) however close the mean is to e;
* where a finite piece (or a half) is narrow on the scale of the Gaussian, (width/sigma) max(1, z) <= 2,
  the tails would nearly cancel; there the integral is a 12-node Gauss-Legendre sum over the interval,
  exact to ~1e-17 because the Gaussian factor varies by at most e^2 there (the node values of g are
  constants of the piece for whole pieces, Taylor sums from the mean for halves).

The work is vectorized over pieces and points at once (~1 us per point for hardswish, half that for
relu6); ``PiecewisePolynomial.point`` does the same arithmetic with Python floats for a single point
(``_piecewise_point``), where numpy's per-call overhead would dominate. ``leaky_moments``
is the two-piece case phi(y) = y (y > 0), slope y (y <= 0) (relu, leaky_relu, prelu, rrelu, the positive
part of elu) written out: E[y; y > 0] = max(mean, 0) + sigma P_1(|t|) and so on (``relu_parts``).

Every result comes with its magnitude, the sum of the absolute values of the terms added: rounding
errors are a few ulps of it, so a result is trusted when its magnitude is at most RELATIVE_BUDGET times
the result (first moments: or at most ABSOLUTE_BUDGET times E[|phi|], the scale of unavoidable
cancellation). Against the 40-digit mpmath grid (tests/reference) the worst error is a fifth of the
tests' tolerance (1e-13 relative; 1e-15 E[|phi|] for E[phi]).

Limits. At var == 0 the moments are the point values; exactly on a breakpoint phi' is a convention
(torch's differs between activations), so those points are marked untrusted. Tails beyond a kink
|z| ~ 20-37 sigma away are conditioned like exp(-z^2/2) (one ulp in sigma moves them by z^2 ulps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import polynomial as npoly
from numpy.typing import NDArray
from scipy import special

from ._piecewise_layout import Layout, gauss_legendre, layout
from ._piecewise_point import PointLayout, point_layout, point_moments
from ._tails import tail_moments, tail_moments_list

__all__ = [
    "Moments",
    "PiecewisePolynomial",
    "leaky_moments",
    "leaky_point",
    "relu_parts",
    "relu_parts_point",
    "trusted",
    "validity_mask",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IndexArray = NDArray[np.intp]

_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
_NARROW = 2.0  # (width/sigma) max(1, z) <= 2: Gauss-Legendre, else tail differences
# Rounding-error budget of the validity predicate: a result is trusted when the sum of the
# absolute values of its terms is at most RELATIVE_BUDGET times |result| (so the error is below
# ~20 * 2.2e-16 * few = 1e-14 of it) or, for E[phi], at most ABSOLUTE_BUDGET times E[|phi|].
RELATIVE_BUDGET = 20.0
ABSOLUTE_BUDGET = 4.0


@dataclass(frozen=True)
class Moments:
    """E[phi], E[phi^2], E[phi'^2] with the magnitudes that bound their rounding errors and E[|phi|]."""

    first: FloatArray
    second: FloatArray
    deriv_second: FloatArray
    first_magnitude: FloatArray
    second_magnitude: FloatArray
    deriv_second_magnitude: FloatArray
    abs_first: FloatArray

    @property
    def values(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        return self.first, self.second, self.deriv_second


def validity_mask(moments: Moments) -> BoolArray:
    """Where all three moments are trustworthy to ~1e-14 (see RELATIVE_BUDGET / ABSOLUTE_BUDGET)."""
    with np.errstate(invalid="ignore", over="ignore"):
        first_ok = (moments.first_magnitude <= RELATIVE_BUDGET * np.abs(moments.first)) | (
            moments.first_magnitude <= ABSOLUTE_BUDGET * moments.abs_first
        )
        second_ok = moments.second_magnitude <= RELATIVE_BUDGET * moments.second
        deriv_ok = moments.deriv_second_magnitude <= RELATIVE_BUDGET * moments.deriv_second
        finite = np.isfinite(moments.first) & np.isfinite(moments.second) & np.isfinite(moments.deriv_second)
    return np.asarray(first_ok & second_ok & deriv_ok & finite, dtype=np.bool_)


def trusted(point: tuple[float, ...]) -> bool:
    """``validity_mask`` for one point given as (E[phi], E[phi^2], E[phi'^2], their magnitudes, E[|phi|])."""
    first, second, deriv, first_size, second_size, deriv_size, abs_first = point
    first_ok = first_size <= RELATIVE_BUDGET * abs(first) or first_size <= ABSOLUTE_BUDGET * abs_first
    finite = math.isfinite(first) and math.isfinite(second) and math.isfinite(deriv)
    return bool(
        first_ok and second_size <= RELATIVE_BUDGET * second and deriv_size <= RELATIVE_BUDGET * deriv and finite
    )


# --------------------------------------------------------------------------------------------------
# relu and its slopes: two pieces in closed form


def relu_parts(mean: FloatArray, sigma: FloatArray) -> tuple[FloatArray, ...]:
    """E[y; y > 0], E[y; y < 0], E[y^2; y > 0], E[y^2; y < 0], P(y > 0), P(y < 0) for y ~ N(mean, sigma^2).

    With t = mean/sigma and the tails P_k = P_k(|t|) (``tail_moments``):
    E[y; y > 0] = max(mean, 0) + sigma P_1 and E[y; y < 0] = min(mean, 0) - sigma P_1 (no cancellation);
    the smaller side of E[y^2] is sigma^2 P_2, the larger mean^2 + sigma^2 - sigma^2 P_2 (>= half of it);
    likewise Q = P_0 and 1 - Q. sigma == 0 gives the point values (NaN at mean == 0, the kink).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = mean / sigma
        tails = tail_moments(np.abs(ratio), 2)
        shift = sigma * tails[1]
        small = sigma * sigma * tails[2]
        large = mean * mean + sigma * sigma - small
        upper = ratio >= 0
        tail = tails[0]
        bulk = 1.0 - tail
        return (
            np.maximum(mean, 0.0) + shift,
            np.minimum(mean, 0.0) - shift,
            np.where(upper, large, small),
            np.where(upper, small, large),
            np.where(upper, bulk, tail),
            np.where(upper, tail, bulk),
        )


def relu_parts_point(mean: float, sigma: float) -> tuple[float, ...]:
    """``relu_parts`` for one (mean, sigma > 0) with Python floats."""
    ratio = mean / sigma
    tail, first_tail, second_tail = tail_moments_list(abs(ratio), 2)
    shift = sigma * first_tail
    small = sigma * sigma * second_tail
    large = mean * mean + sigma * sigma - small
    bulk = 1.0 - tail
    if ratio >= 0:
        return mean + shift, -shift, large, small, bulk, tail
    return shift, mean - shift, small, large, tail, bulk


def leaky_point(mean: float, sigma: float, slope: float) -> tuple[float, ...]:
    """``leaky_moments`` for one (mean, sigma > 0): (E[phi], E[phi^2], E[phi'^2], their magnitudes, E[|phi|])."""
    positive, negative, positive_square, negative_square, positive_mass, negative_mass = relu_parts_point(mean, sigma)
    square = slope * slope
    abs_first = positive - abs(slope) * negative
    second = positive_square + square * negative_square
    deriv = positive_mass + square * negative_mass
    return positive + slope * negative, second, deriv, abs_first, second, deriv, abs_first


def leaky_moments(mean: FloatArray, sigma: FloatArray, slope: float) -> Moments:
    """Moments of phi(y) = y (y > 0), slope * y (y <= 0) for y ~ N(mean, sigma^2) (1-D arrays, sigma >= 0).

    E[phi] = E[y; y > 0] + slope E[y; y < 0], E[phi^2] = E[y^2; y > 0] + slope^2 E[y^2; y < 0],
    E[phi'^2] = P(y > 0) + slope^2 P(y < 0) (``relu_parts``); every part is cancellation-free, so the
    magnitudes are the values themselves (E[phi] is judged against E[|phi|]).

    Example:
        >>> relu = leaky_moments(np.array([0.0]), np.array([1.0]), 0.0)
        >>> [round(float(value[0]), 12) for value in relu.values]
        [0.398942280401, 0.5, 0.5]
    """
    positive, negative, positive_square, negative_square, positive_mass, negative_mass = relu_parts(mean, sigma)
    square = slope * slope
    abs_first = positive - abs(slope) * negative
    second = positive_square + square * negative_square
    deriv = positive_mass + square * negative_mass
    return Moments(
        first=positive + slope * negative,
        second=second,
        deriv_second=deriv,
        first_magnitude=abs_first,
        second_magnitude=second,
        deriv_second_magnitude=deriv,
        abs_first=abs_first,
    )


# --------------------------------------------------------------------------------------------------
# General piecewise polynomials


def _powers(base: FloatArray, count: int) -> FloatArray:
    """base^0 .. base^(count-1) along a new last axis."""
    out = np.empty((*base.shape, count))
    out[..., 0] = 1.0
    if count > 1:
        out[..., 1:] = base[..., None]
        np.multiply.accumulate(out[..., 1:], axis=-1, out=out[..., 1:])
    return out


@dataclass(frozen=True)
class PiecewisePolynomial:
    """phi(x) = sum_j coefficients[k][j] x^j on [breaks[k-1], breaks[k]) (breaks[-1] = -inf, ...).

    Attributes:
        breaks: increasing interior breakpoints (the kinks).
        coefficients: ``len(breaks) + 1`` tuples of ascending polynomial coefficients, degree <= 2.

    Example:
        >>> relu = PiecewisePolynomial((0.0,), ((0.0,), (0.0, 1.0)))
        >>> [round(float(m[0]), 12) for m in relu.moments(np.array([0.0]), np.array([1.0])).values]
        [0.398942280401, 0.5, 0.5]
    """

    breaks: tuple[float, ...]
    coefficients: tuple[tuple[float, ...], ...]
    _layout: Layout = field(init=False, repr=False, compare=False)
    _point_layout: PointLayout = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.coefficients) != len(self.breaks) + 1:
            raise ValueError("a piecewise polynomial needs one coefficient tuple per piece (len(breaks) + 1)")
        if list(self.breaks) != sorted(self.breaks):
            raise ValueError(f"breakpoints must increase, got {self.breaks}")
        object.__setattr__(self, "_layout", layout(self.breaks, self.coefficients))
        object.__setattr__(self, "_point_layout", point_layout(self._layout, _NARROW, *gauss_legendre()))

    def __call__(self, x: FloatArray) -> FloatArray:
        """phi(x), pieces closed on the left."""
        x = np.asarray(x, dtype=np.float64)
        index = np.searchsorted(np.asarray(self.breaks), x, side="right")
        out = np.zeros(x.shape)
        for k, coefficients in enumerate(self.coefficients):
            mask = index == k
            out[mask] = npoly.polyval(x[mask], np.asarray(coefficients))
        return out

    def derivative(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        index = np.searchsorted(np.asarray(self.breaks), x, side="right")
        out = np.zeros(x.shape)
        for k, coefficients in enumerate(self.coefficients):
            mask = index == k
            slope = npoly.polyder(np.asarray(coefficients)) if len(coefficients) > 1 else np.zeros(1)
            out[mask] = npoly.polyval(x[mask], slope)
        return out

    def moments(self, mean: FloatArray, var: FloatArray) -> Moments:
        """E[phi(y)], E[phi(y)^2], E[phi'(y)^2] (and magnitudes, E[|phi|]) for y ~ N(mean, var).

        Exact up to rounding (see the module docstring); var == 0 gives the values at the mean.
        """
        mean, var = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64))
        shape = mean.shape
        mu = mean.reshape(-1)
        sigma = np.sqrt(np.maximum(var.reshape(-1), 0.0))
        random = sigma > 0
        if mu.size == 1 and random[0]:
            single = self.point(float(mu[0]), float(sigma[0]))
            values, sizes, abs_first = (
                np.array(single[:3])[:, None],
                np.array(single[3:6])[:, None],
                np.array(single[6:]),
            )
        elif random.all():
            values, sizes, abs_first = self._random(mu, sigma)
        else:
            values = np.zeros((3, mu.size))
            sizes = np.zeros((3, mu.size))
            abs_first = np.zeros(mu.size)
            if random.any():
                values[:, random], sizes[:, random], abs_first[random] = self._random(mu[random], sigma[random])
            point = mu[~random]
            value = self(point)
            values[:, ~random] = value, value * value, self.derivative(point) ** 2
            sizes[:, ~random] = np.abs(values[:, ~random])
            abs_first[~random] = np.abs(value)
            # Exactly at a kink phi' is a convention (torch's differs between activations): leave
            # those points to the activation's own derivative (untrusted here).
            sizes[2, np.flatnonzero(~random)[np.isin(point, np.asarray(self.breaks))]] = np.inf
        return Moments(
            first=values[0].reshape(shape),
            second=values[1].reshape(shape),
            deriv_second=values[2].reshape(shape),
            first_magnitude=sizes[0].reshape(shape),
            second_magnitude=sizes[1].reshape(shape),
            deriv_second_magnitude=sizes[2].reshape(shape),
            abs_first=abs_first.reshape(shape),
        )

    def point(self, mu: float, sigma: float) -> tuple[float, ...]:
        """The moments, their magnitudes and E[|phi|] at one (mean, sigma > 0), with Python floats.

        The same arithmetic as the array code (``_piecewise_point``), several times faster for
        a single point. Returns (E[phi], E[phi^2], E[phi'^2], their three magnitudes, E[|phi|]).
        """
        return point_moments(self._point_layout, mu, sigma)

    def _random(self, mu: FloatArray, sigma: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(values (3, n), magnitudes (3, n), E[|phi|] (n,)) for sigma > 0 (1-D arrays)."""
        with np.errstate(invalid="ignore", over="ignore", under="ignore", divide="ignore"):
            return self._random_unguarded(mu, sigma)

    def _random_unguarded(self, mu: FloatArray, sigma: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        lay = self._layout
        count = mu.size
        terms = lay.taylor.shape[-1]
        # Tails at every finite end e: s P_k(|e - mean|/sigma) (s sigma)^k, s = +1 right of the mean, -1 left
        # (and their sizes sigma^k P_k); one extra end of zeros stands for the infinite ends.
        distance = (mu - lay.ends[:, None]) / sigma  # (ends, n)
        u = np.abs(distance)
        absolute = np.zeros((terms, lay.ends.size + 1, count))
        absolute[:, :-1] = tail_moments(u, terms - 1)
        sign = np.copysign(1.0, -distance)
        signed = absolute.copy()
        signed[0, :-1] *= sign
        power = sigma
        for k in range(1, terms):
            absolute[k, :-1] *= power
            signed[k, :-1] = absolute[k, :-1] if k % 2 else absolute[k, :-1] * sign
            power = power * sigma
        # Every piece: + (tail series at its lower end) - (tail series at its upper end), signed as above:
        # a near end adds its tail, a far end on the same side subtracts it; the piece that holds the mean
        # gets both tails subtracted and its full expectation added below.
        values = np.einsum("psrk,kpsn->prn", lay.signed_taylor, signed[:, lay.end_index])
        sizes = np.einsum("psrk,kpsn->prn", lay.abs_taylor, absolute[:, lay.end_index])
        # The piece [lower, upper) that holds the mean, and the Taylor coefficients there (from its nearest end).
        piece = np.searchsorted(lay.lower, mu, side="right") - 1
        lower, upper = lay.lower[piece], lay.upper[piece]
        near_upper = (upper - mu) < (mu - lower)
        centre = lay.taylor_by_order[:, :, piece, near_upper.astype(np.intp)]  # (terms, 3, n)
        offset = mu - np.where(near_upper, upper, lower)
        for i in range(terms - 1):  # Taylor shift by offset (repeated Horner)
            for k in range(terms - 2, i - 1, -1):
                centre[k] += offset * centre[k + 1]
        heads = centre * (_powers(sigma, terms).T * lay.abs_tails[:, None])[:, None, :]  # c_k sigma^k P_k(0)
        even = heads[0::2].sum(axis=0)  # (3, n): sum over even orders of c_k sigma^k P_k(0)
        odd = heads[1::2].sum(axis=0)
        head_size = np.abs(heads).sum(axis=0)
        columns = np.arange(count)
        values[piece, :, columns] += (2.0 * even).T  # the full expectation of the piece's polynomial
        sizes[piece, :, columns] += (2.0 * head_size).T
        u_ends = np.concatenate([u, np.full((1, count), np.inf)])
        # A half (mean to an end of the piece) that is narrow by itself: Gauss-Legendre from the coefficients
        # at the mean instead of head -+ odd - tail; the piece is then summed afresh from its two halves.
        reach_upper = u_ends[lay.end_index[piece, 1], columns]
        reach_lower = u_ends[lay.end_index[piece, 0], columns]
        one_sided = np.isinf(reach_upper) | np.isinf(reach_lower)  # an infinite piece: see below
        narrow_upper = reach_upper * np.maximum(1.0, reach_upper) <= _NARROW
        narrow_lower = reach_lower * np.maximum(1.0, reach_lower) <= _NARROW
        narrow_piece = None  # (finite, n): narrow finite pieces, computed by Gauss-Legendre below
        whole = np.zeros(count, dtype=bool)  # the piece holding the mean is one of them
        if lay.finite.size:
            reach = np.maximum(u_ends[lay.end_index[lay.finite, 0]], u_ends[lay.end_index[lay.finite, 1]])
            narrow_piece = (lay.width[:, None] / sigma) * np.maximum(1.0, reach) <= _NARROW
            row = lay.finite_row[piece]
            whole = (row >= 0) & narrow_piece[np.maximum(row, 0), columns]
        narrow = np.flatnonzero((narrow_upper | narrow_lower) & ~one_sided & ~whole)
        if narrow.size:
            at = piece[narrow]
            total = np.zeros((3, narrow.size))
            total_size = np.zeros((3, narrow.size))
            for side, far, direction, narrow_half in ((1, upper, 1.0, narrow_upper), (0, lower, -1.0, narrow_lower)):
                where = lay.end_index[at, side]
                tail = np.einsum("nrk,kn->rn", lay.taylor[at, side], signed[:, where, narrow])
                half = even[:, narrow] + direction * (odd[:, narrow] - tail)
                half_size = head_size[:, narrow] + np.einsum(
                    "nrk,kn->rn", lay.abs_taylor[at, side], absolute[:, where, narrow]
                )
                inside = np.flatnonzero(narrow_half[narrow])
                if inside.size:
                    chosen = narrow[inside]
                    half[:, inside], half_size[:, inside] = _half_quadrature(
                        centre[:, :, chosen], mu[chosen], sigma[chosen], far[chosen]
                    )
                total += half
                total_size += half_size
            values[at, :, narrow] = total.T
            sizes[at, :, narrow] = total_size.T
        # An infinite piece holding the mean is one tail seen from its finite end e, towards the mean:
        # sum_k g_k(e) (+-sigma)^k J_k(t) with t = |mean - e|/sigma and J_k(t) = E[w^k; w > 0], w ~ N(t, 1),
        # = M_k(t) - (-1)^k P_k(t) (M_k = E[w^k], all terms positive; J_k >= M_k/2): no cancellation, no
        # quadrature, however close the mean is to e.
        sided = np.flatnonzero(one_sided)
        if sided.size:
            finite_side = np.isinf(reach_lower[sided]).astype(np.intp)  # upper (1) if the lower end is -inf
            at = piece[sided]
            finite_end = lay.end_index[at, finite_side]
            distance_e = u[finite_end, sided] * sigma[sided]  # |mean - e|
            raw = np.empty((terms, sided.size))  # sigma^k M_k(t) = E[(|mean - e| + sigma z)^k]
            raw[0] = 1.0
            raw[1] = distance_e
            for k in range(2, terms):
                raw[k] = distance_e * raw[k - 1] + (k - 1) * sigma[sided] ** 2 * raw[k - 2]
            one_tail = raw - (-1.0) ** np.arange(terms)[:, None] * absolute[:, finite_end, sided]  # sigma^k J_k(t)
            one_tail[0] = special.ndtr(u[finite_end, sided])  # J_0 = Phi(t), to the last bit
            orientation = np.where(finite_side == 1, -1.0, 1.0) ** np.arange(terms)[:, None]  # (-1)^k from an upper end
            coefficients = lay.taylor[at, finite_side]  # (n, 3, terms)
            values[at, :, sided] = np.einsum("nrk,kn->nr", coefficients, orientation * one_tail)
            sizes[at, :, sided] = np.einsum("nrk,kn->nr", np.abs(coefficients), one_tail)
        # Finite pieces that are narrow on the Gaussian's scale: Gauss-Legendre with the piece's fixed nodes.
        if narrow_piece is not None:
            hit = np.flatnonzero(narrow_piece.any(axis=0))  # the points with some narrow piece
            if hit.size:
                narrow_hit, mu_hit, sigma_hit = narrow_piece[:, hit], mu[hit], sigma[hit]
                z = (lay.node_y[:, :, None] - mu_hit) / sigma_hit  # (finite, nodes, hit)
                density = np.exp(-0.5 * z * z) * (lay.node_weights[:, :, None] / sigma_hit)
                block = np.ix_(lay.finite, np.arange(3), hit)
                values[block] = np.where(narrow_hit[:, None, :], np.matmul(lay.node_values, density), values[block])
                sizes[block] = np.where(
                    narrow_hit[:, None, :], np.matmul(np.abs(lay.node_values), density), sizes[block]
                )
        return values.sum(axis=0), sizes.sum(axis=0), np.abs(values[:, 0]).sum(axis=0)


def _half_quadrature(
    centre: FloatArray, mu: FloatArray, sigma: FloatArray, far: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """int_mean^far g(y) N(y; mean, sigma^2) dy by Gauss-Legendre from the Taylor coefficients at the mean.

    ``centre``: (terms, 3, n) coefficients; returns (values (3, n), magnitudes (3, n)).
    """
    nodes, weights = gauss_legendre()
    span = far - mu
    offsets = span[:, None] * (0.5 * (1.0 + nodes))  # y - mean at the nodes, (n, nodes)
    node_values = np.repeat(centre[-1][:, :, None], nodes.size, axis=2)  # Horner in the offsets, (3, n, nodes)
    for k in range(centre.shape[0] - 2, -1, -1):
        node_values *= offsets
        node_values += centre[k][:, :, None]
    scaled = offsets / sigma[:, None]
    density = np.exp(-0.5 * scaled * scaled) * (np.abs(span) / sigma)[:, None] * (0.5 * _INV_SQRT_2PI * weights)
    return np.einsum("rng,ng->rn", node_values, density), np.einsum("rng,ng->rn", np.abs(node_values), density)
