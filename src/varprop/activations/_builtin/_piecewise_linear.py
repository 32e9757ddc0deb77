"""Built-in piecewise linear activations: relu and its slopes, relu6, hardtanh, hardswish, hardsigmoid, the shrinks,
threshold, identity (torch's formulas and gradient conventions at the kinks)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..._errors import VarpropValueError
from .._activation import Param
from ..closed_forms import (
    hardshrink_closed_form,
    hardsigmoid_closed_form,
    hardswish_closed_form,
    hardtanh_closed_form,
    identity_closed_form,
    leaky_relu_closed_form,
    prelu_closed_form,
    relu6_closed_form,
    relu_closed_form,
    rrelu_closed_form,
    softshrink_closed_form,
    threshold_closed_form,
)
from ._definition import ActivationDefinition, Function, Parts, TorchNames, as_float, functional, real, real_param

__all__ = ["PIECEWISE_LINEAR"]


def _relu(params: Mapping[str, Param]) -> Parts:
    return Parts(lambda x: np.maximum(x, 0.0), lambda x: as_float(x > 0.0), kinks=(0.0,))


def _relu6(params: Mapping[str, Param]) -> Parts:
    # torch: hardtanh(x, 0, 6); its gradient is 0 at both ends.
    return Parts(
        lambda x: np.minimum(np.maximum(x, 0.0), 6.0), lambda x: as_float((x > 0.0) & (x < 6.0)), kinks=(0.0, 6.0)
    )


def _leaky(slope: float) -> Parts:
    # torch: x > 0 ? x : slope * x, gradient slope at 0.
    return Parts(lambda x: np.where(x > 0.0, x, slope * x), lambda x: np.where(x > 0.0, 1.0, slope), kinks=(0.0,))


def _leaky_relu(params: Mapping[str, Param]) -> Parts:
    return _leaky(real(params, "negative_slope"))


def _prelu(params: Mapping[str, Param]) -> Parts:
    return _leaky(real(params, "init"))


def _rrelu(params: Mapping[str, Param]) -> Parts:
    # torch in eval mode: leaky_relu with the mean slope (lower + upper) / 2.
    return _leaky((real(params, "lower") + real(params, "upper")) / 2.0)


def _check_rrelu(params: Mapping[str, Param]) -> None:
    lower, upper = real(params, "lower"), real(params, "upper")
    if not lower <= upper:
        raise VarpropValueError(f"rrelu: lower must be <= upper, got lower={lower!r}, upper={upper!r}")


def _hardtanh(params: Mapping[str, Param]) -> Parts:
    low, high = real(params, "min_val"), real(params, "max_val")
    return Parts(
        lambda x: np.minimum(np.maximum(x, low), high),
        lambda x: as_float((x > low) & (x < high)),
        kinks=(low, high),
    )


def _check_hardtanh(params: Mapping[str, Param]) -> None:
    low, high = real(params, "min_val"), real(params, "max_val")
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
    if not real(params, "lambd") >= 0.0:
        raise VarpropValueError(f"lambd must be >= 0, got {real(params, 'lambd')!r}")


def _outside(lambd: float) -> Function:
    # torch's shrink gradients: 0 on the closed interval [-lambd, lambd], 1 outside.
    return lambda x: as_float((x < -lambd) | (x > lambd))


def _softshrink(params: Mapping[str, Param]) -> Parts:
    lambd = real(params, "lambd")
    return Parts(
        lambda x: np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, 0.0)),
        _outside(lambd),
        kinks=tuple(sorted({-lambd, lambd})),
    )


def _hardshrink(params: Mapping[str, Param]) -> Parts:
    lambd = real(params, "lambd")
    return Parts(
        lambda x: np.where((x >= -lambd) & (x <= lambd), 0.0, x), _outside(lambd), kinks=tuple(sorted({-lambd, lambd}))
    )


def _threshold(params: Mapping[str, Param]) -> Parts:
    threshold, value = real(params, "threshold"), real(params, "value")
    return Parts(lambda x: np.where(x > threshold, x, value), lambda x: as_float(x > threshold), kinks=(threshold,))


def _identity(params: Mapping[str, Param]) -> Parts:
    return Parts(lambda x: np.array(x, dtype=np.float64), lambda x: np.ones_like(x, dtype=np.float64))


_LAMBD = real_param("lambd", 0.5)
# torch.nn.init.calculate_gain's names for the linear layers, whose gain is the identity's.
_LINEAR_LAYER_GAIN_NAMES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)

PIECEWISE_LINEAR: tuple[ActivationDefinition, ...] = (
    ActivationDefinition(
        "relu",
        "rectified linear unit max(0, x)",
        (),
        _relu,
        torch=TorchNames(
            "ReLU",
            (*functional("relu"), "torch.relu", *functional("relu_"), "torch.relu_"),
            methods=("relu", "relu_"),
        ),
        closed_form=relu_closed_form,
    ),
    ActivationDefinition(
        "relu6",
        "min(max(0, x), 6)",
        (),
        _relu6,
        torch=TorchNames("ReLU6", functional("relu6")),
        closed_form=relu6_closed_form,
    ),
    ActivationDefinition(
        "leaky_relu",
        "x for x > 0, negative_slope * x otherwise",
        (real_param("negative_slope", 0.01),),
        _leaky_relu,
        torch=TorchNames("LeakyReLU", functional("leaky_relu", "leaky_relu_")),
        closed_form=leaky_relu_closed_form,
    ),
    ActivationDefinition(
        "prelu",
        "parametric ReLU at its initial slope: x > 0 ? x : init * x",
        (real_param("init", 0.25),),
        _prelu,
        # nn.PReLU's slopes are its weight (one per channel or one for all): their mean is the slope.
        torch=TorchNames("PReLU", functional("prelu"), arguments=(("init", "weight"),)),
        closed_form=prelu_closed_form,
    ),
    ActivationDefinition(
        "rrelu",
        "randomized leaky ReLU in eval mode: slope (lower + upper) / 2",
        (real_param("lower", 1.0 / 8.0), real_param("upper", 1.0 / 3.0)),
        _rrelu,
        _check_rrelu,
        torch=TorchNames("RReLU", functional("rrelu", "rrelu_")),
        closed_form=rrelu_closed_form,
    ),
    ActivationDefinition(
        "hardtanh",
        "x clipped to [min_val, max_val]",
        (real_param("min_val", -1.0), real_param("max_val", 1.0)),
        _hardtanh,
        _check_hardtanh,
        torch=TorchNames("Hardtanh", functional("hardtanh", "hardtanh_")),
        closed_form=hardtanh_closed_form,
    ),
    ActivationDefinition(
        "hardswish",
        "x * relu6(x + 3) / 6 (Howard et al., 2019)",
        (),
        _hardswish,
        torch=TorchNames("Hardswish", functional("hardswish")),
        closed_form=hardswish_closed_form,
    ),
    ActivationDefinition(
        "hardsigmoid",
        "relu6(x + 3) / 6",
        (),
        _hardsigmoid,
        torch=TorchNames("Hardsigmoid", functional("hardsigmoid")),
        closed_form=hardsigmoid_closed_form,
    ),
    ActivationDefinition(
        "softshrink",
        "x -+ lambd outside [-lambd, lambd], 0 inside",
        (_LAMBD,),
        _softshrink,
        _check_lambd,
        torch=TorchNames("Softshrink", functional("softshrink")),
        closed_form=softshrink_closed_form,
    ),
    ActivationDefinition(
        "hardshrink",
        "x outside [-lambd, lambd], 0 inside",
        (_LAMBD,),
        _hardshrink,
        _check_lambd,
        torch=TorchNames("Hardshrink", functional("hardshrink")),
        closed_form=hardshrink_closed_form,
    ),
    ActivationDefinition(
        "threshold",
        "x > threshold ? x : value (both required, as in torch)",
        (real_param("threshold", None), real_param("value", None)),
        _threshold,
        torch=TorchNames("Threshold", functional("threshold", "threshold_")),
        closed_form=threshold_closed_form,
    ),
    ActivationDefinition(
        "identity",
        "the identity x",
        (),
        _identity,
        torch=TorchNames("Identity", gain_names=_LINEAR_LAYER_GAIN_NAMES),
        closed_form=identity_closed_form,
    ),
)
