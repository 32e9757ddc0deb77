"""Bivariate Gaussian expectations E[phi(u1) phi(u2)] and the correlation map c -> c' (Poole et al. 2016).

Two inputs propagated through the same wide network keep jointly Gaussian pre-activations (u1, u2)
whose correlation c follows the *correlation map*

    c' = (weight_std^2 E[phi(u1) phi(u2)] + bias_std^2) / q',    Var u1 = Var u2 = q, Corr = c,

with q' = F(q) the variance map. Its slope at c = 1 is chi1 = weight_std^2 E[phi'(u)^2] q / q'
(Price's theorem), which is 1 on the edge of chaos (Schoenholz et al. 2017).

Method (``cross_moment``): nested one-dimensional quadrature with the graded Gauss-Legendre engine.
Conditionally on u1, u2 ~ N(m2 + rho (u1 - m1), s^2) with rho = c sqrt(q2 / q1) and
s^2 = q2 (1 - c^2), so

    E[f(u1) g(u2)] = E_u1[ f(u1) h(u1) ],    h(u1) = E[g(u2) | u1]   (inner 1-D engine, vectorized
                                                                       over all outer nodes).

h inherits g's kinks as smooth bends of width s / |rho| at u1 = m1 + (k - m2) / rho (exact kinks
when |c| = 1); the outer integral is split there and at f's own kinks, so kinked activations (ReLU,
hardtanh...) keep the engine's ~1e-15 accuracy for every c, including c -> 1. Cost: about
(outer nodes) x (inner nodes) ~ 1e5 to 1e6 evaluations of g per value, 10 to 100 ms. A
tensor-product Gauss-Hermite grid, by contrast, converges only algebraically at kinks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._activation import Activation
from ._dynamics import check_std, fixed_point, gaussian_rows
from ._errors import VarpropValueError
from ._moments import Scalar, _unwrap, resolve_activation
from ._quadrature import gaussian_expectation
from ._validation import as_real_array

__all__ = ["CorrelationMap", "arccos_cross_moment", "correlation_map", "cross_moment"]

FloatArray = NDArray[np.float64]
RealFunction = Callable[[FloatArray], FloatArray]


def _cross_moment_one(
    first: RealFunction,
    second: RealFunction,
    kinks: Sequence[float],
    features: Sequence[tuple[float, float]],
    mean1: float,
    mean2: float,
    var1: float,
    var2: float,
    corr: float,
) -> float:
    """E[first(u1) second(u2)] for one bivariate normal; both functions share ``kinks`` and ``features``."""
    if var1 == 0.0 or var2 == 0.0 or corr == 0.0:
        # Independent (or degenerate) coordinates: the expectation factorizes.
        (left,) = gaussian_expectation(
            lambda y, _: first(y), np.asarray(mean1), np.asarray(var1), kinks=kinks, features=features
        ).value
        (right,) = gaussian_expectation(
            lambda y, _: second(y), np.asarray(mean2), np.asarray(var2), kinks=kinks, features=features
        ).value
        return float(left) * float(right)
    ratio = math.sqrt(var2 / var1)
    rho = corr * ratio
    inner_var = var2 * (1.0 - corr) * (1.0 + corr)  # (1 - c)(1 + c): no cancellation near c = 1
    inner_var = max(inner_var, 0.0)
    inner_std = math.sqrt(inner_var)
    outer_kinks = list(kinks)
    outer_features = list(features)
    for kink in kinks:
        location = mean1 + (kink - mean2) / rho
        if inner_std == 0.0:
            outer_kinks.append(location)
        else:
            outer_features.append((location, inner_std / abs(rho)))
    for location, width in features:
        outer_features.append((mean1 + (location - mean2) / rho, (width + inner_std) / abs(rho)))

    def outer(u1: FloatArray, _: NDArray[np.intp]) -> FloatArray:
        conditional_mean = mean2 + rho * (u1 - mean1)
        (inner,) = gaussian_expectation(
            lambda y, __: second(y), conditional_mean, np.asarray(inner_var), kinks=kinks, features=features
        ).value
        return np.asarray(first(u1) * inner, dtype=np.float64)

    (value,) = gaussian_expectation(
        outer, np.asarray(mean1), np.asarray(var1), kinks=outer_kinks, features=outer_features
    ).value
    return float(value)


def cross_moment(
    act: Any,
    corr: Any,
    var: Any = 1.0,
    *,
    var2: Any = None,
    mean: Any = 0.0,
    mean2: Any = None,
    derivative: bool = False,
) -> Scalar:
    """E[phi(u1) phi(u2)] for jointly Gaussian (u1, u2), by nested 1-D quadrature split at the kinks.

    (u1, u2) has means (mean, mean2), variances (var, var2) and correlation corr. The inner conditional
    expectation E[phi(u2) | u1] is a 1-D Gaussian expectation with shifted mean, computed for all outer
    nodes in one vectorized engine call; see the module docstring for the kink handling. Relative
    accuracy ~1e-14 against 40-digit mpmath (tanh, ELU, GELU, ReLU; tests/test_correlation.py).

    Args:
        act: activation spec, ``Activation`` or callable.
        corr: correlation in [-1, 1]; scalar or array (broadcast with the other arguments).
        var: variance of u1 (>= 0).
        var2: variance of u2 (default: ``var``).
        mean: mean of u1.
        mean2: mean of u2 (default: ``mean``).
        derivative: compute E[phi'(u1) phi'(u2)] instead (the derivative of E[phi(u1) phi(u2)] in the
            covariance, by Price's theorem).

    Returns:
        A float, or an array of the broadcast shape.

    Raises:
        VarpropValueError: corr outside [-1, 1], negative variance, NaN.

    Example:
        >>> round(cross_moment("relu", 0.5), 12)  # (sqrt(3)/2 + (2 pi / 3) / 2) / (2 pi)
        0.304498890522
    """
    activation = resolve_activation(act)
    corr_a = as_real_array("corr", corr)
    if (np.abs(corr_a) > 1.0).any():
        raise VarpropValueError(f"corr must lie in [-1, 1], got {float(corr_a[np.abs(corr_a) > 1.0].flat[0])!r}")
    var_a = as_real_array("var", var, minimum=0.0)
    var2_a = var_a if var2 is None else as_real_array("var2", var2, minimum=0.0)
    mean_a = as_real_array("mean", mean)
    mean2_a = mean_a if mean2 is None else as_real_array("mean2", mean2)
    function = activation.derivative if derivative else activation.function
    arrays = np.broadcast_arrays(corr_a, var_a, var2_a, mean_a, mean2_a)
    shape = arrays[0].shape
    flat = [array.ravel() for array in arrays]
    values = np.array(
        [
            _cross_moment_one(
                function,
                function,
                activation.kinks,
                activation.features,
                float(m1),
                float(m2),
                float(q1),
                float(q2),
                float(c),
            )
            for c, q1, q2, m1, m2 in zip(*flat, strict=True)
        ]
    )
    return _unwrap(values.reshape(shape))


def arccos_cross_moment(corr: Any, var: Any = 1.0, var2: Any = None, negative_slope: float = 0.0) -> Scalar:
    """Closed form of E[phi(u1) phi(u2)] for phi = leaky ReLU, zero means (arc-cosine kernel of degree 1).

    Cho & Saul (2009): for ReLU, E[relu(u1) relu(u2)] = sqrt(q1 q2) (sin t + (pi - t) cos t) / (2 pi)
    with t = arccos(c). Leaky ReLU with slope a is (1 - a) relu(x) + a x, and
    E[relu(u1) u2] = c sqrt(q1 q2) / 2 (Stein's lemma), so

        E[phi(u1) phi(u2)] = (1 - a)^2 K_relu + 2 a (1 - a) c sqrt(q1 q2) / 2 + a^2 c sqrt(q1 q2)
                           = (1 - a)^2 K_relu + a c sqrt(q1 q2).

    Args:
        corr: correlation in [-1, 1] (scalar or array).
        var: variance of u1.
        var2: variance of u2 (default ``var``).
        negative_slope: the leaky slope a (0 for ReLU).

    Returns:
        The expectation (float or array).

    Example:
        >>> round(arccos_cross_moment(1.0), 15)  # E[relu(z)^2]
        0.5
    """
    corr_a = as_real_array("corr", corr)
    if (np.abs(corr_a) > 1.0).any():
        raise VarpropValueError(f"corr must lie in [-1, 1], got {float(corr_a[np.abs(corr_a) > 1.0].flat[0])!r}")
    var_a = as_real_array("var", var, minimum=0.0)
    var2_a = var_a if var2 is None else as_real_array("var2", var2, minimum=0.0)
    scale = np.sqrt(var_a * var2_a)
    angle = np.arccos(corr_a)
    sine = np.sqrt((1.0 - corr_a) * (1.0 + corr_a))
    relu_kernel = scale * (sine + (math.pi - angle) * corr_a) / (2.0 * math.pi)
    slope = float(negative_slope)
    return _unwrap((1.0 - slope) ** 2 * relu_kernel + slope * corr_a * scale)


@dataclass(frozen=True)
class CorrelationMap:
    """The correlation map c -> c' at pre-activation variance q (build it with ``correlation_map``).

    Attributes:
        activation: the activation.
        weight_std: sigma_w.
        bias_std: sigma_b.
        q: the pre-activation variance of both inputs (the fixed point q* by default).
        q_next: F(q) = weight_std^2 E[phi(sqrt(q) z)^2] + bias_std^2 (= q at a fixed point).
        chi1: slope of the map at c = 1, weight_std^2 q E[phi'(sqrt(q) z)^2] / q_next (Price's
            theorem; at the fixed point weight_std^2 E[phi'^2]); < 1 ordered, > 1 chaotic.
    """

    activation: Activation
    weight_std: float
    bias_std: float
    q: float
    q_next: float
    chi1: float

    def __call__(self, corr: Any) -> Scalar:
        """c' = (weight_std^2 E[phi(u1) phi(u2)] + bias_std^2) / q_next, vectorized over c."""
        moment = np.asarray(cross_moment(self.activation, corr, self.q), dtype=np.float64)
        return _unwrap((self.weight_std**2 * moment + self.bias_std**2) / self.q_next)

    def slope(self, corr: Any) -> Scalar:
        """dc'/dc = weight_std^2 q E[phi'(u1) phi'(u2)] / q_next (Price's theorem; continuous phi)."""
        moment = np.asarray(cross_moment(self.activation, corr, self.q, derivative=True), dtype=np.float64)
        return _unwrap(self.weight_std**2 * self.q * moment / self.q_next)


def correlation_map(act: Any, weight_std: Any, bias_std: Any = 0.0, *, var: Any = None) -> CorrelationMap:
    """The correlation map of Poole et al. (2016) for a plain deep network.

    c' = (weight_std^2 E[phi(u1) phi(u2)] + bias_std^2) / q', where u1, u2 ~ N(0, q) have correlation
    c and q' = weight_std^2 E[phi(sqrt(q) z)^2] + bias_std^2. At the fixed point q* = q' the map has
    c = 1 as a fixed point with slope chi1 = weight_std^2 E[phi'(sqrt(q*) z)^2] (Schoenholz et al.
    2017): chi1 < 1 ordered (inputs become correlated), > 1 chaotic, = 1 edge of chaos.

    Args:
        act: activation spec, ``Activation`` or callable.
        weight_std: sigma_w >= 0.
        bias_std: sigma_b >= 0.
        var: the pre-activation variance q; default: the fixed point of the variance map when it has
            exactly one stable fixed point q* > 0.

    Returns:
        A ``CorrelationMap``: ``cmap(c)``, ``cmap.slope(c)``, ``cmap.chi1``.

    Raises:
        VarpropValueError: bad input, or ``var`` omitted and the fixed point is not unique.

    Example:
        >>> cmap = correlation_map("tanh", weight_std=1.39558397515490, bias_std=0.3)
        >>> round(cmap.chi1, 10)
        1.0
    """
    activation = resolve_activation(act)
    sigma_w = check_std("weight_std", weight_std)
    sigma_b = check_std("bias_std", bias_std)
    if var is None:
        points = fixed_point(activation, sigma_w, sigma_b)
        stable = [point for point in points if point.q > 0 and point.kind != "unstable" and not point.continuum]
        if len(stable) != 1:
            found = ", ".join(f"q={point.q:.6g} ({point.kind})" for point in points)
            raise VarpropValueError(
                f"correlation_map needs var= for {activation.spec!r} at weight_std={sigma_w!r}, "
                f"bias_std={sigma_b!r}: the variance map has no unique stable fixed point q* > 0 "
                f"(fixed points: {found or 'none'})"
                + ("; every q is a fixed point" if any(point.continuum for point in points) else "")
            )
        q = stable[0].q
    else:
        q_array = as_real_array("var", var, minimum=0.0)
        if q_array.ndim != 0 or float(q_array) <= 0:
            raise VarpropValueError(f"var must be one number > 0, got {var!r}")
        q = float(q_array)
    second, deriv = gaussian_rows(activation, 0.0, q, ["second", "deriv"])
    q_next = sigma_w**2 * float(second) + sigma_b**2
    if q_next <= 0:
        raise VarpropValueError(
            f"the next-layer variance is 0 for {activation.spec!r} at var={q!r}: correlations are undefined"
        )
    return CorrelationMap(
        activation=activation,
        weight_std=sigma_w,
        bias_std=sigma_b,
        q=q,
        q_next=q_next,
        chi1=sigma_w**2 * q * float(deriv) / q_next,
    )
