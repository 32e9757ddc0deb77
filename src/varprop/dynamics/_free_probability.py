"""The moments of a deep plain net's input-output Jacobian at initialization, by free probability.

A plain net h_l = W_l phi(h_{l-1}) + b_l (l = 1..L, all layers N wide) has the input-output Jacobian
J = D_L W_L ... D_1 W_1 with D_l = diag(phi'(h_l)). At the fixed point q* of the variance map the
pre-activations are N(0, q*) in every layer, and in the wide limit the D_l and W_l are asymptotically
free (Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid in deep learning through
dynamical isometry"; 2018, "The emergence of spectral universality in deep networks"), so the
S-transform of JJ^T is the product of its factors'::

    S_{JJ^T}(z) = S_{D^2}(z)^L S_{WW^T}(z)^L,
    S_{WW^T}(z) = 1 / (sigma_w^2 (1 + z))    (Gaussian W: Marchenko-Pastur),
    S_{WW^T}(z) = 1 / sigma_w^2               (orthogonal W: all singular values sigma_w),

where D^2 has the distribution of phi'(h)^2, h ~ N(0, q*). Conventions: psi_X(z) = sum_k m_k z^k
(m_k = E[tr X^k] / N, the moments), chi_X its compositional inverse, S_X(z) = chi_X(z) (1 + z) / z.

The moments route is here; the density route is ``_jacobian_spectrum``:

* **Moments** (``jacobian_moments``): the moments of D^2 are Gaussian expectations (the graded
  quadrature engine, ``varprop.gaussian._quadrature``); the S-transform algebra is done on truncated power
  series, exact to rounding. The linear Gaussian net gives the Fuss-Catalan numbers
  binom((L+1)k, k) / (Lk + 1) (the moments of a product of L Wishart matrices), the linear orthogonal
  net m_k = sigma_w^(2Lk).

The inputs both routes share (activation, sigma_w, sigma_b, depth, the fixed point q*, the weight
distribution) are checked once, by ``spectrum_setup``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import VarpropValueError
from .._validation import check_positive_int, check_real
from ..activations import activation as resolve_activation
from ..activations._activation import Activation
from ..gaussian import gaussian_expectation
from ._variance_map import check_std, fixed_point

__all__ = ["DISTRIBUTIONS", "SpectrumSetup", "jacobian_moment_series", "jacobian_moments", "spectrum_setup"]

FloatArray = NDArray[np.float64]

#: The weight distributions with a known S-transform of WW^T.
DISTRIBUTIONS: tuple[str, ...] = ("gaussian", "orthogonal")


# ---------------------------------------------------------------------------------------------- series


def _series_mul(a: FloatArray, b: FloatArray) -> FloatArray:
    """Product of two power series truncated to len(a) terms (a[0] is the constant term)."""
    return np.convolve(a, b)[: a.shape[0]]


def _series_reciprocal(a: FloatArray) -> FloatArray:
    """1 / a(z) as a truncated series (a[0] != 0)."""
    out = np.zeros_like(a)
    out[0] = 1.0 / a[0]
    for k in range(1, a.shape[0]):
        out[k] = -np.dot(a[1 : k + 1], out[k - 1 :: -1][:k]) / a[0]
    return out


def _series_power(a: FloatArray, exponent: int) -> FloatArray:
    out = np.zeros_like(a)
    out[0] = 1.0
    for _ in range(exponent):
        out = _series_mul(out, a)
    return out


def _series_compose(a: FloatArray, b: FloatArray) -> FloatArray:
    """a(b(z)) for b with b[0] = 0, truncated (Horner)."""
    out = np.zeros_like(a)
    for coefficient in a[::-1]:
        out = _series_mul(out, b)
        out[0] += coefficient
    return out


def _series_inverse(a: FloatArray) -> FloatArray:
    """The compositional inverse of a(z) = a1 z + a2 z^2 + ... (a[0] = 0, a[1] != 0), truncated.

    Newton's iteration b <- b - (a(b) - z) / a'(b) doubles the number of correct terms each step.
    """
    terms = a.shape[0]
    derivative = np.zeros_like(a)
    derivative[:-1] = a[1:] * np.arange(1, terms)
    identity = np.zeros_like(a)
    identity[1] = 1.0
    b: FloatArray = identity / a[1]
    for _ in range(max(1, math.ceil(math.log2(terms))) + 1):
        residual = _series_compose(a, b) - identity
        b = b - _series_mul(residual, _series_reciprocal(_series_compose(derivative, b)))
    return b


def _s_transform(moments: FloatArray) -> FloatArray:
    """S(z) as a series from the moments m_1..m_K (S has K terms: S(0) = 1 / m_1)."""
    psi = np.concatenate([[0.0], moments])
    chi = _series_inverse(psi)  # chi(z) = z / m1 + ...
    # S = chi (1 + z) / z: drop chi's zero constant term, then multiply by (1 + z).
    ratio = chi[1:]
    one_plus = np.zeros_like(ratio)
    one_plus[0] = 1.0
    if ratio.shape[0] > 1:
        one_plus[1] = 1.0
    return _series_mul(ratio, one_plus)


def _moments_from_s(s_series: FloatArray) -> FloatArray:
    """Moments m_1..m_K from S(z) given to K terms (the inverse of ``_s_transform``)."""
    terms = s_series.shape[0]
    one_plus = np.zeros(terms)
    one_plus[0] = 1.0
    if terms > 1:
        one_plus[1] = 1.0
    ratio = _series_mul(s_series, _series_reciprocal(one_plus))  # chi(z) / z
    chi = np.concatenate([[0.0], ratio])
    return _series_inverse(chi)[1:]


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class SpectrumSetup:
    activation: Activation
    weight_std: float
    bias_std: float
    q: float
    depth: int
    distribution: str


def _check_distribution(distribution: Any) -> str:
    if distribution not in DISTRIBUTIONS:
        raise VarpropValueError(
            f"unknown weight distribution {distribution!r} for the Jacobian spectrum; choose one of {DISTRIBUTIONS}"
        )
    return str(distribution)


def spectrum_setup(act: Any, weight_std: Any, depth: Any, bias_std: Any, q: Any, distribution: Any) -> SpectrumSetup:
    activation = resolve_activation(act)
    sigma_w = check_real("weight_std", weight_std, minimum=0.0, strict=True)
    sigma_b = check_std("bias_std", bias_std)
    layers = check_positive_int("depth", depth)
    kind = _check_distribution(distribution)
    if q is None:
        points = fixed_point(activation, sigma_w, sigma_b)
        stable = [point for point in points if point.kind != "unstable"]
        if not stable:
            found = ", ".join(f"q={point.q:.6g} ({point.kind})" for point in points)
            raise VarpropValueError(
                f"the variance map of {activation.spec!r} at weight_std={sigma_w!r}, bias_std={sigma_b!r} has no "
                f"stable fixed point ({found}); give the pre-activation variance q explicitly"
            )
        # A continuum of fixed points (ReLU at sigma_w = sqrt 2): phi' is scale-free, any q > 0 gives D's law.
        q_star = 1.0 if stable[-1].continuum else float(stable[-1].q)
    else:
        q_star = check_real("q", q, minimum=0.0)
    return SpectrumSetup(activation, sigma_w, sigma_b, q_star, layers, kind)


def _slope_moments(activation: Activation, q: float, order: int) -> FloatArray:
    """E[phi'(h)^(2k)], h ~ N(0, q), k = 1..order (the moments of D^2), by the quadrature engine."""

    def integrand(y: FloatArray, _: NDArray[np.intp]) -> list[FloatArray]:
        square = activation.derivative(y) ** 2
        return [square**k for k in range(1, order + 1)]

    result = gaussian_expectation(
        integrand, np.zeros(1), np.full(1, q), kinks=activation.kinks, features=activation.features
    )
    return np.asarray(result.value, dtype=np.float64).reshape(order)


def jacobian_moments(
    act: Any,
    weight_std: Any,
    depth: Any,
    *,
    bias_std: Any = 0.0,
    q: Any = None,
    distribution: Any = "gaussian",
    order: int = 6,
) -> FloatArray:
    """The moments m_k = E[lambda^k] of the eigenvalues lambda of JJ^T (squared singular values of J).

    S_{JJ^T} = (S_{D^2} S_{WW^T})^L on truncated power series (Pennington et al. 2017, 2018); the
    moments of D^2 = phi'(h)^2, h ~ N(0, q*), come from the quadrature engine. m_1 = chi1^L with
    chi1 = sigma_w^2 E[phi'^2] (the mean squared singular value grows or shrinks by chi1 per layer).

    Args:
        act: activation spec, ``Activation`` or callable.
        weight_std: sigma_w > 0 (weights of variance sigma_w^2 / N, or sigma_w times an orthogonal matrix).
        depth: L, the number of layers (weight matrix followed by the activation).
        bias_std: sigma_b >= 0 (only moves the fixed point q*).
        q: the pre-activation variance; default the largest stable fixed point q* of the variance
            map (q = 1 for a continuum of fixed points, where D's law does not depend on q).
        distribution: ``"gaussian"`` or ``"orthogonal"`` weights.
        order: number of moments.

    Returns:
        ``[m_1, ..., m_order]``.

    Raises:
        VarpropValueError: bad input, or no stable fixed point (give ``q``).

    Example:
        >>> [round(float(m), 9) for m in jacobian_moments("linear", 1.0, 2, order=4)]  # Fuss-Catalan FC_2(k)
        [1.0, 3.0, 12.0, 55.0]
    """
    setup = spectrum_setup(act, weight_std, depth, bias_std, q, distribution)
    terms = check_positive_int("order", order)
    return jacobian_moment_series(setup, terms)


def jacobian_moment_series(setup: SpectrumSetup, terms: int) -> FloatArray:
    slope_moments = _slope_moments(setup.activation, setup.q, terms)
    s_layer = _s_transform(slope_moments)
    s_weight = np.zeros(terms)
    if setup.distribution == "gaussian":
        s_weight[:] = (-1.0) ** np.arange(terms)  # 1 / (1 + z)
    else:
        s_weight[0] = 1.0
    s_weight /= setup.weight_std**2
    s_total = _series_power(_series_mul(s_layer, s_weight), setup.depth)
    return _moments_from_s(s_total)
