"""varprop: exact variance-preserving initialization for any activation function.

The public API is re-exported here; the implementation lives in private modules.
"""

from __future__ import annotations

from ._activation import Activation
from ._errors import ConvergenceError, VarpropError, VarpropTypeError, VarpropValueError, VarpropWarning
from ._gains import gain, weight_std
from ._moments import Moments, MonteCarloMoments, moments, monte_carlo_moments
from ._registry import activation, registered_activations

__all__ = [
    "Activation",
    "ConvergenceError",
    "Moments",
    "MonteCarloMoments",
    "VarpropError",
    "VarpropTypeError",
    "VarpropValueError",
    "VarpropWarning",
    "activation",
    "gain",
    "moments",
    "monte_carlo_moments",
    "registered_activations",
    "weight_std",
]

__version__ = "0.1.0"
