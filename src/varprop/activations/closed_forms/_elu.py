"""Exact Gaussian moments of the ELU family (elu, celu, selu) at any mean, without overflow.

The family: phi(x) = scale * x for x > 0 and scale * c * expm1(x / lam) for x <= 0
(elu: c = alpha, lam = 1; celu: c = lam = alpha; selu: elu(alpha_selu) times scale_selu).
With y ~ N(mean, sigma^2) and w = y / lam ~ N(m, s^2), m = mean / lam, s = sigma / lam, a = -m/s:

    E[phi]    / scale   = E[y; y > 0]   + c   N1,   N1 = E[expm1(w); w < 0]
    E[phi^2]  / scale^2 = E[y^2; y > 0] + c^2 N2,   N2 = E[expm1(w)^2; w < 0]
    E[phi'^2] / scale^2 = P(y > 0)      + (c/lam)^2 F(2),

where F(k) = E[e^{k w}; w < 0] = e^{k m + k^2 s^2 / 2} Phi(a - k s) (complete the square). The
positive parts are relu's (``_piecewise.relu_parts``). For mean 0 these reduce to the
seed's corrected formulas: with A = erfcx(s/sqrt 2)/2 and B = erfcx(sqrt 2 s)/2, F(1) = A, F(2) = B,
N1 = A - 1/2 and N2 = B - 2A + 1/2 (seed.md, notes).

Overflow. e^{k m + k^2 s^2/2} overflows for s ~ 38 while Phi(...) underflows. With x = a - k s <= 0,
e^{k m + k^2 s^2/2} Phi(x) = phi_N(a) R(-x) exactly (the exponents cancel), with the Mills ratio
R(t) = sqrt(pi/2) erfcx(t/sqrt 2); for x > 0 the exponent k m + k^2 s^2/2 = -k s x - k^2 s^2/2 is negative.

Three exact forms of N1 and N2, each with its magnitude (sum of the absolute values of its terms):

* direct: N1 = F(1) - F(0), N2 = F(2) - 2 F(1) + F(0); a handful of ufunc calls, fine where the
  negative side is not a small difference (s >~ 0.4, or the tail w < 0 is negligible next to the
  positive part). It cancels where expm1(w) is small on the mass (s << 1, |m| << 1: N2 ~ s^2/2 from
  terms of size 1/2).
* full expectation, where the Gaussian (also tilted by e^{2w}) lies below 0, a - 2 s >= 9:
  N1 = expm1(b), N2 = expm1(b)^2 + e^{2b} expm1(s^2), b = m + s^2/2 (E[e^{k w}] = e^{k m + k^2 s^2/2};
  the neglected upper tails are below Q(9) = 1e-19 of the terms).
* Taylor series about the mean, for s small: h(m + s z) = sum_j h^(j)(m) s^j z^j / j! (h = expm1 or
  expm1^2, h^(j)(m) = e^m resp. 2 e^m expm1(m + (j - 1) ln 2) for j >= 1), integrated against the
  standard normal below a: N = sum_j h^(j)(m) s^j T_j(a) / j!, T_j(a) = int_{-inf}^a z^j phi_N(z) dz.
  With v = |a| and U_j(v) = int_v^inf z^j phi_N = phi_N(v) p_j(v) + (j-1)!! Q(v) [j even]
  (p_1 = 1, p_j = v^{j-1} + (j-1) p_{j-2}: all coefficients >= 0, no cancellation), T_j = (-1)^j U_j
  for a <= 0 and E[z^j] - U_j (>= E[z^j]/2 for even j) for a > 0. 36 terms, tried for s <= 0.8 and
  used where the last two are below 5e-17 of the sum.

The direct and full forms are evaluated everywhere; where their result is not comfortably within the
rounding budget the series is computed too, and for N1 and N2 separately the candidate with the
smaller magnitude is used. ``ExponentialLinear.point`` is the same arithmetic with Python floats for a
single point (its series stops as soon as it has converged). Against the 40-digit mpmath grid
(tests/reference) the worst error is a fifth of the tests' tolerance.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray
from scipy import special

from .._kernels import exponential_linear
from ._piecewise import Moments, relu_parts, relu_parts_point

__all__ = ["ExponentialLinear"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
_SQRT_HALF_PI = 1.2533141373155003  # sqrt(pi/2): R(t) = sqrt(pi/2) erfcx(t/sqrt 2)
_SQRT_HALF = 0.7071067811865476  # 1/sqrt(2)
_FULL_LIMIT = 9.0  # a - 2 s >= 9: the upper tails of w, e^w w and e^{2w} w are below Q(9) = 1e-19
_SERIES_TERMS = 36  # terms of the Taylor series about the mean (converged for s <~ 0.7 near m = 0)
_SERIES_TOLERANCE = 5e-17  # the series is used where its last two terms are below this fraction of the sum
# The direct form is taken without trying the series when its magnitudes are this far inside the
# budget: its terms carry ~3 ulps, so 1.5 E[|phi|] keeps E[phi] within the tests' 1e-15 E[|phi|]
# (the relative budget, 20 |result| ~ 1e-14 of it, is already well inside their 1e-13).
_COMFORTABLE_RELATIVE = 20.0
_COMFORTABLE_ABSOLUTE = 1.5
_SERIES_MAX_S = 0.8  # beyond, 36 terms do not converge ((s sqrt(36))^36 / 36! > 1e-17)


@functools.lru_cache(maxsize=1)
def _series_tables() -> tuple[FloatArray, ...]:
    """p_j coefficients (transposed), (j-1)!! for even j, (-1)^j, 1/j! and (j - 1) ln 2, j < _SERIES_TERMS."""
    terms = _SERIES_TERMS
    polynomials = np.zeros((terms, terms))  # polynomials[j, i]: coefficient of v^i in p_j
    for j in range(1, terms):
        polynomials[j, j - 1] = 1.0
        if j >= 2:
            polynomials[j] += (j - 1) * polynomials[j - 2]
    double_factorials = np.array([math.prod(range(j - 1, 0, -2)) if j % 2 == 0 else 0 for j in range(terms)], float)
    signs = np.asarray((-1.0) ** np.arange(terms), dtype=np.float64)
    inverse_factorials = np.array([1.0 / math.factorial(j) for j in range(terms)])
    shifts = np.asarray((np.arange(terms) - 1.0) * math.log(2.0), dtype=np.float64)
    return np.ascontiguousarray(polynomials.T), double_factorials, signs, inverse_factorials, shifts


def _exp_below_zero(k: float, s: FloatArray, a: FloatArray, pdf_a: FloatArray) -> FloatArray:
    """F(k) = E[e^{k w}; w < 0] for w ~ N(-a s, s^2), s > 0, without overflow (pdf_a = phi_N(a))."""
    x = a - k * s
    mills = pdf_a * _SQRT_HALF_PI * special.erfcx(-np.minimum(x, 0.0) * _SQRT_HALF)
    positive = np.maximum(x, 0.0)
    completed = np.exp(-k * s * positive - 0.5 * k * k * s * s) * special.ndtr(positive)
    return np.asarray(np.where(x <= 0, mills, completed), dtype=np.float64)


def _exp_below_zero_point(k: float, s: float, a: float, pdf_a: float) -> float:
    """``_exp_below_zero`` for Python floats."""
    x = a - k * s
    if x <= 0:
        return pdf_a * _SQRT_HALF_PI * float(special.erfcx(-x * _SQRT_HALF))
    return math.exp(-k * s * x - 0.5 * k * k * s * s) * float(special.ndtr(x))


def _series_point(m: float, s: float, a: float) -> tuple[float, float, float, float]:
    """``_series`` for Python floats (U_j by its recurrence U_j = v^{j-1} phi_N(v) + (j - 1) U_{j-2})."""
    v = min(abs(a), 40.0)
    pdf = _INV_SQRT_2PI * math.exp(-0.5 * v * v)
    exp_m, expm1_m = math.exp(m), math.expm1(m)
    log2 = math.log(2.0)
    upper = [float(special.ndtr(-v)), pdf]  # U_0, U_1
    first_terms: list[float] = []
    second_terms: list[float] = []
    first_size = second_size = 0.0
    scaled_power, v_power, double_factorial = 1.0, 1.0, 1.0  # s^j / j!, v^(j-1), (j-1)!!
    for j in range(_SERIES_TERMS):
        if j >= 2:
            v_power *= v
            upper.append(v_power * pdf + (j - 1) * upper[j - 2])
        if j >= 1:
            scaled_power *= s / j
        even = j % 2 == 0
        if even and j >= 2:
            double_factorial *= j - 1
        # T_j(a) = E[z^j] - U_j(|a|) for a >= 0, (-1)^j U_j(|a|) for a < 0
        moment = double_factorial if even else 0.0
        truncated = moment - upper[j] if a >= 0 else (upper[j] if even else -upper[j])
        base = scaled_power * truncated
        if j == 0:
            first_terms.append(base * expm1_m)
            second_terms.append(base * expm1_m * expm1_m)
        else:
            first_terms.append(base * exp_m)
            second_terms.append(base * 2.0 * exp_m * math.expm1(m + (j - 1) * log2))
        first_size += abs(first_terms[-1])
        second_size += abs(second_terms[-1])
        if j >= 4 and _settled(first_terms, first_size) and _settled(second_terms, second_size):
            break  # the remaining terms are smaller still: the sums are final
    first_ok, second_ok = _settled(first_terms, first_size), _settled(second_terms, second_size)
    return (
        sum(first_terms),
        first_size if first_ok else math.inf,
        sum(second_terms),
        second_size if second_ok else math.inf,
    )


def _settled(terms: list[float], size: float) -> bool:
    """The convergence test of the series: its last two terms are below _SERIES_TOLERANCE of the sum."""
    return max(abs(terms[-1]), abs(terms[-2])) <= _SERIES_TOLERANCE * size


def _series(m: FloatArray, s: FloatArray, a: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """N1, its magnitude, N2, its magnitude by the Taylor series about the mean (inf magnitude: not converged)."""
    polynomials, double_factorials, signs, inverse_factorials, shifts = _series_tables()
    terms = _SERIES_TERMS
    v = np.minimum(np.abs(a), 40.0)  # beyond 40 the tails U_j vanish in float64
    powers = np.empty((v.size, terms))
    powers[:, 0] = 1.0
    powers[:, 1:] = v[:, None]
    np.multiply.accumulate(powers[:, 1:], axis=1, out=powers[:, 1:])
    upper = (_INV_SQRT_2PI * np.exp(-0.5 * v * v))[:, None] * (powers @ polynomials)
    upper += special.ndtr(-v)[:, None] * double_factorials  # U_j(v)
    truncated = np.where((a >= 0)[:, None], double_factorials - upper, signs * upper)  # T_j(a)
    powers[:, 1:] = s[:, None]
    np.multiply.accumulate(powers[:, 1:], axis=1, out=powers[:, 1:])
    scaled = powers * inverse_factorials * truncated  # s^j T_j(a) / j!
    first_terms = scaled * np.exp(m)[:, None]
    first_terms[:, 0] = scaled[:, 0] * np.expm1(m)
    second_terms = scaled * (2.0 * np.exp(m)[:, None] * np.expm1(m[:, None] + shifts))
    second_terms[:, 0] = scaled[:, 0] * np.expm1(m) ** 2
    out = []
    for series in (first_terms, second_terms):
        size = np.abs(series).sum(axis=1)
        converged = np.abs(series[:, -2:]).max(axis=1) <= _SERIES_TOLERANCE * size
        out += [series.sum(axis=1), np.where(converged, size, np.inf)]
    return out[0], out[1], out[2], out[3]


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
        # input_scale = 1 / length, as torch's celu: the definition's kernel, to the last bit.
        self._function, self._derivative = exponential_linear(self.scale, self.coefficient, 1.0 / self.length)

    def function(self, x: FloatArray) -> FloatArray:
        """phi, torch's ELU kernel (the definition's own, ``activations._kernels``)."""
        return self._function(np.asarray(x, dtype=np.float64))

    def derivative(self, x: FloatArray) -> FloatArray:
        """phi', as the definition's."""
        return self._derivative(np.asarray(x, dtype=np.float64))

    def moments(self, mean: FloatArray, var: FloatArray) -> Moments:
        """E[phi(y)], E[phi(y)^2], E[phi'(y)^2] with magnitudes and E[|phi|]; var == 0: point values."""
        mean, var = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64))
        shape = mean.shape
        mu = mean.reshape(-1)
        sigma = np.sqrt(np.maximum(var.reshape(-1), 0.0))
        with np.errstate(all="ignore"):
            rows = self._random(mu, sigma)
        point = ~(sigma > 0)
        if point.any():
            value = self.function(mu[point]) / self.scale
            slope = self.derivative(mu[point]) / self.scale
            exact_rows = (value, np.abs(value), value**2, value**2, slope**2, slope**2, np.abs(value))
            for row, exact in zip(rows, exact_rows, strict=True):
                row[point] = exact
        factors = (
            self.scale,
            abs(self.scale),
            self.scale**2,
            self.scale**2,
            self.scale**2,
            self.scale**2,
            abs(self.scale),
        )
        first, first_size, second, second_size, deriv, deriv_size, abs_first = (
            np.asarray(factor * row, dtype=np.float64).reshape(shape) for factor, row in zip(factors, rows, strict=True)
        )
        return Moments(
            first=first,
            second=second,
            deriv_second=deriv,
            first_magnitude=first_size,
            second_magnitude=second_size,
            deriv_second_magnitude=deriv_size,
            abs_first=abs_first,
        )

    def point(self, mu: float, sigma: float) -> tuple[float, ...]:
        """(E[phi], E[phi^2], E[phi'^2], their magnitudes, E[|phi|]) at one (mean, sigma > 0), Python floats.

        The arithmetic of ``moments`` (see ``_random``) for a single point, several times faster than arrays.
        """
        c, lam, scale = self.coefficient, self.length, self.scale
        positive, _, positive_square, _, positive_mass, negative_mass = relu_parts_point(mu, sigma)
        m, s = mu / lam, sigma / lam
        a = -m / s
        pdf_a = _INV_SQRT_2PI * math.exp(-0.5 * a * a)
        f1 = _exp_below_zero_point(1.0, s, a, pdf_a)
        f2 = _exp_below_zero_point(2.0, s, a, pdf_a)
        n1, n1_size = f1 - negative_mass, f1 + negative_mass
        n2, n2_size = f2 - 2.0 * f1 + negative_mass, f2 + 2.0 * f1 + negative_mass
        if a - 2.0 * s >= _FULL_LIMIT:
            centre = m + 0.5 * s * s
            n1 = math.expm1(centre)
            n1_size = abs(n1)
            n2 = n2_size = n1 * n1 + math.exp(2.0 * centre) * math.expm1(s * s)
        square = c * c
        first, first_size = positive + c * n1, positive + abs(c) * n1_size
        second, second_size = positive_square + square * n2, positive_square + square * n2_size
        comfortable = (
            first_size <= _COMFORTABLE_RELATIVE * abs(first)
            or first_size <= _COMFORTABLE_ABSOLUTE * (positive + abs(c) * abs(n1))
        ) and second_size <= _COMFORTABLE_RELATIVE * second
        if not comfortable and s <= _SERIES_MAX_S:
            s1, s1_size, s2, s2_size = _series_point(m, s, a)
            if s1_size < (n1_size if math.isfinite(n1) else math.inf):
                n1, n1_size = s1, s1_size
            if s2_size < (n2_size if math.isfinite(n2) else math.inf):
                n2, n2_size = s2, s2_size
        deriv = scale * scale * (positive_mass + (c / lam) ** 2 * f2)
        return (
            scale * (positive + c * n1),
            scale * scale * (positive_square + square * n2),
            deriv,
            abs(scale) * (positive + abs(c) * n1_size),
            scale * scale * (positive_square + square * n2_size),
            deriv,
            abs(scale) * (positive + abs(c) * abs(n1)),
        )

    def _random(self, mu: FloatArray, sigma: FloatArray) -> list[FloatArray]:
        """E[phi], magnitude, E[phi^2], magnitude, E[phi'^2] (twice) and E[|phi|], all over scale^k."""
        c, lam = self.coefficient, self.length
        positive, _, positive_square, _, positive_mass, negative_mass = relu_parts(mu, sigma)
        m, s = mu / lam, sigma / lam
        a = -m / s
        pdf_a = _INV_SQRT_2PI * np.exp(-0.5 * a * a)
        f1 = _exp_below_zero(1.0, s, a, pdf_a)
        f2 = _exp_below_zero(2.0, s, a, pdf_a)
        n1, n1_size = f1 - negative_mass, f1 + negative_mass  # F(0) = P(w < 0) = P(y < 0)
        n2, n2_size = f2 - 2.0 * f1 + negative_mass, f2 + 2.0 * f1 + negative_mass
        full = a - 2.0 * s >= _FULL_LIMIT
        if full.any():
            centre = m + 0.5 * s * s
            whole = np.expm1(centre)
            whole_square = whole * whole + np.exp(2.0 * centre) * np.expm1(s * s)
            n1, n1_size = np.where(full, whole, n1), np.where(full, np.abs(whole), n1_size)
            n2, n2_size = np.where(full, whole_square, n2), np.where(full, whole_square, n2_size)
        unsettled = ~_comfortable(positive, positive_square, c, n1, n1_size, n2, n2_size) & (s <= _SERIES_MAX_S)
        if unsettled.any():
            index = np.flatnonzero(unsettled)
            series = _series(m[index], s[index], a[index])
            for value, size, candidate, candidate_size in ((n1, n1_size, *series[:2]), (n2, n2_size, *series[2:])):
                better = candidate_size < np.where(np.isfinite(value[index]), size[index], np.inf)
                value[index[better]], size[index[better]] = candidate[better], candidate_size[better]
        square = c * c
        first, first_size = positive + c * n1, positive + abs(c) * n1_size
        second, second_size = positive_square + square * n2, positive_square + square * n2_size
        deriv = positive_mass + (c / lam) ** 2 * f2
        return [first, first_size, second, second_size, deriv, deriv.copy(), positive + abs(c) * np.abs(n1)]


def _comfortable(
    positive: FloatArray,
    positive_square: FloatArray,
    c: float,
    n1: FloatArray,
    n1_size: FloatArray,
    n2: FloatArray,
    n2_size: FloatArray,
) -> BoolArray:
    """Where the moments from (n1, n2) are well inside the rounding budget (no need to try the series)."""
    first, first_size = positive + c * n1, positive + abs(c) * n1_size
    abs_first = positive + abs(c) * np.abs(n1)
    second, second_size = positive_square + c * c * n2, positive_square + c * c * n2_size
    first_ok = (first_size <= _COMFORTABLE_RELATIVE * np.abs(first)) | (first_size <= _COMFORTABLE_ABSOLUTE * abs_first)
    return np.asarray(first_ok & (second_size <= _COMFORTABLE_RELATIVE * second), dtype=np.bool_)
