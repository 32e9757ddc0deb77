"""Closed-form Gaussian moments E[phi(y)], E[phi(y)^2], E[phi'(y)^2], y ~ N(mean, var), by activation.

One factory per activation, ``<name>_closed_form``, named by the activation's definition
(``ActivationDefinition.closed_form`` in ``varprop.activations._builtin``): it takes the activation's
parameters (PyTorch's names, all of them, e.g. ``{"alpha": 1.0}``) and returns a ``closed_form`` or
``None`` when no closed form is implemented for those parameters. One call does all the work:

* ``closed_form(mean, var)`` takes float64 arrays of one shape (or broadcastable; var >= 0, var == 0
  gives the point values) and returns ``(E[phi], E[phi^2], E[phi'^2], valid)``: three float arrays
  (phi' almost everywhere) and the boolean mask where those values are trustworthy to ~1e-14. Each
  formula tracks the total magnitude of the terms it adds and a moment is trusted when that
  magnitude is at most 20 times the result (for E[phi]: or at most 4 E[|phi|] where E[|phi|] is known),
  i.e. where no catastrophic cancellation happened. The engine uses quadrature elsewhere.

Values and mask come from the same intermediate terms, so one call costs what the formulas cost:
~0.2 us per point for relu and its slopes, ~0.5 us for the ELU family, ~1-2 us for the other
piecewise polynomials (over 1000 random (mean, var) pairs, on 2 cores). For a single
point (a scalar ``varprop.moments`` call) the piecewise and ELU forms switch to the same arithmetic
on Python floats, since numpy's per-call overhead would dominate on 1-element arrays.

Where the formulas live:

* relu and its slopes (leaky_relu, prelu, rrelu), any mean: ``_piecewise.leaky_moments``;
  identity: mean, mean^2 + var, 1;
* the other piecewise polynomials (relu6, hardtanh, hardsigmoid, hardswish, softshrink, hardshrink,
  threshold), any mean: ``_piecewise.PiecewisePolynomial`` (Gaussian tail moments from
  ``_tails``);
* the ELU family (elu, celu, selu), any mean: ``_elu``;
* gelu (exact, not the tanh approximation), erf, sin, cos: this module.

Support for nonzero means: all of them. ``valid`` is False only where a formula cancels:

* gelu with mean < 0 (about 5% of mean in [-5, 5], var in [1e-6, 1e6]): E[gelu] = mean Phi(m) + var c
  near its zero crossing and for mean << -sigma (relu-like), E[gelu^2] and E[gelu'^2] where Owen's
  T(h, a) nearly cancels Phi(h) at moderate var (h << 0), and gelu'(mean)^2 where Phi + x phi ~ 0;
* piecewise polynomials exactly on a breakpoint at var == 0 (phi' is a convention there);
* non-finite inputs, var < 0.
The piecewise, ELU, erf, sin and cos forms are valid everywhere else (at any mean, var up to 1e300;
hardswish up to var ~1e150, beyond which sigma^4 overflows).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import special

from .._activation import ClosedForm, ClosedMoments, Param
from .._constants import SELU_ALPHA, SELU_SCALE  # written once, with their source
from ._elu import ExponentialLinear
from ._piecewise import (
    Moments,
    PiecewisePolynomial,
    leaky_moments,
    leaky_point,
    trusted,
    validity_mask,
)

__all__ = [
    "ClosedFormFactory",
    "celu_closed_form",
    "cos_closed_form",
    "elu_closed_form",
    "erf_closed_form",
    "gelu_closed_form",
    "hardshrink_closed_form",
    "hardsigmoid_closed_form",
    "hardswish_closed_form",
    "hardtanh_closed_form",
    "identity_closed_form",
    "leaky_relu_closed_form",
    "prelu_closed_form",
    "relu6_closed_form",
    "relu_closed_form",
    "rrelu_closed_form",
    "selu_closed_form",
    "sin_closed_form",
    "softshrink_closed_form",
    "threshold_closed_form",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ClosedFormFactory = Callable[[dict[str, Param]], "ClosedForm | None"]
# One point (mean, sigma > 0) -> (E[phi], E[phi^2], E[phi'^2], their magnitudes, E[|phi|]) as Python floats.
PointMoments = Callable[[float, float], tuple[float, ...]]

_INV_2PI = 0.15915494309189535  # 1/(2 pi)
_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
_SQRT2 = 1.4142135623730951
_EPS = 2.220446049250313e-16  # float64 machine epsilon, the unit of the magnitudes
# scipy.special.owens_t(h, a) against 30-digit mpmath: relative error <= 2e-15 for |h| <= 4.5 and
# 0 < a <= 1, but up to 1e-13 (a = 1, h = 30) and 1e-11 (a = 1e-6) beyond; magnitudes count it as
# this many ulps.
_OWENS_T_SAFE_H = 4.5
_OWENS_T_ULPS_LARGE_H = 1e-12 / _EPS
_OWENS_T_ULPS = 4.0  # typical; the worst measured is 9 ulps (h = 4), inside the 20x budget


def _arrays(mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
    """float64 arrays of one shape (broadcast copies only where the shapes differ)."""
    mean_a, var_a = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
    if mean_a.shape != var_a.shape:
        mean_b, var_b = np.broadcast_arrays(mean_a, var_a)
        return np.array(mean_b), np.array(var_b)
    return mean_a, var_a


def _inputs_ok(mean: FloatArray, var: FloatArray) -> BoolArray:
    """Finite mean and finite var >= 0: the domain of every closed form."""
    return np.asarray(np.isfinite(mean) & (var >= 0) & (var < np.inf), dtype=np.bool_)


def _closed(moments: Callable[[FloatArray, FloatArray], Moments], point: PointMoments | None = None) -> ClosedForm:
    """A closed form from a function returning ``Moments`` (values and magnitudes): valid by ``validity_mask``.

    ``point`` is the same computation for one (mean, sigma > 0) with Python floats: a scalar
    ``varprop.moments`` call takes it, as numpy's per-call overhead would dominate on 1-element arrays.
    """

    def closed_form(mean: FloatArray, var: FloatArray) -> ClosedMoments:
        mean_a, var_a = _arrays(mean, var)
        shape = mean_a.shape
        if point is not None and mean_a.size == 1:
            mean_f, var_f = float(mean_a.reshape(-1)[0]), float(var_a.reshape(-1)[0])
            if math.isfinite(mean_f) and 0.0 < var_f < math.inf:
                values = point(mean_f, math.sqrt(var_f))
                first, second, deriv = (np.full(shape, value) for value in values[:3])
                return first, second, deriv, np.full(shape, trusted(values))
        mean_f1, var_f1 = mean_a.reshape(-1), var_a.reshape(-1)
        result = moments(mean_f1, var_f1)
        with np.errstate(invalid="ignore"):
            valid = validity_mask(result) & _inputs_ok(mean_f1, var_f1)
        return (
            result.first.reshape(shape),
            result.second.reshape(shape),
            result.deriv_second.reshape(shape),
            valid.reshape(shape),
        )

    return closed_form


# --------------------------------------------------------------------------------------------------
# Piecewise polynomials


def _piecewise(breaks: tuple[float, ...], coefficients: tuple[tuple[float, ...], ...]) -> ClosedForm:
    """Closed form of phi = polynomial coefficients[k] on [breaks[k-1], breaks[k])."""
    polynomial = PiecewisePolynomial(breaks, coefficients)
    return _closed(polynomial.moments, polynomial.point)


def _leaky(slope: float) -> ClosedForm:
    """phi(y) = y (y > 0), slope y (y <= 0): cancellation-free, trusted wherever it is finite."""

    def moments(mean: FloatArray, var: FloatArray) -> Moments:
        return leaky_moments(mean, np.sqrt(np.maximum(var, 0.0)), slope)

    def point(mean: float, sigma: float) -> tuple[float, ...]:
        return leaky_point(mean, sigma, slope)

    return _closed(moments, point)


def _identity_form() -> ClosedForm:
    def closed_form(mean: FloatArray, var: FloatArray) -> ClosedMoments:
        mean_a, var_a = _arrays(mean, var)
        return mean_a.copy(), mean_a * mean_a + var_a, np.ones(mean_a.shape), _inputs_ok(mean_a, var_a)

    return closed_form


def _get(params: dict[str, Param], name: str) -> float:
    # Every parameter is there: the registry fills in torch's defaults from the definition.
    return float(params[name])


def relu_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _leaky(0.0)


def relu6_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _piecewise((0.0, 6.0), ((0.0,), (0.0, 1.0), (6.0,)))


def leaky_relu_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _leaky(_get(params, "negative_slope"))


def prelu_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _leaky(_get(params, "init"))


def rrelu_closed_form(params: dict[str, Param]) -> ClosedForm:
    lower, upper = _get(params, "lower"), _get(params, "upper")
    return _leaky(0.5 * (lower + upper))  # eval mode: the mean of the uniform slope


def hardtanh_closed_form(params: dict[str, Param]) -> ClosedForm | None:
    low, high = _get(params, "min_val"), _get(params, "max_val")
    if not low < high:
        return None
    return _piecewise((low, high), ((low,), (0.0, 1.0), (high,)))


def hardsigmoid_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _piecewise((-3.0, 3.0), ((0.0,), (0.5, 1.0 / 6.0), (1.0,)))  # relu6(x + 3) / 6


def hardswish_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _piecewise((-3.0, 3.0), ((0.0,), (0.0, 0.5, 1.0 / 6.0), (0.0, 1.0)))  # x relu6(x + 3) / 6


def softshrink_closed_form(params: dict[str, Param]) -> ClosedForm | None:
    lambd = _get(params, "lambd")
    if lambd < 0:
        return None  # torch rejects negative lambd
    if lambd == 0:
        return _identity_form()
    return _piecewise((-lambd, lambd), ((lambd, 1.0), (0.0,), (-lambd, 1.0)))


def hardshrink_closed_form(params: dict[str, Param]) -> ClosedForm:
    lambd = _get(params, "lambd")
    if lambd <= 0:
        return _identity_form()  # |x| > lambd everywhere: the identity
    return _piecewise((-lambd, lambd), ((0.0, 1.0), (0.0,), (0.0, 1.0)))


def threshold_closed_form(params: dict[str, Param]) -> ClosedForm:
    threshold, value = _get(params, "threshold"), _get(params, "value")
    return _piecewise((threshold,), ((value,), (0.0, 1.0)))  # x if x > threshold else value


def identity_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _identity_form()


# --------------------------------------------------------------------------------------------------
# ELU family


def _exponential_linear(coefficient: float, length: float = 1.0, scale: float = 1.0) -> ClosedForm:
    family = ExponentialLinear(coefficient, length, scale)
    return _closed(family.moments, family.point)


def elu_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _exponential_linear(_get(params, "alpha"))


def celu_closed_form(params: dict[str, Param]) -> ClosedForm | None:
    alpha = _get(params, "alpha")
    if not alpha > 0:
        return None  # alpha < 0 grows like e^{|x/alpha|} on the left; torch rejects alpha = 0
    return _exponential_linear(alpha, alpha)


def selu_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _exponential_linear(SELU_ALPHA, 1.0, SELU_SCALE)


# --------------------------------------------------------------------------------------------------
# GELU (exact), erf: Gaussian integrals of Phi, via Owen's T


def _owens_t_ulps(h: FloatArray) -> FloatArray:
    return np.where(np.abs(h) <= _OWENS_T_SAFE_H, _OWENS_T_ULPS, _OWENS_T_ULPS_LARGE_H)


@functools.lru_cache(maxsize=1)
def _gauss_legendre() -> tuple[FloatArray, FloatArray]:
    nodes, weights = np.polynomial.legendre.leggauss(20)
    return nodes, weights


def _owens_t_gap(h: FloatArray, a: FloatArray, gap: FloatArray) -> FloatArray:
    """T(h, 1) - T(h, a) = (1/2pi) int_a^1 exp(-h^2 (1 + x^2)/2) / (1 + x^2) dx for a <= 1.

    Owen's T as an integral (Owen 1956, eq. 2.1) over [a, 1]; 20-node Gauss-Legendre, exact to ~1e-17
    where (1 - a) max(1, h^2) <= 2 (``_narrow_gap``): the integrand then varies by at most e^2.
    ``gap`` is 1 - a computed without cancellation by the caller (a = 1 - 2e-5 has lost 11 digits of it).
    """
    nodes, weights = _gauss_legendre()
    half = 0.5 * gap
    x = (1.0 - half)[:, None] + half[:, None] * nodes
    integrand = np.exp(-0.5 * h[:, None] ** 2 * (1.0 + x * x)) / (1.0 + x * x)
    return np.asarray(half * _INV_2PI * (integrand * weights).sum(axis=1), dtype=np.float64)


def _narrow_gap(h: FloatArray, a: FloatArray) -> BoolArray:
    return np.asarray((1.0 - a) * np.maximum(1.0, h * h) <= 2.0, dtype=np.bool_)


def _equal_orthant(h: FloatArray, a: FloatArray, gap: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Phi_2(h, h; rho) = P(Z1 <= h, Z2 <= h), corr rho, with a = sqrt((1 - rho)/(1 + rho)) in (0, 1].

    Owen (1956): Phi_2(h, h; rho) = Phi(h) - 2 T(h, a). For h < 0 and a near 1 (small rho) that
    cancels (the result is ~Phi(h)^2 << Phi(h)); there T(h, 1) = Phi(h) Phi(-h) / 2 gives the
    cancellation-free Phi(h)^2 + 2 (T(h, 1) - T(h, a)) (``_owens_t_gap``).
    Returns (value, magnitude) (magnitude: Phi(h) + 2 T(h, a) in units of T's accuracy, see above).
    """
    cdf = special.ndtr(h)
    owen = special.owens_t(h, a)
    value = cdf - 2.0 * owen
    size = cdf + 2.0 * owen * _owens_t_ulps(h)
    narrow = (h < 0) & _narrow_gap(h, a)
    if narrow.any():
        exact = cdf[narrow] ** 2 + 2.0 * _owens_t_gap(h[narrow], a[narrow], gap[narrow])
        value[narrow] = exact
        size[narrow] = exact
    return value, size


def _gelu_zero_mean(var: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """gelu's moments at mean 0, q = var.

    E[gelu] = q / sqrt(2 pi (1 + q)) (Stein: E[y Phi(y)] = q E[phi(y)]);
    E[gelu^2] = q/4 + (q/2pi) arcsin(q/(1+q)) + q^2 / (pi (1+q) sqrt(1+2q)) (orthant probability
    P(X1 <= y, X2 <= y) = 1/4 + arcsin(rho)/(2pi), rho = q/(1+q), and Stein's lemma twice);
    E[gelu'^2] = 1/4 + arcsin(q/(1+q))/(2pi) + q / (pi (1+q) sqrt(1+2q)) + q / (2pi (1+2q)^{3/2})
    (gelu' = Phi + y phi: E[Phi^2] + 2 E[y phi Phi] + E[y^2 phi^2]; derived here, checked against mpmath).
    arcsin(q/(1+q)) is evaluated as arctan(q / sqrt(1+2q)), exact also where q/(1+q) -> 1.
    """
    q = var
    v1, root2 = 1.0 + q, np.sqrt(1.0 + 2.0 * q)
    angle = np.arctan(q / root2)
    first = q * _INV_SQRT_2PI / np.sqrt(v1)
    second = 0.25 * q + q * _INV_2PI * angle + q * q / (math.pi * v1 * root2)
    deriv = 0.25 + _INV_2PI * angle + q / (math.pi * v1 * root2) + q * _INV_2PI / root2**3
    return first, second, deriv


def _gelu_moments(mean: FloatArray, var: FloatArray) -> Moments:
    """Exact gelu(x) = x Phi(x) moments at any mean (mean 0: ``_gelu_zero_mean``).

    With s^2 = var, v1 = 1 + s^2, v2 = 1 + 2 s^2, m = mean / sqrt(v1), c = phi(m)/sqrt(v1) (= E[phi(y)]),
    m2 = mean / sqrt(v1 v2) and A = E[Phi(y)^2] = Phi_2(m, m; s^2/v1) = Phi(m) - 2 T(m, 1/sqrt(v2))
    (Owen 1956, bivariate normal at equal arguments):

        E[gelu]    = mean Phi(m) + s^2 c
        E[gelu^2]  = (mean^2 + s^2) A + 2 s^2 c (mean Phi(m2) (1 + 1/v1) + s^2 phi(m2) / sqrt(v1 v2))
        E[gelu'^2] = A + 2 c (mean Phi(m2) / v1 + s^2 phi(m2) / sqrt(v1 v2))
                     + exp(-mean^2/v2) / (2 pi sqrt(v2)) (mean^2 / v2^2 + s^2 / v2)

    (Stein's lemma E[y h] = mean E[h] + s^2 E[h'], and phi(y) times the N(mean, s^2) density is
    c times the N(mean/v1, s^2/v1) density.) Cancels for mean/sqrt(v1) << 0, where gelu ~ 0.
    """
    s2 = var
    v1, v2 = 1.0 + s2, 1.0 + 2.0 * s2
    m = mean / np.sqrt(v1)
    m2 = mean / np.sqrt(v1 * v2)
    c = _INV_SQRT_2PI * np.exp(-0.5 * m * m) / np.sqrt(v1)
    cdf_m, cdf_m2 = special.ndtr(m), special.ndtr(m2)
    pdf_m2 = _INV_SQRT_2PI * np.exp(-0.5 * m2 * m2)
    root2 = np.sqrt(v2)
    square, square_size = _equal_orthant(m, 1.0 / root2, 2.0 * s2 / (root2 * (root2 + 1.0)))  # gap 1 - 1/root2
    first = mean * cdf_m + s2 * c
    first_size = np.abs(mean) * cdf_m + s2 * c
    cross = mean * cdf_m2 * (1.0 + 1.0 / v1)
    spread = s2 * pdf_m2 / np.sqrt(v1 * v2)
    second = (mean * mean + s2) * square + 2.0 * s2 * c * (cross + spread)
    second_size = (mean * mean + s2) * square_size + 2.0 * s2 * c * (np.abs(cross) + spread)
    mixed = 2.0 * c * (mean * cdf_m2 / v1 + spread)
    tilted = np.exp(-mean * mean / v2) * _INV_2PI / np.sqrt(v2) * (mean * mean / (v2 * v2) + s2 / v2)
    deriv = square + mixed + tilted
    deriv_size = square_size + 2.0 * c * (np.abs(mean) * cdf_m2 / v1 + spread) + tilted
    zero = mean == 0
    if zero.any():
        exact = _gelu_zero_mean(var[zero])
        first[zero], second[zero], deriv[zero] = exact
        first_size[zero], second_size[zero], deriv_size[zero] = exact
    point = var == 0
    if point.any():  # y = mean: gelu(mean)^2 and gelu'(mean)^2 directly
        at = mean[point]
        cdf, pdf = special.ndtr(at), _INV_SQRT_2PI * np.exp(-0.5 * at * at)
        first[point] = at * cdf
        first_size[point] = np.abs(first[point])
        second[point] = second_size[point] = (at * cdf) ** 2
        deriv[point] = (cdf + at * pdf) ** 2
        deriv_size[point] = (cdf + np.abs(at) * pdf) ** 2
    return Moments(
        first=first,
        second=second,
        deriv_second=deriv,
        first_magnitude=first_size,
        second_magnitude=second_size,
        deriv_second_magnitude=deriv_size,
        abs_first=np.zeros(mean.shape),  # unknown: E[phi] is trusted only without cancellation
    )


def gelu_closed_form(params: dict[str, Param]) -> ClosedForm | None:
    if params.get("approximate", "none") != "none":
        return None  # the tanh approximation has no closed form; quadrature handles it
    return _closed(_gelu_moments)


def _erf_moments(mean: FloatArray, var: FloatArray) -> Moments:
    """erf's moments at any mean.

    E[erf(y)] = erf(mean / sqrt(1 + 2 var)) (erf(y) = 2 Phi(sqrt 2 y) - 1 and E[Phi(y)] = Phi(mean/sqrt(1+var)));
    E[erf(y)^2] = 1 - 8 T(h, a), h = sqrt 2 mean / sqrt(1 + 2 var), a = 1 / sqrt(1 + 4 var) (Owen's T:
    4 E[Phi(v)^2] - 4 E[Phi(v)] + 1 with v = sqrt 2 y and Phi_2(h, h; rho) = Phi(h) - 2 T(h, sqrt((1-rho)/(1+rho))));
    for small var (a near 1) the same as E[erf]^2 + 8 (T(h, 1) - T(h, a)) (T(h, 1) = Phi(h) Phi(-h) / 2),
    without the cancellation;
    at mean 0 this is (2/pi) arcsin(2 var / (1 + 2 var)) = (2/pi) arctan(2 var / sqrt(1 + 4 var));
    E[erf'(y)^2] = (4/pi) E[exp(-2 y^2)] = (4/pi) exp(-2 mean^2 / (1 + 4 var)) / sqrt(1 + 4 var).
    """
    v2, v4 = 1.0 + 2.0 * var, 1.0 + 4.0 * var
    first = special.erf(mean / np.sqrt(v2))
    h = _SQRT2 * mean / np.sqrt(v2)
    root4 = np.sqrt(v4)
    a, gap = 1.0 / root4, 4.0 * var / (root4 * (root4 + 1.0))  # gap = 1 - a without cancellation
    owen = special.owens_t(h, a)
    second = 1.0 - 8.0 * owen
    second_size = 1.0 + 8.0 * owen * _owens_t_ulps(h)
    narrow = _narrow_gap(h, a)  # small var: 1 - 8 T(h, a) = erf(mean/sqrt(v2))^2 + 8 (T(h, 1) - T(h, a))
    if narrow.any():
        exact = first[narrow] ** 2 + 8.0 * _owens_t_gap(h[narrow], a[narrow], gap[narrow])
        second[narrow] = exact
        second_size[narrow] = exact
    zero = mean == 0
    exact = 2.0 / math.pi * np.arctan(2.0 * var / np.sqrt(v4))
    second = np.where(zero, exact, second)
    second_size = np.where(zero, exact, second_size)
    point = var == 0  # y = mean: erf(mean)^2 directly
    second = np.where(point, first * first, second)
    second_size = np.where(point, first * first, second_size)
    deriv = 4.0 / math.pi * np.exp(-2.0 * mean * mean / v4) / np.sqrt(v4)
    return Moments(
        first=first,
        second=second,
        deriv_second=deriv,
        first_magnitude=np.abs(first),
        second_magnitude=second_size,
        deriv_second_magnitude=deriv,
        abs_first=np.abs(first),
    )


def erf_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _closed(_erf_moments)


# --------------------------------------------------------------------------------------------------
# sin, cos: the characteristic function E[e^{i k y}] = e^{i k mean - k^2 var / 2}


def _sin_cos(mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """E[sin y], E[cos y], E[sin^2 y], E[cos^2 y] without cancellation.

    E[sin y] = sin(mean) e^{-var/2}, E[cos y] = cos(mean) e^{-var/2};
    E[sin^2 y] = (1 - cos(2 mean) e^{-2 var}) / 2 = sin^2(mean) - cos(2 mean) expm1(-2 var) / 2 and
    E[cos^2 y] = cos^2(mean) + cos(2 mean) expm1(-2 var) / 2 (both sums have no cancellation: when
    the correction is negative, sin^2 resp. cos^2 of the mean is >= 1/2).
    """
    damp = np.exp(-0.5 * var)
    correction = 0.5 * np.cos(2.0 * mean) * np.expm1(-2.0 * var)
    sin_mean, cos_mean = np.sin(mean), np.cos(mean)
    return sin_mean * damp, cos_mean * damp, sin_mean**2 - correction, cos_mean**2 + correction


def _trigonometric(which: str) -> ClosedForm:
    def closed_form(mean: FloatArray, var: FloatArray) -> ClosedMoments:
        mean_a, var_a = _arrays(mean, var)
        sin_mean, cos_mean, sin_square, cos_square = _sin_cos(mean_a, var_a)
        valid = _inputs_ok(mean_a, var_a)
        if which == "sin":
            return sin_mean, sin_square, cos_square, valid  # sin' = cos
        return cos_mean, cos_square, sin_square, valid  # cos' = -sin

    return closed_form


def sin_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _trigonometric("sin")


def cos_closed_form(params: dict[str, Param]) -> ClosedForm:
    return _trigonometric("cos")
