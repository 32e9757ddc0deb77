"""Safe math expressions in ``x`` as activations, with exact symbolic derivatives.

``"x*sigmoid(1.702*x)"`` is parsed with :func:`ast.parse` (``mode="eval"``) and converted into a
small expression tree; nothing is ever passed to :func:`eval`. Only these pieces are accepted:

- numeric literals, the variable ``x`` and the constants ``pi`` and ``e``;
- the operators ``+ - * / **`` and unary ``-`` and ``+``;
- calls of the functions in :data:`ALLOWED_FUNCTIONS` (positional arguments only).

Everything else (attribute access, subscripts, other names, strings, lambdas, comprehensions,
comparisons, keyword arguments, ...) raises :class:`~varprop.VarpropValueError` naming the piece.
Strings longer than :data:`MAX_LENGTH` characters, trees deeper than :data:`MAX_DEPTH` or with
more than :data:`MAX_NODES` nodes are refused too.

The derivative is computed symbolically on the tree (chain, product, quotient and power rules,
with constant folding), so it is exact up to floating-point rounding; no finite differences.

Kinks: every non-smooth function (``abs``, ``sign``, ``relu``, ``maximum``, ``minimum``) and every
singular point (``sqrt``, ``log``, ``log1p`` and non-integer powers at the zero of their argument)
whose argument is affine in ``x`` with constant coefficients (``relu(2*x - 1)``,
``maximum(x, 0.1*x)``) contributes its exact kink (``0.5``, ``0``). A kink inside a non-affine
argument (``abs(sin(x))``, ``relu(x**2 - 1)``) cannot be located symbolically: a
:class:`~varprop.VarpropWarning` says so, and the kinks can be given explicitly (``kinks=``).
Smooth saturating functions (``tanh``, ``sigmoid``, ``softplus``, ``erf``, ...) of an affine
argument ``a*x + b`` contribute a feature at ``-b/a`` of width ``1/|a|``; ``(0, 1)`` is always one.
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.special as sc
from numpy.typing import NDArray

from ._activation import Activation
from ._errors import VarpropTypeError, VarpropValueError, VarpropWarning

__all__ = [
    "ALLOWED_FUNCTIONS",
    "EXPRESSION_PREFIX",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NODES",
    "Expression",
    "canonical_expression",
    "expression_activation",
    "parse_expression",
]

FloatArray = NDArray[np.float64]

EXPRESSION_PREFIX = "expr:"
MAX_LENGTH = 1000
MAX_DEPTH = 60
MAX_NODES = 400
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

_FUNCTION_ALIASES = {"atan": "arctan", "asinh": "arcsinh", "expit": "sigmoid", "max": "maximum", "min": "minimum"}
_CONSTANTS = {"pi": math.pi, "e": math.e}

#: Function names accepted in expressions (aliases included).
ALLOWED_FUNCTIONS: tuple[str, ...] = tuple(
    sorted([name for name, function in _FUNCTIONS.items() if function.public] + list(_FUNCTION_ALIASES))
)


# ----------------------------------------------------------------------------------------------
# Parsing (ast -> tree), with refusal of everything outside the grammar

_ALLOWED_SUMMARY = (
    "allowed: numbers, the variable x, the constants pi and e, the operators + - * / ** (and unary - +), "
    f"and calls of {', '.join(ALLOWED_FUNCTIONS)}"
)
_BINARY_OPS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_REFUSED_NODES: list[tuple[type[ast.AST] | tuple[type[ast.AST], ...], str]] = [
    (ast.Attribute, "attribute access"),
    (ast.Subscript, "a subscript"),
    ((ast.List, ast.Tuple, ast.Set, ast.Dict), "a container literal"),
    (ast.Lambda, "a lambda"),
    ((ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp), "a comprehension"),
    ((ast.Compare, ast.BoolOp, ast.IfExp), "a comparison or condition"),
    (ast.JoinedStr, "an f-string"),
    (ast.NamedExpr, "an assignment expression"),
]


def _refuse(text: str, node: ast.AST, what: str, hint: str = "") -> VarpropValueError:
    piece = ast.get_source_segment(text, node) or ast.dump(node)
    advice = f" ({hint})" if hint else ""
    return VarpropValueError(f"expression {text!r}: {what} ({piece!r}) is not allowed{advice}; {_ALLOWED_SUMMARY}")


class _Converter:
    """Converts a parsed :mod:`ast` into the expression tree, refusing everything else."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes = 0

    def convert(self, node: ast.AST, depth: int = 0) -> _Node:
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise VarpropValueError(
                f"expression {self.text[:80]!r}... is too complex (more than {MAX_DEPTH} levels of nesting or "
                f"{MAX_NODES} elements)"
            )
        text = self.text
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _refuse(text, node, f"a {type(value).__name__} literal")
            try:
                number = float(value)
            except OverflowError:
                raise _refuse(text, node, "a number beyond the float64 range") from None
            return _finite_constant(number, repr(value))
        if isinstance(node, ast.Name):
            if node.id == "x":
                return _X
            if node.id in _CONSTANTS:
                return _Const(_CONSTANTS[node.id])
            hint = "the variable must be called x" if node.id not in _FUNCTIONS else f"call it: {node.id}(x)"
            raise _refuse(text, node, f"the name {node.id!r}", hint)
        if isinstance(node, ast.UnaryOp):
            operand = self.convert(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return _neg(operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            raise _refuse(text, node, f"the operator {type(node.op).__name__}")
        if isinstance(node, ast.BinOp):
            symbol = _BINARY_OPS.get(type(node.op))
            if symbol is None:
                hint = "use ** for powers" if isinstance(node.op, ast.BitXor) else ""
                raise _refuse(text, node, f"the operator {type(node.op).__name__}", hint)
            left = self.convert(node.left, depth + 1)
            right = self.convert(node.right, depth + 1)
            return _binary(symbol, left, right)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        for kind, description in _REFUSED_NODES:
            if isinstance(node, kind):
                raise _refuse(text, node, description)
        raise _refuse(text, node, f"the syntax {type(node).__name__}")

    def _call(self, node: ast.Call, depth: int) -> _Node:
        text = self.text
        if not isinstance(node.func, ast.Name):
            self.convert(node.func, depth + 1)  # refuses attribute access, lambdas, ... by name
            raise _refuse(text, node.func, "calling anything but a function name")
        raw_name = node.func.id
        name = _FUNCTION_ALIASES.get(raw_name, raw_name)
        function = _FUNCTIONS.get(name)
        if function is None or not function.public:
            raise _refuse(text, node.func, f"the function {raw_name!r}")
        if node.keywords:
            raise _refuse(text, node.keywords[0], "keyword arguments")
        if len(node.args) != function.arity:
            raise VarpropValueError(
                f"expression {text!r}: {raw_name} takes {function.arity} argument(s), got {len(node.args)}"
            )
        args = tuple(self.convert(arg, depth + 1) for arg in node.args)
        return _call(name, *args)


def _parse(text: str) -> tuple[_Node, str]:
    """Parse ``text`` into a tree and its canonical spelling (``ast.unparse`` without spaces)."""
    if not isinstance(text, str):
        raise VarpropTypeError(f"an expression must be a string, got {text!r} of type {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise VarpropValueError(f"expression is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    source = text.strip()
    if not source:
        raise VarpropValueError("expression is empty; write a formula in x, e.g. 'x*sigmoid(1.702*x)'")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise VarpropValueError(f"expression {source!r} is not valid syntax: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise VarpropValueError(f"expression {source[:80]!r}... is nested too deeply") from None
    node = _Converter(source).convert(tree.body)
    canonical = ast.unparse(tree).replace(" ", "")
    return node, canonical


# ----------------------------------------------------------------------------------------------
# Evaluation, differentiation, printing, kinks


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


def _differentiate(node: _Node, memo: dict[int, _Node]) -> _Node:
    key = id(node)
    if key in memo:
        return memo[key]
    result: _Node
    if isinstance(node, _Const):
        result = _ZERO
    elif isinstance(node, _Var):
        result = _ONE
    elif isinstance(node, _Neg):
        result = _neg(_differentiate(node.operand, memo))
    elif isinstance(node, _Binary):
        left, right = node.left, node.right
        d_left, d_right = _differentiate(left, memo), _differentiate(right, memo)
        if node.op == "+":
            result = _add(d_left, d_right)
        elif node.op == "-":
            result = _sub(d_left, d_right)
        elif node.op == "*":
            result = _add(_mul(d_left, right), _mul(left, d_right))
        elif node.op == "/":
            if isinstance(right, _Const):
                result = _div(d_left, right)
            else:
                result = _div(_sub(_mul(d_left, right), _mul(left, d_right)), _pow(right, _Const(2.0)))
        elif isinstance(right, _Const):  # u ** c
            result = _mul(_mul(right, _pow(left, _Const(right.value - 1.0))), d_left)
        elif isinstance(left, _Const):  # c ** v
            result = _mul(_mul(node, _Const(math.log(left.value)) if left.value > 0 else _call("log", left)), d_right)
        else:  # u ** v = exp(v log u)
            result = _mul(node, _add(_mul(d_right, _call("log", left)), _div(_mul(right, d_left), left)))
    elif isinstance(node, _Call):
        partials = _FUNCTIONS[node.name].partials(node.args)
        result = _ZERO
        for partial, arg in zip(partials, node.args, strict=True):
            result = _add(result, _mul(partial, _differentiate(arg, memo)))
    else:  # pragma: no cover
        raise TypeError(node)
    memo[key] = result
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


def _affine(node: _Node) -> tuple[float, float] | None:
    """``(a, b)`` if ``node`` is ``a*x + b`` with constant a, b; otherwise None."""
    if isinstance(node, _Const):
        return 0.0, node.value
    if isinstance(node, _Var):
        return 1.0, 0.0
    if isinstance(node, _Neg):
        inner = _affine(node.operand)
        return None if inner is None else (-inner[0], -inner[1])
    if isinstance(node, _Binary):
        left, right = _affine(node.left), _affine(node.right)
        if left is None or right is None:
            return None
        if node.op == "+":
            return left[0] + right[0], left[1] + right[1]
        if node.op == "-":
            return left[0] - right[0], left[1] - right[1]
        if node.op == "*" and (left[0] == 0.0 or right[0] == 0.0):
            return left[0] * right[1] + right[0] * left[1], left[1] * right[1]
        if node.op == "/" and right[0] == 0.0 and right[1] != 0.0:
            return left[0] / right[1], left[1] / right[1]
    return None


def _walk(node: _Node) -> list[_Node]:
    seen: dict[int, _Node] = {}
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen[id(current)] = current
        if isinstance(current, _Neg):
            stack.append(current.operand)
        elif isinstance(current, _Binary):
            stack.extend((current.left, current.right))
        elif isinstance(current, _Call):
            stack.extend(current.args)
    return list(seen.values())


def _structure(node: _Node) -> tuple[list[float], list[tuple[float, float]], list[str]]:
    """Kinks, features and the non-smooth pieces whose kink could not be located."""
    kinks: list[float] = []
    features: list[tuple[float, float]] = []
    unlocated: list[str] = []
    for current in _walk(node):
        argument: _Node | None = None
        kind = "smooth"
        zero_at = 0.0
        if isinstance(current, _Call):
            function = _FUNCTIONS[current.name]
            kind, zero_at = function.kind, function.zero_at
            argument = current.args[0] if function.arity == 1 else _sub(current.args[0], current.args[1])
        elif (
            isinstance(current, _Binary)
            and current.op == "**"
            and isinstance(current.right, _Const)
            and not float(current.right.value).is_integer()
        ):
            kind, argument = "singular", current.left
        if argument is None or kind == "smooth":
            continue
        coefficients = _affine(argument)
        if coefficients is None:
            if kind == "kink":  # a singular point at a non-affine argument is usually never reached
                unlocated.append(_render(current))
            continue
        slope, intercept = coefficients
        if slope == 0.0:
            continue
        location = (zero_at - intercept) / slope
        if kind == "saturating":
            features.append((location, 1.0 / abs(slope)))
        elif math.isfinite(location):
            kinks.append(location)
    return sorted(set(kinks)), sorted(set(features)), sorted(set(unlocated))


# ----------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class Expression:
    """A parsed expression in ``x`` with its exact derivative.

    Attributes:
        text: canonical spelling (``ast.unparse`` of the input without spaces).
        derivative_text: the symbolic derivative, in the same syntax.
        kinks: located kinks (sorted).
        features: ``(x, width)`` smooth bends, always including ``(0, 1)``.
        unlocated: non-smooth subexpressions whose kinks could not be located.
    """

    text: str
    derivative_text: str
    kinks: tuple[float, ...]
    features: tuple[tuple[float, float], ...]
    unlocated: tuple[str, ...]
    _tree: _Node
    _derivative_tree: _Node

    def function(self, x: FloatArray) -> FloatArray:
        """Evaluate the expression at ``x`` (float64 array of x's shape)."""
        return _evaluate_to_array(self._tree, x)

    def derivative(self, x: FloatArray) -> FloatArray:
        """Evaluate the exact derivative at ``x``."""
        return _evaluate_to_array(self._derivative_tree, x)


def _evaluate_to_array(node: _Node, x: FloatArray) -> FloatArray:
    points = np.asarray(x, dtype=np.float64)
    return np.array(_evaluate(node, points, {}), dtype=np.float64)  # a copy: "x" must not return its input


def _strip_prefix(text: str) -> str:
    if isinstance(text, str) and text.strip().startswith(EXPRESSION_PREFIX):
        return text.strip()[len(EXPRESSION_PREFIX) :]
    return text


def canonical_expression(text: str) -> str:
    """The canonical spelling of a formula (validated): ``ast.unparse`` without spaces, no prefix.

    Example:
        >>> canonical_expression("expr: x * sigmoid(1.702 * x)")
        'x*sigmoid(1.702*x)'
    """
    return _parse(_strip_prefix(text))[1]


def parse_expression(text: str) -> Expression:
    """Parse a formula in ``x`` and differentiate it symbolically.

    Args:
        text: e.g. ``"x*sigmoid(1.702*x)"`` (see the module docstring for the grammar).

    Returns:
        The parsed :class:`Expression`.

    Raises:
        VarpropValueError: the text is not valid syntax, uses anything outside the grammar, has a
            non-finite constant subexpression, or is too long or too deeply nested.
        VarpropTypeError: ``text`` is not a string.

    Example:
        >>> parse_expression("x*sigmoid(1.702*x)").derivative_text
        'sigmoid(1.702*x)+x*(1.702*(sigmoid(1.702*x)*sigmoid(-1.702*x)))'
    """
    tree, canonical = _parse(_strip_prefix(text))
    derivative_tree = _differentiate(tree, {})
    kinks, features, unlocated = _structure(tree)
    all_features = sorted({(0.0, 1.0), *features})
    return Expression(
        text=canonical,
        derivative_text=_render(derivative_tree),
        kinks=tuple(kinks),
        features=tuple(all_features),
        unlocated=tuple(unlocated),
        _tree=tree,
        _derivative_tree=derivative_tree,
    )


def expression_activation(
    text: str,
    *,
    kinks: Sequence[float] | None = None,
    features: Sequence[tuple[float, float]] | None = None,
) -> Activation:
    """Build an :class:`~varprop.Activation` from a formula in ``x``.

    The activation is named ``"expr:<canonical text>"`` (its ``spec`` parses back to it); its
    derivative is the exact symbolic one.

    Args:
        text: the formula, optionally prefixed with ``"expr:"``.
        kinks: extra kink locations (added to the ones located symbolically).
        features: ``(x, width)`` smooth bends replacing the automatic ones.

    Returns:
        The activation; ``extra`` holds ``"expression"`` and ``"derivative_expression"``.

    Raises:
        VarpropValueError: see :func:`parse_expression`.

    Warns:
        VarpropWarning: a non-smooth function has a non-affine argument and ``kinks`` was not given.

    Example:
        >>> act = expression_activation("x*sigmoid(1.702*x)")
        >>> act.name
        'expr:x*sigmoid(1.702*x)'
    """
    expression = parse_expression(_strip_prefix(text))
    if expression.unlocated and kinks is None:
        warnings.warn(
            f"expression {expression.text!r}: the kinks of {', '.join(expression.unlocated)} are not at an affine "
            "function of x and could not be located; moments near them are less accurate. Pass kinks=[...] to "
            "declare them.",
            VarpropWarning,
            stacklevel=3,
        )
    all_kinks = sorted({*expression.kinks, *(float(kink) for kink in (kinks or ()))})
    return Activation(
        name=EXPRESSION_PREFIX + expression.text,
        function=expression.function,
        derivative=expression.derivative,
        kinks=tuple(all_kinks),
        features=tuple(features) if features is not None else expression.features,
        description=f"expression {expression.text}",
        extra={"expression": expression.text, "derivative_expression": expression.derivative_text},
    )
