"""From torch to the activation registry: modules, functions and tensor methods as ``Activation`` values.

One table per way torch spells an activation (``nn.ELU(alpha=0.5)``, ``F.elu(x, 0.5)``, ``x.relu()``); each maps to a
registry name plus the parameters read from the call, and ``varprop.activation`` builds the ``Activation``.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention

from ..._activation import Activation
from ..._errors import VarpropTypeError, VarpropValueError

__all__ = [
    "ACTIVATION_MODULE_TYPES",
    "activation_of_function",
    "activation_of_method",
    "activation_of_module",
    "is_activation_function",
    "is_activation_method",
    "resolve",
]


def _registry_activation(spec: Any, **params: Any) -> Activation:
    """``varprop.activation(spec, **params)``, kept per (spec, params): a deep network asks for the same activation
    once per layer (building it validates its parameters each time, ~40 us)."""
    try:
        return _cached_activation(spec, tuple(sorted(params.items())))
    except TypeError:  # an unhashable parameter value
        from ..._registry import activation

        return activation(spec, **params)


@functools.lru_cache(maxsize=256)
def _cached_activation(spec: Any, params: tuple[tuple[str, Any], ...]) -> Activation:
    from ..._registry import activation

    return activation(spec, **dict(params))


# Module classes: registry name and the attributes that are its parameters (torch's names). Order matters for
# subclasses: ReLU6 is a Hardtanh.
_MODULES: tuple[tuple[type[nn.Module], str, tuple[str, ...]], ...] = (
    (nn.ReLU6, "relu6", ()),
    (nn.ReLU, "relu", ()),
    (nn.LeakyReLU, "leaky_relu", ("negative_slope",)),
    (nn.RReLU, "rrelu", ("lower", "upper")),
    (nn.ELU, "elu", ("alpha",)),
    (nn.CELU, "celu", ("alpha",)),
    (nn.SELU, "selu", ()),
    (nn.GELU, "gelu", ("approximate",)),
    (nn.SiLU, "silu", ()),
    (nn.Mish, "mish", ()),
    (nn.Softplus, "softplus", ("beta", "threshold")),
    (nn.Hardtanh, "hardtanh", ("min_val", "max_val")),
    (nn.Hardswish, "hardswish", ()),
    (nn.Hardsigmoid, "hardsigmoid", ()),
    (nn.Sigmoid, "sigmoid", ()),
    (nn.Tanh, "tanh", ()),
    (nn.Softsign, "softsign", ()),
    (nn.LogSigmoid, "logsigmoid", ()),
    (nn.Tanhshrink, "tanhshrink", ()),
    (nn.Softshrink, "softshrink", ("lambd",)),
    (nn.Hardshrink, "hardshrink", ("lambd",)),
    (nn.Threshold, "threshold", ("threshold", "value")),
    (nn.Identity, "identity", ()),
)

# Functions: registry name and the positional parameters after the input (torch's names and order).
_FUNCTIONS: dict[Any, tuple[str, tuple[str, ...]]] = {}


def _add_functions(functions: Sequence[Any], name: str, params: tuple[str, ...] = ()) -> None:
    for function in functions:
        if function is not None:
            _FUNCTIONS[function] = (name, params)


_add_functions((F.relu, torch.relu, F.relu_, torch.relu_), "relu")
_add_functions((F.relu6,), "relu6")
_add_functions((F.leaky_relu, F.leaky_relu_), "leaky_relu", ("negative_slope",))
_add_functions((F.rrelu, F.rrelu_), "rrelu", ("lower", "upper"))
_add_functions((F.elu, F.elu_), "elu", ("alpha",))
_add_functions((F.celu, F.celu_), "celu", ("alpha",))
_add_functions((F.selu, torch.selu, F.selu_), "selu")
_add_functions((F.gelu,), "gelu", ("approximate",))
_add_functions((F.silu,), "silu")
_add_functions((F.mish,), "mish")
_add_functions((F.softplus,), "softplus", ("beta", "threshold"))
_add_functions((F.hardtanh, F.hardtanh_), "hardtanh", ("min_val", "max_val"))
_add_functions((F.hardswish,), "hardswish")
_add_functions((F.hardsigmoid,), "hardsigmoid")
_add_functions((torch.sigmoid, F.sigmoid, torch.special.expit), "sigmoid")
_add_functions((torch.tanh, F.tanh), "tanh")
_add_functions((F.softsign,), "softsign")
_add_functions((F.logsigmoid,), "logsigmoid")
_add_functions((F.tanhshrink,), "tanhshrink")
_add_functions((F.softshrink,), "softshrink", ("lambd",))
_add_functions((F.hardshrink,), "hardshrink", ("lambd",))
_add_functions((F.threshold, getattr(F, "threshold_", None)), "threshold", ("threshold", "value"))
_add_functions((torch.erf, torch.special.erf), "erf")
_add_functions((torch.sin,), "sin")
_add_functions((torch.cos,), "cos")

# Tensor methods (``x.relu()``): the name torch.fx records, and the registry name.
_METHODS: dict[str, str] = {
    "relu": "relu",
    "relu_": "relu",
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
    "tanh": "tanh",
    "tanh_": "tanh",
    "erf": "erf",
    "erf_": "erf",
    "sin": "sin",
    "sin_": "sin",
    "cos": "cos",
    "cos_": "cos",
}

_TORCH_GAIN_NAMES: dict[str, str] = {
    "linear": "identity",
    "conv1d": "identity",
    "conv2d": "identity",
    "conv3d": "identity",
    "conv_transpose1d": "identity",
    "conv_transpose2d": "identity",
    "conv_transpose3d": "identity",
}

# Every module class computed elementwise by a registered activation (shape in = shape out).
ACTIVATION_MODULE_TYPES: tuple[type[nn.Module], ...] = (*(cls for cls, _name, _params in _MODULES), nn.PReLU)


def _plain(value: Any) -> Any:
    """Turn tensors and numpy scalars holding parameters into Python numbers."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return float(value.detach().float().mean())
        return float(value.detach().float())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return value


def activation_of_module(module: nn.Module) -> Activation | None:
    """The ``Activation`` computed by an activation module, or ``None`` when the module is not one.

    ``nn.PReLU`` maps to ``prelu(init=<mean slope>)`` (exact when its slopes are equal, as at construction);
    ``nn.RReLU`` to ``rrelu(lower, upper)`` whose moments use the evaluation slope (lower + upper) / 2.

    Example:
        >>> activation_of_module(nn.ELU(alpha=0.5)).spec
        'elu(alpha=0.5)'
    """
    if isinstance(module, nn.PReLU):
        return _registry_activation("prelu", init=_plain(module.weight))
    for cls, name, params in _MODULES:
        if isinstance(module, cls):
            return _registry_activation(name, **{key: _plain(getattr(module, key)) for key in params})
    return None


def is_activation_function(function: Any) -> bool:
    """Whether ``function`` (a torch function such as ``F.gelu`` or ``torch.tanh``) is a known activation."""
    try:
        return function in _FUNCTIONS or function is F.prelu
    except TypeError:  # unhashable
        return False


def is_activation_method(name: Any) -> bool:
    """Whether ``name`` is a tensor method that is a known activation (``"relu"`` for ``x.relu()``)."""
    return isinstance(name, str) and name in _METHODS


def activation_of_function(function: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Activation | None:
    """The ``Activation`` of a functional call ``function(input, *args, **kwargs)``; ``args`` excludes the input.

    Example:
        >>> activation_of_function(F.leaky_relu, (0.2,), {}).spec
        'leaky_relu(negative_slope=0.2)'
    """
    if function is F.prelu:
        weight = args[0] if args else kwargs.get("weight")
        return _registry_activation("prelu", init=_plain(weight))
    if not is_activation_function(function):
        return None
    name, order = _FUNCTIONS[function]
    params: dict[str, Any] = {}
    for key, value in zip(order, args, strict=False):
        params[key] = _plain(value)
    for key in order:
        if key in kwargs:
            params[key] = _plain(kwargs[key])
    return _registry_activation(name, **params)


def activation_of_method(name: str) -> Activation | None:
    """The ``Activation`` of a tensor method call ``x.<name>()``, or ``None``."""
    if not is_activation_method(name):
        return None
    return _registry_activation(_METHODS[name])


def _known(found: Activation | None, what: Any) -> Activation:
    if found is None:  # pragma: no cover - the tables checked membership first
        raise VarpropValueError(f"no activation known for {what!r}")
    return found


def resolve(nonlinearity: Any, param: Any = None) -> Activation:
    """Any way of naming an activation -> ``Activation``.

    Accepts torch's ``calculate_gain`` names (``"linear"``, ``"conv2d"``, ``"leaky_relu"`` with ``param`` = slope, ...),
    every registry spec (``"gelu(approximate='tanh')"``), an ``Activation``, an activation module instance
    (``nn.ELU(alpha=0.5)``), a torch function (``F.gelu``, ``torch.tanh``) or a numpy-vectorized callable. ``param``
    sets the activation's only parameter (torch's convention for ``leaky_relu``).

    Raises:
        VarpropValueError: unknown name, or ``param`` for an activation with no single parameter.
        VarpropTypeError: ``param`` that is not a number, an unsupported object.
    """
    if param is not None and (isinstance(param, bool) or not isinstance(param, numbers.Real)):
        raise VarpropTypeError(f"param must be a number (the activation's parameter), got {param!r}")
    if isinstance(nonlinearity, Activation):
        base = nonlinearity
    elif isinstance(nonlinearity, nn.Module):
        found = activation_of_module(nonlinearity)
        if found is None:
            raise VarpropValueError(
                f"module {type(nonlinearity).__name__} is not an elementwise activation varprop knows; "
                "pass an activation module (nn.ELU(), nn.GELU(approximate='tanh'), ...) or a spec string"
            )
        base = found
    elif isinstance(nonlinearity, str):
        key = nonlinearity.strip()
        if key in _TORCH_GAIN_NAMES:
            base = _registry_activation(_TORCH_GAIN_NAMES[key])
        elif key == "leaky_relu" and param is not None:
            return _registry_activation("leaky_relu", negative_slope=float(param))
        else:
            base = _registry_activation(key)
    elif callable(nonlinearity):
        if is_activation_function(nonlinearity):
            base = _known(activation_of_function(nonlinearity, (), {}), nonlinearity)
        else:
            method_name = getattr(nonlinearity, "__name__", None)
            is_method = getattr(torch.Tensor, str(method_name), None) is nonlinearity
            if is_method and is_activation_method(method_name):
                base = _known(activation_of_method(str(method_name)), nonlinearity)
            else:
                base = _registry_activation(nonlinearity)
    else:
        raise VarpropTypeError(
            f"nonlinearity must be a name, an Activation, an activation module or a callable, "
            f"got {nonlinearity!r} of type {type(nonlinearity).__name__}"
        )
    if param is None:
        return base
    if len(base.params) != 1:
        raise VarpropValueError(
            f"param={param!r} given for {base.spec!r}, which has {len(base.params)} parameters; "
            'pass a spec string such as "elu(alpha=0.5)" instead'
        )
    return _registry_activation(base.name, **{base.params[0][0]: float(param)})
