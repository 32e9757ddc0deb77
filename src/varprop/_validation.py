"""Eager validation of user input, shared by every public entry point."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._errors import VarpropTypeError, VarpropValueError

__all__ = ["as_real_array", "check_positive_int", "check_real"]


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def check_real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    strict: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a float after checking type, NaN, infinity and a lower bound.

    Raises:
        VarpropTypeError: if ``value`` is not a real number (bools are refused).
        VarpropValueError: if it is NaN, infinite (unless allowed) or below ``minimum``.
    """
    if _is_bool(value) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise VarpropTypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    result = float(value)
    if math.isnan(result):
        raise VarpropValueError(f"{name} must be a number, got NaN")
    if math.isinf(result) and not allow_inf:
        raise VarpropValueError(f"{name} must be finite, got {result}")
    if minimum is not None:
        if strict and not result > minimum:
            raise VarpropValueError(f"{name} must be > {minimum:g}, got {result!r}")
        if not strict and not result >= minimum:
            raise VarpropValueError(f"{name} must be >= {minimum:g}, got {result!r}")
    return result


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int after checking it is an integer >= 1 (bools refused)."""
    if _is_bool(value) or not isinstance(value, (numbers.Integral, np.integer)):
        raise VarpropTypeError(f"{name} must be a positive integer, got {value!r} of type {type(value).__name__}")
    if int(value) < 1:
        raise VarpropValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def as_real_array(name: str, value: Any, *, minimum: float | None = None) -> NDArray[np.float64]:
    """Convert scalar or array input to a float64 array, refusing bools, NaN, infinities and values < minimum."""
    if _is_bool(value):
        raise VarpropTypeError(f"{name} must be a real number or an array of them, got a bool {value!r}")
    try:
        array = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many types here
        raise VarpropTypeError(f"{name} must be a real number or an array of them, got {value!r}") from exc
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise VarpropTypeError(
            f"{name} must be a real number or an array of real numbers, got {value!r} (dtype {array.dtype})"
        )
    array = array.astype(np.float64)
    if np.isnan(array).any():
        raise VarpropValueError(f"{name} must not contain NaN, got {value!r}")
    if np.isinf(array).any():
        raise VarpropValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and (array < minimum).any():
        bad = array[array < minimum].flat[0]
        raise VarpropValueError(f"{name} must be >= {minimum:g}, got {bad!r}")
    return array
