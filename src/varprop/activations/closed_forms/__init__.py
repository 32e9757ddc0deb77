"""Closed-form Gaussian moments E[phi], E[phi^2], E[phi'^2] of y ~ N(mean, var), one module per family.

``_piecewise`` (relu and its slopes, and the other piecewise polynomials: relu6, hardtanh, hardswish, ...),
``_tails`` (the Gaussian tail moments they are built from), ``_elu`` (elu, celu, selu), ``_factories``
(gelu, erf, sin, cos and the table of factories by activation name).
"""

from __future__ import annotations

from ._factories import CLOSED_FORMS, ClosedFormFactory, closed_form_for

__all__ = ["CLOSED_FORMS", "ClosedFormFactory", "closed_form_for"]
