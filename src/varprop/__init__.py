"""varprop: exact variance-preserving initialization for any activation function.

The public API is re-exported here; the implementation lives in private modules.
"""

from __future__ import annotations

from ._activation import Activation
from ._errors import ConvergenceError, VarpropError, VarpropTypeError, VarpropValueError, VarpropWarning

__all__ = [
    "Activation",
    "ConvergenceError",
    "VarpropError",
    "VarpropTypeError",
    "VarpropValueError",
    "VarpropWarning",
]

__version__ = "0.1.0"
