"""Calculus on the expression tree of :mod:`._tree`: derivatives and kinks.

``_differentiate`` applies the sum, product, quotient, power and chain rules (each function's own
partial derivatives come from its entry in ``_FUNCTIONS``); the simplifying constructors fold
constants as it goes, so the result is exact up to floating-point rounding.

``_structure`` locates the kinks and singular points of the non-smooth functions (and non-integer
powers) whose argument is affine in ``x`` (``_affine``), the smooth bends of the saturating ones,
and lists the non-smooth pieces whose kink cannot be located symbolically.
"""

from __future__ import annotations

import math

import numpy as np

from ._tree import (
    _FUNCTIONS,
    _NUMPY_OPS,
    _ONE,
    _ZERO,
    FloatArray,
    _add,
    _Binary,
    _Call,
    _call,
    _Const,
    _div,
    _mul,
    _Neg,
    _neg,
    _Node,
    _pow,
    _render,
    _sub,
    _Var,
)


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


def _zeros(node: _Node) -> list[float]:
    """Points where ``node`` vanishes that can be read off its structure: zeros of affine factors."""
    coefficients = _affine(node)
    if coefficients is not None:
        slope, intercept = coefficients
        return [-intercept / slope] if slope != 0.0 else []
    if isinstance(node, _Neg):
        return _zeros(node.operand)
    if isinstance(node, _Binary) and node.op == "*":
        return _zeros(node.left) + _zeros(node.right)
    if isinstance(node, _Binary) and node.op in "/**" and isinstance(node.right, _Const) and node.right.value > 0:
        return _zeros(node.left)  # u / c and u ** c (c > 0) vanish with u
    if isinstance(node, _Call) and node.name in ("abs", "sqrt", "sign", "sin", "tan", "sinh", "arctan", "arcsinh"):
        return _zeros(node.args[0])  # functions that vanish exactly where their argument does
    return []


def _pole_candidates(node: _Node) -> list[float]:
    """Candidate singular points: zeros of denominators and of the bases of negative powers.

    Whether the formula is really unbounded there (``sin(x)/x`` is not) is decided numerically by
    ``_singular_points.singular_points``; the kinks (zeros of log and sqrt arguments, ...) are
    candidates too.
    """
    candidates: list[float] = []
    for current in _walk(node):
        if isinstance(current, _Binary) and current.op == "/":
            candidates += _zeros(current.right)
        elif (
            isinstance(current, _Binary)
            and current.op == "**"
            and isinstance(current.right, _Const)
            and current.right.value < 0
        ):
            candidates += _zeros(current.left)
        elif isinstance(current, _Call) and current.name in ("log", "sqrt"):
            candidates += _zeros(current.args[0])  # log(x**2): unbounded where x**2 vanishes
    return sorted({candidate for candidate in candidates if math.isfinite(candidate)})


def _evaluate_near(node: _Node, point: float, offset: FloatArray, cache: dict[int, FloatArray]) -> FloatArray:
    """``node`` at x = point + offset with every affine subexpression a x + b computed as a offset + (a point + b).

    Next to a zero of a x + b (a pole of 1/(x - 1), say) the offset is then not rounded against the
    point: (1 + 1e-200) - 1 is 0 in floating point, while 1 * 1e-200 + (1 - 1) is 1e-200.
    """
    key = id(node)
    cached = cache.get(key)
    if cached is not None:
        return cached
    coefficients = _affine(node)
    result: FloatArray
    if coefficients is not None and coefficients[0] != 0.0:
        slope, intercept = coefficients
        result = slope * offset + (slope * point + intercept)
    elif isinstance(node, _Const):
        result = np.full(offset.shape, node.value)
    elif isinstance(node, _Neg):
        result = -_evaluate_near(node.operand, point, offset, cache)
    elif isinstance(node, _Binary):
        left = _evaluate_near(node.left, point, offset, cache)
        right = _evaluate_near(node.right, point, offset, cache)
        result = _NUMPY_OPS[node.op](left, right)
    elif isinstance(node, _Call):
        result = _FUNCTIONS[node.name].numpy(*(_evaluate_near(arg, point, offset, cache) for arg in node.args))
    else:  # pragma: no cover - _Var is affine
        raise TypeError(node)
    cache[key] = result
    return result


def _zeros_complete(node: _Node) -> bool:
    """Whether ``_zeros`` finds every real zero of ``node``: built from affine pieces by *, unary -, abs,
    sqrt and positive constant powers (``abs(x)``, ``(x - 1)*(2*x + 3)``); ``x**2 - 1`` or ``sin(x)`` are not."""
    if _affine(node) is not None:
        return True
    if isinstance(node, _Neg):
        return _zeros_complete(node.operand)
    if isinstance(node, _Binary) and node.op == "*":
        return _zeros_complete(node.left) and _zeros_complete(node.right)
    if isinstance(node, _Binary) and node.op in "/**" and isinstance(node.right, _Const) and node.right.value > 0:
        return _zeros_complete(node.left)
    if isinstance(node, _Call) and node.name in ("abs", "sqrt", "sign"):
        return _zeros_complete(node.args[0])
    return False


def _singular_arguments(node: _Node) -> tuple[list[_Node], list[_Node], list[float]]:
    """The sub-expressions whose real zeros may be singular points, and those that must be >= 0.

    Returns:
        ``(sought, domain, structural)``: ``sought`` holds the denominators, bases of negative powers, arguments of
        log and sqrt (log1p: argument + 1) and bases of non-integer powers whose zeros ``_zeros`` cannot
        read off the structure (``x**2 - 1``, ``sin(x)``, ``exp(x) - 2``); their zeros are found numerically
        (``_singular_search``). ``domain`` holds the arguments of log, log1p (+ 1) and sqrt and the
        bases of non-integer powers: where one of them is negative the formula is not real. ``structural``
        holds the zeros ``_zeros`` reads off non-affine arguments (0 for ``log(x**2)``): located exactly, but
        the argument underflows next to them, so they are integrated as numerically located points.
    """
    sought: list[_Node] = []
    domain: list[_Node] = []
    structural: list[float] = []
    for current in _walk(node):
        argument: _Node | None = None
        real_only = False
        if isinstance(current, _Binary) and current.op == "/":
            argument = current.right
        elif isinstance(current, _Binary) and current.op == "**" and isinstance(current.right, _Const):
            fractional = not float(current.right.value).is_integer()
            if current.right.value < 0 or fractional:
                argument, real_only = current.left, fractional
        elif isinstance(current, _Call) and current.name in ("log", "sqrt"):
            argument, real_only = current.args[0], True
        elif isinstance(current, _Call) and current.name == "log1p":
            argument, real_only = _add(current.args[0], _ONE), True
        if argument is None or isinstance(argument, _Const):
            continue
        if real_only and not _nonnegative(argument):
            domain.append(argument)
        if not _zeros_complete(argument) and not _positive(argument):
            sought.append(_core(argument))
        elif _underflows(argument):
            structural += _zeros(argument)
    return _unique(sought), _unique(domain), sorted(set(structural))


def _core(node: _Node) -> _Node:
    """``node`` without the wrappers that vanish where their argument does: abs(u), -u, u**c (c > 0), u/c -> u."""
    while True:
        if isinstance(node, _Neg):
            node = node.operand
        elif isinstance(node, _Call) and node.name in ("abs", "sqrt", "sign"):
            node = node.args[0]
        elif isinstance(node, _Binary) and node.op in "/**" and isinstance(node.right, _Const) and node.right.value > 0:
            node = node.left
        else:
            return node


def _nonnegative(node: _Node) -> bool:
    """Whether ``node`` is >= 0 for every x by its structure (abs, sqrt, exp, even powers, sums of these)."""
    if isinstance(node, _Const):
        return node.value >= 0.0
    if isinstance(node, _Call):
        return node.name in ("abs", "sqrt", "exp", "cosh", "relu", "sigmoid", "softplus", "erfc", "ndtr", "step")
    if isinstance(node, _Binary) and node.op in "+*/":
        return _nonnegative(node.left) and _nonnegative(node.right)
    if isinstance(node, _Binary) and node.op == "**" and isinstance(node.right, _Const):
        return float(node.right.value / 2.0).is_integer() or _nonnegative(node.left)
    return False


def _positive(node: _Node) -> bool:
    """Whether ``node`` is > 0 for every x by its structure (``1 + exp(-x)``, ``x**2 + 1``, ``cosh(x)``)."""
    if isinstance(node, _Const):
        return node.value > 0.0
    if isinstance(node, _Call):
        return node.name in ("exp", "cosh", "sigmoid", "softplus", "erfc", "ndtr")
    if isinstance(node, _Binary) and node.op == "+":
        return (_positive(node.left) and _nonnegative(node.right)) or (
            _nonnegative(node.left) and _positive(node.right)
        )
    if isinstance(node, _Binary) and node.op in "*/":
        return _positive(node.left) and _positive(node.right)
    if isinstance(node, _Binary) and node.op == "**":
        return _positive(node.left)
    return False


def _underflows(node: _Node) -> bool:
    """Whether ``node`` vanishes faster than linearly at a zero (``x**2``, ``x*(x - 1)``): it underflows there."""
    if isinstance(node, (_Neg,)):
        return _underflows(node.operand)
    if isinstance(node, _Call) and node.name in ("abs", "sqrt", "sign"):
        return _underflows(node.args[0])
    if isinstance(node, _Binary) and node.op == "*":
        return not isinstance(node.left, _Const) or _underflows(node.right)
    if isinstance(node, _Binary) and node.op == "**" and isinstance(node.right, _Const):
        return node.right.value > 1.0 or _underflows(node.left)
    if isinstance(node, _Binary) and node.op == "/":
        return _underflows(node.left)
    return False


def _unique(nodes: list[_Node]) -> list[_Node]:
    return list({_render(item): item for item in nodes}.values())
