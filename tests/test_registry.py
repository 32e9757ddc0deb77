"""The activation registry against independent oracles: torch's own implementations (values and
autograd derivatives, float64) and mpmath at 30 digits; spec parsing, aliases, errors, custom callables."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mpmath as mp
import numpy as np
import pytest
import scipy.special as sc

import varprop
import varprop.activations._registry
from varprop._errors import VarpropTypeError, VarpropValueError
from varprop.activations._activation import Activation
from varprop.activations._builtin import DEFINITIONS, SELU_ALPHA, SELU_SCALE
from varprop.activations._derivative import COMPLEX_STEP, RICHARDSON, numerical_derivative, richardson_derivative
from varprop.activations._registry import (
    ACTIVATION_ALIASES,
    CLOSED_FORMS,
    TORCH_MODULE_NAMES,
    _build,
    activation,
    activation_definition,
    registered_activations,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

mp.mp.dps = 30

# ----------------------------------------------------------------------------------------------
# torch oracles: (spec, torch function of a float64 tensor). Every registered name appears at
# its defaults, and every parameter at a non-default value.


def _prelu(weight: float) -> Callable[[Any], Any]:
    return lambda x: F.prelu(x, torch.tensor([weight], dtype=torch.float64))


TORCH_CASES: list[tuple[str, Callable[[Any], Any]]] = [
    ("relu", nn.ReLU()),
    ("relu6", nn.ReLU6()),
    ("leaky_relu", nn.LeakyReLU()),
    ("leaky_relu(negative_slope=0.2)", nn.LeakyReLU(0.2)),
    ("leaky_relu(negative_slope=-1.5)", nn.LeakyReLU(-1.5)),
    ("prelu", _prelu(0.25)),
    ("prelu(init=-0.5)", _prelu(-0.5)),
    ("rrelu", nn.RReLU().eval()),
    ("rrelu(lower=0.1, upper=0.3)", nn.RReLU(0.1, 0.3).eval()),
    ("elu", nn.ELU()),
    ("elu(alpha=0.5)", nn.ELU(0.5)),
    ("elu(alpha=2.5)", nn.ELU(2.5)),
    ("celu", nn.CELU()),
    ("celu(alpha=0.3)", nn.CELU(0.3)),
    ("celu(alpha=3.0)", nn.CELU(3.0)),
    ("selu", nn.SELU()),
    ("gelu", nn.GELU()),
    ("gelu(approximate='tanh')", nn.GELU(approximate="tanh")),
    ("silu", nn.SiLU()),
    ("mish", nn.Mish()),
    ("softplus", nn.Softplus()),
    ("softplus(beta=2.0, threshold=5.0)", nn.Softplus(2.0, 5.0)),
    ("softplus(beta=0.5, threshold=3.0)", nn.Softplus(0.5, 3.0)),
    ("hardtanh", nn.Hardtanh()),
    ("hardtanh(min_val=-2.0, max_val=3.0)", nn.Hardtanh(-2.0, 3.0)),
    ("hardswish", nn.Hardswish()),
    ("hardsigmoid", nn.Hardsigmoid()),
    ("sigmoid", nn.Sigmoid()),
    ("tanh", nn.Tanh()),
    ("softsign", nn.Softsign()),
    ("logsigmoid", nn.LogSigmoid()),
    ("tanhshrink", nn.Tanhshrink()),
    ("softshrink", nn.Softshrink()),
    ("softshrink(lambd=1.5)", nn.Softshrink(1.5)),
    ("hardshrink", nn.Hardshrink()),
    ("hardshrink(lambd=0.0)", nn.Hardshrink(0.0)),
    ("threshold(threshold=0.5, value=-1.0)", nn.Threshold(0.5, -1.0)),
    ("threshold(threshold=-2.0, value=3.0)", nn.Threshold(-2.0, 3.0)),
    ("identity", nn.Identity()),
    ("sin", torch.sin),
    ("cos", torch.cos),
    ("erf", torch.erf),
]


def _grid(act: Activation) -> np.ndarray:
    """Extremes, a dense sweep, tiny values, and every kink exactly and one ulp to either side."""
    base = [-1e3, -40.0, -20.0, -10.0, -1e-8, -1e-300, 0.0, 1e-300, 1e-8, 10.0, 20.0, 40.0, 1e3]
    near = (
        [np.nextafter(k, -np.inf) for k in act.kinks] + list(act.kinks) + [np.nextafter(k, np.inf) for k in act.kinks]
    )
    near += [k + d for k in act.kinks for d in (-1e-9, 1e-9, -0.1, 0.1)]
    near += [location + width * s for location, width in act.features for s in (-3.0, -0.5, 0.5, 3.0)]
    return np.unique(np.concatenate([base, near, np.linspace(-8.0, 8.0, 321)]))


def _torch_value_and_grad(function: Callable[[Any], Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tensor = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    output = function(tensor)
    output.sum().backward()
    return output.detach().numpy(), tensor.grad.numpy()


# Where torch itself is less accurate than 1e-14 (each checked against mpmath below, where ours is exact):
# torch's celu backward for alpha != 1 is off by ~1e-6 relative; hardsigmoid's backward returns 1/6
# rounded to float32; GELU-tanh's backward cancels in 1 - tanh(u)^2, multiplied by up to ~20.
TORCH_DERIVATIVE_TOLERANCE = {
    "celu(alpha=0.3)": (2e-6, 1e-15),
    "celu(alpha=3.0)": (2e-6, 1e-15),
    "hardsigmoid": (1e-7, 1e-15),
    "gelu(approximate='tanh')": (1e-14, 1e-13),
}


def _assert_close(
    ours: np.ndarray, reference: np.ndarray, x: np.ndarray, what: str, rtol: float = 1e-14, atol: float = 1e-15
) -> None:
    # Relative 1e-14 plus an absolute floor of a few ulp of 1: torch itself loses relative accuracy
    # where it cancels (1 + erf(x) in gelu, 1 - tanh^2 in tanh', exp(x) - 1 in elu near 0).
    tolerance = rtol * np.abs(reference) + atol
    bad = ~(np.abs(ours - reference) <= tolerance) & ~(ours == reference)
    if bad.any():
        rows = [f"x={x[i]!r}: ours={ours[i]!r} torch={reference[i]!r}" for i in np.flatnonzero(bad)[:5]]
        pytest.fail(f"{what} differs from torch at {bad.sum()} points:\n" + "\n".join(rows))


def test_torch_cases_cover_the_registry() -> None:
    covered = {activation(spec).name for spec, _ in TORCH_CASES}
    assert covered == set(registered_activations())


@pytest.mark.parametrize(("spec", "reference"), TORCH_CASES, ids=[spec for spec, _ in TORCH_CASES])
def test_function_and_derivative_match_torch(spec: str, reference: Callable[[Any], Any]) -> None:
    act = activation(spec)
    x = _grid(act)
    torch_value, torch_grad = _torch_value_and_grad(reference, x)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow or NaN anywhere on the grid
        ours, our_derivative = act(x), act.derivative(x)
    assert ours.dtype == np.float64 and ours.shape == x.shape
    assert our_derivative.dtype == np.float64 and our_derivative.shape == x.shape
    _assert_close(ours, torch_value, x, f"{spec} value")
    rtol, atol = TORCH_DERIVATIVE_TOLERANCE.get(spec, (1e-14, 1e-15))
    _assert_close(our_derivative, torch_grad, x, f"{spec} derivative", rtol, atol)


# ----------------------------------------------------------------------------------------------
# mpmath oracles at 30 digits: exact values (torch is not exact in the tails) and derivatives.

_SELU_ALPHA = mp.mpf("1.6732632423543772848170429916717")
_SELU_SCALE = mp.mpf("1.0507009873554804934193349852946")


def _mp_gelu_tanh(x: Any) -> Any:
    # x (1 + tanh u) / 2 = x / (1 + exp(-2u)), written without the cancellation of 1 + tanh(u).
    return x / (1 + mp.exp(-2 * mp.sqrt(2 / mp.pi) * (x + mp.mpf("0.044715") * x**3)))


MP_CASES: dict[str, Callable[[Any], Any]] = {
    "relu": lambda x: max(x, 0),
    "relu6": lambda x: min(max(x, 0), 6),
    "leaky_relu": lambda x: x if x > 0 else mp.mpf("0.01") * x,
    "prelu": lambda x: x if x > 0 else x / 4,
    "rrelu": lambda x: x if x > 0 else (mp.mpf(1) / 8 + mp.mpf(1) / 3) / 2 * x,
    "elu": lambda x: x if x > 0 else mp.expm1(x),
    "celu(alpha=0.3)": lambda x: x if x > 0 else mp.mpf("0.3") * mp.expm1(x / mp.mpf("0.3")),
    "selu": lambda x: _SELU_SCALE * (x if x > 0 else _SELU_ALPHA * mp.expm1(x)),
    "gelu": lambda x: x * mp.ncdf(x),
    "gelu(approximate='tanh')": _mp_gelu_tanh,
    "silu": lambda x: x / (1 + mp.exp(-x)),
    "mish": lambda x: x * mp.tanh(mp.log1p(mp.exp(x))),
    "softplus": lambda x: x if x > 20 else mp.log1p(mp.exp(x)),
    "softplus(beta=2.0, threshold=5.0)": lambda x: x if 2 * x > 5 else mp.log1p(mp.exp(2 * x)) / 2,
    "hardtanh": lambda x: min(max(x, -1), 1),
    "hardswish": lambda x: x * min(max(x + 3, 0), 6) / 6,
    "hardsigmoid": lambda x: min(max(x + 3, 0), 6) / 6,
    "sigmoid": lambda x: 1 / (1 + mp.exp(-x)),
    "tanh": mp.tanh,
    "softsign": lambda x: x / (1 + abs(x)),
    "logsigmoid": lambda x: -mp.log1p(mp.exp(-x)),
    "tanhshrink": lambda x: x - mp.tanh(x),
    "softshrink": lambda x: x - mp.mpf("0.5") if x > 0.5 else (x + mp.mpf("0.5") if x < -0.5 else 0),
    "hardshrink": lambda x: 0 if abs(x) <= 0.5 else x,
    "threshold(threshold=0.5, value=-1.0)": lambda x: x if x > 0.5 else -1,
    "identity": lambda x: x,
    "sin": mp.sin,
    "cos": mp.cos,
    "erf": mp.erf,
}
# Points away from every kink (so that mpmath's numerical derivative is meaningful there).
MP_POINTS = [-40.0, -10.0, -5.0, -1.3, -0.7, -1e-3, -1e-8, 1e-8, 1e-3, 0.3, 0.45, 0.77, 2.7, 4.2, 10.0, 40.0]


def test_mp_cases_cover_the_registry() -> None:
    assert {activation(spec).name for spec in MP_CASES} == set(registered_activations())


@pytest.mark.parametrize("spec", list(MP_CASES))
def test_values_match_mpmath(spec: str) -> None:
    act = activation(spec)
    x = np.array(MP_POINTS)
    exact = np.array([float(MP_CASES[spec](mp.mpf(point))) for point in MP_POINTS])
    # 1e-14: the conditioning of Phi(x) at x = -10 (|x phi/Phi| ~ x^2 = 100 ulp) is the limit.
    np.testing.assert_allclose(act(x), exact, rtol=1e-14, atol=1e-300, err_msg=spec)


@pytest.mark.parametrize("spec", list(MP_CASES))
def test_derivatives_match_mpmath(spec: str) -> None:
    act = activation(spec)
    points = [point for point in MP_POINTS if abs(point) < 20]  # mp.diff needs no more range
    with mp.workdps(80):  # erf(-10) = -1 + 2e-45: mp.diff needs the digits to see the difference
        exact = np.array([float(mp.diff(MP_CASES[spec], mp.mpf(point))) for point in points])
    np.testing.assert_allclose(act.derivative(np.array(points)), exact, rtol=5e-15, atol=1e-300, err_msg=spec)


def test_selu_constants_are_torchs() -> None:
    assert SELU_ALPHA == 1.6732632423543772848170429916717
    assert SELU_SCALE == 1.0507009873554804934193349852946
    x = torch.tensor([-1.0], dtype=torch.float64)
    assert float(F.selu(x)) == pytest.approx(SELU_SCALE * SELU_ALPHA * math.expm1(-1.0), rel=1e-15)


def test_softplus_reproduces_torchs_jump_at_threshold() -> None:
    act = activation("softplus")
    assert act.kinks == (20.0,)
    below, above = act(np.array([20.0, np.nextafter(20.0, 21.0)]))
    assert below - 20.0 == pytest.approx(math.log1p(math.exp(-20.0)), rel=1e-6)  # log1p(exp(20)) - 20
    assert above == np.nextafter(20.0, 21.0)
    assert activation("softplus(beta=1.0, threshold=inf)").kinks == ()


def test_kinks_and_features() -> None:
    expected_kinks = {
        "relu": (0.0,),
        "relu6": (0.0, 6.0),
        "hardtanh(min_val=-2.0, max_val=3.0)": (-2.0, 3.0),
        "hardswish": (-3.0, 3.0),
        "hardsigmoid": (-3.0, 3.0),
        "elu": (0.0,),
        "celu": (0.0,),
        "selu": (0.0,),
        "leaky_relu": (0.0,),
        "prelu": (0.0,),
        "rrelu": (0.0,),
        "softshrink(lambd=0.25)": (-0.25, 0.25),
        "hardshrink": (-0.5, 0.5),
        "hardshrink(lambd=0.0)": (0.0,),
        "threshold(1.5, 0.0)": (1.5,),
        "softplus(beta=2.0, threshold=5.0)": (2.5,),
        "softsign": (0.0,),
        "tanh": (),
        "gelu": (),
    }
    for spec, kinks in expected_kinks.items():
        assert activation(spec).kinks == kinks, spec
    assert activation("celu(alpha=0.3)").features == ((0.0, 0.3),)
    assert activation("softplus(beta=4.0)").features == ((0.0, 0.25),)
    for name in ("tanh", "sigmoid", "softsign", "silu", "gelu", "mish", "logsigmoid", "tanhshrink", "erf", "elu"):
        assert activation(name).features == ((0.0, 1.0),), name


def test_every_activation_has_a_description() -> None:
    for name in registered_activations():
        definition = DEFINITIONS[name]
        assert definition.description and "\n" not in definition.description
        assert activation_definition(name) is definition


# ----------------------------------------------------------------------------------------------
# Spec strings, aliases, class names, caching


def _canonical_specs() -> list[str]:
    return [spec for spec, _ in TORCH_CASES]


@pytest.mark.parametrize("spec", _canonical_specs())
def test_spec_round_trips_to_the_same_object(spec: str) -> None:
    act = activation(spec)
    assert activation(act.spec) is act
    assert activation(act) is act
    assert activation(act.spec).key == act.key


def test_spec_is_canonical() -> None:
    assert activation("elu").spec == "elu(alpha=1.0)"
    assert activation("relu").spec == "relu"
    assert activation("gelu").spec == "gelu(approximate='none')"
    assert activation("Softplus(beta=2)").spec == "softplus(beta=2.0, threshold=20.0)"
    assert activation("rrelu").param_dict == {"lower": 0.125, "upper": 1.0 / 3.0}


@pytest.mark.parametrize(
    ("spec", "params", "canonical"),
    [
        ("elu(alpha=0.5)", {}, "elu(alpha=0.5)"),
        ("elu", {"alpha": 0.5}, "elu(alpha=0.5)"),
        ("elu(0.5)", {}, "elu(alpha=0.5)"),
        ("ELU(alpha=0.5)", {}, "elu(alpha=0.5)"),
        ("  elu ( alpha = 0.5 ) ", {}, "elu(alpha=0.5)"),
        ("leaky_relu(0.2)", {}, "leaky_relu(negative_slope=0.2)"),
        ("LeakyReLU(negative_slope=0.2)", {}, "leaky_relu(negative_slope=0.2)"),
        ("leakyrelu", {"negative_slope": np.float32(0.25)}, "leaky_relu(negative_slope=0.25)"),
        ("gelu(approximate='tanh')", {}, "gelu(approximate='tanh')"),
        ('GELU(approximate="tanh")', {}, "gelu(approximate='tanh')"),
        ("gelu('tanh')", {}, "gelu(approximate='tanh')"),
        ("gelu", {"approximate": "tanh"}, "gelu(approximate='tanh')"),
        ("hardtanh(-2, max_val=3)", {}, "hardtanh(min_val=-2.0, max_val=3.0)"),
        ("softplus(+2, -1.5)", {}, "softplus(beta=2.0, threshold=-1.5)"),
        ("softplus(threshold=inf)", {}, "softplus(beta=1.0, threshold=inf)"),
        ("threshold", {"threshold": 1, "value": 0}, "threshold(threshold=1.0, value=0.0)"),
        ("swish", {}, "silu"),
        ("Swish", {}, "silu"),
        ("linear", {}, "identity"),
        ("Hardswish", {}, "hardswish"),
        ("RELU6", {}, "relu6"),
        ("Log_Sigmoid", {}, "logsigmoid"),
    ],
)
def test_spec_forms(spec: str, params: dict[str, Any], canonical: str) -> None:
    act = activation(spec, **params)
    assert act.spec == canonical
    assert activation(canonical) is act


def test_torch_module_class_names() -> None:
    assert set(TORCH_MODULE_NAMES.values()) == set(registered_activations()) - {"sin", "cos", "erf"}
    for module_name, name in TORCH_MODULE_NAMES.items():
        assert hasattr(nn, module_name), module_name
        if name != "threshold":
            assert activation(module_name) is activation(name)
    assert ACTIVATION_ALIASES == {"swish": "silu", "linear": "identity"}


def test_reference_generator_covers_the_registry() -> None:
    """Adding an activation means adding its 40-digit reference too: the generator (which does not import varprop)
    defines every registered activation again in mpmath, and the committed JSON holds what it generates."""
    sys.path.insert(0, str(Path(__file__).parent / "reference"))
    try:
        import generate_moments
    finally:
        sys.path.pop(0)
    specs = [reference.spec for reference in generate_moments.build_references()]
    assert {activation(spec).name for spec in specs} == set(registered_activations())
    entries = json.loads((Path(__file__).parent / "reference" / "moments_reference.json").read_text())["entries"]
    assert {entry["spec"] for entry in entries} == set(specs)


def test_registered_activations_is_sorted_and_complete() -> None:
    names = registered_activations()
    assert names == sorted(names)
    expected = {
        "relu", "relu6", "leaky_relu", "prelu", "rrelu", "elu", "celu", "selu", "gelu", "silu", "mish",
        "softplus", "hardtanh", "hardswish", "hardsigmoid", "sigmoid", "tanh", "softsign", "logsigmoid",
        "tanhshrink", "softshrink", "hardshrink", "threshold", "identity", "sin", "cos", "erf",
    }  # fmt: skip
    assert set(names) == expected


def test_parameter_order_and_defaults_follow_torch() -> None:
    ignored = {"self", "inplace", "num_parameters", "device", "dtype", "min_value", "max_value"}  # not moment-relevant
    for module_name, name in TORCH_MODULE_NAMES.items():
        signature = inspect.signature(getattr(nn, module_name).__init__)
        torch_params = [
            parameter
            for parameter in signature.parameters.values()
            if parameter.name not in ignored and parameter.kind not in {parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD}
        ]
        ours = DEFINITIONS[name].params
        assert [spec.name for spec in ours] == [parameter.name for parameter in torch_params], name
        for spec, parameter in zip(ours, torch_params, strict=True):
            expected = None if parameter.default is inspect.Parameter.empty else parameter.default
            assert spec.default == expected, (name, spec.name)


# ----------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("call", "error", "fragments"),
    [
        (
            lambda: activation("gelus"),
            VarpropValueError,
            ["unknown activation 'gelus'", "did you mean 'gelu'?", "Registered:", "relu"],
        ),
        (lambda: activation("leaky_rellu"), VarpropValueError, ["did you mean 'leaky_relu'?"]),
        (lambda: activation("Swissh"), VarpropValueError, ["did you mean 'swish'?"]),
        (lambda: activation("frobnicate"), VarpropValueError, ["unknown activation 'frobnicate'", "Registered:"]),
        (lambda: activation("elu(alfa=0.5)"), VarpropValueError, ["no parameter 'alfa'", "valid parameters: alpha"]),
        (lambda: activation("elu", beta=1.0), VarpropValueError, ["no parameter 'beta'", "alpha"]),
        (lambda: activation("relu", alpha=1.0), VarpropValueError, ["no parameter 'alpha'", "valid parameters: none"]),
        (lambda: activation("relu(inplace=True)"), VarpropValueError, ["inplace does not change"]),
        (lambda: activation("leaky_relu(0.1, 0.2)"), VarpropValueError, ["takes 1 parameter", "negative_slope"]),
        (lambda: activation("elu(0.5, alpha=0.5)"), VarpropValueError, ["'alpha' is given twice"]),
        (lambda: activation("elu(alpha=0.5)", alpha=0.3), VarpropValueError, ["given both in the spec"]),
        (lambda: activation("elu(alpha=True)"), VarpropTypeError, ["alpha must be a real number", "True"]),
        (lambda: activation("elu", alpha=False), VarpropTypeError, ["bool"]),
        (lambda: activation("elu", alpha=np.bool_(True)), VarpropTypeError, ["real number"]),
        (lambda: activation("elu", alpha="0.5"), VarpropTypeError, ["alpha must be a real number", "'0.5'"]),
        (lambda: activation("elu", alpha=None), VarpropTypeError, ["alpha must be a real number", "None"]),
        (lambda: activation("elu", alpha=[0.5]), VarpropTypeError, ["alpha must be a real number"]),
        (lambda: activation("elu(alpha=nan)"), VarpropValueError, ["alpha must be a number, got NaN"]),
        (lambda: activation("elu", alpha=float("nan")), VarpropValueError, ["NaN"]),
        (lambda: activation("elu", alpha=float("inf")), VarpropValueError, ["alpha must be finite"]),
        (lambda: activation("elu(alpha=1/2)"), VarpropValueError, ["must be a literal number", "'1/2'"]),
        (lambda: activation("elu(alpha=y)"), VarpropValueError, ["must be a literal", "'y'"]),
        (lambda: activation("elu(**{'alpha': 1})"), VarpropValueError, ["'**' arguments"]),
        (lambda: activation("celu(alpha=0)"), VarpropValueError, ["alpha must be nonzero"]),
        (lambda: activation("softplus(beta=0)"), VarpropValueError, ["beta must be > 0", "0.0"]),
        (lambda: activation("softplus(beta=-1)"), VarpropValueError, ["beta must be > 0"]),
        (lambda: activation("hardtanh(1.0, -1.0)"), VarpropValueError, ["max_val must be > min_val"]),
        (lambda: activation("hardtanh(min_val=1.0, max_val=1.0)"), VarpropValueError, ["max_val must be > min_val"]),
        (lambda: activation("softshrink(lambd=-0.1)"), VarpropValueError, ["lambd must be >= 0", "-0.1"]),
        (lambda: activation("hardshrink", lambd=-1), VarpropValueError, ["lambd must be >= 0"]),
        (lambda: activation("rrelu(lower=0.5, upper=0.1)"), VarpropValueError, ["lower must be <= upper"]),
        (lambda: activation("gelu(approximate='fast')"), VarpropValueError, ["'fast'", "one of 'none', 'tanh'"]),
        (lambda: activation("gelu", approximate=1), VarpropTypeError, ["one of 'none', 'tanh'"]),
        (
            lambda: activation("threshold"),
            VarpropValueError,
            ["requires the parameter(s) threshold, value", "threshold(threshold=0.0, value=0.0)"],
        ),
        (lambda: activation("threshold(0.5)"), VarpropValueError, ["requires the parameter(s) value"]),
        (lambda: activation("elu(alpha=0.5"), VarpropValueError, ["could not parse activation spec"]),
        (lambda: activation("elu[0]"), VarpropValueError, ["a subscript ('elu[0]') is not allowed"]),
        (lambda: activation("exp(1)"), VarpropValueError, ["unknown activation 'exp'", "write it in x"]),
        (lambda: activation("__import__('os')"), VarpropValueError, ["unknown activation '__import__'"]),
        (
            lambda: activation(activation("elu"), alpha=0.5),
            VarpropValueError,
            ["cannot be applied to the existing activation"],
        ),
        (
            lambda: activation(3.0),  # type: ignore[arg-type]
            VarpropTypeError,
            ["must be a name or spec string, an Activation or a callable", "float"],
        ),
        (lambda: activation(None), VarpropTypeError, ["NoneType"]),  # type: ignore[arg-type]
        (lambda: activation_definition("nope"), VarpropValueError, ["unknown activation 'nope'"]),
        (lambda: activation("elu(" + "0" * 2000 + ")"), VarpropValueError, ["at most 1000"]),
        (lambda: activation("-" * 5000 + "x"), VarpropValueError, ["at most 1000"]),
    ],
)
def test_errors_name_the_bad_input(call: Callable[[], object], error: type[Exception], fragments: list[str]) -> None:
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_errors_are_standard_exception_subclasses() -> None:
    with pytest.raises(ValueError):
        activation("gelus")
    with pytest.raises(TypeError):
        activation("elu", alpha=True)


# ----------------------------------------------------------------------------------------------
# Closed forms: each definition names its factory (ActivationDefinition.closed_form); the registry calls it
# with the activation's parameters.

# The activations with closed-form moments, written out: losing one (a definition that stops naming its
# factory) fails here instead of falling back to quadrature silently.
WITH_CLOSED_FORMS = {
    "relu", "relu6", "leaky_relu", "prelu", "rrelu", "elu", "celu", "selu", "gelu", "hardtanh", "hardsigmoid",
    "hardswish", "softshrink", "hardshrink", "threshold", "identity", "sin", "cos", "erf",
}  # fmt: skip


def _default_spec(name: str) -> str:
    return "threshold(threshold=0.5, value=-1.0)" if name == "threshold" else name  # threshold has no defaults


def test_closed_forms_are_looked_up_in_the_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    """An activation's closed form is its definition's factory called with its parameters (no fallback: a
    missing module is an import error, not a silent quadrature)."""
    calls: list[dict[str, Any]] = []

    def closed_form(mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return mean, var, var, np.ones(np.broadcast(mean, var).shape, dtype=bool)

    def factory(params: dict[str, Any]) -> Any:
        calls.append(params)
        return closed_form if params["alpha"] == 1.0 else None

    monkeypatch.setitem(DEFINITIONS, "elu", dataclasses.replace(DEFINITIONS["elu"], closed_form=factory))
    monkeypatch.setitem(DEFINITIONS, "relu", dataclasses.replace(DEFINITIONS["relu"], closed_form=None))
    _build.cache_clear()
    try:
        assert activation("elu").closed_form is closed_form
        assert not hasattr(activation("elu"), "closed_form_valid")  # one call returns values and mask
        assert activation("elu(alpha=0.5)").closed_form is None
        assert activation("relu").closed_form is None  # no entry
        assert calls == [{"alpha": 1.0}, {"alpha": 0.5}]
    finally:
        _build.cache_clear()


def test_missing_closed_forms_module_is_an_import_error() -> None:
    code = (
        "import sys; sys.modules['varprop.activations.closed_forms._factories'] = None\n"
        "try:\n    import varprop\nexcept ImportError as exc:\n    print('ImportError', exc.name)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "ImportError varprop.activations.closed_forms._factories"
    assert activation("tanh").closed_form is None  # tanh has none: quadrature (or its moment table)


def test_every_closed_form_is_attached() -> None:
    attached = {name for name in registered_activations() if activation(_default_spec(name)).closed_form is not None}
    assert attached == WITH_CLOSED_FORMS
    assert set(CLOSED_FORMS) == WITH_CLOSED_FORMS
    for name in WITH_CLOSED_FORMS:
        assert DEFINITIONS[name].closed_form is CLOSED_FORMS[name]


@pytest.mark.parametrize("name", sorted(WITH_CLOSED_FORMS))
def test_attached_closed_form_matches_quadrature(name: str) -> None:
    """The closed form the engine uses (``Activation.closed_form``) against the engine's quadrature, where valid:
    E[phi] to 1e-12 relative plus 1e-14 of E[phi^2]'s square root, E[phi^2] and E[phi'^2] to 1e-12 relative."""
    act = activation(_default_spec(name))
    assert act.closed_form is not None
    variances = (1e-2, 1.0) if name in ("sin", "cos") else (1e-2, 1.0, 30.0)  # the mesh resolves sin up to var 1
    mean, var = (np.array(grid).ravel() for grid in np.meshgrid([-2.0, -0.4, 0.0, 0.3, 1.7], variances))
    first, second, deriv, valid = act.closed_form(mean, var)
    assert valid.sum() >= 0.8 * valid.size, f"{name}: closed form valid at only {valid.sum()} of {valid.size} points"
    quad = varprop.moments(act, var=var, mean=mean, method="quadrature")
    scale = np.sqrt(quad.second_moment)
    np.testing.assert_allclose(first[valid], quad.mean[valid], rtol=1e-12, atol=1e-14 * scale[valid].max())
    np.testing.assert_allclose(second[valid], quad.second_moment[valid], rtol=1e-12, atol=0)
    np.testing.assert_allclose(deriv[valid], quad.deriv_second_moment[valid], rtol=1e-12, atol=0)


@pytest.mark.parametrize("spec", ["elu", "elu(alpha=0.5)", "celu(alpha=0.3)", "celu(alpha=3.0)", "selu"])
def test_elu_family_closed_form_point_values_are_the_definitions_function(spec: str) -> None:
    """ELU's function is written once (``activations._kernels``): at var == 0 the closed form gives phi(mean) and
    phi'(mean)^2 of the definition itself, to the rounding of selu's scale factored out and back in (an ulp)."""
    act = activation(spec)
    assert act.closed_form is not None
    x = np.linspace(-5.0, 3.0, 2001)
    first, second, deriv, valid = act.closed_form(x, np.zeros_like(x))
    assert valid.all()
    np.testing.assert_allclose(first, act(x), rtol=5e-16, atol=0)
    np.testing.assert_allclose(second, act(x) ** 2, rtol=5e-16, atol=0)
    np.testing.assert_allclose(deriv, act.derivative(x) ** 2, rtol=5e-16, atol=0)


def test_registry_does_not_import_torch() -> None:
    code = "import sys, varprop.activations._registry, varprop.activations._builtin; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ----------------------------------------------------------------------------------------------
# Custom callables and numerical derivatives


def _silu_scipy(x: np.ndarray) -> np.ndarray:
    return np.asarray(x * sc.expit(x))  # scipy's expit refuses complex input: Richardson path


def _silu_scipy_derivative(x: np.ndarray) -> np.ndarray:
    return np.asarray(sc.expit(x) * (1 + x * sc.expit(-x)))


CUSTOM_CASES = [
    # (function, analytic derivative, kinks, expected method, absolute tolerance relative to max(1, |f'|))
    (np.tanh, lambda x: 1 / np.cosh(x) ** 2, (), COMPLEX_STEP, 1e-15),
    (
        lambda x: x * sc.ndtr(x),
        lambda x: sc.ndtr(x) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi),
        (),
        COMPLEX_STEP,
        1e-15,
    ),
    (lambda x: np.log1p(np.exp(x)) - np.sin(3 * x), lambda x: sc.expit(x) - 3 * np.cos(3 * x), (), COMPLEX_STEP, 1e-15),
    (_silu_scipy, _silu_scipy_derivative, (), RICHARDSON, 1e-11),
    (lambda x: x * np.abs(x), lambda x: 2 * np.abs(x), (0.0,), RICHARDSON, 1e-11),
    (lambda x: (x * np.conj(x)).real, lambda x: 2 * x, (), RICHARDSON, 1e-11),
    (lambda x: np.abs(x) ** 3 - x, lambda x: 3 * x * np.abs(x) - 1, (0.0,), RICHARDSON, 1e-11),
    # numpy orders complex numbers lexicographically, so where/minimum/clip keep the complex step exact:
    (
        lambda x: np.where(x > 0, x, 0.1 * np.expm1(np.minimum(x, 0))),
        lambda x: np.where(x > 0, 1.0, 0.1 * np.exp(np.minimum(x, 0))),
        (0.0,),
        COMPLEX_STEP,
        1e-15,
    ),
    (
        lambda x: np.clip(x, -1.0, 2.0) ** 3,
        lambda x: np.where((x > -1) & (x < 2), 3 * x**2, 0.0),
        (-1.0, 2.0),
        COMPLEX_STEP,
        1e-15,
    ),
]


@pytest.mark.parametrize(("function", "derivative", "kinks", "method", "tolerance"), CUSTOM_CASES)
def test_custom_callable_derivative(
    function: Callable[[Any], Any],
    derivative: Callable[[Any], Any],
    kinks: tuple[float, ...],
    method: str,
    tolerance: float,
) -> None:
    act = activation(function, kinks=kinks)
    assert act.extra["custom"] is True
    assert act.extra["derivative_method"] == method
    assert act.kinks == kinks
    x = np.concatenate([np.linspace(-12.0, 12.0, 481), [-1e-7, 3e-6, 0.05]])
    x = x[np.min(np.abs(x[:, None] - np.array((*kinks, np.inf))[None, :]), axis=1) > 0]  # not exactly at a kink
    error = np.abs(act.derivative(x) - derivative(x)) / np.maximum(1.0, np.abs(derivative(x)))
    assert error.max() <= tolerance, f"max error {error.max():.3g} at x={x[np.argmax(error)]}"


def test_richardson_one_sided_near_kinks() -> None:
    # Next to a declared kink the stencil stays on one side: the derivative is exact to ~1e-9.
    x = np.array([-1e-6, -1e-12, 0.0, 1e-12, 1e-6])
    value, error = richardson_derivative(lambda t: np.maximum(t, 0.0) ** 2 + np.where(t > 0, t, -2 * t), x, kinks=[0.0])
    np.testing.assert_allclose(value, [-2.0, -2.0, 1.0, 1.0, 1 + 2e-6], rtol=0, atol=1e-9)
    assert np.all(error < 1e-8)


def test_numerical_derivative_prefers_complex_step() -> None:
    derivative, method = numerical_derivative(np.sin)
    assert method == COMPLEX_STEP
    x = np.linspace(-50, 50, 1001)
    np.testing.assert_allclose(derivative(x), np.cos(x), rtol=0, atol=2e-16)


def test_custom_callable_options() -> None:
    act = activation(np.tanh, derivative=lambda x: 1 - np.tanh(x) ** 2, name="my_tanh", features=[(0.0, 2.0)])
    assert act.name == "my_tanh" and act.spec == "my_tanh"
    assert act.extra["derivative_method"] == "given"
    assert act.features == ((0.0, 2.0),)
    assert activation(np.tanh).name == "custom:tanh"
    constant = activation(lambda x: 2.0)
    np.testing.assert_array_equal(constant(np.zeros(3)), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(constant.derivative(np.zeros(3)), [0.0, 0.0, 0.0])
    assert activation(act) is act


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"function": math.tanh}, VarpropTypeError, "must be vectorized with numpy"),
        ({"function": lambda x: np.ones(2)}, VarpropTypeError, "must return a real array of the input's shape"),
        ({"function": lambda x: x.astype(str)}, VarpropTypeError, "must return a real array"),
        ({"kinks": 0.0}, VarpropTypeError, "kinks must be a sequence"),
        ({"kinks": [float("nan")]}, VarpropValueError, "kink must be a number, got NaN"),
        ({"kinks": [True]}, VarpropTypeError, "kink must be a real number"),
        ({"features": [(0.0, 0.0)]}, VarpropValueError, "feature width must be > 0"),
        ({"features": [0.0]}, VarpropTypeError, "(x, width) pair"),
        ({"derivative": 1.0}, VarpropTypeError, "derivative must be a callable"),
        ({"name": ""}, VarpropTypeError, "non-empty string"),
        ({"alpha": 1.0}, VarpropValueError, "unknown option(s) 'alpha' for a custom activation"),
    ],
)
def test_custom_callable_errors(kwargs: dict[str, Any], error: type[Exception], fragment: str) -> None:
    function = kwargs.pop("function", np.tanh)
    with pytest.raises(error) as caught:
        activation(function, **kwargs)
    assert fragment in str(caught.value)
