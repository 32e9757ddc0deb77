"""The adapter's torch tables (derived from the activation definitions' ``TorchNames``) against torch itself.

Independent oracles: the explicit lists below (every elementwise activation class of ``torch.nn``, every torch
function and tensor method the adapter knew when its tables were still written by hand, commit 3838eb2) and torch's
own forward pass: each module, function call and method, with non-default parameters given positionally and by
keyword, must compute the very function of the ``Activation`` the adapter maps it to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import varprop
from varprop.activations import activation_definition, registered_activations

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from varprop.torch.graph import activations as adapter  # noqa: E402 - after the torch skip

X = np.concatenate([np.linspace(-7.0, 7.0, 281), [-30.0, -1e-9, 0.0, 1e-9, 25.0]])
# Relative 1e-13 plus an absolute floor of a few ulp of 1: torch cancels in 1 + erf(x) (gelu), exp(x) - 1 (elu).
RTOL, ATOL = 1e-13, 1e-15


def _assert_computes(act: varprop.Activation, torch_function: Callable[[Any], Any], what: str) -> None:
    expected = torch_function(torch.tensor(X, dtype=torch.float64)).detach().numpy()
    ours = act(X)
    bad = ~(np.abs(ours - expected) <= RTOL * np.abs(expected) + ATOL)
    assert not bad.any(), (
        f"{what} -> {act.spec}: differs from torch at x={X[bad][:5]} ({ours[bad][:5]} vs {expected[bad][:5]})"
    )


# One instance of every elementwise activation class of torch.nn, at non-default parameters where it has any.
MODULES: list[nn.Module] = [
    nn.ReLU(),
    nn.ReLU6(),
    nn.LeakyReLU(0.2),
    nn.PReLU(init=-0.3),
    nn.RReLU(0.1, 0.3).eval(),
    nn.ELU(alpha=0.5),
    nn.CELU(0.3),
    nn.SELU(),
    nn.GELU(approximate="tanh"),
    nn.SiLU(),
    nn.Mish(),
    nn.Softplus(2.0, 5.0),
    nn.Hardtanh(-2.0, 3.0),
    nn.Hardswish(),
    nn.Hardsigmoid(),
    nn.Sigmoid(),
    nn.Tanh(),
    nn.Softsign(),
    nn.LogSigmoid(),
    nn.Tanhshrink(),
    nn.Softshrink(1.5),
    nn.Hardshrink(0.7),
    nn.Threshold(0.5, -1.0),
    nn.Identity(),
]
# torch.nn.modules.activation's classes that are not elementwise (they mix units): never activations.
NOT_ELEMENTWISE = {"GLU", "MultiheadAttention", "Softmin", "Softmax", "Softmax2d", "LogSoftmax"}


def test_every_elementwise_torch_activation_class_is_known() -> None:
    classes = {name for name in nn.modules.activation.__all__ if name not in NOT_ELEMENTWISE}
    assert classes | {"Identity"} == {type(module).__name__ for module in MODULES}
    assert set(adapter.ACTIVATION_MODULE_TYPES) == {type(module) for module in MODULES}


@pytest.mark.parametrize("module", MODULES, ids=lambda module: type(module).__name__)
def test_module_computes_its_activation(module: nn.Module) -> None:
    act = adapter.activation_of_module(module)
    assert act is not None
    _assert_computes(act, module.double(), type(module).__name__)


def test_every_definition_with_a_module_resolves_to_it() -> None:
    named = {name: activation_definition(name).torch.module for name in registered_activations()}
    assert {name for name, module in named.items() if module is None} == {"sin", "cos", "erf"}
    instances = {type(module).__name__: module for module in MODULES}
    for name, module_name in named.items():
        if module_name is not None:
            found = adapter.activation_of_module(instances[module_name])
            assert found is not None and found.name == name, (module_name, found)


def _spec(act: varprop.Activation | None) -> str | None:
    return None if act is None else act.spec


def test_a_subclass_maps_to_its_nearest_known_class() -> None:
    class ScaledELU(nn.ELU):
        pass

    # (specs, not identity: the adapter keeps its own cache of activations, and tests clear the registry's)
    assert _spec(adapter.activation_of_module(ScaledELU(alpha=0.5))) == "elu(alpha=0.5)"
    assert _spec(adapter.activation_of_module(nn.ReLU6())) == "relu6"  # a Hardtanh subclass
    assert adapter.activation_of_module(nn.Linear(2, 2)) is None


def _weight(slope: float) -> Any:
    # A slope exact in float32: the adapter reads tensor parameters through float32 (``_plain``).
    return torch.tensor([slope], dtype=torch.float64)


# (function, arguments after the input, keywords): every torch function the adapter knows, with its parameters
# given positionally and, where it has any, by keyword too.
CALLS: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
    (F.relu, (), {}),
    (torch.relu, (), {}),
    (F.relu_, (), {}),
    (torch.relu_, (), {}),
    (F.relu6, (), {}),
    (F.leaky_relu, (0.2,), {}),
    (F.leaky_relu, (), {"negative_slope": -1.5}),
    (F.leaky_relu_, (0.2,), {}),
    (F.prelu, (_weight(-0.375),), {}),
    (F.prelu, (), {"weight": _weight(0.25)}),
    (F.rrelu, (0.1, 0.3), {}),
    (F.rrelu, (), {"lower": 0.2, "upper": 0.25}),
    (F.rrelu_, (0.1, 0.3), {}),
    (F.elu, (0.5,), {}),
    (F.elu, (), {"alpha": 2.5}),
    (F.elu_, (0.5,), {}),
    (F.celu, (0.3,), {}),
    (F.celu, (), {"alpha": 3.0}),
    (F.celu_, (0.3,), {}),
    (F.selu, (), {}),
    (torch.selu, (), {}),
    (F.selu_, (), {}),
    (F.gelu, (), {}),
    (F.gelu, (), {"approximate": "tanh"}),
    (F.silu, (), {}),
    (F.mish, (), {}),
    (F.softplus, (2.0, 5.0), {}),
    (F.softplus, (), {"beta": 0.5, "threshold": 3.0}),
    (F.hardtanh, (-2.0, 3.0), {}),
    (F.hardtanh, (), {"min_val": -0.5, "max_val": 0.5}),
    (F.hardtanh_, (-2.0, 3.0), {}),
    (F.hardswish, (), {}),
    (F.hardsigmoid, (), {}),
    (torch.sigmoid, (), {}),
    (F.sigmoid, (), {}),
    (torch.special.expit, (), {}),
    (torch.tanh, (), {}),
    (F.tanh, (), {}),
    (F.softsign, (), {}),
    (F.logsigmoid, (), {}),
    (F.tanhshrink, (), {}),
    (F.softshrink, (1.5,), {}),
    (F.softshrink, (), {"lambd": 0.25}),
    (F.hardshrink, (0.7,), {}),
    (F.hardshrink, (), {"lambd": 0.25}),
    (F.threshold, (0.5, -1.0), {}),
    (F.threshold, (), {"threshold": -2.0, "value": 3.0}),
    (F.threshold_, (0.5, -1.0), {}),
    (torch.erf, (), {}),
    (torch.special.erf, (), {}),
    (torch.sin, (), {}),
    (torch.cos, (), {}),
]


def test_the_known_functions_are_exactly_these() -> None:
    assert set(adapter._FUNCTIONS) == {function for function, _, _ in CALLS}
    assert all(adapter.is_activation_function(function) for function, _, _ in CALLS)
    assert not adapter.is_activation_function(F.softmax) and not adapter.is_activation_function(torch.exp)


@pytest.mark.parametrize(("function", "args", "kwargs"), CALLS, ids=lambda item: getattr(item, "__name__", None))
def test_function_call_computes_its_activation(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    act = adapter.activation_of_function(function, args, kwargs)
    assert act is not None
    _assert_computes(act, lambda x: function(x.clone(), *args, **kwargs), f"{function.__name__}{args}{kwargs}")


METHODS = ["relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "erf", "erf_", "sin", "sin_", "cos", "cos_"]


@pytest.mark.parametrize("method", METHODS)
def test_tensor_method_computes_its_activation(method: str) -> None:
    act = adapter.activation_of_method(method)
    assert act is not None and adapter.is_activation_method(method)
    _assert_computes(act, lambda x: getattr(x.clone(), method)(), f"Tensor.{method}")


def test_the_known_methods_are_exactly_these() -> None:
    assert set(adapter._METHODS) == set(METHODS)
    assert adapter.activation_of_method("exp") is None


def test_calculate_gain_names_of_linear_layers_are_the_identity() -> None:
    names = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
    assert set(adapter._TORCH_GAIN_NAMES) == set(names)
    for name in names:
        assert adapter.resolve(name).spec == "identity"
        assert torch.nn.init.calculate_gain(name) == 1  # torch agrees: a linear layer's gain
