"""The argument checks every varprop entry point applies, for layers built on top (the report, the CLI, adapters).

Each check converts and returns the value, or raises ``VarpropTypeError`` / ``VarpropValueError`` with a
message that names the argument and the value it got.

Example:
    >>> from varprop.validation import check_positive_int, check_real
    >>> check_real("var", 2)
    2.0
    >>> try:
    ...     check_positive_int("depth", 0)
    ... except ValueError as error:
    ...     print(error)
    depth must be a positive integer, got 0
"""

from __future__ import annotations

from ._validation import as_real_array, check_positive_int, check_real

__all__ = ["as_real_array", "check_positive_int", "check_real"]
