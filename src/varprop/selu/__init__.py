"""Self-normalizing networks (Klambauer et al. 2017): SELU's constants and its (mean, variance) map.

``selu_parameters`` solves for the (alpha, scale) that make a given (mean, variance) the fixed point,
``selu_moment_map`` is the map itself and ``selu_jacobian`` its Jacobian. Pure core, no framework import.

Example:
    >>> from varprop.selu import selu_parameters
    >>> [round(x, 10) for x in selu_parameters()]
    [1.6732632424, 1.0507009874]
"""

from __future__ import annotations

from ._fixed_point import selu_jacobian, selu_moment_map, selu_parameters

__all__ = ["selu_jacobian", "selu_moment_map", "selu_parameters"]
