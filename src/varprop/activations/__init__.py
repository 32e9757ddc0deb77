"""Activations as values: the ``Activation`` type, the registry of built-in activations, formulas in ``x``.

``activation("elu(alpha=0.5)")`` returns an :class:`Activation` (function, derivative, kinks, parameters,
optional closed-form moments); ``registered_activations()`` lists the built-in names. Formulas such as
``"x*sigmoid(1.702*x)"`` are parsed by :mod:`varprop.activations.expression`.

Implementation: ``_activation`` (the value), ``_builtin/`` (the built-in definitions, one entry per activation:
function, derivative, kinks, parameters, closed form, PyTorch names; one module per family), ``closed_forms/``
(the exact moments they name), ``_constants`` and ``_kernels`` (written once, shared by both), ``_registry``
(spec parsing and lookup; the tables derived from the definitions), ``_derivative`` (numerical derivatives of
user functions), ``expression/`` (formulas).
"""

from __future__ import annotations

from ._activation import Activation, ClosedForm, ClosedMoments, Param
from ._registry import activation, activation_definition, registered_activations

__all__ = [
    "Activation",
    "ClosedForm",
    "ClosedMoments",
    "Param",
    "activation",
    "activation_definition",
    "registered_activations",
]
