"""Elementwise kernels that a definition and its closed form both evaluate, written once: the ELU family's.

The definition (``_builtin/_elu.py``) takes its function and derivative from here, and so does the closed form
(``closed_forms/_elu.py``) for its point values at var == 0, so that the two agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["exponential_linear"]

FloatArray = NDArray[np.float64]


def exponential_linear(
    scale: float, alpha: float, input_scale: float
) -> tuple[Callable[[FloatArray], FloatArray], Callable[[FloatArray], FloatArray]]:
    """torch's ELU kernel and its gradient: x > 0 ? scale x : scale alpha expm1(input_scale x), gradient at 0 from
    the left (elu: scale = input_scale = 1; celu: input_scale = 1 / alpha; selu: Klambauer et al.'s constants).

    Example:
        >>> function, derivative = exponential_linear(1.0, 1.0, 1.0)
        >>> float(function(np.array(-1.0))), float(derivative(np.array(0.0)))
        (-0.6321205588285577, 1.0)
    """

    def function(x: FloatArray) -> FloatArray:
        negative = scale * alpha * np.expm1(input_scale * np.minimum(x, 0.0))
        return np.where(x > 0.0, scale * x, negative)

    def derivative(x: FloatArray) -> FloatArray:
        negative = scale * alpha * input_scale * np.exp(input_scale * np.minimum(x, 0.0))
        return np.where(x > 0.0, scale, negative)

    return function, derivative
