"""Exact Gaussian moments of the ELU family (elu, celu, selu) at any mean, without overflow.

The family: phi(x) = scale * x for x > 0 and scale * c * expm1(x / lam) for x <= 0
(elu: c = alpha, lam = 1; celu: c = lam = alpha; selu: elu(alpha_selu) times scale_selu).
With y ~ N(mean, sigma^2) and w = y / lam ~ N(m, s^2), m = mean / lam, s = sigma / lam:

    E[phi]    / scale   = E[y; y > 0]   + c   N1,   N1 = E[expm1(w); w < 0]
    E[phi^2]  / scale^2 = E[y^2; y > 0] + c^2 N2,   N2 = E[expm1(w)^2; w < 0]
    E[phi'^2] / scale^2 = P(y > 0)      + (c/lam)^2 F(2),

where F(k) = E[e^{k w}; w < 0] = e^{k m + k^2 s^2 / 2} Phi(-m/s - k s) (complete the square). The
positive parts are relu's moments (``_closed_forms_piecewise``). For mean 0 these reduce to the seed's
corrected formulas: with A = erfcx(s/sqrt 2)/2 and B = erfcx(sqrt 2 s)/2, F(1) = A, F(2) = B,
N1 = A - 1/2 and N2 = B - 2A + 1/2 (seed.md, notes).

Overflow. e^{k m + k^2 s^2/2} overflows for s ~ 38 while Phi(...) underflows. With t = k s + m/s >= 0,
e^{k m + k^2 s^2/2} Phi(-t) = phi_N(m/s) R(t) exactly (the exponents cancel), with the Mills ratio
R(t) = sqrt(pi/2) erfcx(t/sqrt 2); for t < 0 the exponent k m + k^2 s^2/2 < -k^2 s^2/2 is negative.

Cancellation. The direct N1 = F(1) - F(0), N2 = F(2) - 2 F(1) + F(0) lose digits when expm1(w) is
small where the mass is (s << 1: N2 ~ s^2 / 2 from terms of size 1/2). Two other exact forms are
computed and the one whose terms have the smallest total magnitude is used:

* m >= 0 (the region w < 0 is a tail): expand expm1(x) = sum_k x^k / k! and
  expm1(x)^2 = sum_k (2^k - 2) x^k / k! about x = 0, so with u0 = m / s and the Mills-ratio moments
  I_k (``tail_moments`` gives phi_N(u) I_k(u)), N1 = phi_N(u0) sum_k (-s)^k I_k(u0) / k!,
  N2 = phi_N(u0) sum_k (2^k - 2) (-s)^k I_k(u0) / k! (60 terms);
* m < 0: subtract the upper tail from the full expectation,
  N1 = expm1(m + s^2/2) - phi_N(z0) sum_k s^k I_k(z0) / k!,
  N2 = expm1(b)^2 + e^{2b} expm1(s^2) - phi_N(z0) sum_k (2^k - 2) s^k I_k(z0) / k!, b = m + s^2/2,
  z0 = -m / s (E[e^{kw}] = e^{k m + k^2 s^2/2}).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

from ._closed_forms_piecewise import Moments, PiecewisePolynomial, normal_pdf, tail_moments

__all__ = ["ExponentialLinear"]

FloatArray = NDArray[np.float64]

_SQRT_HALF_PI = 1.2533141373155003  # sqrt(pi/2): R(t) = sqrt(pi/2) erfcx(t/sqrt 2)
_SQRT_HALF = 0.7071067811865476  # 1/sqrt(2)
_SERIES_TERMS = 60  # terms of the expm1 series; it is only used where its last terms are below 1e-18 of the sum
_RELU = PiecewisePolynomial((0.0,), ((0.0,), (0.0, 1.0)))
_FACTORIALS = np.array([math.factorial(k) for k in range(_SERIES_TERMS + 1)], dtype=np.float64)
# expm1(x)^2 = e^{2x} - 2 e^x + 1 = sum_{k >= 1} (2^k - 2) x^k / k! (the k = 0 terms cancel: 1 - 2 + 1)
_SQUARE_COEFFICIENTS = np.array([0.0] + [2.0**k - 2.0 for k in range(1, _SERIES_TERMS + 1)])


def _exp_below_zero(k: float, mean: FloatArray, sigma: FloatArray) -> FloatArray:
    """F(k) = E[e^{k w}; w < 0] for w ~ N(mean, sigma^2), sigma > 0, without overflow."""
    z0 = -mean / sigma
    shift = k * sigma - z0  # t in the module docstring
    with np.errstate(over="ignore", invalid="ignore"):
        mills = normal_pdf(z0) * _SQRT_HALF_PI * special.erfcx(np.maximum(shift, 0.0) * _SQRT_HALF)
        completed = np.exp(np.minimum(k * mean + 0.5 * k * k * sigma * sigma, 0.0)) * special.ndtr(-shift)
    return np.asarray(np.where(shift >= 0, mills, completed), dtype=np.float64)


def _series(weights: FloatArray, u: FloatArray, moments: FloatArray, step: FloatArray) -> tuple[FloatArray, FloatArray]:
    """phi_N(u) sum_k weights_k step^k I_k(u) / k! and the sum of the absolute terms (u >= 0).

    ``moments`` are ``tail_moments(u, _SERIES_TERMS)`` = phi_N(u) I_k(u).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        powers = step[None, :] ** np.arange(_SERIES_TERMS + 1)[:, None]
        terms = (weights / _FACTORIALS)[:, None] * powers * moments
        size = np.abs(terms).sum(axis=0)
        # Truncation: the series is used only where its last terms are negligible.
        converged = np.abs(terms[-4:]).max(axis=0) <= 1e-18 * size
        return terms.sum(axis=0), np.where(converged, size, np.inf)


def _pick(candidates: list[tuple[FloatArray, FloatArray]]) -> tuple[FloatArray, FloatArray]:
    """Per element, the (value, magnitude) pair with the smallest finite magnitude."""
    values = np.stack([value for value, _ in candidates])
    sizes = np.stack([size for _, size in candidates])
    sizes = np.where(np.isfinite(sizes) & np.isfinite(values), sizes, np.inf)
    best = np.argmin(sizes, axis=0)
    index = np.arange(values.shape[1])
    return values[best, index], sizes[best, index]


def _negative_part(mean: FloatArray, sigma: FloatArray) -> tuple[FloatArray, ...]:
    """N1, its magnitude, N2, its magnitude and F(2) for w ~ N(mean, sigma^2), sigma > 0 (1-D arrays)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _negative_part_unguarded(mean, sigma)


def _negative_part_unguarded(mean: FloatArray, sigma: FloatArray) -> tuple[FloatArray, ...]:
    f0 = special.ndtr(-mean / sigma)
    f1 = _exp_below_zero(1.0, mean, sigma)
    f2 = _exp_below_zero(2.0, mean, sigma)
    first = [(f1 - f0, f1 + f0)]
    second = [(f2 - 2.0 * f1 + f0, f2 + 2.0 * f1 + f0)]
    ones = np.where(np.arange(_SERIES_TERMS + 1) >= 1, 1.0, 0.0)
    upper = mean >= 0
    u = np.abs(mean) / sigma
    # m >= 0: the lower tail w < 0 expanded about w = 0 (steps of -sigma).
    moments = tail_moments(u, _SERIES_TERMS)
    lower_first = _series(ones, u, moments, -sigma)
    lower_second = _series(_SQUARE_COEFFICIENTS, u, moments, -sigma)
    # m < 0: everything minus the upper tail w > 0.
    with np.errstate(over="ignore", invalid="ignore"):
        centre = mean + 0.5 * sigma * sigma
        full_first = np.expm1(centre)
        full_second = np.expm1(centre) ** 2 + np.exp(2.0 * centre) * np.expm1(sigma * sigma)
    upper_first = _series(ones, u, moments, sigma)
    upper_second = _series(_SQUARE_COEFFICIENTS, u, moments, sigma)
    first.append(
        (
            np.where(upper, lower_first[0], full_first - upper_first[0]),
            np.where(upper, lower_first[1], np.abs(full_first) + upper_first[1]),
        )
    )
    second.append(
        (
            np.where(upper, lower_second[0], full_second - upper_second[0]),
            np.where(upper, lower_second[1], np.abs(full_second) + upper_second[1]),
        )
    )
    n1, n1_size = _pick(first)
    n2, n2_size = _pick(second)
    return n1, n1_size, n2, n2_size, f2


class ExponentialLinear:
    """phi(x) = scale x (x > 0), scale coefficient expm1(x / length) (x <= 0); moments at any mean.

    Args:
        coefficient: the negative-side amplitude (elu's and celu's alpha).
        length: the exponential's length scale (1 for elu and selu, alpha for celu; must be > 0).
        scale: overall factor (selu's 1.0507...; 1 otherwise).

    Example:
        >>> elu = ExponentialLinear(1.0)
        >>> round(float(elu.moments(np.array(0.0), np.array(1.0)).second), 15)
        0.644945417492924
    """

    def __init__(self, coefficient: float, length: float = 1.0, scale: float = 1.0) -> None:
        if not length > 0:
            raise ValueError(f"the exponential length scale must be positive, got {length!r}")
        self.coefficient = float(coefficient)
        self.length = float(length)
        self.scale = float(scale)

    def function(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore"):
            negative = self.coefficient * np.expm1(np.minimum(x, 0.0) / self.length)
        return self.scale * np.where(x > 0, x, negative)

    def derivative(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        negative = self.coefficient / self.length * np.exp(np.minimum(x, 0.0) / self.length)
        return self.scale * np.where(x > 0, 1.0, negative)

    def moments(self, mean: FloatArray, var: FloatArray) -> Moments:
        """E[phi(y)], E[phi(y)^2], E[phi'(y)^2] with magnitudes and E[|phi|]; var == 0: point values."""
        mean, var = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64))
        shape = mean.shape
        mu, variance = mean.ravel(), var.ravel()
        positive = _RELU.moments(mu, variance)
        c, lam, scale = self.coefficient, self.length, self.scale
        first = positive.first.copy()
        second = positive.second.copy()
        deriv = positive.deriv_second.copy()
        first_size = positive.first_magnitude.copy()
        second_size = positive.second_magnitude.copy()
        deriv_size = positive.deriv_second_magnitude.copy()
        abs_first = positive.abs_first.copy()
        random = variance > 0
        if random.any():
            sigma = np.sqrt(variance[random])
            n1, n1_size, n2, n2_size, f2 = _negative_part(mu[random] / lam, sigma / lam)
            first[random] += c * n1
            first_size[random] += abs(c) * n1_size
            abs_first[random] += abs(c) * np.abs(n1)
            second[random] += c * c * n2
            second_size[random] += c * c * n2_size
            deriv[random] += (c / lam) ** 2 * f2
            deriv_size[random] += (c / lam) ** 2 * f2
        if (~random).any():
            point = mu[~random]
            value = self.function(point) / scale
            slope = self.derivative(point) / scale
            first[~random], second[~random], deriv[~random] = value, value**2, slope**2
            first_size[~random] = abs_first[~random] = np.abs(value)
            second_size[~random], deriv_size[~random] = value**2, slope**2

        def out(array: FloatArray, factor: float) -> FloatArray:
            return np.asarray(factor * array, dtype=np.float64).reshape(shape)

        return Moments(
            first=out(first, scale),
            second=out(second, scale * scale),
            deriv_second=out(deriv, scale * scale),
            first_magnitude=out(first_size, abs(scale)),
            second_magnitude=out(second_size, scale * scale),
            deriv_second_magnitude=out(deriv_size, scale * scale),
            abs_first=out(abs_first, abs(scale)),
        )
