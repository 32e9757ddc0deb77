"""Safe math formulas in ``x`` as activations (``"x*tanh(softplus(x))"``), with exact symbolic derivatives.

Implementation: ``_grammar`` (parsing, validation and the entry points), ``_tree`` (the expression tree,
its functions, evaluation and printing), ``_calculus`` (derivatives and kink location), ``_singular_points``
(where a formula is unbounded and how fast) and ``_singular_search`` (real zeros of its sub-expressions). Imports
point one way: ``_grammar`` -> ``_calculus`` -> ``_tree``, and ``_grammar`` -> ``_singular_points``,
``_singular_search``.
"""

from __future__ import annotations

from ._grammar import ALLOWED_FUNCTIONS, EXPRESSION_PREFIX, canonical_expression, expression_activation

__all__ = ["ALLOWED_FUNCTIONS", "EXPRESSION_PREFIX", "canonical_expression", "expression_activation"]
