"""Definitions of the built-in activations: every elementwise activation of ``torch.nn``, plus sin, cos, erf.

Each definition follows PyTorch exactly: the same name, parameter names, parameter order and
defaults, the same formula (including torch's branch conventions at kinks, e.g. relu'(0) = 0,
elu'(0) = alpha, and softplus's switch to the identity above ``threshold``), implemented in
numpy so that it is accurate to a few ulp everywhere (no overflow for |x| up to 1e300, no
cancellation in the tails). The registry (``_registry.py``) validates parameters and assembles
:class:`~varprop.Activation` values from these definitions; nothing here imports torch.

Kinks list every x where the function or *any* derivative is not smooth; features list the
smooth bends ``(x, width)`` that the quadrature should resolve.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.special as sc
from numpy.typing import NDArray

from .._errors import VarpropValueError
from ._activation import Param

__all__ = ["DEFINITIONS", "ActivationDefinition", "ParamSpec", "Parts"]

FloatArray = NDArray[np.float64]
Function = Callable[[FloatArray], FloatArray]

# SELU constants of torch.nn.SELU (Klambauer et al., 2017, "Self-Normalizing Neural Networks",
# eq. 14: the fixed point of mean 0 and variance 1), to the digits torch's documentation gives.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# GELU tanh approximation (Hendrycks & Gimpel, 2016, sec. 2), as in torch: sqrt(2/pi) and 0.044715.
GELU_TANH_BETA = math.sqrt(2.0 / math.pi)
GELU_TANH_KAPPA = 0.044715
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


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of an activation, as torch names it.

    Attributes:
        name: torch's parameter name.
        default: torch's default, or None if torch requires the parameter.
        choices: the valid values of a string parameter (empty for real numbers).
        allow_inf: whether an infinite value is meaningful (softplus's ``threshold``).
    """

    name: str
    default: Param | None
    choices: tuple[str, ...] = ()
    allow_inf: bool = False


class Parts(NamedTuple):
    """What a definition builds from its validated parameters."""

    function: Function
    derivative: Function
    kinks: tuple[float, ...] = ()
    features: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class ActivationDefinition:
    """A registered activation: its parameters, builder and documentation.

    Attributes:
        name: canonical name (torch.nn.functional's).
        torch_module: the ``torch.nn`` module class, or None (sin, cos, erf).
        description: one line for tables and reports.
        params: parameters in torch's positional order.
        build: maps the validated parameters to the function, derivative, kinks and features.
        check: cross-parameter and range checks (raise VarpropValueError); None if any value goes.
    """

    name: str
    torch_module: str | None
    description: str
    params: tuple[ParamSpec, ...]
    build: Callable[[Mapping[str, Param]], Parts]
    check: Callable[[Mapping[str, Param]], None] | None = None


def _real(params: Mapping[str, Param], name: str) -> float:
    value = params[name]
    assert isinstance(value, float)  # guaranteed by the registry's validation
    return value


def _sigmoid_prime(x: FloatArray) -> FloatArray:
    return np.asarray(sc.expit(x) * sc.expit(-x), dtype=np.float64)


def _sech2(x: FloatArray) -> FloatArray:
    """1/cosh(x)^2 = 4 t/(1 + t)^2 with t = exp(-2|x|): no overflow, full relative accuracy."""
    t = np.exp(-2.0 * np.abs(x))
    return np.asarray(4.0 * t / (1.0 + t) ** 2, dtype=np.float64)


def _softplus(x: FloatArray) -> FloatArray:
    return np.asarray(np.logaddexp(0.0, x), dtype=np.float64)


def _ones(x: FloatArray) -> FloatArray:
    return np.ones_like(x, dtype=np.float64)


def _as_float(mask: NDArray[np.bool_]) -> FloatArray:
    return mask.astype(np.float64)


# ----------------------------------------------------------------------------------------------
# Piecewise linear


def _relu(params: Mapping[str, Param]) -> Parts:
    return Parts(lambda x: np.maximum(x, 0.0), lambda x: _as_float(x > 0.0), kinks=(0.0,))


def _relu6(params: Mapping[str, Param]) -> Parts:
    # torch: hardtanh(x, 0, 6); its gradient is 0 at both ends.
    return Parts(
        lambda x: np.minimum(np.maximum(x, 0.0), 6.0), lambda x: _as_float((x > 0.0) & (x < 6.0)), kinks=(0.0, 6.0)
    )


def _leaky(slope: float) -> Parts:
    # torch: x > 0 ? x : slope * x, gradient slope at 0.
    return Parts(lambda x: np.where(x > 0.0, x, slope * x), lambda x: np.where(x > 0.0, 1.0, slope), kinks=(0.0,))


def _leaky_relu(params: Mapping[str, Param]) -> Parts:
    return _leaky(_real(params, "negative_slope"))


def _prelu(params: Mapping[str, Param]) -> Parts:
    return _leaky(_real(params, "init"))


def _rrelu(params: Mapping[str, Param]) -> Parts:
    # torch in eval mode: leaky_relu with the mean slope (lower + upper) / 2.
    return _leaky((_real(params, "lower") + _real(params, "upper")) / 2.0)


def _check_rrelu(params: Mapping[str, Param]) -> None:
    lower, upper = _real(params, "lower"), _real(params, "upper")
    if not lower <= upper:
        raise VarpropValueError(f"rrelu: lower must be <= upper, got lower={lower!r}, upper={upper!r}")


def _hardtanh(params: Mapping[str, Param]) -> Parts:
    low, high = _real(params, "min_val"), _real(params, "max_val")
    return Parts(
        lambda x: np.minimum(np.maximum(x, low), high),
        lambda x: _as_float((x > low) & (x < high)),
        kinks=(low, high),
    )


def _check_hardtanh(params: Mapping[str, Param]) -> None:
    low, high = _real(params, "min_val"), _real(params, "max_val")
    if not high > low:
        raise VarpropValueError(f"hardtanh: max_val must be > min_val, got min_val={low!r}, max_val={high!r}")


def _hardswish(params: Mapping[str, Param]) -> Parts:
    # torch: x * min(max(x + 3, 0), 6) / 6; gradient 0 for x <= -3, x/3 + 1/2 inside, 1 for x >= 3.
    return Parts(
        lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
        lambda x: np.where(x <= -3.0, 0.0, np.where(x < 3.0, x / 3.0 + 0.5, 1.0)),
        kinks=(-3.0, 3.0),
    )


def _hardsigmoid(params: Mapping[str, Param]) -> Parts:
    return Parts(
        lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,
        lambda x: np.where((x > -3.0) & (x < 3.0), 1.0 / 6.0, 0.0),
        kinks=(-3.0, 3.0),
    )


def _check_lambd(params: Mapping[str, Param]) -> None:
    if not _real(params, "lambd") >= 0.0:
        raise VarpropValueError(f"lambd must be >= 0, got {_real(params, 'lambd')!r}")


def _outside(lambd: float) -> Function:
    # torch's shrink gradients: 0 on the closed interval [-lambd, lambd], 1 outside.
    return lambda x: _as_float((x < -lambd) | (x > lambd))


def _softshrink(params: Mapping[str, Param]) -> Parts:
    lambd = _real(params, "lambd")
    return Parts(
        lambda x: np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, 0.0)),
        _outside(lambd),
        kinks=tuple(sorted({-lambd, lambd})),
    )


def _hardshrink(params: Mapping[str, Param]) -> Parts:
    lambd = _real(params, "lambd")
    return Parts(
        lambda x: np.where((x >= -lambd) & (x <= lambd), 0.0, x), _outside(lambd), kinks=tuple(sorted({-lambd, lambd}))
    )


def _threshold(params: Mapping[str, Param]) -> Parts:
    threshold, value = _real(params, "threshold"), _real(params, "value")
    return Parts(lambda x: np.where(x > threshold, x, value), lambda x: _as_float(x > threshold), kinks=(threshold,))


def _identity(params: Mapping[str, Param]) -> Parts:
    return Parts(lambda x: np.array(x, dtype=np.float64), _ones)


# ----------------------------------------------------------------------------------------------
# Exponential linear units


def _elu_family(scale: float, alpha: float, input_scale: float) -> Parts:
    """torch's ELU kernel: x > 0 ? scale x : scale alpha expm1(input_scale x); gradient at 0 from the left."""

    def function(x: FloatArray) -> FloatArray:
        negative = scale * alpha * np.expm1(input_scale * np.minimum(x, 0.0))
        return np.where(x > 0.0, scale * x, negative)

    def derivative(x: FloatArray) -> FloatArray:
        negative = scale * alpha * input_scale * np.exp(input_scale * np.minimum(x, 0.0))
        return np.where(x > 0.0, scale, negative)

    width = abs(1.0 / input_scale)
    return Parts(function, derivative, kinks=(0.0,), features=((0.0, width),))


def _elu(params: Mapping[str, Param]) -> Parts:
    return _elu_family(1.0, _real(params, "alpha"), 1.0)


def _celu(params: Mapping[str, Param]) -> Parts:
    alpha = _real(params, "alpha")
    return _elu_family(1.0, alpha, 1.0 / alpha)


def _check_celu(params: Mapping[str, Param]) -> None:
    if _real(params, "alpha") == 0.0:
        raise VarpropValueError("celu: alpha must be nonzero (celu divides by alpha), got 0.0")


def _selu(params: Mapping[str, Param]) -> Parts:
    return _elu_family(SELU_SCALE, SELU_ALPHA, 1.0)


# ----------------------------------------------------------------------------------------------
# Smooth gates


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
    beta, threshold = _real(params, "beta"), _real(params, "threshold")

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
    if not _real(params, "beta") > 0.0:
        raise VarpropValueError(f"softplus: beta must be > 0, got {_real(params, 'beta')!r}")


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


def _real_param(name: str, default: float | None, *, allow_inf: bool = False) -> ParamSpec:
    return ParamSpec(name, default, allow_inf=allow_inf)


_LAMBD = _real_param("lambd", 0.5)

#: Every built-in activation, keyed by canonical name.
DEFINITIONS: dict[str, ActivationDefinition] = {
    definition.name: definition
    for definition in [
        ActivationDefinition("relu", "ReLU", "rectified linear unit max(0, x)", (), _relu),
        ActivationDefinition("relu6", "ReLU6", "min(max(0, x), 6)", (), _relu6),
        ActivationDefinition(
            "leaky_relu",
            "LeakyReLU",
            "x for x > 0, negative_slope * x otherwise",
            (_real_param("negative_slope", 0.01),),
            _leaky_relu,
        ),
        ActivationDefinition(
            "prelu",
            "PReLU",
            "parametric ReLU at its initial slope: x > 0 ? x : init * x",
            (_real_param("init", 0.25),),
            _prelu,
        ),
        ActivationDefinition(
            "rrelu",
            "RReLU",
            "randomized leaky ReLU in eval mode: slope (lower + upper) / 2",
            (_real_param("lower", 1.0 / 8.0), _real_param("upper", 1.0 / 3.0)),
            _rrelu,
            _check_rrelu,
        ),
        ActivationDefinition(
            "elu", "ELU", "x > 0 ? x : alpha * (exp(x) - 1) (Clevert et al., 2015)", (_real_param("alpha", 1.0),), _elu
        ),
        ActivationDefinition(
            "celu",
            "CELU",
            "x > 0 ? x : alpha * (exp(x / alpha) - 1) (Barron, 2017)",
            (_real_param("alpha", 1.0),),
            _celu,
            _check_celu,
        ),
        ActivationDefinition(
            "selu",
            "SELU",
            "scale * elu(x, alpha) with the self-normalizing constants (Klambauer et al., 2017)",
            (),
            _selu,
        ),
        ActivationDefinition(
            "gelu",
            "GELU",
            "x * Phi(x), or its tanh approximation (Hendrycks & Gimpel, 2016)",
            (ParamSpec("approximate", "none", choices=("none", "tanh")),),
            _gelu,
        ),
        ActivationDefinition("silu", "SiLU", "x * sigmoid(x) (swish; Elfwing et al., 2017)", (), _silu),
        ActivationDefinition("mish", "Mish", "x * tanh(softplus(x)) (Misra, 2019)", (), _mish),
        ActivationDefinition(
            "softplus",
            "Softplus",
            "log(1 + exp(beta x)) / beta, identity where beta x > threshold",
            (_real_param("beta", 1.0), _real_param("threshold", 20.0, allow_inf=True)),
            _softplus_activation,
            _check_softplus,
        ),
        ActivationDefinition(
            "hardtanh",
            "Hardtanh",
            "x clipped to [min_val, max_val]",
            (_real_param("min_val", -1.0), _real_param("max_val", 1.0)),
            _hardtanh,
            _check_hardtanh,
        ),
        ActivationDefinition("hardswish", "Hardswish", "x * relu6(x + 3) / 6 (Howard et al., 2019)", (), _hardswish),
        ActivationDefinition("hardsigmoid", "Hardsigmoid", "relu6(x + 3) / 6", (), _hardsigmoid),
        ActivationDefinition("sigmoid", "Sigmoid", "logistic sigmoid 1 / (1 + exp(-x))", (), _sigmoid),
        ActivationDefinition("tanh", "Tanh", "hyperbolic tangent", (), _tanh),
        ActivationDefinition("softsign", "Softsign", "x / (1 + |x|)", (), _softsign),
        ActivationDefinition("logsigmoid", "LogSigmoid", "log(sigmoid(x)) = -softplus(-x)", (), _logsigmoid),
        ActivationDefinition("tanhshrink", "Tanhshrink", "x - tanh(x)", (), _tanhshrink),
        ActivationDefinition(
            "softshrink",
            "Softshrink",
            "x -+ lambd outside [-lambd, lambd], 0 inside",
            (_LAMBD,),
            _softshrink,
            _check_lambd,
        ),
        ActivationDefinition(
            "hardshrink", "Hardshrink", "x outside [-lambd, lambd], 0 inside", (_LAMBD,), _hardshrink, _check_lambd
        ),
        ActivationDefinition(
            "threshold",
            "Threshold",
            "x > threshold ? x : value (both required, as in torch)",
            (_real_param("threshold", None), _real_param("value", None)),
            _threshold,
        ),
        ActivationDefinition("identity", "Identity", "the identity x", (), _identity),
        ActivationDefinition("sin", None, "sine", (), _sin),
        ActivationDefinition("cos", None, "cosine", (), _cos),
        ActivationDefinition("erf", None, "error function erf(x)", (), _erf),
    ]
}
