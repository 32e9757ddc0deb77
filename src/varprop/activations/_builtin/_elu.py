"""Built-in exponential linear units: elu, celu, selu (torch's ELU kernel; gradient at 0 from the left)."""

from __future__ import annotations

from collections.abc import Mapping

from ..._errors import VarpropValueError
from .._activation import Param
from .._constants import SELU_ALPHA, SELU_SCALE
from .._kernels import exponential_linear
from ..closed_forms import celu_closed_form, elu_closed_form, selu_closed_form
from ._definition import ActivationDefinition, Parts, TorchNames, functional, real, real_param

__all__ = ["EXPONENTIAL_LINEAR"]


def _elu_family(scale: float, alpha: float, input_scale: float) -> Parts:
    """torch's ELU kernel (``_kernels.exponential_linear``), a kink at 0 and a bend of width 1 / input_scale."""
    function, derivative = exponential_linear(scale, alpha, input_scale)
    return Parts(function, derivative, kinks=(0.0,), features=((0.0, abs(1.0 / input_scale)),))


def _elu(params: Mapping[str, Param]) -> Parts:
    return _elu_family(1.0, real(params, "alpha"), 1.0)


def _celu(params: Mapping[str, Param]) -> Parts:
    alpha = real(params, "alpha")
    return _elu_family(1.0, alpha, 1.0 / alpha)


def _check_celu(params: Mapping[str, Param]) -> None:
    if real(params, "alpha") == 0.0:
        raise VarpropValueError("celu: alpha must be nonzero (celu divides by alpha), got 0.0")


def _selu(params: Mapping[str, Param]) -> Parts:
    return _elu_family(SELU_SCALE, SELU_ALPHA, 1.0)


EXPONENTIAL_LINEAR: tuple[ActivationDefinition, ...] = (
    ActivationDefinition(
        "elu",
        "x > 0 ? x : alpha * (exp(x) - 1) (Clevert et al., 2015)",
        (real_param("alpha", 1.0),),
        _elu,
        torch=TorchNames("ELU", functional("elu", "elu_")),
        closed_form=elu_closed_form,
    ),
    ActivationDefinition(
        "celu",
        "x > 0 ? x : alpha * (exp(x / alpha) - 1) (Barron, 2017)",
        (real_param("alpha", 1.0),),
        _celu,
        _check_celu,
        torch=TorchNames("CELU", functional("celu", "celu_")),
        closed_form=celu_closed_form,
    ),
    ActivationDefinition(
        "selu",
        "scale * elu(x, alpha) with the self-normalizing constants (Klambauer et al., 2017)",
        (),
        _selu,
        torch=TorchNames("SELU", (*functional("selu"), "torch.selu", *functional("selu_"))),
        closed_form=selu_closed_form,
    ),
)
