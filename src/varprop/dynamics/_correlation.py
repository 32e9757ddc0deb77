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

from .._errors import ConvergenceError, VarpropValueError
from .._validation import as_real_array, check_real
from ..activations import Activation
from ..activations import activation as resolve_activation
from ..activations.expression._grammar import exponential_form
from ..gaussian import Scalar, float_or_array, gaussian_expectation, refuse_singular
from ._variance_map import check_std, fixed_point, gaussian_rows

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
) -> tuple[float, float]:
    """E[first(u1) second(u2)] and an error estimate; both functions share ``kinks`` and ``features``.

    The estimate adds the outer integral's (14- vs 11-point Gauss-Legendre on the same panels), the
    inner errors carried through, E[|first(u1)| err_inner(u1)], and rounding, 8 eps E[|first h|].
    """
    eps = float(np.finfo(np.float64).eps)
    if var1 == 0.0 or var2 == 0.0 or corr == 0.0:
        # Independent (or degenerate) coordinates: the expectation factorizes.
        left = gaussian_expectation(
            lambda y, _: first(y), np.asarray(mean1), np.asarray(var1), kinks=kinks, features=features, with_error=True
        )
        right = gaussian_expectation(
            lambda y, _: second(y), np.asarray(mean2), np.asarray(var2), kinks=kinks, features=features, with_error=True
        )
        left_value, right_value = float(left.value[0]), float(right.value[0])
        left_error = float(left.abserr[0]) + 8 * eps * float(left.scale[0])
        right_error = float(right.abserr[0]) + 8 * eps * float(right.scale[0])
        error = abs(left_value) * right_error + abs(right_value) * left_error + left_error * right_error
        return left_value * right_value, error
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

    def outer(u1: FloatArray, _: NDArray[np.intp]) -> list[FloatArray]:
        conditional_mean = mean2 + rho * (u1 - mean1)
        inner = gaussian_expectation(
            lambda y, __: second(y),
            conditional_mean,
            np.asarray(inner_var),
            kinks=kinks,
            features=features,
            with_error=True,
        )
        values = first(u1)
        inner_error = inner.abserr[0] + 8 * eps * inner.scale[0]
        return [np.asarray(values * inner.value[0], dtype=np.float64), np.abs(values) * inner_error]

    result = gaussian_expectation(
        outer, np.asarray(mean1), np.asarray(var1), kinks=outer_kinks, features=outer_features, with_error=True
    )
    value = float(result.value[0])
    # x10: the 14- vs 11-point difference undershoots where oscillations are barely resolved (sin at q = 100).
    error = 10 * (float(result.abserr[0]) + float(result.value[1])) + 8 * eps * float(result.scale[0])
    return value, error


Form = tuple[str, float, float, float]  # phi(x) = amplitude * name(slope * x + intercept), name sin/cos/exp
_LOG_MAX = math.log(np.finfo(np.float64).max)  # 709.78: e^t overflows float64 beyond


def _exponential_form(activation: Activation, derivative: bool) -> Form | None:
    """sin, cos and exp of an affine argument (registered or as a formula), or of their derivatives."""
    if activation.name in ("sin", "cos") and not activation.params:
        form: Form | None = (activation.name, 1.0, 1.0, 0.0)
    elif "expression" in activation.extra:
        form = exponential_form(activation.extra["expression"])
    else:
        form = None
    if form is None or not derivative:
        return form
    name, amplitude, slope, intercept = form  # sin' = cos, cos' = -sin, exp' = exp (times the slope)
    derived = {"sin": ("cos", 1.0), "cos": ("sin", -1.0), "exp": ("exp", 1.0)}[name]
    return derived[0], derived[1] * amplitude * slope, slope, intercept


def _exponential_cross_moment(
    spec: str, form: Form, mean1: float, mean2: float, var1: float, var2: float, corr: float
) -> float:
    """E[phi(u1) phi(u2)] in closed form for phi = A sin/cos/exp(a u + b) (characteristic function).

    X = a u1 + b and Y = a u2 + b are jointly Gaussian with means t1, t2, variances s1^2, s2^2 and
    covariance r = a^2 c sqrt(q1 q2); with S = (s1^2 + s2^2) / 2, from E[e^{iX}] = e^{i t - s^2/2},
    sin X sin Y = (cos(X - Y) - cos(X + Y)) / 2 and cos X cos Y = (cos(X - Y) + cos(X + Y)) / 2:

        E[sin X sin Y] = e^-S (cos t1 cos t2 sinh r + sin t1 sin t2 cosh r),
        E[cos X cos Y] = e^-S (cos t1 cos t2 cosh r + sin t1 sin t2 sinh r),
        E[e^X e^Y]     = e^(t1 + t2 + S + r)     (the log-normal's moment generating function).

    For zero means E[sin u1 sin u2] = e^-q sinh(q c) (Williams 1997, the sine network's kernel). sinh r
    and cosh r are combined with e^-S as (e^(|r| - S) (1 -+ e^(-2|r|)) / 2 (no overflow, no cancellation).

    Raises:
        ConvergenceError: the value exceeds the float64 range (exp only; e^709.78 is the largest).
    """
    name, amplitude, slope, intercept = form
    theta1, theta2 = slope * mean1 + intercept, slope * mean2 + intercept
    half_sum = 0.5 * slope * slope * (var1 + var2)
    covariance = slope * slope * corr * math.sqrt(var1 * var2)
    if name == "exp":
        exponent = theta1 + theta2 + half_sum + covariance + 2.0 * math.log(abs(amplitude))
        if exponent > _LOG_MAX:
            raise ConvergenceError(
                f"E[phi(u1) phi(u2)] = e^{exponent:.6g} for {spec!r} at corr={corr!r}, var={var1!r}, var2={var2!r} "
                "exceeds the float64 range (e^709.78); use a smaller variance or mean"
            )
        return math.exp(exponent)
    magnitude = abs(covariance)
    if magnitude < 1.0:
        sinh_part, cosh_part = math.exp(-half_sum) * math.sinh(covariance), math.exp(-half_sum) * math.cosh(covariance)
    else:
        scale = 0.5 * math.exp(magnitude - half_sum)
        sinh_part = math.copysign(-scale * math.expm1(-2.0 * magnitude), covariance)
        cosh_part = scale * (1.0 + math.exp(-2.0 * magnitude))
    cos_cos, sin_sin = math.cos(theta1) * math.cos(theta2), math.sin(theta1) * math.sin(theta2)
    sine = name == "sin"
    value = cos_cos * (sinh_part if sine else cosh_part) + sin_sin * (cosh_part if sine else sinh_part)
    return amplitude * amplitude * value


def cross_moment(
    act: Any,
    corr: Any,
    var: Any = 1.0,
    *,
    var2: Any = None,
    mean: Any = 0.0,
    mean2: Any = None,
    derivative: bool = False,
    with_error: bool = False,
    rtol: float | None = None,
) -> Scalar | tuple[Scalar, Scalar]:
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
        with_error: also return an absolute error estimate (same shape) that bounds the true error.
        rtol: if given, raise ``ConvergenceError`` where the estimate exceeds rtol * |value|.

    Returns:
        A float, or an array of the broadcast shape; ``(value, error)`` with ``with_error``.

    sin, cos and exp of an affine argument (registered or as formulas) use the closed forms of
    ``_exponential_cross_moment`` (exact at any q: quadrature of sin at q = 100 lost 1e-3 relative).

    Raises:
        VarpropValueError: corr outside [-1, 1], negative variance, NaN.
        ConvergenceError: the estimate exceeds ``rtol``; exp's value exceeds the float64 range.

    Example:
        >>> round(cross_moment("relu", 0.5), 12)  # (sqrt(3)/2 + (2 pi / 3) / 2) / (2 pi)
        0.304498890522
    """
    activation = resolve_activation(act)
    refuse_singular(activation.spec, activation.extra.get("singular_points", ()), "cross_moment")
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
    form = _exponential_form(activation, derivative)
    if form is not None:
        exact = [
            _exponential_cross_moment(activation.spec, form, float(m1), float(m2), float(q1), float(q2), float(c))
            for c, q1, q2, m1, m2 in zip(*flat, strict=True)
        ]
        values = np.array(exact, dtype=np.float64)
        # Rounding of the closed form: exp, sinh and cosh of arguments up to |r| ~ 700 carry |r| eps.
        errors = 8 * np.finfo(np.float64).eps * (1.0 + np.abs(np.log(np.abs(values) + 1e-300))) * np.abs(values)
    else:
        pairs = [
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
        values = np.array([pair[0] for pair in pairs])
        errors = np.array([pair[1] for pair in pairs])
    if rtol is not None:
        tolerance = check_real("rtol", rtol, minimum=0.0, strict=True)
        bad = errors > tolerance * np.abs(values)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise ConvergenceError(
                f"cross_moment of {activation.spec!r} at corr={float(flat[0][index])!r}, "
                f"var={float(flat[1][index])!r}: "
                f"estimated error {float(errors[index]):.3g} exceeds rtol={tolerance!r} times |value| "
                f"{abs(float(values[index])):.3g} (oscillation or cancellation); pass a larger rtol or use "
                "an activation with a closed form"
            )
    if with_error:
        return float_or_array(values.reshape(shape)), float_or_array(errors.reshape(shape))
    return float_or_array(values.reshape(shape))


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
    return float_or_array((1.0 - slope) ** 2 * relu_kernel + slope * corr_a * scale)


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
        return float_or_array((self.weight_std**2 * moment + self.bias_std**2) / self.q_next)

    def slope(self, corr: Any) -> Scalar:
        """dc'/dc = weight_std^2 q E[phi'(u1) phi'(u2)] / q_next (Price's theorem; continuous phi)."""
        moment = np.asarray(cross_moment(self.activation, corr, self.q, derivative=True), dtype=np.float64)
        return float_or_array(self.weight_std**2 * self.q * moment / self.q_next)


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
