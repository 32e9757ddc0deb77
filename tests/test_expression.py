"""Math expressions in x: the grammar, refusal of everything else, and exact symbolic derivatives
checked against mpmath at 40 digits."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import mpmath as mp
import numpy as np
import pytest

from varprop._errors import VarpropTypeError, VarpropValueError, VarpropWarning
from varprop.activations._registry import activation
from varprop.activations.expression._grammar import (
    ALLOWED_FUNCTIONS,
    MAX_LENGTH,
    canonical_expression,
    expression_activation,
    parse_expression,
)

# mpmath counterparts of the whitelisted functions: the oracle evaluates the same formula text in
# this namespace (test-only; the library never evaluates text).
_MP_NAMESPACE: dict[str, Any] = {
    "__builtins__": {},
    "pi": mp.pi,
    "e": mp.e,
    "exp": mp.exp,
    "expm1": mp.expm1,
    "log": mp.log,
    "log1p": mp.log1p,
    "sqrt": mp.sqrt,
    "abs": abs,
    "sign": mp.sign,
    "relu": lambda u: max(u, 0),
    "sin": mp.sin,
    "cos": mp.cos,
    "tan": mp.tan,
    "sinh": mp.sinh,
    "cosh": mp.cosh,
    "tanh": mp.tanh,
    "arctan": mp.atan,
    "atan": mp.atan,
    "arcsinh": mp.asinh,
    "asinh": mp.asinh,
    "erf": mp.erf,
    "erfc": mp.erfc,
    "ndtr": mp.ncdf,
    "sigmoid": lambda u: 1 / (1 + mp.exp(-u)),
    "expit": lambda u: 1 / (1 + mp.exp(-u)),
    "softplus": lambda u: mp.log1p(mp.exp(u)),
    "maximum": max,
    "max": max,
    "minimum": min,
    "min": min,
}


def _mp_function(text: str) -> Callable[[Any], Any]:
    code = compile(text, "<oracle>", "eval")
    return lambda x: eval(code, _MP_NAMESPACE, {"x": x})


EXPRESSIONS = [
    "x*sigmoid(1.702*x)",
    "x*ndtr(x)",
    "0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x**3)))",
    "x*tanh(softplus(x))",
    "x/(1+abs(x))",
    "x - tanh(x)",
    "log1p(exp(x))",
    "exp(-x**2/2)",
    "e**x - 1",
    "2**x",
    "x**3 - 2*x**2 + x - 7",
    "1/(1+x**2)",
    "(1+x**2)**0.5",
    "(2+sin(x))**(1+x/10)",
    "arctan(x) + atan(2*x) + arcsinh(x) + asinh(-x/3)",
    "erf(x/sqrt(2)) + erfc(x) - expm1(-x)",
    "sinh(x/4)*cosh(x/5) + tan(x/10)",
    "cos(x)*sin(2*x)",
    "expit(x) + +x - -x",
    "relu(x) - relu(x - 1)",
    "maximum(x, 0.1*x)",
    "minimum(x, 1) + max(x, -1) + min(x, 2*x)",
    "abs(x - 3)*x",
    "sign(x)*x**2",
    "softplus(2*x)/2",
    "sqrt(abs(x) + 1)",
    "log(1 + x**2)",
]
# Away from every kink (0, 1, 3, +-1/..., the solutions of min/max) so that mp.diff is meaningful.
POINTS = [-7.3, -3.1, -1.7, -0.83, -0.31, -0.047, 0.053, 0.29, 0.71, 1.37, 2.2, 4.6, 7.9]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_values_and_symbolic_derivatives_match_mpmath(text: str) -> None:
    act = activation(text)
    oracle = _mp_function(text)
    x = np.array(POINTS)
    with mp.workdps(40):
        exact = np.array([float(oracle(mp.mpf(point))) for point in POINTS])
        exact_derivative = np.array([float(mp.diff(oracle, mp.mpf(point))) for point in POINTS])
    np.testing.assert_allclose(act(x), exact, rtol=1e-13, atol=1e-15, err_msg=text)
    np.testing.assert_allclose(act.derivative(x), exact_derivative, rtol=1e-13, atol=1e-15, err_msg=text)


def test_activation_from_expression() -> None:
    act = activation("x * sigmoid(1.702 * x)")
    assert act.name == "expr:x*sigmoid(1.702*x)"
    assert act.spec == "expr:x*sigmoid(1.702*x)"
    assert activation(act.spec) is act
    assert activation("x*sigmoid(1.702*x)") is act
    assert act.extra["expression"] == "x*sigmoid(1.702*x)"
    assert act.extra["derivative_expression"] == "sigmoid(1.702*x)+x*(1.702*(sigmoid(1.702*x)*sigmoid(-1.702*x)))"
    assert act.kinks == ()
    assert act.features == ((0.0, 1.0 / 1.702), (0.0, 1.0))
    assert activation("tanh(x)").name == "expr:tanh(x)"  # a formula, not the registered tanh


def test_canonical_spelling() -> None:
    assert canonical_expression("  x  *  2 ") == "x*2"
    assert canonical_expression("expr:(x)+(1)") == "x+1"
    assert canonical_expression("x**-1") == "x**(-1)"
    assert canonical_expression(canonical_expression("-x**2/(1+e)")) == canonical_expression("-x**2/(1+e)")


@pytest.mark.parametrize(
    ("text", "kinks"),
    [
        ("relu(x)", (0.0,)),
        ("relu(2*x - 1)", (0.5,)),
        ("relu(-(x + 4)/2)", (-4.0,)),
        ("maximum(x, 0.1*x)", (0.0,)),
        ("minimum(x, 6) + maximum(x, 0)", (0.0, 6.0)),
        ("abs(x + 3) + abs(x - 3)", (-3.0, 3.0)),
        ("sign(x - 1.5)", (1.5,)),
        ("sqrt(x - 1)", (1.0,)),
        ("(x + 2)**1.5", (-2.0,)),
        ("log(abs(x))", (0.0,)),
        ("log1p(x)", (-1.0,)),
        ("x**2 + relu(0*x + 1)", ()),
        ("x**3 + (1+x**2)**0.5 + log(1+exp(x))", ()),
    ],
)
def test_kinks_located_symbolically(text: str, kinks: tuple[float, ...]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert activation(text).kinks == kinks


def test_unlocated_kinks_warn_unless_declared() -> None:
    with pytest.warns(VarpropWarning, match=r"abs\(sin\(x\)\).*kinks=\[\.\.\.\]"):
        act = expression_activation("abs(sin(x))")
    assert act.kinks == ()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        declared = activation("abs(sin(x))", kinks=[-np.pi, 0.0, np.pi])
    assert declared.kinks == (-np.pi, 0.0, np.pi)
    assert parse_expression("relu(x**2 - 1)").unlocated == ("relu(x**2-1)",)


def test_features_of_saturating_functions() -> None:
    assert activation("tanh(2*x + 1)").features == ((-0.5, 0.5), (0.0, 1.0))
    assert activation("x", features=[(1.0, 3.0)]).features == ((1.0, 3.0),)


def test_evaluation_details() -> None:
    identity = activation("x")
    x = np.array([1.0, 2.0])
    result = identity(x)
    result[0] = 5.0
    assert x[0] == 1.0  # a copy, not the input
    constant = activation("2*pi")
    np.testing.assert_array_equal(constant(np.zeros((2, 3))), np.full((2, 3), 2 * np.pi))
    np.testing.assert_array_equal(constant.derivative(np.zeros(4)), np.zeros(4))
    assert activation("x").derivative(np.array(3.0)).shape == ()
    # relu'(0) = 0 like torch; maximum picks the second argument's slope on ties
    np.testing.assert_array_equal(activation("relu(x)").derivative(np.array([-1.0, 0.0, 1.0])), [0.0, 0.0, 1.0])


def test_deep_compositions_stay_fast() -> None:
    text = "sin(" * 40 + "x" + ")" * 40
    start = time.perf_counter()
    act = activation(text)
    value = act.derivative(np.linspace(-3, 3, 10_000))
    assert time.perf_counter() - start < 2.0
    assert np.all(np.isfinite(value))
    tower = parse_expression("(1 + x**2)**(1 + x**2)**(1 + x**2)**(1 + x**2)")
    assert np.isfinite(tower.derivative(np.array(0.3)))


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("__import__('os')", ["the function '__import__'", "allowed:"]),
        ("__import__('os').system('ls')", ["attribute access"]),
        ("x.__class__", ["attribute access", "'x.__class__'"]),
        ("x.__class__.__bases__[0].__subclasses__()", ["not allowed"]),
        ("[x]", ["a container literal", "'[x]'"]),
        ("(x, x)", ["a container literal"]),
        ("{x: 1}", ["a container literal"]),
        ("x[0]", ["a subscript"]),
        ("y", ["the name 'y'", "the variable must be called x"]),
        ("exp", ["the name 'exp'", "call it: exp(x)"]),
        ("open(x)", ["the function 'open'"]),
        ("eval('x')", ["the function 'eval'"]),
        ("lambda: x", ["a lambda"]),
        ("(lambda: x)()", ["a lambda"]),
        ("(2*x)(2)", ["calling anything but a function name", "'2*x'"]),
        ("x(2)", ["the function 'x'"]),
        ("[t for t in x]", ["a comprehension"]),
        ("x if x > 0 else 0", ["a comparison or condition"]),
        ("x > 0", ["a comparison or condition"]),
        ("x and 1", ["a comparison or condition"]),
        ("'x'", ["a str literal"]),
        ("b'x'", ["a bytes literal"]),
        ("f'{x}'", ["an f-string"]),
        ("2j*x", ["a complex literal"]),
        ("True*x", ["a bool literal"]),
        ("None", ["a NoneType literal"]),
        ("...", ["a ellipsis literal"]),
        ("(y := x)", ["an assignment expression"]),
        ("exp(x=1)", ["keyword arguments"]),
        ("exp(*x)", ["the syntax Starred"]),
        ("exp(x, x)", ["exp takes 1 argument(s), got 2"]),
        ("maximum(x)", ["maximum takes 2 argument(s), got 1"]),
        ("x // 2", ["the operator FloorDiv"]),
        ("x % 2", ["the operator Mod"]),
        ("x @ x", ["the operator MatMult"]),
        ("x ^ 2", ["the operator BitXor", "use ** for powers"]),
        ("x << 1", ["the operator LShift"]),
        ("~x", ["the operator Invert"]),
        ("not x", ["the operator Not"]),
        ("step(x)", ["the function 'step'"]),
        ("sech2(x)", ["the function 'sech2'"]),
        ("x +", ["not valid syntax"]),
        ("x = 1", ["not valid syntax"]),
        ("import os", ["not valid syntax"]),
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("1e400*x", ["not a finite number"]),
        ("10**10**10*x", ["not a finite number"]),
        ("9" * 400 + "*x", ["beyond the float64 range"]),
        ("log(-1) + x", ["log(-1)", "nan"]),
        ("x/0 + 1/0", ["1/0", "inf"]),
        ("x + " * 300 + "x", [f"at most {MAX_LENGTH}"]),
        ("(" * 300 + "x" + ")" * 300, ["not valid syntax"]),
        ("-" * 200 + "x", ["too complex"]),
        ("exp(" * 100 + "x" + ")" * 100, ["too complex"]),
        ("+".join(["x*x"] * 150), ["too complex"]),
    ],
)
def test_refusals_name_the_offending_piece(text: str, fragments: list[str]) -> None:
    start = time.perf_counter()
    with pytest.raises(VarpropValueError) as caught:
        parse_expression(text)
    assert time.perf_counter() - start < 1.0
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_refusal_lists_the_allowed_pieces() -> None:
    with pytest.raises(VarpropValueError) as caught:
        parse_expression("gamma(x)")
    message = str(caught.value)
    for name in ALLOWED_FUNCTIONS:
        assert name in message
    assert "the variable x" in message and "pi and e" in message


def test_registry_routes_formulas_and_refusals() -> None:
    with pytest.raises(VarpropValueError, match="attribute access"):
        activation("x.__class__")
    with pytest.raises(VarpropValueError, match="the function 'gelus'"):
        activation("gelus(x)")
    with pytest.raises(VarpropValueError, match=r"unknown option\(s\) 'alpha' for a formula"):
        activation("x*2", alpha=1.0)
    with pytest.raises(VarpropTypeError):
        parse_expression(3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # the standard base class
        parse_expression("y")


def test_nothing_is_evaluated(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    for text in [f"__import__('pathlib').Path('{marker}').touch()", "open('pwned', 'w')"]:
        with pytest.raises(VarpropValueError):
            activation(text)
        with pytest.raises(VarpropValueError):
            parse_expression(text)
    assert not marker.exists()
