"""Definitions of the built-in activations: every elementwise activation of ``torch.nn``, plus sin, cos, erf.

Each definition follows PyTorch exactly: the same name, parameter names, parameter order and
defaults, the same formula (including torch's branch conventions at kinks, e.g. relu'(0) = 0,
elu'(0) = alpha, and softplus's switch to the identity above ``threshold``), implemented in
numpy so that it is accurate to a few ulp everywhere (no overflow for |x| up to 1e300, no
cancellation in the tails), and names torch's module, functions and tensor methods for it. The
registry (``_registry.py``) validates parameters and assembles :class:`~varprop.Activation` values
from these definitions; the torch adapter derives its lookup tables from them; nothing here
imports torch.

One module per family: ``_piecewise_linear`` (relu, its slopes, hardtanh, the shrinks, ...),
``_elu`` (elu, celu, selu), ``_smooth`` (the gates, sigmoid, tanh, ..., sin, cos, erf);
``_definition`` holds the shape of an entry.

Kinks list every x where the function or *any* derivative is not smooth; features list the
smooth bends ``(x, width)`` that the quadrature should resolve.
"""

from __future__ import annotations

from .._constants import SELU_ALPHA, SELU_SCALE
from ._definition import ActivationDefinition, ParamSpec, Parts, TorchNames
from ._elu import EXPONENTIAL_LINEAR
from ._piecewise_linear import PIECEWISE_LINEAR
from ._smooth import SMOOTH

__all__ = ["DEFINITIONS", "SELU_ALPHA", "SELU_SCALE", "ActivationDefinition", "ParamSpec", "Parts", "TorchNames"]


def _by_name(*families: tuple[ActivationDefinition, ...]) -> dict[str, ActivationDefinition]:
    definitions: dict[str, ActivationDefinition] = {}
    for family in families:
        for definition in family:
            if definition.name in definitions:  # pragma: no cover - a definition written twice
                raise RuntimeError(f"activation {definition.name!r} is defined twice")
            definitions[definition.name] = definition
    return definitions


#: Every built-in activation, keyed by canonical name.
DEFINITIONS: dict[str, ActivationDefinition] = _by_name(PIECEWISE_LINEAR, EXPONENTIAL_LINEAR, SMOOTH)
