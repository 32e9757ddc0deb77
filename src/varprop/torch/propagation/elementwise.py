"""Elementwise tensor code as one activation: ``0.5 * x * (1 + torch.tanh(c * (x + 0.044715 * x.pow(3))))`` (GPT-2's
``gelu_new``), ``x * torch.tanh(F.softplus(x)) + 0.1 * x**2``, ``torch.log(x)``.

The graph's rules see such code one operation at a time, and two operations of one tensor (``x * tanh(x)``) as a
product of independent tensors, which they are not. Here every node that is an elementwise function of a single
earlier node (its *source*: the operations between them are unary torch functions, or arithmetic with Python numbers
and with other such functions of the same source) is written as a formula in ``x``, the source's value, and the
formula is parsed by the core (``varprop._expression``): its moments for a Gaussian source are then exact, like a
named activation's.

A formula replaces the per-operation rules only where those would be wrong: when it uses the source more than once
(``x * sigmoid(x)``) or holds a function the per-operation rules do not know (``pow``, ``log``, ``exp``, ``rsqrt``,
...). A chain of known operations used once (``tanh(x) + 1``) keeps its rules (and its activation rows).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._activation import Activation
from ..._expression import expression_activation
from ..graph.ir import Graph, Node, Ref, TensorMeta

__all__ = ["Formula", "elementwise_formulas", "finite_on", "formula_activation"]


@dataclass(frozen=True)
class Formula:
    """``text``: the node's value as a formula in ``x`` (the value of node ``source``); ``uses``: how often ``x``
    occurs; ``foreign``: whether it holds a function that the per-operation rules do not know."""

    source: str
    text: str
    uses: int
    foreign: bool

    @property
    def needed(self) -> bool:
        """Whether the per-operation rules would get this node wrong (see the module docstring)."""
        return self.uses > 1 or self.foreign


# Unary functions: formula of the argument u (already parenthesized), and whether the per-operation rules know it.
_UNARY: dict[str, tuple[Callable[[str], str], bool]] = {
    "tanh": (lambda u: f"tanh({u})", False),
    "sigmoid": (lambda u: f"sigmoid({u})", False),
    "relu": (lambda u: f"relu({u})", False),
    "softplus": (lambda u: f"softplus({u})", False),
    "silu": (lambda u: f"{u}*sigmoid({u})", False),
    "mish": (lambda u: f"{u}*tanh(softplus({u}))", False),
    "exp": (lambda u: f"exp({u})", True),
    "expm1": (lambda u: f"(exp({u})-1)", True),
    "log": (lambda u: f"log({u})", True),
    "log1p": (lambda u: f"log1p({u})", True),
    "sqrt": (lambda u: f"sqrt({u})", True),
    "rsqrt": (lambda u: f"(1/sqrt({u}))", True),
    "reciprocal": (lambda u: f"(1/{u})", True),
    "square": (lambda u: f"({u})**2", True),
    "abs": (lambda u: f"abs({u})", True),
    "sin": (lambda u: f"sin({u})", True),
    "cos": (lambda u: f"cos({u})", True),
    "erf": (lambda u: f"erf({u})", True),
    "erfc": (lambda u: f"erfc({u})", True),
    "sign": (lambda u: f"sign({u})", True),
    "neg": (lambda u: f"(-{u})", False),
}
# Operations that keep the values (dtype casts, copies): the formula passes through.
_PASS = frozenset({"contiguous", "clone", "detach", "float", "double", "to", "type_as", "identity"})
_BINARY = frozenset({"add", "sub", "mul", "div", "pow", "rsub", "rdiv", "rpow"})


def _number(value: Any) -> str | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(float(value)):
        return repr(float(value))
    return None


def elementwise_formulas(graph: Graph, canonical: Callable[[Node], str]) -> dict[str, Formula]:
    """The formula of every node that is an elementwise function of one earlier node (see the module docstring),
    by node name. Only nodes whose example output is a floating tensor take part."""
    formulas: dict[str, Formula] = {}
    metas = {node.name: node.meta for node in graph.nodes}
    for node in graph.nodes:
        if node.op not in ("function", "method") or not _floating(node.meta):
            continue
        found = _formula(node, canonical(node), formulas, metas)
        if found is not None:
            formulas[node.name] = found
    return formulas


def _floating(meta: Any) -> bool:
    return isinstance(meta, TensorMeta) and meta.dtype.is_floating_point


def _operand(value: Any, formulas: dict[str, Formula], metas: dict[str, Any]) -> Formula | str | None:
    """A node reference as a formula (its own, or ``x`` of itself as the source), a number as text, else ``None``."""
    if isinstance(value, Ref):
        known = formulas.get(value.node)
        if known is not None:
            return known
        return Formula(value.node, "x", 1, False) if _floating(metas.get(value.node)) else None
    return _number(value)


def _formula(node: Node, name: str, formulas: dict[str, Formula], metas: dict[str, Any]) -> Formula | None:
    if node.kwargs and not (name in _PASS or set(node.kwargs) <= {"alpha"}):
        return None
    args = node.args
    if name in _UNARY or name in _PASS:
        if len(args) != 1 and not (name in _PASS and args):
            return None
        inner = _operand(args[0], formulas, metas)
        if not isinstance(inner, Formula):
            return None
        if name in _PASS:
            return inner
        template, known = _UNARY[name]
        text = template(f"({inner.text})")
        uses = inner.uses * (2 if name in ("silu", "mish") else 1)
        return Formula(inner.source, text, uses, inner.foreign or known)
    if name not in _BINARY or len(args) != 2:
        return None
    left, right = (_operand(a, formulas, metas) for a in args)
    if left is None or right is None:
        return None
    if name in ("rsub", "rdiv", "rpow"):  # (method spellings of c - x, c / x, c ** x: self first)
        left, right = right, left
        name = name[1:]
    formulas_in = [f for f in (left, right) if isinstance(f, Formula)]
    if not formulas_in or len({f.source for f in formulas_in}) != 1:
        return None
    alpha = node.kwargs.get("alpha", 1.0)
    if name in ("add", "sub") and alpha != 1.0:
        scaled = _number(alpha)
        if scaled is None:
            return None
        right = f"{scaled}*({right.text if isinstance(right, Formula) else right})"
    if name == "pow" and isinstance(right, Formula):
        return None  # (x ** x: refused, as the expression grammar has no such case worth it)
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}[name]
    text = f"({_text(left)}){symbol}({_text(right)})"
    uses = sum(f.uses for f in formulas_in)
    foreign = name == "pow" or (name == "div" and isinstance(right, Formula)) or any(f.foreign for f in formulas_in)
    return Formula(formulas_in[0].source, text, uses, foreign)


def _text(item: Formula | str) -> str:
    return item.text if isinstance(item, Formula) else item


@functools.lru_cache(maxsize=256)
def formula_activation(text: str) -> Activation:
    """The formula as an ``Activation`` of the core (exact symbolic derivative, located kinks), kept per text."""
    return expression_activation(text)


def finite_on(act: Activation, mean: float, std: float) -> bool:
    """Whether the activation is finite on the Gaussian's support (mean +- 10 std, where its mass is above 1e-23):
    ``log`` or ``sqrt`` of a zero-mean signal is not (half of its values are NaN)."""
    grid = np.linspace(mean - 10.0 * std, mean + 10.0 * std, 401) if std > 0 else np.array([mean])
    with np.errstate(all="ignore"):
        values = np.asarray(act.function(grid), dtype=np.float64)
    return bool(np.all(np.isfinite(values)))
