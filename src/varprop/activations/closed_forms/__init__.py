"""Closed-form Gaussian moments E[phi], E[phi^2], E[phi'^2] of y ~ N(mean, var), one module per family.

``_piecewise`` (relu and its slopes, and the other piecewise polynomials: relu6, hardtanh, hardswish, ...),
``_tails`` (the Gaussian tail moments they are built from), ``_elu`` (elu, celu, selu), ``_factories``
(gelu, erf, sin, cos, and one factory ``<name>_closed_form`` per activation: parameters -> closed form or None).
Each activation's definition (``varprop.activations._builtin``) names its factory; the registry attaches the
closed form to the ``Activation`` (``Activation.closed_form``).
"""

from __future__ import annotations

from ._factories import (
    ClosedFormFactory,
    celu_closed_form,
    cos_closed_form,
    elu_closed_form,
    erf_closed_form,
    gelu_closed_form,
    hardshrink_closed_form,
    hardsigmoid_closed_form,
    hardswish_closed_form,
    hardtanh_closed_form,
    identity_closed_form,
    leaky_relu_closed_form,
    prelu_closed_form,
    relu6_closed_form,
    relu_closed_form,
    rrelu_closed_form,
    selu_closed_form,
    sin_closed_form,
    softshrink_closed_form,
    threshold_closed_form,
)

__all__ = [
    "ClosedFormFactory",
    "celu_closed_form",
    "cos_closed_form",
    "elu_closed_form",
    "erf_closed_form",
    "gelu_closed_form",
    "hardshrink_closed_form",
    "hardsigmoid_closed_form",
    "hardswish_closed_form",
    "hardtanh_closed_form",
    "identity_closed_form",
    "leaky_relu_closed_form",
    "prelu_closed_form",
    "relu6_closed_form",
    "relu_closed_form",
    "rrelu_closed_form",
    "selu_closed_form",
    "sin_closed_form",
    "softshrink_closed_form",
    "threshold_closed_form",
]
