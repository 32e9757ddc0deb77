"""Exact Gaussian moments of piecewise-polynomial activations (relu, hardtanh, hardswish, ...).

For y = mean + sigma z, z ~ N(0, 1), and phi a polynomial of degree <= 2 on each interval between
breakpoints, E[phi(y)], E[phi(y)^2] and E[phi'(y)^2] are sums over pieces of integrals
int g(mean + sigma z) phi_N(z) dz of polynomials g (phi, phi^2, phi'^2, degree <= 4) against the
standard normal density phi_N. The textbook route expands g in powers of z and uses the truncated
moments M_j = (j - 1) M_{j-2} + a^{j-1} phi_N(a) - b^{j-1} phi_N(b); that route cancels
catastrophically in the tails (relu at mean/sigma = -5: E = sigma (phi_N(t) + t Phi(t)), two terms
of 1.5e-6 whose sum is 5e-8) and on narrow pieces (the middle of hardtanh at var 1e6).

What this module does instead:

* pieces are split once at the real roots of phi and phi' (so E[|phi|] is a sum of |pieces| and every
  zero of phi, phi^2, phi'^2 is a piece end), and per (mean, var) at z = 0 (y = mean), so each part
  lies on one side of the Gaussian's centre;
  mirrored to u = |z| >= 0 it is an interval [u_near, u_far] away from the centre;
* g is expanded in powers of (x - x_e) around each end x_e of the part (coefficients at a breakpoint
  or root are exact; those at the mean are expanded from the nearest piece end with d = mean - end,
  so a mean next to a root loses nothing), so that
  int_{u_e}^inf g phi_N du = phi_N(u_e) sum_k g_k (+-sigma)^k I_k(u_e)  with the tail integrals
  I_k(u) = int_0^inf t^k exp(-u t - t^2 / 2) dt (Mills-ratio moments, all positive);
  the part is the difference of the tails at its two ends, and that difference is benign because
  parts whose far end is within a few local Gaussian widths of the near end use
* Gauss-Legendre (20 nodes) instead: on [u_near, u_far] with (u_far - u_near) max(1, u_far) <= 4
  the integrand is an entire function varying by at most e^4, and 20 nodes are exact to ~1e-17.

The products P_k(u) = phi_N(u) I_k(u) = int_u^inf (z - u)^k phi_N(z) dz are computed directly
(``tail_moments``): P_0 = Q(u) = ndtr(-u), P_1 = phi_N(u) - u Q(u), P_k = (k - 1) P_{k-2} - u P_{k-1}
(integration by parts; exact at u = 0: 1/2, phi_N(0), 1/2, ...). The forward recurrence is stable for
u <= 1 (measured against mpmath: <= 7e-16 for k <= 4); for u > 1 it loses digits (5e-12 at u = 5)
and the ratios r_k = I_k / I_{k-1} are computed backwards instead, r_{k-1} = (k - 1) / (u + r_k),
from r_K ~ the root of r (u + r) = K (Miller's algorithm; error e^{-2 u sqrt K}, K <= 440 + k).
The tail moments of every piece end are computed once per call and shared by all pieces.

Every result comes with its magnitude: the sum of the absolute values of the terms added (tails,
quadrature products). Rounding errors are a few ulps of that magnitude, so the validity predicate
is "magnitude <= 20 |result|" (first moments: or <= 4 E[|phi|], the scale of unavoidable cancellation).
Measured against 40-digit mpmath (tests/reference) the worst error is 0.3 of 1e-13 relative.

Limits. Tails beyond a kink |z| ~ 20-37 sigma away are conditioned like exp(-z^2/2): one ulp in
sigma = sqrt(var) moves them by z^2 ulps (1e-13 at z = 20), for any method working from float64
(mean, var). At var == 0 the moments are the point values; exactly on a breakpoint phi' is a
convention (torch's differs between activations), so those points are marked invalid.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import polynomial as npoly
from numpy.typing import NDArray
from scipy import special

__all__ = [
    "Moments",
    "PiecewisePolynomial",
    "normal_pdf",
    "tail_moments",
    "validity_mask",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
_SQRT_HALF_PI = 1.2533141373155003  # sqrt(pi/2) = I_0(0), the Mills ratio at 0
_SQRT_HALF = 0.7071067811865476  # 1/sqrt(2)
_FORWARD_LIMIT = 1.0  # the forward recurrence for I_k is used for u <= 1 (see module docstring)
_NARROW = 4.0  # (u_far - u_near) max(1, u_far) <= 4: Gauss-Legendre, else tail differences
_GL_NODES = 20
_MAX_DEGREE = 4  # phi has degree <= 2, so phi^2 has degree <= 4
# Rounding-error budget of the validity predicate: a result is trusted when the sum of the
# absolute values of its terms is at most RELATIVE_BUDGET times |result| (so the error is below
# ~20 * 2.2e-16 * few = 1e-14 of it) or, for E[phi], at most ABSOLUTE_BUDGET times E[|phi|].
RELATIVE_BUDGET = 20.0
ABSOLUTE_BUDGET = 4.0


@functools.lru_cache(maxsize=1)
def _gauss_legendre() -> tuple[FloatArray, FloatArray]:
    nodes, weights = np.polynomial.legendre.leggauss(_GL_NODES)
    return nodes, weights


def normal_pdf(z: FloatArray) -> FloatArray:
    """Standard normal density exp(-z^2/2)/sqrt(2 pi) (0 at +-inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(np.isfinite(z), _INV_SQRT_2PI * np.exp(-0.5 * np.square(z)), 0.0)


def tail_moments(u: FloatArray, kmax: int) -> FloatArray:
    """P_k(u) = int_u^inf (z - u)^k phi_N(z) dz = phi_N(u) I_k(u) for k = 0..kmax and u >= 0 (inf allowed).

    I_k(u) = int_0^inf t^k exp(-u t - t^2/2) dt are the Mills-ratio moments. P_0 = Q(u) (the upper
    normal tail, ``ndtr(-u)``), P_1 = phi_N(u) - u Q(u), P_k = (k - 1) P_{k-2} - u P_{k-1}; at u = 0
    these are exact (1/2, phi_N(0), 1/2, 2 phi_N(0), 3/2).

    Returns:
        array of shape ``(kmax + 1, *u.shape)``, relative error ~1e-16 (forward recurrence for
        u <= 1, backward ratios for u > 1; see the module docstring).
    """
    u = np.asarray(u, dtype=np.float64)
    out = np.zeros((kmax + 1, *u.shape))
    finite = np.isfinite(u)
    uf = np.where(finite, u, 0.0)
    out[0] = np.where(finite, special.ndtr(-uf), 0.0)
    if kmax == 0:
        return out
    small = finite & (uf <= _FORWARD_LIMIT)
    if small.any():
        us = uf[small]
        column = [out[0][small], normal_pdf(us) - us * out[0][small]]
        for k in range(2, kmax + 1):
            column.append((k - 1) * column[k - 2] - us * column[k - 1])
        for k in range(1, kmax + 1):
            out[k][small] = column[k]
    large = finite & (uf > _FORWARD_LIMIT)
    if large.any():
        ul = uf[large]
        depth = kmax + 40 + int(min(400.0, 400.0 / float(np.min(ul)) ** 2))
        ratio = 0.5 * (np.sqrt(ul * ul + 4.0 * depth) - ul)  # root of r (u + r) = depth
        ratios = [np.empty(0)] * (kmax + 1)
        for k in range(depth, 1, -1):
            ratio = (k - 1) / (ul + ratio)  # now r_{k-1} = I_{k-1} / I_{k-2}
            if k - 1 <= kmax:
                ratios[k - 1] = ratio
        value = out[0][large]
        for k in range(1, kmax + 1):
            value = value * ratios[k]
            out[k][large] = value
    return out


def _taylor(coefficients: FloatArray, centre: FloatArray) -> FloatArray:
    """Taylor coefficients g_k(centre) = g^(k)(centre)/k! of sum_j c_j x^j; shape (deg+1, *centre.shape)."""
    degree = len(coefficients) - 1
    out = np.zeros((degree + 1, *centre.shape))
    for k in range(degree + 1):
        total = np.zeros(centre.shape)
        for j in range(degree, k - 1, -1):  # Horner in centre for sum_j C(j, k) c_j centre^(j-k)
            total = total * centre + math.comb(j, k) * coefficients[j]
        out[k] = total
    return out


def _one_sided(
    near: FloatArray,
    far: FloatArray,
    u_near: FloatArray,
    u_far: FloatArray,
    tails_near: FloatArray,
    tails_far: FloatArray,
    signed_sigma: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """int_{u_near}^{u_far} g(x_near + signed_sigma (u - u_near)) phi_N(u) du for 0 <= u_near < u_far <= inf.

    ``near`` and ``far`` are the Taylor coefficients of g at the two ends (shape (degree+1, n); ``far``
    is ignored where u_far is infinite), ``tails_near`` and ``tails_far`` the tail moments P_k there
    (at least degree+1 rows). Returns (value, magnitude), the magnitude being the sum of the absolute
    values of the terms.
    """
    degree = near.shape[0] - 1
    finite_far = np.isfinite(u_far)
    powers = signed_sigma ** np.arange(degree + 1)[:, None]
    near_terms = near * powers
    with np.errstate(invalid="ignore", over="ignore"):
        span = u_far - u_near
        narrow = finite_far & (span * np.maximum(1.0, u_far) <= _NARROW)
    value = np.zeros(u_near.shape)
    magnitude = np.zeros(u_near.shape)
    wide = ~narrow
    if wide.any():
        near_products = tails_near[: degree + 1, wide] * near_terms[:, wide]
        near_part = near_products.sum(axis=0)
        near_size = np.abs(near_products).sum(axis=0)
        far_terms = np.where(finite_far[wide], far[:, wide], 0.0) * powers[:, wide]
        far_products = np.where(finite_far[wide], tails_far[: degree + 1, wide], 0.0) * far_terms
        far_part = far_products.sum(axis=0)
        far_size = np.abs(far_products).sum(axis=0)
        value[wide] = near_part - far_part
        magnitude[wide] = near_size + far_size
    if narrow.any():
        nodes, weights = _gauss_legendre()
        half = 0.5 * span[narrow]
        offset = half[:, None] * (nodes + 1.0)  # u - u_near at the nodes, shape (n, nodes)
        density = normal_pdf(u_near[narrow][:, None] + offset) * (half[:, None] * weights)
        terms = near_terms[:, narrow][:, :, None] * offset[None] ** np.arange(degree + 1)[:, None, None]
        value[narrow] = (terms.sum(axis=0) * density).sum(axis=1)
        magnitude[narrow] = (np.abs(terms).sum(axis=0) * density).sum(axis=1)
    return value, magnitude


def _end_coefficients(
    coefficients: FloatArray, lower: float, upper: float, mean: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Taylor coefficients of g at the lower end, the upper end and the mean (each (degree+1, n)).

    The coefficients at the mean are expanded from the nearest finite end, g(end + d) with
    d = mean - end, so that a mean next to a root of g (hardswish at -3 + 1e-4) loses nothing to
    cancellation; infinite ends give zeros (their tails vanish).
    """
    shape = mean.shape
    zero = np.zeros((len(coefficients), *shape))
    at_lower = _taylor(coefficients, np.full(shape, lower)) if math.isfinite(lower) else zero
    at_upper = _taylor(coefficients, np.full(shape, upper)) if math.isfinite(upper) else zero
    if math.isfinite(lower) and math.isfinite(upper):
        use_lower = np.abs(mean - lower) <= np.abs(mean - upper)
        from_lower = _taylor(_taylor(coefficients, np.array(lower)), mean - lower)
        from_upper = _taylor(_taylor(coefficients, np.array(upper)), mean - upper)
        at_mean = np.where(use_lower, from_lower, from_upper)
    elif math.isfinite(lower):
        at_mean = _taylor(_taylor(coefficients, np.array(lower)), mean - lower)
    elif math.isfinite(upper):
        at_mean = _taylor(_taylor(coefficients, np.array(upper)), mean - upper)
    else:
        at_mean = _taylor(coefficients, mean)
    return at_lower, at_upper, at_mean


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
    with np.errstate(invalid="ignore"):
        first_ok = (moments.first_magnitude <= RELATIVE_BUDGET * np.abs(moments.first)) | (
            moments.first_magnitude <= ABSOLUTE_BUDGET * moments.abs_first
        )
        second_ok = moments.second_magnitude <= RELATIVE_BUDGET * moments.second
        deriv_ok = moments.deriv_second_magnitude <= RELATIVE_BUDGET * moments.deriv_second
        finite = np.isfinite(moments.first) & np.isfinite(moments.second) & np.isfinite(moments.deriv_second)
    return np.asarray(first_ok & second_ok & deriv_ok & finite, dtype=np.bool_)


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
class PiecewisePolynomial:
    """phi(x) = sum_j coefficients[k][j] x^j on [breaks[k-1], breaks[k]) (breaks[-1] = -inf, ...).

    Attributes:
        breaks: increasing interior breakpoints (the kinks).
        coefficients: ``len(breaks) + 1`` tuples of ascending polynomial coefficients, degree <= 2.

    Example:
        >>> relu = PiecewisePolynomial((0.0,), ((0.0,), (0.0, 1.0)))
        >>> [float(m[0]) for m in relu.moments(np.array([0.0]), np.array([1.0])).values]
        [0.3989422804014327, 0.5, 0.5]
    """

    breaks: tuple[float, ...]
    coefficients: tuple[tuple[float, ...], ...]
    _pieces: tuple[tuple[float, float, FloatArray, FloatArray, FloatArray], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if len(self.coefficients) != len(self.breaks) + 1:
            raise ValueError("a piecewise polynomial needs one coefficient tuple per piece (len(breaks) + 1)")
        if list(self.breaks) != sorted(self.breaks):
            raise ValueError(f"breakpoints must increase, got {self.breaks}")
        edges = [-math.inf, *self.breaks, math.inf]
        pieces = []
        for k, coefficients in enumerate(self.coefficients):
            phi = np.asarray(coefficients, dtype=np.float64)
            square = npoly.polymul(phi, phi)
            slope = np.asarray(npoly.polyder(phi) if len(phi) > 1 else np.zeros(1), dtype=np.float64)
            slope_square = npoly.polymul(slope, slope)
            # Split where phi changes sign (for E[|phi|]) and where phi' vanishes: every zero of
            # phi, phi^2 and phi'^2 is then a piece end, from which Taylor coefficients are exact.
            for lower, upper in _split_at_roots(edges[k], edges[k + 1], coefficients, slope):
                pieces.append((lower, upper, phi, np.atleast_1d(square), np.atleast_1d(slope_square)))
        object.__setattr__(self, "_pieces", tuple(pieces))

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
        mu, variance = mean.ravel(), var.ravel()
        sigma = np.sqrt(np.maximum(variance, 0.0))
        random = sigma > 0
        rows = np.zeros((3, mu.size))
        sizes = np.zeros((3, mu.size))
        abs_first = np.zeros(mu.size)
        m, s = mu[random], sigma[random]
        # Tail integrals I_0..I_4 at every piece end (|z| of each breakpoint and root) and at the mean.
        ends = {end for piece in self._pieces for end in piece[:2] if math.isfinite(end)}
        tails = {end: tail_moments(np.abs((end - m) / s), _MAX_DEGREE) for end in ends}
        tails_mean = np.repeat(tail_moments(np.zeros(1), _MAX_DEGREE), m.size, axis=1)
        no_tails = np.zeros_like(tails_mean)
        for lower, upper, *polys in self._pieces:
            tails_lower = tails.get(lower, no_tails)
            tails_upper = tails.get(upper, no_tails)
            z_lower = (lower - m) / s if math.isfinite(lower) else np.full(m.shape, -math.inf)
            z_upper = (upper - m) / s if math.isfinite(upper) else np.full(m.shape, math.inf)
            right = z_upper > 0
            left = z_lower < 0
            piece_first = np.zeros(m.shape)
            for row, poly in enumerate(polys):
                at_lower, at_upper, at_mean = _end_coefficients(poly, lower, upper, m)
                total = np.zeros(m.shape)
                size = np.zeros(m.shape)
                if right.any():
                    starts_right = z_lower[right] >= 0
                    near = np.where(starts_right, at_lower[:, right], at_mean[:, right])
                    u_near = np.where(starts_right, z_lower[right], 0.0)
                    value, magnitude = _one_sided(
                        near,
                        at_upper[:, right],
                        u_near,
                        z_upper[right],
                        np.where(starts_right, tails_lower[:, right], tails_mean[:, right]),
                        tails_upper[:, right],
                        s[right],
                    )
                    total[right] += value
                    size[right] += magnitude
                if left.any():
                    ends_left = z_upper[left] <= 0
                    near = np.where(ends_left, at_upper[:, left], at_mean[:, left])
                    u_near = np.where(ends_left, -z_upper[left], 0.0)
                    value, magnitude = _one_sided(
                        near,
                        at_lower[:, left],
                        u_near,
                        -z_lower[left],
                        np.where(ends_left, tails_upper[:, left], tails_mean[:, left]),
                        tails_lower[:, left],
                        -s[left],
                    )
                    total[left] += value
                    size[left] += magnitude
                rows[row, random] += total
                sizes[row, random] += size
                if row == 0:
                    piece_first = total
            abs_first[random] += np.abs(piece_first)
        if (~random).any():
            point = mu[~random]
            rows[0, ~random] = self(point)
            rows[1, ~random] = rows[0, ~random] ** 2
            rows[2, ~random] = self.derivative(point) ** 2
            sizes[:, ~random] = np.abs(rows[:, ~random])
            abs_first[~random] = np.abs(rows[0, ~random])
            # Exactly at a kink phi' is a convention (torch's differs between activations): leave
            # those points to the activation's own derivative (invalid here).
            on_kink = np.isin(point, np.asarray(self.breaks))
            sizes[2, np.flatnonzero(~random)[on_kink]] = np.inf
        return Moments(
            first=rows[0].reshape(shape),
            second=rows[1].reshape(shape),
            deriv_second=rows[2].reshape(shape),
            first_magnitude=sizes[0].reshape(shape),
            second_magnitude=sizes[1].reshape(shape),
            deriv_second_magnitude=sizes[2].reshape(shape),
            abs_first=abs_first.reshape(shape),
        )
