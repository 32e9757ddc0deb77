"""Option values of the command line, parsed and checked before any work.

Every numeric option goes through one of the converters here (as argparse's ``type=``), so a bad
value is refused while the command line is parsed, with one message per kind of value that names
the value as the user wrote it: argparse prefixes the option as typed (``argument --var: must be
a number > 0, got '-1'``). The bounds are those the mathematics needs, one per quantity:

- a pre-activation variance q to preserve (``--var``): > 0 (at q = 0 there is no signal to keep);
- a standard deviation (``--weight-std``, ``--bias-std``): >= 0;
- a count (``--fan-in``, ``--depth``, ``--samples``, ...): a whole number >= 1 (``--points`` >= 2,
  ``--seed`` >= 0), written as digits or in the form ``--help`` prints defaults in, ``1e3``.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

__all__ = ["count", "non_negative_real", "positive_real", "real_at_least"]

# A whole number as digits (1000) or as digits times a power of ten (1e3, 25E4): the form --help
# prints sample sizes in. A fraction in the mantissa (1.5e3) is refused: counts are not written so.
_COUNT = re.compile(r"(?P<mantissa>[0-9]+)(?:[eE]\+?(?P<exponent>[0-9]+))?")
_MAX_EXPONENT = 18  # 1e18 is beyond every count varprop can use; larger exponents are surely typos


def _got(text: str) -> str:
    return f"got {text!r}"


def count(minimum: int = 1) -> Callable[[str], int]:
    """A converter for a whole number >= ``minimum``, given as ``1000`` or ``1e3``.

    Example:
        >>> count()("1e3"), count(0)("0")
        (1000, 0)
    """

    def convert(text: str) -> int:
        match = _COUNT.fullmatch(text.strip())
        value: int | None = None
        if match is not None:
            exponent = int(match["exponent"] or 0)
            if exponent <= _MAX_EXPONENT:
                value = int(match["mantissa"]) * 10**exponent
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be a whole number >= {minimum}, written as digits or as Ne<k> with whole N and k "
                f"(1000, 1e3, 25e4), {_got(text)}"
            )
        return value

    convert.__name__ = "count"  # argparse names the type in some messages
    return convert


def real_at_least(minimum: float, *, strict: bool) -> Callable[[str], float]:
    """A converter for a finite real number ``> minimum`` (``strict``) or ``>= minimum``."""
    relation = ">" if strict else ">="

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not (value > minimum if strict else value >= minimum):
            raise argparse.ArgumentTypeError(f"must be a number {relation} {minimum:g}, {_got(text)}")
        return value

    convert.__name__ = "number"
    return convert


#: A pre-activation variance to preserve (> 0) and a standard deviation (>= 0).
positive_real = real_at_least(0.0, strict=True)
non_negative_real = real_at_least(0.0, strict=False)
