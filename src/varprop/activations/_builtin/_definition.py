"""The shape of a built-in activation's definition: parameters, builder, closed form, and how PyTorch spells it.

An :class:`ActivationDefinition` is the one entry an activation has: its parameters (torch's names, order and
defaults), a builder that maps validated parameters to the numpy function, derivative, kinks and features
(:class:`Parts`), the factory of its closed-form moments if it has any (``varprop.activations.closed_forms``), and
its PyTorch names (:class:`TorchNames`, strings only: the core never imports torch; the adapter
``varprop.torch.graph.activations`` derives its lookup tables from them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from .._activation import Param
from ..closed_forms import ClosedFormFactory

__all__ = [
    "ActivationDefinition",
    "FloatArray",
    "Function",
    "ParamSpec",
    "Parts",
    "TorchNames",
    "as_float",
    "functional",
    "real",
    "real_param",
]

FloatArray = NDArray[np.float64]
Function = Callable[[FloatArray], FloatArray]


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
class TorchNames:
    """How PyTorch spells an activation, as strings (resolved against torch by the adapter, never here).

    A parameter is read from a module instance as the attribute of its name (``nn.ELU(alpha=0.5).alpha``) and
    from a function call as the positional arguments after the input in the definition's parameter order, or as
    the keyword of its name (``F.elu(x, alpha=0.5)``); ``arguments`` renames it where torch calls it otherwise.

    Attributes:
        module: the ``torch.nn`` module class name (``"ELU"``), or None.
        functions: qualified names of the torch functions that compute it (``"torch.nn.functional.elu"``,
            ``"torch.relu"``); a name this torch version lacks is skipped.
        methods: ``torch.Tensor`` method names, as torch.fx records them (``"relu"``, ``"relu_"``).
        arguments: ``(parameter, torch's name)`` pairs where torch's module attribute and function keyword differ
            from the parameter's name (PReLU's ``init`` is its ``weight``: a tensor, whose mean is the slope).
        gain_names: ``nonlinearity`` names of ``torch.nn.init.calculate_gain`` that mean this activation besides
            its registry names (identity: ``"conv2d"`` and the other linear layers).

    Example:
        >>> TorchNames("PReLU", functional("prelu"), arguments=(("init", "weight"),)).argument("init")
        'weight'
    """

    module: str | None = None
    functions: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    arguments: tuple[tuple[str, str], ...] = ()
    gain_names: tuple[str, ...] = ()

    def argument(self, param: str) -> str:
        """torch's name (module attribute, function keyword) of the parameter ``param``."""
        return dict(self.arguments).get(param, param)


@dataclass(frozen=True)
class ActivationDefinition:
    """A registered activation: its parameters, builder, documentation and PyTorch names.

    Attributes:
        name: canonical name (torch.nn.functional's).
        description: one line for tables and reports.
        params: parameters in torch's positional order.
        build: maps the validated parameters to the function, derivative, kinks and features.
        check: cross-parameter and range checks (raise VarpropValueError); None if any value goes.
        torch: its PyTorch module, functions and tensor methods (none for an activation torch lacks).
        closed_form: its closed-form moments: a factory ``(all parameters) -> closed form or None``
            (``varprop.activations.closed_forms``); None: quadrature or a moment table.
    """

    name: str
    description: str
    params: tuple[ParamSpec, ...]
    build: Callable[[Mapping[str, Param]], Parts]
    check: Callable[[Mapping[str, Param]], None] | None = None
    torch: TorchNames = TorchNames()
    closed_form: ClosedFormFactory | None = None

    @property
    def torch_module(self) -> str | None:
        """The ``torch.nn`` module class name, or None (sin, cos, erf)."""
        return self.torch.module


def functional(*names: str) -> tuple[str, ...]:
    """Qualified names of ``torch.nn.functional`` functions.

    Example:
        >>> functional("elu", "elu_")
        ('torch.nn.functional.elu', 'torch.nn.functional.elu_')
    """
    return tuple(f"torch.nn.functional.{name}" for name in names)


def real(params: Mapping[str, Param], name: str) -> float:
    """The real parameter ``name`` (the registry has validated it)."""
    value = params[name]
    assert isinstance(value, float)  # guaranteed by the registry's validation
    return value


def real_param(name: str, default: float | None, *, allow_inf: bool = False) -> ParamSpec:
    """A real parameter with torch's default (None: required)."""
    return ParamSpec(name, default, allow_inf=allow_inf)


def as_float(mask: NDArray[np.bool_]) -> FloatArray:
    """A boolean mask as 0.0 / 1.0."""
    return mask.astype(np.float64)
