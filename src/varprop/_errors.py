"""The exception hierarchy of varprop: one base class, two standard flavours."""

from __future__ import annotations

__all__ = [
    "ConvergenceError",
    "VarpropError",
    "VarpropTypeError",
    "VarpropValueError",
    "VarpropWarning",
]


class VarpropError(Exception):
    """Base class of every error raised by varprop."""


class VarpropValueError(VarpropError, ValueError):
    """A value is outside its valid range or set (the message names it and the valid choices)."""


class VarpropTypeError(VarpropError, TypeError):
    """An argument has the wrong type (the message names it and the expected type)."""


class ConvergenceError(VarpropError, ArithmeticError):
    """A numerical procedure did not reach the requested accuracy, or the quantity diverges."""


class VarpropWarning(UserWarning):
    """Warning category for results that are valid but deserve attention."""
