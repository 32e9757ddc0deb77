"""The expression tree behind :mod:`._grammar`: nodes, algebra, functions, evaluation, printing.

The tree is immutable and compared by value. It is only ever built through the simplifying
constructors (``_binary``, ``_add``, ..., ``_neg``, ``_call``), which fold constant subexpressions
(refusing non-finite results) and apply the identities ``0 + a``, ``1 * a``, ``a ** 1``, ... so that
derivatives stay small. :data:`_FUNCTIONS` is the table of whitelisted functions: for each, its
numpy implementation, its partial derivatives as trees of its arguments, and whether (and where) it
has a kink, a singularity or a smooth saturating bend. ``_evaluate`` computes a tree on a float64
array; ``_render`` prints it back in the input syntax.

Internal to the ``_expression*`` modules: the calculus (``_expression_calculus``) and the parser
(``_expression``) import from here, never the reverse.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.special as sc
from numpy.typing import NDArray

from ..._errors import VarpropValueError

FloatArray = NDArray[np.float64]

_SQRT_PI = math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)


# ----------------------------------------------------------------------------------------------
# Expression tree


@dataclass(frozen=True, slots=True)
class _Node:
    """Base of the expression tree (immutable, compared by value)."""


@dataclass(frozen=True, slots=True)
class _Const(_Node):
    value: float


@dataclass(frozen=True, slots=True)
class _Var(_Node):
    pass


@dataclass(frozen=True, slots=True)
class _Neg(_Node):
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Binary(_Node):
    op: str  # one of + - * / **
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Call(_Node):
    name: str
    args: tuple[_Node, ...]


_ZERO = _Const(0.0)
_ONE = _Const(1.0)
_X = _Var()


def _finite_constant(value: float, what: str) -> _Const:
    if not math.isfinite(value):
        raise VarpropValueError(f"the constant subexpression {what} evaluates to {value}, which is not a finite number")
    return _Const(value)


def _fold(op: Callable[..., object], *values: float, what: Callable[[], str]) -> _Const:
    with np.errstate(all="ignore"):
        result = float(np.asarray(op(*(np.float64(value) for value in values)), dtype=np.float64))
    return _finite_constant(result, what())


_NUMPY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "**": np.power,
}

# The same operators as Python's ast spells them (read by the parser, written by the printer).
_BINARY_OPS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


def _binary(op: str, left: _Node, right: _Node) -> _Node:
    """Build ``left op right``, folding constants and applying the identities 0 + a, 1 * a, a ** 1, ..."""
    if isinstance(left, _Const) and isinstance(right, _Const):
        return _fold(_NUMPY_OPS[op], left.value, right.value, what=lambda: _render(_Binary(op, left, right)))
    if op in "+-":
        if right == _ZERO:
            return left
        if left == _ZERO:
            return right if op == "+" else _neg(right)
        if isinstance(right, _Neg):
            return _binary("-" if op == "+" else "+", left, right.operand)
    elif op == "*":
        if _ZERO in (left, right):
            return _ZERO
        if _ONE in (left, right):
            return right if left == _ONE else left
        if isinstance(left, _Neg) or isinstance(right, _Neg):
            inner_left = left.operand if isinstance(left, _Neg) else left
            inner_right = right.operand if isinstance(right, _Neg) else right
            product = _mul(inner_left, inner_right)
            return product if isinstance(left, _Neg) and isinstance(right, _Neg) else _neg(product)
        if isinstance(right, _Const):
            left, right = right, left  # constants first: 2*x rather than x*2
    elif op == "/":
        if left == _ZERO or right == _ONE:
            return left
    elif right == _ZERO:  # a ** 0
        return _ONE
    elif right == _ONE:  # a ** 1
        return left
    return _Binary(op, left, right)


def _add(left: _Node, right: _Node) -> _Node:
    return _binary("+", left, right)


def _sub(left: _Node, right: _Node) -> _Node:
    return _binary("-", left, right)


def _mul(left: _Node, right: _Node) -> _Node:
    return _binary("*", left, right)


def _div(left: _Node, right: _Node) -> _Node:
    return _binary("/", left, right)


def _pow(base: _Node, exponent: _Node) -> _Node:
    return _binary("**", base, exponent)


def _neg(operand: _Node) -> _Node:
    if isinstance(operand, _Const):
        return _Const(-operand.value)
    if isinstance(operand, _Neg):
        return operand.operand
    if isinstance(operand, _Binary) and operand.op == "*" and isinstance(operand.left, _Const):
        return _mul(_Const(-operand.left.value), operand.right)
    return _Neg(operand)


def _call(name: str, *args: _Node) -> _Node:
    if all(isinstance(arg, _Const) for arg in args):
        values = [arg.value for arg in args if isinstance(arg, _Const)]
        return _fold(_FUNCTIONS[name].numpy, *values, what=lambda: _render(_Call(name, args)))
    return _Call(name, args)


# ----------------------------------------------------------------------------------------------
# Functions: numpy implementation, derivative rule, smoothness


def _sech2(u: FloatArray) -> FloatArray:
    """1/cosh(u)^2 = 4 t/(1 + t)^2 with t = exp(-2|u|): no overflow, full relative accuracy."""
    t = np.exp(-2.0 * np.abs(u))
    return np.asarray(4.0 * t / (1.0 + t) ** 2, dtype=np.float64)


def _step(u: FloatArray) -> FloatArray:
    """Heaviside step with step(0) = 0 (the convention of relu's derivative in torch)."""
    return np.asarray(np.heaviside(u, 0.0), dtype=np.float64)


DerivativeRule = Callable[[tuple[_Node, ...]], tuple[_Node, ...]]


@dataclass(frozen=True)
class _Function:
    numpy: Callable[..., FloatArray]
    # Partial derivatives with respect to each argument, as expression trees of the arguments.
    partials: DerivativeRule
    arity: int = 1
    public: bool = True
    # "kink": not smooth where the (first) argument vanishes (for maximum/minimum: where a - b does);
    # "singular": singular there (sqrt, log); "saturating": a smooth bend of unit width at 0.
    kind: str = "smooth"
    zero_at: float = 0.0  # the argument value of the kink/singularity (log1p: -1)


def _unary(rule: Callable[[_Node], _Node]) -> DerivativeRule:
    return lambda args: (rule(args[0]),)


_FUNCTIONS: dict[str, _Function] = {
    "exp": _Function(np.exp, _unary(lambda u: _call("exp", u))),
    "expm1": _Function(np.expm1, _unary(lambda u: _call("exp", u))),
    "log": _Function(np.log, _unary(lambda u: _div(_ONE, u)), kind="singular"),
    "log1p": _Function(np.log1p, _unary(lambda u: _div(_ONE, _add(_ONE, u))), kind="singular", zero_at=-1.0),
    "sqrt": _Function(np.sqrt, _unary(lambda u: _div(_Const(0.5), _call("sqrt", u))), kind="singular"),
    "abs": _Function(np.abs, _unary(lambda u: _call("sign", u)), kind="kink"),
    "sign": _Function(np.sign, _unary(lambda u: _ZERO), kind="kink"),
    "relu": _Function(lambda u: np.maximum(u, 0.0), _unary(lambda u: _call("step", u)), kind="kink"),
    "step": _Function(_step, _unary(lambda u: _ZERO), kind="kink", public=False),
    "sin": _Function(np.sin, _unary(lambda u: _call("cos", u))),
    "cos": _Function(np.cos, _unary(lambda u: _neg(_call("sin", u)))),
    "tan": _Function(np.tan, _unary(lambda u: _div(_ONE, _pow(_call("cos", u), _Const(2.0))))),
    "sinh": _Function(np.sinh, _unary(lambda u: _call("cosh", u))),
    "cosh": _Function(np.cosh, _unary(lambda u: _call("sinh", u))),
    "tanh": _Function(np.tanh, _unary(lambda u: _call("sech2", u)), kind="saturating"),
    "sech2": _Function(
        _sech2,
        _unary(lambda u: _mul(_Const(-2.0), _mul(_call("tanh", u), _call("sech2", u)))),
        public=False,
    ),
    "arctan": _Function(np.arctan, _unary(lambda u: _div(_ONE, _add(_ONE, _pow(u, _Const(2.0))))), kind="saturating"),
    "arcsinh": _Function(np.arcsinh, _unary(lambda u: _div(_ONE, _call("sqrt", _add(_ONE, _pow(u, _Const(2.0))))))),
    "erf": _Function(
        sc.erf,
        _unary(lambda u: _mul(_Const(2.0 / _SQRT_PI), _call("exp", _neg(_pow(u, _Const(2.0)))))),
        kind="saturating",
    ),
    "erfc": _Function(
        sc.erfc,
        _unary(lambda u: _mul(_Const(-2.0 / _SQRT_PI), _call("exp", _neg(_pow(u, _Const(2.0)))))),
        kind="saturating",
    ),
    "ndtr": _Function(
        sc.ndtr,
        _unary(lambda u: _mul(_Const(1.0 / _SQRT_2PI), _call("exp", _mul(_Const(-0.5), _pow(u, _Const(2.0)))))),
        kind="saturating",
    ),
    "sigmoid": _Function(
        sc.expit, _unary(lambda u: _mul(_call("sigmoid", u), _call("sigmoid", _neg(u)))), kind="saturating"
    ),
    "softplus": _Function(lambda u: np.logaddexp(0.0, u), _unary(lambda u: _call("sigmoid", u)), kind="saturating"),
    "maximum": _Function(
        np.maximum,
        lambda args: (_call("step", _sub(args[0], args[1])), _sub(_ONE, _call("step", _sub(args[0], args[1])))),
        arity=2,
        kind="kink",
    ),
    "minimum": _Function(
        np.minimum,
        lambda args: (_call("step", _sub(args[1], args[0])), _sub(_ONE, _call("step", _sub(args[1], args[0])))),
        arity=2,
        kind="kink",
    ),
}


# ----------------------------------------------------------------------------------------------
# Evaluation and printing


def _evaluate(node: _Node, x: FloatArray, cache: dict[int, FloatArray]) -> FloatArray:
    key = id(node)
    cached = cache.get(key)
    if cached is not None:
        return cached
    result: FloatArray
    if isinstance(node, _Const):
        result = np.full(x.shape, node.value)
    elif isinstance(node, _Var):
        result = x
    elif isinstance(node, _Neg):
        result = -_evaluate(node.operand, x, cache)
    elif isinstance(node, _Binary):
        left = _evaluate(node.left, x, cache)
        right = _evaluate(node.right, x, cache)
        result = _NUMPY_OPS[node.op](left, right)
    elif isinstance(node, _Call):
        result = _FUNCTIONS[node.name].numpy(*(_evaluate(arg, x, cache) for arg in node.args))
    else:  # pragma: no cover - the tree only holds the classes above
        raise TypeError(node)
    cache[key] = result
    return result


def _to_ast(node: _Node) -> ast.expr:
    if isinstance(node, _Const):
        magnitude: float | int = abs(node.value)
        if float(magnitude).is_integer() and magnitude < 1e15:
            magnitude = int(magnitude)  # 2 rather than 2.0
        return ast.UnaryOp(ast.USub(), ast.Constant(magnitude)) if node.value < 0 else ast.Constant(magnitude)
    if isinstance(node, _Var):
        return ast.Name("x")
    if isinstance(node, _Neg):
        return ast.UnaryOp(ast.USub(), _to_ast(node.operand))
    if isinstance(node, _Binary):
        operator = {symbol: kind for kind, symbol in _BINARY_OPS.items()}[node.op]()
        return ast.BinOp(_to_ast(node.left), operator, _to_ast(node.right))
    if isinstance(node, _Call):
        return ast.Call(ast.Name(node.name), [_to_ast(arg) for arg in node.args], [])
    raise TypeError(node)  # pragma: no cover


def _render(node: _Node) -> str:
    return ast.unparse(_to_ast(node)).replace(" ", "")
