"""From torch to the activation registry: modules, functions and tensor methods as ``Activation`` values.

One table per way torch spells an activation (``nn.ELU(alpha=0.5)``, ``F.elu(x, 0.5)``, ``x.relu()``); each maps to a
registry name plus the parameters read from the call, and ``varprop.activation`` builds the ``Activation``. The tables
are derived, at import, from the activation definitions' torch names (``TorchNames`` in
``varprop.activations._builtin``): adding an activation there makes the adapter recognize it.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ... import VarpropTypeError, VarpropValueError
from ...activations import Activation, activation, activation_definition, registered_activations

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
        return activation(spec, **params)


@functools.lru_cache(maxsize=256)
def _cached_activation(spec: Any, params: tuple[tuple[str, Any], ...]) -> Activation:
    return activation(spec, **dict(params))


def _torch_object(qualified: str) -> Any:
    """The torch object a definition names (``"torch.nn.functional.elu"`` -> ``F.elu``), None if this torch lacks it."""
    head, *path = qualified.split(".")
    if head != "torch":  # pragma: no cover - a definition that names something outside torch
        raise VarpropValueError(f"torch name {qualified!r} does not start with 'torch.'")
    found: Any = torch
    for part in path:
        found = getattr(found, part, None)
        if found is None:
            return None
    return found


# The tables below are derived from the activation definitions (varprop.activations, ``TorchNames``): registry
# name and ``(parameter, torch's name)`` pairs, in the parameters' order, per way torch spells an activation.
_Arguments = tuple[tuple[str, str], ...]
_DEFINITIONS = [activation_definition(name) for name in registered_activations()]
_ARGUMENTS: dict[str, _Arguments] = {
    definition.name: tuple((spec.name, definition.torch.argument(spec.name)) for spec in definition.params)
    for definition in _DEFINITIONS
}

# Module classes: an instance's parameters are its attributes. Looked up along the instance's MRO, so a subclass
# maps to its nearest known class (ReLU6 is a Hardtanh; a user's ELU subclass is an ELU).
_MODULES: dict[type[nn.Module], tuple[str, _Arguments]] = {
    getattr(nn, definition.torch.module): (definition.name, _ARGUMENTS[definition.name])
    for definition in _DEFINITIONS
    if definition.torch.module is not None and hasattr(nn, definition.torch.module)
}

# Functions: the parameters are the positional arguments after the input, or keywords of torch's names.
_FUNCTIONS: dict[Any, tuple[str, _Arguments]] = {
    function: (definition.name, _ARGUMENTS[definition.name])
    for definition in _DEFINITIONS
    for function in map(_torch_object, definition.torch.functions)
    if function is not None
}

# Tensor methods (``x.relu()``): the name torch.fx records -> the registry name.
_METHODS: dict[str, str] = {
    method: definition.name for definition in _DEFINITIONS for method in definition.torch.methods
}

# torch.nn.init.calculate_gain's names beyond the registry's ("conv2d" -> identity).
_TORCH_GAIN_NAMES: dict[str, str] = {
    gain_name: definition.name for definition in _DEFINITIONS for gain_name in definition.torch.gain_names
}

# Every module class computed elementwise by a registered activation (shape in = shape out).
ACTIVATION_MODULE_TYPES: tuple[type[nn.Module], ...] = tuple(_MODULES)


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
    for cls in type(module).__mro__:
        known = _MODULES.get(cls)
        if known is not None:
            name, arguments = known
            return _registry_activation(name, **{param: _plain(getattr(module, key)) for param, key in arguments})
    return None


def is_activation_function(function: Any) -> bool:
    """Whether ``function`` (a torch function such as ``F.gelu`` or ``torch.tanh``) is a known activation."""
    try:
        return function in _FUNCTIONS
    except TypeError:  # unhashable
        return False


def is_activation_method(name: Any) -> bool:
    """Whether ``name`` is a tensor method that is a known activation (``"relu"`` for ``x.relu()``)."""
    return isinstance(name, str) and name in _METHODS


def activation_of_function(function: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Activation | None:
    """The ``Activation`` of a functional call ``function(input, *args, **kwargs)``; ``args`` excludes the input.

    Example:
        >>> activation_of_function(torch.nn.functional.leaky_relu, (0.2,), {}).spec
        'leaky_relu(negative_slope=0.2)'
    """
    if not is_activation_function(function):
        return None
    name, arguments = _FUNCTIONS[function]
    params: dict[str, Any] = {}
    for (param, _keyword), value in zip(arguments, args, strict=False):
        params[param] = _plain(value)
    for param, keyword in arguments:
        if keyword in kwargs:
            params[param] = _plain(kwargs[keyword])
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
