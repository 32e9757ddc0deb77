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

Layout: this module holds the grammar (parsing and validation) and the public entry points;
``_expression_tree`` the tree, its simplifying constructors, the function table, evaluation and
printing; ``_expression_calculus`` differentiation and kink location. Imports point one way:
``_expression`` -> ``_expression_calculus`` -> ``_expression_tree``.
"""

from __future__ import annotations

import ast
import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..._errors import VarpropTypeError, VarpropValueError, VarpropWarning
from .._activation import Activation
from ._calculus import (
    _affine,
    _differentiate,
    _evaluate_near,
    _pole_candidates,
    _singular_arguments,
    _structure,
    _walk,
)
from ._singular_points import SingularPoint, singular_points
from ._singular_search import REACH_STD, negative_intervals, real_zeros, snap_exponent
from ._tree import (
    _BINARY_OPS,
    _FUNCTIONS,
    _X,
    FloatArray,
    _Binary,
    _binary,
    _Call,
    _call,
    _Const,
    _evaluate,
    _finite_constant,
    _Neg,
    _neg,
    _Node,
    _render,
)

__all__ = [
    "ALLOWED_FUNCTIONS",
    "EXPONENTIAL_FUNCTIONS",
    "EXPRESSION_PREFIX",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NODES",
    "Expression",
    "canonical_expression",
    "exponential_form",
    "expression_activation",
    "parse_expression",
]

EXPRESSION_PREFIX = "expr:"
MAX_LENGTH = 1000
MAX_DEPTH = 60
MAX_NODES = 400

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

    def function_near(self, point: float, offset: FloatArray) -> FloatArray:
        """The expression at ``point + offset`` without rounding the offset against the point (poles)."""
        return np.array(_evaluate_near(self._tree, point, np.asarray(offset, dtype=np.float64), {}), dtype=np.float64)

    def derivative_near(self, point: float, offset: FloatArray) -> FloatArray:
        """The derivative at ``point + offset``, as ``function_near``."""
        tree = self._derivative_tree
        return np.array(_evaluate_near(tree, point, np.asarray(offset, dtype=np.float64), {}), dtype=np.float64)


def _evaluate_to_array(node: _Node, x: FloatArray) -> FloatArray:
    points = np.asarray(x, dtype=np.float64)
    return np.array(_evaluate(node, points, {}), dtype=np.float64)  # a copy: "x" must not return its input


def _evaluate_at(node: _Node, x: FloatArray) -> FloatArray:
    return np.asarray(_evaluate(node, np.asarray(x, dtype=np.float64), {}), dtype=np.float64)


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
    # Poles and other unbounded points: integrated exactly or reported as divergent by the moment engine.
    near = (expression.function_near, expression.derivative_near)
    singular = singular_points(
        expression.function, expression.derivative, [*all_kinks, *_pole_candidates(expression._tree)], near
    )
    extra: dict[str, object] = {}
    sought, domain, structural = _singular_arguments(expression._tree)
    if sought or domain or structural:  # non-affine denominators, log / sqrt arguments: searched in each reach
        search = _SingularSearch(expression, singular, sought, domain, structural)
        extra["singular_search"] = search
        near = (search.function_near, search.derivative_near)
        # The points of the standard Gaussian's reach, for the computations that refuse singular formulas.
        singular = search.points(-REACH_STD, REACH_STD, (0.0,), check_domain=False)[0]
    return Activation(
        name=EXPRESSION_PREFIX + expression.text,
        function=expression.function,
        derivative=expression.derivative,
        kinks=tuple(all_kinks),
        features=tuple(features) if features is not None else expression.features,
        description=f"expression {expression.text}",
        extra={
            "expression": expression.text,
            "derivative_expression": expression.derivative_text,
            "singular_points": singular,
            "near": near,
            **extra,
        },
    )


class _SingularSearch:
    """The singular points of a formula over an interval: exactly located ones plus numerically found roots.

    Called as ``search(low, high, anchors)`` (``_singular_points.SingularSearch``) by the moment engine with
    the Gaussian's reach; raises ``VarpropValueError`` where a log / sqrt argument or the base of a
    non-integer power is negative inside it (the formula is not real there).
    """

    def __init__(
        self,
        expression: Expression,
        exact: tuple[SingularPoint, ...],
        sought: list[_Node],
        domain: list[_Node],
        structural: list[float],
    ) -> None:
        self.expression = expression
        self.exact = exact
        self.structural = set(structural)
        self.domain = domain
        # Each sought piece u with its first three derivatives (its Taylor expansion at a simple root) and its
        # copies in the formula's and the derivative's trees (equal, not always identical, nodes).
        self.sought: list[tuple[_Node, list[_Node], list[_Node]]] = []
        copies = [*_walk(expression._tree), *_walk(expression._derivative_tree)]
        for node in sought:
            slopes = [_differentiate(node, {})]
            for _ in range(2):
                slopes.append(_differentiate(slopes[-1], {}))
            self.sought.append((node, slopes, [copy for copy in copies if copy == node]))
        # Simple roots found so far: point -> (Taylor coefficients of u at p, the radius where they hold, copies).
        self.taylor: dict[float, tuple[tuple[float, float, float], float, list[_Node]]] = {}

    def __call__(
        self, low: float, high: float, anchors: Sequence[float]
    ) -> tuple[tuple[SingularPoint, ...], tuple[float, ...]]:
        return self.points(low, high, anchors, check_domain=True)

    def points(
        self, low: float, high: float, anchors: Sequence[float], *, check_domain: bool
    ) -> tuple[tuple[SingularPoint, ...], tuple[float, ...]]:
        expression = self.expression
        anchors = [*anchors, 0.0, *(point for point, _, _ in self.exact)]
        if check_domain:
            for argument in self.domain:
                where = negative_intervals(functools.partial(_evaluate_at, argument), low, high, anchors)
                if where:
                    raise VarpropValueError(
                        f"expression {expression.text!r} is not real for {' and '.join(where)}: {_render(argument)} "
                        f"is negative there, and the Gaussian reaches it (mean +- {REACH_STD:g} std = "
                        f"[{low:.6g}, {high:.6g}]). Write the formula for every real x (e.g. log(abs(x)), "
                        "sqrt(abs(x)), or relu(...) inside) or use a mean and variance that keep the Gaussian "
                        "where it is defined"
                    )
        exact = tuple(point for point in self.exact if low <= point[0] <= high)  # beyond the reach: no mass
        known = [point for point, _, _ in exact]
        simple: list[float] = []
        multiple: list[float] = []
        for node, slopes, copies in self.sought:
            for root in real_zeros(
                functools.partial(_evaluate_at, node), functools.partial(_evaluate_at, slopes[0]), low, high, anchors
            ):
                if any(abs(root - point) <= 1e-12 * max(1.0, abs(point)) for point in known + simple + multiple):
                    continue
                at = np.array([root])
                first, second, third = (float(_evaluate_at(slope, at)[0]) for slope in slopes)
                if first != 0.0 and math.isfinite(first) and math.isfinite(second) and math.isfinite(third):
                    # The cubic Taylor polynomial is within ~1e-16 relative of u where its next terms are
                    # below eps: |d| <= 1e-4 of the scales |u1/u2|, |u1/u3|^(1/2) (uk: the k-th derivative).
                    scale = min(
                        abs(first / second) if second else math.inf,
                        math.sqrt(abs(first / third)) if third else math.inf,
                        1.0 + abs(root),
                    )
                    self.taylor[root] = ((first, second / 2.0, third / 6.0), 1e-4 * scale, copies)
                    simple.append(root)
                else:
                    multiple.append(root)
        near = (self.function_near, self.derivative_near)
        found = singular_points(expression.function, expression.derivative, sorted(simple), near)
        found += singular_points(expression.function, expression.derivative, sorted(multiple))
        snapped = tuple((point, snap_exponent(b_phi), snap_exponent(b_dphi)) for point, b_phi, b_dphi in found)
        merged = tuple(sorted(exact + snapped))
        approximate = [*multiple, *(point for point in known if point in self.structural)]
        return merged, tuple(approximate)

    def _near(self, tree: _Node, point: float, offset: FloatArray) -> FloatArray:
        """``tree`` at point + offset; at a simple root p of a sought piece u, u is its Taylor polynomial in
        the exact offset (u(p) taken as 0: the singularity sits at p, within a few ulps of the true root,
        which moves the integral by O(ulp)) wherever |offset| is inside the polynomial's radius."""
        offset = np.asarray(offset, dtype=np.float64)
        cache: dict[int, FloatArray] = {}
        expansion = self.taylor.get(point)
        if expansion is not None:
            (first, second, third), radius, copies = expansion
            polynomial = offset * (first + offset * (second + offset * third))
            inside = np.abs(offset) <= radius
            for copy in copies:
                rounded = _evaluate_near(copy, point, offset, {}) if not inside.all() else polynomial
                cache[id(copy)] = np.where(inside, polynomial, rounded)
        return np.array(_evaluate_near(tree, point, offset, cache), dtype=np.float64)

    def function_near(self, point: float, offset: FloatArray) -> FloatArray:
        """The formula at point + offset (``Expression.function_near``; Taylor pieces at simple roots)."""
        return self._near(self.expression._tree, point, offset)

    def derivative_near(self, point: float, offset: FloatArray) -> FloatArray:
        """The derivative at point + offset, as ``function_near``."""
        return self._near(self.expression._derivative_tree, point, offset)


#: The functions whose Gaussian cross moments have closed forms (``varprop.dynamics._correlation``).
EXPONENTIAL_FUNCTIONS = ("sin", "cos", "exp")


def exponential_form(text: str) -> tuple[str, float, float, float] | None:
    """``(name, amplitude, slope, intercept)`` if the formula is amplitude * name(slope * x + intercept).

    ``name`` is one of :data:`EXPONENTIAL_FUNCTIONS` (a linear combination of complex exponentials, whose
    Gaussian expectations are exact); None for any other formula.

    Example:
        >>> exponential_form("2*sin(3*x + 1)")
        ('sin', 2.0, 3.0, 1.0)
    """
    node = _parse(_strip_prefix(text))[0]
    amplitude = 1.0
    if isinstance(node, _Neg):
        amplitude, node = -1.0, node.operand
    if isinstance(node, _Binary) and node.op == "*" and isinstance(node.left, _Const):
        amplitude, node = amplitude * node.left.value, node.right
    elif isinstance(node, _Binary) and node.op == "/" and isinstance(node.right, _Const):
        amplitude, node = amplitude / node.right.value, node.left
    if not (isinstance(node, _Call) and node.name in EXPONENTIAL_FUNCTIONS):
        return None
    coefficients = _affine(node.args[0])
    if coefficients is None or coefficients[0] == 0.0:
        return None
    return node.name, amplitude, coefficients[0], coefficients[1]
