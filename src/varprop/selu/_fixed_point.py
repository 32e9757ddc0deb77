"""Self-normalizing networks: SELU's constants and the Jacobian of its (mean, variance) map.

Klambauer et al. (2017), "Self-Normalizing Neural Networks": a layer with fixed weights w, whose
sum is omega = sum_i w_i and sum of squares tau = sum_i w_i^2, maps activations with mean mu and
variance nu to pre-activations z ~ N(mu omega, nu tau) (central limit), and the activations
selu(z) = scale * (z if z > 0 else alpha (e^z - 1)) have

    mu~ = E[selu(z)],    nu~ = E[selu(z)^2] - mu~^2.

(mu, nu) = (0, 1) is a fixed point for omega = 0, tau = 1 when E[selu(z)] = 0 and E[selu(z)^2] = 1
for z ~ N(0, 1). With A = erfcx(1/sqrt 2)/2 = E[e^z; z < 0] and B = erfcx(sqrt 2)/2 = E[e^{2z}; z < 0]
(the seed's corrected ELU formulas, ``../shared/seed.md``) these are solved in closed form:

    alpha = (1/sqrt(2 pi)) / (1/2 - A),     scale = (1/2 + alpha^2 (B - 2A + 1/2))^(-1/2),

giving alpha_01 = 1.6732632423543772848 and lambda_01 = 1.0507009873554804934 (the paper's values).
The map's Jacobian at the fixed point has spectral norm 0.7877 < 1 (the paper's eq. 7 neighbourhood):
the fixed point attracts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import erfcx, ndtr

from .._errors import VarpropValueError
from .._validation import check_real
from ..activations._activation import Activation
from ..gaussian import gaussian_expectation

__all__ = ["selu_jacobian", "selu_moment_map", "selu_parameters"]

FloatArray = NDArray[np.float64]
_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)


def selu_parameters(
    var: Any = 1.0, mean: Any = 0.0, *, weight_sum: Any = 0.0, weight_sum_squares: Any = 1.0
) -> tuple[float, float]:
    """SELU's (alpha, scale) that make (mean, var) a fixed point of the moment map (Klambauer et al. 2017).

    The activations' mean mu and variance nu are a fixed point when, for z ~ N(mu omega, nu tau)
    (omega = ``weight_sum``, tau = ``weight_sum_squares``), E[selu(z)] = mu and Var[selu(z)] = nu. With
    s = sqrt(nu tau), m = mu omega and the truncated moments

        P = E[z; z > 0],  R = E[z^2; z > 0],  Q = E[e^z - 1; z < 0],  T = E[(e^z - 1)^2; z < 0],

    E[elu_alpha(z)] = P + alpha Q and E[elu_alpha(z)^2] = R + alpha^2 T, so the two conditions
    scale (P + alpha Q) = mu and scale^2 (R + alpha^2 T) = nu + mu^2 give, with K = nu + mu^2, the
    quadratic

        alpha^2 (T mu^2 - K Q^2) - 2 K P Q alpha + (R mu^2 - K P^2) = 0,

    whose smallest root with alpha > 0 and scale = mu / (P + alpha Q) > 0 is returned. For mu = 0 the root is
    double, alpha = -P/Q = sigma / (sqrt(2 pi) (1/2 - A)) with A = erfcx(sigma/sqrt 2)/2 (the paper's
    closed form), and scale = sqrt(nu / (R + alpha^2 T)). The truncated moments use
    E[e^{kz}; z < 0] = e^{km + k^2 s^2/2} Phi(-(m + k s^2)/s), written with erfcx (no overflow).

    Relative accuracy ~1e-15 (checked against 40-digit mpmath and the paper's 20-digit constants).

    Args:
        var: the fixed-point variance nu (> 0); 1 gives the paper's alpha_01, lambda_01.
        mean: the fixed-point mean mu (0 in the paper).
        weight_sum: omega, the sum of a unit's incoming weights.
        weight_sum_squares: tau > 0, their sum of squares.

    Returns:
        ``(alpha, scale)``.

    Raises:
        VarpropValueError: no SELU (alpha > 0, scale > 0) has this fixed point.

    Example:
        >>> alpha, scale = selu_parameters()
        >>> round(alpha, 15), round(scale, 15)
        (1.673263242354377, 1.05070098735548)
    """
    nu = check_real("var", var, minimum=0.0, strict=True)
    mu = check_real("mean", mean)
    omega = check_real("weight_sum", weight_sum)
    tau = check_real("weight_sum_squares", weight_sum_squares, minimum=0.0, strict=True)
    m, sigma = mu * omega, math.sqrt(nu * tau)
    positive, negative = float(ndtr(m / sigma)), float(ndtr(-m / sigma))
    density = _INV_SQRT_2PI * math.exp(-0.5 * (m / sigma) ** 2)
    first_pos = m * positive + sigma * density  # P
    second_pos = (m * m + sigma * sigma) * positive + m * sigma * density  # R
    exp_one, exp_two = _exp_below_zero(m, sigma, 1.0), _exp_below_zero(m, sigma, 2.0)
    first_neg = exp_one - negative  # Q < 0
    second_neg = exp_two - 2.0 * exp_one + negative  # T > 0
    if mu == 0.0:
        alpha = -first_pos / first_neg
        return alpha, math.sqrt(nu / (second_pos + alpha * alpha * second_neg))
    total = nu + mu * mu
    quad_a = second_neg * mu * mu - total * first_neg * first_neg
    quad_b = -2.0 * total * first_pos * first_neg
    quad_c = second_pos * mu * mu - total * first_pos * first_pos
    discriminant = quad_b * quad_b - 4.0 * quad_a * quad_c
    candidates: list[float] = []
    if discriminant >= 0.0:
        root = math.sqrt(discriminant)
        # The stable pair of roots (no cancellation): q = -(b + sign(b) sqrt(D)) / 2, roots q/a and c/q.
        q = -0.5 * (quad_b + math.copysign(root, quad_b))
        candidates = [value for value in (q / quad_a if quad_a else math.inf, quad_c / q if q else math.inf)]
    for alpha in sorted(candidate for candidate in candidates if math.isfinite(candidate) and candidate > 0.0):
        scale = mu / (first_pos + alpha * first_neg)
        if scale > 0.0:
            return alpha, scale
    raise VarpropValueError(
        f"no SELU (alpha > 0, scale > 0) has the fixed point mean={mu!r}, var={nu!r} with weight_sum={omega!r}, "
        f"weight_sum_squares={tau!r}; choose a smaller |mean| relative to sqrt(var) or another weight_sum"
    )


def _exp_below_zero(mean: float, sigma: float, rate: float) -> float:
    """E[e^{rate z}; z < 0] for z ~ N(mean, sigma^2), without overflow (erfcx where the exponent is large)."""
    t = (mean + rate * sigma * sigma) / sigma
    if t > 0.0:  # e^{rate m + rate^2 s^2/2} Phi(-t) = erfcx(t/sqrt 2)/2 e^{-m^2/(2 s^2)}
        return 0.5 * float(erfcx(t / math.sqrt(2.0))) * math.exp(-0.5 * (mean / sigma) ** 2)
    return math.exp(rate * mean + 0.5 * (rate * sigma) ** 2) * float(ndtr(-t))


def _selu(alpha: float, scale: float) -> Activation:
    def function(x: FloatArray) -> FloatArray:
        return np.where(x > 0.0, scale * x, scale * alpha * np.expm1(np.minimum(x, 0.0)))

    def derivative(x: FloatArray) -> FloatArray:
        return np.where(x > 0.0, scale, scale * alpha * np.exp(np.minimum(x, 0.0)))

    return Activation(
        name="selu",
        function=function,
        derivative=derivative,
        params=(("alpha", alpha), ("scale", scale)),
        kinks=(0.0,),
        features=((0.0, 1.0),),
    )


def _resolve(alpha: float | None, scale: float | None) -> tuple[float, float]:
    default_alpha, default_scale = selu_parameters()
    return (
        default_alpha if alpha is None else check_real("alpha", alpha),
        default_scale if scale is None else check_real("scale", scale),
    )


def _selu_terms(
    mean: float, var: float, alpha: float | None, scale: float | None, weight_sum: float, weight_sum_squares: float
) -> tuple[float, float, FloatArray]:
    """(std of z, mean of z, rows) with rows E[g], E[g^2], E[Z g], E[Z g^2], E[(Z^2-1) g]/2, E[(Z^2-1) g^2]/2."""
    mu = check_real("mean", mean)
    nu = check_real("var", var, minimum=0.0, strict=True)
    omega = check_real("weight_sum", weight_sum)
    tau = check_real("weight_sum_squares", weight_sum_squares, minimum=0.0, strict=True)
    act = _selu(*_resolve(alpha, scale))
    z_mean, z_std = mu * omega, math.sqrt(nu * tau)

    def integrand(y: FloatArray, _: NDArray[np.intp]) -> list[FloatArray]:
        value = act.function(y)
        square = value * value
        standard = (y - z_mean) / z_std
        heat = 0.5 * (standard * standard - 1.0)
        return [value, square, standard * value, standard * square, heat * value, heat * square]

    rows = gaussian_expectation(
        integrand, np.asarray(z_mean), np.asarray(z_std * z_std), kinks=act.kinks, features=act.features
    ).value
    return z_std, z_mean, np.asarray(rows, dtype=np.float64)


def selu_moment_map(
    mean: Any = 0.0,
    var: Any = 1.0,
    *,
    alpha: float | None = None,
    scale: float | None = None,
    weight_sum: float = 0.0,
    weight_sum_squares: float = 1.0,
) -> tuple[float, float]:
    """Klambauer et al.'s map (mu, nu) -> (mu~, nu~) of the activations' mean and variance through one layer.

    z ~ N(mu omega, nu tau), mu~ = E[selu(z)], nu~ = Var[selu(z)], with omega = ``weight_sum`` and
    tau = ``weight_sum_squares`` (fixed weights: their sum and sum of squares).

    Args:
        mean: mu, the mean of the incoming activations.
        var: nu > 0, their variance.
        alpha: SELU's alpha (default alpha_01 from ``selu_parameters``).
        scale: SELU's lambda (default lambda_01).
        weight_sum: omega.
        weight_sum_squares: tau > 0.

    Returns:
        ``(mu~, nu~)``.

    Example:
        >>> [round(abs(v), 12) for v in selu_moment_map(0.0, 1.0)]
        [0.0, 1.0]
    """
    _, _, rows = _selu_terms(float(mean), float(var), alpha, scale, weight_sum, weight_sum_squares)
    first, second = float(rows[0]), float(rows[1])
    return first, second - first * first


def selu_jacobian(
    mean: Any = 0.0,
    var: Any = 1.0,
    *,
    alpha: float | None = None,
    scale: float | None = None,
    weight_sum: float = 0.0,
    weight_sum_squares: float = 1.0,
) -> FloatArray:
    """Jacobian d(mu~, nu~)/d(mu, nu) of ``selu_moment_map`` (Klambauer et al. 2017, eq. 5 and Theorem 1).

    Exact, without derivatives of selu: with z = mu omega + sqrt(nu tau) Z,
    d/dmu E[g(z)] = omega E[Z g] / sqrt(nu tau) (Stein's lemma) and d/dnu E[g(z)] = E[(Z^2 - 1) g] / (2 nu)
    (heat equation), applied to g = selu and selu^2 (nu~ = E[selu^2] - mu~^2). At (0, 1) with
    omega = 0, tau = 1 and (alpha_01, lambda_01) it is [[0, 0.088834], [0, 0.782648]], spectral norm 0.7877.

    Args:
        mean, var, alpha, scale, weight_sum, weight_sum_squares: as in ``selu_moment_map``.

    Returns:
        The 2 x 2 Jacobian [[dmu~/dmu, dmu~/dnu], [dnu~/dmu, dnu~/dnu]].

    Example:
        >>> jac = selu_jacobian()
        >>> round(float(jac[1, 1]), 6), round(float(np.linalg.norm(jac, 2)), 4)
        (0.782648, 0.7877)
    """
    z_std, _, rows = _selu_terms(float(mean), float(var), alpha, scale, weight_sum, weight_sum_squares)
    nu = float(var)
    first, _, z_first, z_second, heat_first, heat_second = (float(value) for value in rows)
    omega = float(weight_sum)
    dfirst_dmean = omega * z_first / z_std
    dfirst_dvar = heat_first / nu
    dsecond_dmean = omega * z_second / z_std
    dsecond_dvar = heat_second / nu
    return np.array(
        [
            [dfirst_dmean, dfirst_dvar],
            [dsecond_dmean - 2.0 * first * dfirst_dmean, dsecond_dvar - 2.0 * first * dfirst_dvar],
        ]
    )
