"""Built-in smooth activations: the gates (gelu, silu, mish, softplus), sigmoid, tanh, softsign, logsigmoid,
tanhshrink, and sin, cos, erf (accurate to a few ulp everywhere: no overflow, no cancellation in the tails)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import scipy.special as sc

from ..._errors import VarpropValueError
from .._activation import Param
from .._constants import GELU_TANH_BETA, GELU_TANH_KAPPA
from ..closed_forms import cos_closed_form, erf_closed_form, gelu_closed_form, sin_closed_form
from ._definition import ActivationDefinition, FloatArray, ParamSpec, Parts, TorchNames, functional, real, real_param

__all__ = ["SMOOTH"]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
# Beyond |x| = 1e6 the GELU-tanh gate expit(2 sqrt(2/pi)(x + 0.044715 x^3)) is exactly 0 or 1 in
# float64; clipping there keeps x^3 from overflowing.
_GELU_TANH_CLIP = 1e6
# Taylor coefficients of x - tanh(x) = sum_n c_n x^(2n+1), n = 1..17, from
# c_n = -2^(2n+2)(2^(2n+2)-1) B_(2n+2)/(2n+2)! (Bernoulli numbers B), computed with mpmath at 40
# digits: [-2**(2*n)*(2**(2*n)-1)*mp.bernoulli(2*n)/mp.factorial(2*n) for n in range(2, 19)].
# On |x| < 0.5 the truncated series is exact to 3e-16 relative; the direct difference x - tanh(x)
# loses up to 14 digits there.
_TANHSHRINK_SERIES = (
    0.3333333333333333,
    -0.13333333333333333,
    0.05396825396825397,
    -0.021869488536155203,
    0.008863235529902197,
    -0.003592128036572481,
    0.0014558343870513183,
    -0.000590027440945586,
    0.00023912911424355248,
    -9.691537956929451e-05,
    3.927832388331683e-05,
    -1.5918905069328964e-05,
    6.451689215655431e-06,
    -2.6147711512907546e-06,
    1.0597268320104654e-06,
    -4.294911078273806e-07,
    1.7406618963571648e-07,
)
_TANHSHRINK_SERIES_LIMIT = 0.5


def _sigmoid_prime(x: FloatArray) -> FloatArray:
    return np.asarray(sc.expit(x) * sc.expit(-x), dtype=np.float64)


def _sech2(x: FloatArray) -> FloatArray:
    """1/cosh(x)^2 = 4 t/(1 + t)^2 with t = exp(-2|x|): no overflow, full relative accuracy."""
    t = np.exp(-2.0 * np.abs(x))
    return np.asarray(4.0 * t / (1.0 + t) ** 2, dtype=np.float64)


def _softplus(x: FloatArray) -> FloatArray:
    return np.asarray(np.logaddexp(0.0, x), dtype=np.float64)


def _gelu(params: Mapping[str, Param]) -> Parts:
    if params["approximate"] == "tanh":
        # torch: 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3); 0.5 (1 + tanh u) = expit(2u).
        def gate_argument(x: FloatArray) -> FloatArray:
            clipped = np.clip(x, -_GELU_TANH_CLIP, _GELU_TANH_CLIP)
            return np.asarray(2.0 * GELU_TANH_BETA * (clipped + GELU_TANH_KAPPA * clipped**3), dtype=np.float64)

        def function(x: FloatArray) -> FloatArray:
            return np.asarray(x * sc.expit(gate_argument(x)), dtype=np.float64)

        def derivative(x: FloatArray) -> FloatArray:
            argument = gate_argument(x)
            clipped = np.clip(x, -_GELU_TANH_CLIP, _GELU_TANH_CLIP)
            slope = 2.0 * GELU_TANH_BETA * (1.0 + 3.0 * GELU_TANH_KAPPA * clipped**2)
            return np.asarray(sc.expit(argument) + clipped * _sigmoid_prime(argument) * slope, dtype=np.float64)

        return Parts(function, derivative, features=((0.0, 1.0),))
    # Exact GELU, x Phi(x) (Hendrycks & Gimpel, 2016); ndtr keeps full relative accuracy in the left tail.
    return Parts(
        lambda x: np.asarray(x * sc.ndtr(x), dtype=np.float64),
        lambda x: np.asarray(sc.ndtr(x) + x * np.exp(-0.5 * x * x) * _INV_SQRT_2PI, dtype=np.float64),
        features=((0.0, 1.0),),
    )


def _silu(params: Mapping[str, Param]) -> Parts:
    return Parts(
        lambda x: np.asarray(x * sc.expit(x), dtype=np.float64),
        lambda x: np.asarray(sc.expit(x) * (1.0 + x * sc.expit(-x)), dtype=np.float64),
        features=((0.0, 1.0),),
    )


def _mish(params: Mapping[str, Param]) -> Parts:
    # x tanh(softplus(x)); d/dx = tanh(sp) + x sigmoid(x) sech^2(sp), sp = softplus(x) >= 0.
    def derivative(x: FloatArray) -> FloatArray:
        smooth = _softplus(x)
        return np.asarray(np.tanh(smooth) + x * sc.expit(x) * _sech2(smooth), dtype=np.float64)

    return Parts(lambda x: x * np.tanh(_softplus(x)), derivative, features=((0.0, 1.0),))


def _softplus_activation(params: Mapping[str, Param]) -> Parts:
    beta, threshold = real(params, "beta"), real(params, "threshold")

    # torch: beta x > threshold ? x : log1p(exp(beta x)) / beta (the switch is a jump of
    # log1p(exp(-threshold))/beta, 2e-9 at the defaults, and is reproduced exactly).
    def function(x: FloatArray) -> FloatArray:
        scaled = beta * x
        return np.where(scaled > threshold, x, np.logaddexp(0.0, scaled) / beta)

    def derivative(x: FloatArray) -> FloatArray:
        scaled = beta * x
        return np.where(scaled > threshold, 1.0, sc.expit(scaled))

    kinks = (threshold / beta,) if math.isfinite(threshold / beta) else ()
    return Parts(function, derivative, kinks=kinks, features=((0.0, 1.0 / beta),))


def _check_softplus(params: Mapping[str, Param]) -> None:
    if not real(params, "beta") > 0.0:
        raise VarpropValueError(f"softplus: beta must be > 0, got {real(params, 'beta')!r}")


def _sigmoid(params: Mapping[str, Param]) -> Parts:
    return Parts(lambda x: np.asarray(sc.expit(x), dtype=np.float64), _sigmoid_prime, features=((0.0, 1.0),))


def _tanh(params: Mapping[str, Param]) -> Parts:
    return Parts(np.tanh, _sech2, features=((0.0, 1.0),))


def _softsign(params: Mapping[str, Param]) -> Parts:
    # x / (1 + |x|): the second derivative jumps at 0, hence a kink there.
    return Parts(
        lambda x: x / (1.0 + np.abs(x)), lambda x: 1.0 / (1.0 + np.abs(x)) ** 2, kinks=(0.0,), features=((0.0, 1.0),)
    )


def _logsigmoid(params: Mapping[str, Param]) -> Parts:
    # torch: min(x, 0) - log1p(exp(-|x|)) = -softplus(-x).
    return Parts(lambda x: -_softplus(-x), lambda x: np.asarray(sc.expit(-x), dtype=np.float64), features=((0.0, 1.0),))


def _tanhshrink_function(x: FloatArray) -> FloatArray:
    squared = x * x
    series = np.zeros_like(x)
    for coefficient in reversed(_TANHSHRINK_SERIES):
        series = series * squared + coefficient
    small = np.abs(x) < _TANHSHRINK_SERIES_LIMIT
    return np.where(small, series * squared * x, x - np.tanh(x))


def _tanhshrink(params: Mapping[str, Param]) -> Parts:
    return Parts(_tanhshrink_function, lambda x: np.tanh(x) ** 2, features=((0.0, 1.0),))


def _sin(params: Mapping[str, Param]) -> Parts:
    return Parts(np.sin, np.cos)


def _cos(params: Mapping[str, Param]) -> Parts:
    return Parts(np.cos, lambda x: -np.sin(x))


def _erf(params: Mapping[str, Param]) -> Parts:
    return Parts(
        lambda x: np.asarray(sc.erf(x), dtype=np.float64),
        lambda x: _TWO_OVER_SQRT_PI * np.exp(-x * x),
        features=((0.0, 1.0),),
    )


SMOOTH: tuple[ActivationDefinition, ...] = (
    ActivationDefinition(
        "gelu",
        "x * Phi(x), or its tanh approximation (Hendrycks & Gimpel, 2016)",
        (ParamSpec("approximate", "none", choices=("none", "tanh")),),
        _gelu,
        torch=TorchNames("GELU", functional("gelu")),
        closed_form=gelu_closed_form,
    ),
    ActivationDefinition(
        "silu", "x * sigmoid(x) (swish; Elfwing et al., 2017)", (), _silu, torch=TorchNames("SiLU", functional("silu"))
    ),
    ActivationDefinition(
        "mish", "x * tanh(softplus(x)) (Misra, 2019)", (), _mish, torch=TorchNames("Mish", functional("mish"))
    ),
    ActivationDefinition(
        "softplus",
        "log(1 + exp(beta x)) / beta, identity where beta x > threshold",
        (real_param("beta", 1.0), real_param("threshold", 20.0, allow_inf=True)),
        _softplus_activation,
        _check_softplus,
        torch=TorchNames("Softplus", functional("softplus")),
    ),
    ActivationDefinition(
        "sigmoid",
        "logistic sigmoid 1 / (1 + exp(-x))",
        (),
        _sigmoid,
        torch=TorchNames(
            "Sigmoid",
            ("torch.sigmoid", *functional("sigmoid"), "torch.special.expit"),
            methods=("sigmoid", "sigmoid_"),
        ),
    ),
    ActivationDefinition(
        "tanh",
        "hyperbolic tangent",
        (),
        _tanh,
        torch=TorchNames("Tanh", ("torch.tanh", *functional("tanh")), methods=("tanh", "tanh_")),
    ),
    ActivationDefinition(
        "softsign", "x / (1 + |x|)", (), _softsign, torch=TorchNames("Softsign", functional("softsign"))
    ),
    ActivationDefinition(
        "logsigmoid",
        "log(sigmoid(x)) = -softplus(-x)",
        (),
        _logsigmoid,
        torch=TorchNames("LogSigmoid", functional("logsigmoid")),
    ),
    ActivationDefinition(
        "tanhshrink", "x - tanh(x)", (), _tanhshrink, torch=TorchNames("Tanhshrink", functional("tanhshrink"))
    ),
    # sin, cos, erf: no torch.nn module.
    ActivationDefinition(
        "sin",
        "sine",
        (),
        _sin,
        torch=TorchNames(None, ("torch.sin",), ("sin", "sin_")),
        closed_form=sin_closed_form,
    ),
    ActivationDefinition(
        "cos",
        "cosine",
        (),
        _cos,
        torch=TorchNames(None, ("torch.cos",), ("cos", "cos_")),
        closed_form=cos_closed_form,
    ),
    ActivationDefinition(
        "erf",
        "error function erf(x)",
        (),
        _erf,
        torch=TorchNames(None, ("torch.erf", "torch.special.erf"), ("erf", "erf_")),
        closed_form=erf_closed_form,
    ),
)
