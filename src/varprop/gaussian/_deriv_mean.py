"""E[phi'(y)], y ~ N(mean, var): the mean slope, in closed form where one exists, by quadrature otherwise.

E[phi'(y)] is the gain of the linearized layer: for a small perturbation dy of the pre-activations,
E[d phi(y)] = E[phi'(y)] dy, so a network linearized around its inputs scales mean perturbations by
sigma_w^2 E[phi']-style factors (Poole et al. 2016; for odd phi and zero mean it is the slope of the
correlation map at c = 0 divided by the weights). By Stein's lemma, E[phi'(y)] = E[(y - mean) phi(y)] / var
= d/dmean E[phi(y)] for continuous phi; phi' is the almost-everywhere derivative (a jump, as in
hardshrink, contributes nothing).

Closed forms, with s = sqrt(var), a_t = (t - mean) / s and Phi, phi the standard normal cdf and pdf:

- piecewise-linear activations (relu, leaky_relu, prelu, rrelu, relu6, hardtanh, hardsigmoid,
  softshrink, hardshrink, threshold, identity): sum of slope_i P(y in piece i);
- hardswish: slope y/3 + 1/2 on (-3, 3): E[y; a < y < b] / 3 + P / 2 with
  E[y; a < y < b] = mean P + s (phi(a_a) - phi(a_b)), and P(y > 3);
- elu, celu, selu: c P(y > 0) + d E[e^{y/k}; y < 0], where
  E[e^{y/k}; y < 0] = e^{mean/k + var/(2k^2)} Phi(-t) = erfcx(t/sqrt 2)/2 e^{-mean^2/(2 var)}, t = (mean + var/k)/s
  (the second form for t > 0: no overflow);
- gelu (exact): phi' = Phi(x) + x phi(x), E = Phi(mean/r) + mean/r^3 phi(mean/r), r = sqrt(1 + var);
- sin, cos: E[cos y] = cos(mean) e^{-var/2}, E[-sin y] = -sin(mean) e^{-var/2};
- erf: (2/sqrt pi) e^{-mean^2/(1 + 2 var)} / sqrt(1 + 2 var).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import erfcx, ndtr

from .._errors import ConvergenceError
from .._validation import as_real_array
from ..activations import activation as resolve_activation
from ..activations._activation import Activation
from ..activations._builtin import SELU_ALPHA, SELU_SCALE
from ..activations.expression._singular_points import SingularPoint
from ._engine import Scalar, float_or_array
from ._quadrature import gaussian_expectation
from ._singular import DIVERGENT_EXPONENT, singular_expectation

__all__ = ["deriv_mean"]

FloatArray = NDArray[np.float64]
_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
_SQRT_2 = math.sqrt(2.0)
_ROUNDING = 128 * float(np.finfo(np.float64).eps)  # as for the closed forms of ``moments``


def _pdf(t: FloatArray) -> FloatArray:
    return np.asarray(_INV_SQRT_2PI * np.exp(-0.5 * t * t), dtype=np.float64)


def _between(low: float, high: float, mean: FloatArray, sigma: FloatArray) -> FloatArray:
    """P(low < y < high) without cancellation: upper tails where both ends are above the mean."""
    a, b = (low - mean) / sigma, (high - mean) / sigma
    upper = ndtr(-a) - ndtr(-b)
    lower = ndtr(b) - ndtr(a)
    return np.asarray(np.where(a > 0.0, upper, lower), dtype=np.float64)


# Pieces (low, high, slope) of piecewise-constant derivatives, by activation, from its parameters.
Pieces = list[tuple[float, float, float]]
_INF = math.inf


def _pieces(act: Activation) -> Pieces | None:
    name, params = act.name, act.param_dict
    real = {key: float(value) for key, value in params.items() if isinstance(value, (int, float))}
    if name == "relu":
        return [(0.0, _INF, 1.0)]
    if name in ("leaky_relu", "prelu", "rrelu"):
        slope = {
            "leaky_relu": lambda: real["negative_slope"],
            "prelu": lambda: real["init"],
            "rrelu": lambda: (real["lower"] + real["upper"]) / 2.0,  # torch in eval mode: the mean slope
        }[name]()
        return [(-_INF, 0.0, slope), (0.0, _INF, 1.0)]
    if name == "relu6":
        return [(0.0, 6.0, 1.0)]
    if name == "hardtanh":
        return [(real["min_val"], real["max_val"], 1.0)]
    if name == "hardsigmoid":
        return [(-3.0, 3.0, 1.0 / 6.0)]
    if name in ("softshrink", "hardshrink"):
        return [(-_INF, -real["lambd"], 1.0), (real["lambd"], _INF, 1.0)]
    if name == "threshold":
        return [(real["threshold"], _INF, 1.0)]
    if name == "identity":
        return [(-_INF, _INF, 1.0)]
    return None


def _exp_below_zero(mean: FloatArray, var: FloatArray, rate: float) -> FloatArray:
    """E[e^{rate y}; y < 0] for y ~ N(mean, var > 0), rate > 0, without overflow."""
    sigma = np.sqrt(var)
    t = (mean + var * rate) / sigma
    with np.errstate(over="ignore", under="ignore"):
        stable = 0.5 * erfcx(np.maximum(t, 0.0) / _SQRT_2) * np.exp(-0.5 * (mean / sigma) ** 2)
        direct = np.exp(np.minimum(rate * mean + 0.5 * rate * rate * var, 0.0)) * ndtr(-t)
    return np.asarray(np.where(t > 0.0, stable, direct), dtype=np.float64)


ClosedDerivMean = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]


def _closed_form(act: Activation) -> ClosedDerivMean | None:
    """(mean, var > 0) -> (E[phi'], sum of the |terms|) for the activations of the module docstring."""
    pieces = _pieces(act)
    if pieces is not None:

        def piecewise(mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
            sigma = np.sqrt(var)
            terms = [slope * _between(low, high, mean, sigma) for low, high, slope in pieces]
            return np.sum(terms, axis=0), np.sum(np.abs(terms), axis=0)

        return piecewise
    name, params = act.name, act.param_dict
    if name in ("elu", "celu", "selu"):
        alpha = float(params.get("alpha", SELU_ALPHA))
        scale, rate = (SELU_SCALE, 1.0) if name == "selu" else (1.0, 1.0 if name == "elu" else 1.0 / alpha)
        negative_slope = scale * alpha * rate  # phi'(x) = scale alpha rate e^{rate x} for x < 0

        def elu_family(mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
            positive = scale * ndtr(mean / np.sqrt(var))
            negative = negative_slope * _exp_below_zero(mean, var, rate)
            return positive + negative, np.abs(positive) + np.abs(negative)

        return elu_family
    if name == "gelu" and params.get("approximate", "none") == "none":

        def gelu(mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
            radius = np.sqrt(1.0 + var)
            gate, slope = ndtr(mean / radius), mean / radius**3 * _pdf(mean / radius)
            return gate + slope, gate + np.abs(slope)

        return gelu
    if name == "hardswish":

        def hardswish(mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
            sigma = np.sqrt(var)
            inside = _between(-3.0, 3.0, mean, sigma)
            partial_mean = mean * inside + sigma * (_pdf((-3.0 - mean) / sigma) - _pdf((3.0 - mean) / sigma))
            above = _between(3.0, _INF, mean, sigma)
            terms = [partial_mean / 3.0, 0.5 * inside, above]
            return np.sum(terms, axis=0), np.sum(np.abs(terms), axis=0)

        return hardswish
    if name in ("sin", "cos"):

        def trig(mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
            value = (np.cos(mean) if name == "sin" else -np.sin(mean)) * np.exp(-0.5 * var)
            return value, np.abs(value)

        return trig
    if name == "erf":

        def erf(mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
            spread = 1.0 + 2.0 * var
            value = 2.0 / math.sqrt(math.pi) * np.exp(-mean * mean / spread) / np.sqrt(spread)
            return value, value

        return erf
    return None


def deriv_mean(
    act: Any, var: Any = 1.0, mean: Any = 0.0, *, with_error: bool = False
) -> Scalar | tuple[Scalar, Scalar]:
    """E[phi'(y)] for y ~ N(mean, var): the mean slope of the activation (linearized gain).

    Closed forms for piecewise-linear activations, the ELU family, exact GELU, hardswish, sin, cos and
    erf (see the module docstring); graded Gauss-Legendre quadrature of phi' (split at the kinks) for
    every other activation; for formulas with singular points the exact transform of
    ``varprop.gaussian._singular`` (E[phi'] diverges where |phi'| ~ d^-b with b >= 1, e.g. log(abs(x))).

    Args:
        act: activation spec, ``Activation`` or numpy callable.
        var: variance of y (>= 0; var = 0 gives phi'(mean)); scalar or array.
        mean: mean of y; scalar or array (broadcast with ``var``).
        with_error: also return an absolute error estimate that bounds the true error.

    Returns:
        A float or array; ``(value, error)`` with ``with_error``.

    Raises:
        VarpropValueError: bad variance or mean.
        ConvergenceError: E[phi'] diverges.

    Example:
        >>> round(deriv_mean("relu", var=4.0, mean=1.0), 15)  # Phi(1/2)
        0.691462461274013
    """
    activation = resolve_activation(act)
    var_a = as_real_array("var", var, minimum=0.0)
    mean_a = as_real_array("mean", mean)
    mean_b, var_b = np.broadcast_arrays(mean_a, var_a)
    shape = mean_b.shape
    mean_f, var_f = mean_b.ravel().astype(np.float64), var_b.ravel().astype(np.float64)
    values, errors = np.empty(mean_f.size), np.zeros(mean_f.size)
    random = var_f > 0.0
    if (~random).any():
        with np.errstate(all="ignore"):
            values[~random] = activation.derivative(mean_f[~random])
    closed = _closed_form(activation)
    singular: tuple[SingularPoint, ...] = activation.extra.get("singular_points", ())
    if random.any():
        if closed is not None:
            value, magnitude = closed(mean_f[random], var_f[random])
            values[random], errors[random] = value, _ROUNDING * magnitude
        elif singular:
            values[random], errors[random] = _singular_deriv_mean(activation, singular, mean_f[random], var_f[random])
        else:
            derivative = activation.derivative
            result = gaussian_expectation(
                lambda y, _: derivative(y),
                mean_f[random],
                var_f[random],
                kinks=activation.kinks,
                features=activation.features,
                with_error=True,
            )
            values[random], errors[random] = result.value[0], result.abserr[0]
    if not np.isfinite(values).all():
        index = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ConvergenceError(
            f"E[phi'] of {activation.spec!r} at mean={float(mean_f[index])!r}, var={float(var_f[index])!r} is not "
            "finite (phi' overflows or is undefined there)"
        )
    if with_error:
        return float_or_array(values.reshape(shape)), float_or_array(errors.reshape(shape))
    return float_or_array(values.reshape(shape))


def _singular_deriv_mean(
    activation: Activation, points: tuple[SingularPoint, ...], mean: FloatArray, var: FloatArray
) -> tuple[FloatArray, FloatArray]:
    exponent = max(deriv_exponent for _, _, deriv_exponent in points)
    if exponent >= DIVERGENT_EXPONENT:
        where = [point for point, _, deriv_exponent in points if deriv_exponent >= DIVERGENT_EXPONENT]
        raise ConvergenceError(
            f"E[phi'] of {activation.spec!r} diverges: phi' has a non-integrable singularity at x={where[0]!r} "
            f"(|phi'| grows like |x - {where[0]!r}|^-{exponent:.6g}; E[phi'] needs an exponent < 1)"
        )
    derivative = activation.derivative
    near_pair = activation.extra.get("near")  # formulas: phi' at p + d with exact offsets d
    near = None if near_pair is None else (lambda point, offset: [near_pair[1](point, offset)])
    values, errors = np.empty(mean.size), np.empty(mean.size)
    for index, (centre, variance) in enumerate(zip(mean, var, strict=True)):
        (values[index],), (errors[index],) = singular_expectation(
            lambda y, _: [derivative(y)],
            float(centre),
            float(variance),
            [point for point, _, _ in points],
            [exponent],
            kinks=activation.kinks,
            features=activation.features,
            near=near,
        )
    return values, errors
