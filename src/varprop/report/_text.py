"""Plain-text columns whose widths are computed from the cells, for every text output of varprop.

A fixed format width (``f"{label:<19}"``) lets a long cell run into the next one; ``columns`` sizes
each column to its widest cell and puts ``gap`` spaces between columns, so cells never touch.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

__all__ = ["columns", "display_width"]


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: combining marks (the tilde of μ̃) take none."""
    return sum(not unicodedata.combining(char) for char in text)


def _pad(text: str, width: int, align: str) -> str:
    fill = " " * max(width - display_width(text), 0)
    return text + fill if align == "<" else fill + text


def columns(
    rows: Sequence[Sequence[str]],
    align: str,
    *,
    indent: str = "  ",
    gap: int = 2,
    rule: bool = False,
) -> list[str]:
    """Lay out ``rows`` of cells in aligned columns.

    Args:
        rows: the cells, row by row (the first row is the header when ``rule``); every row has
            ``len(align)`` cells.
        align: one character per column: ``"<"`` left-aligned (text), ``">"`` right-aligned (numbers).
        indent: put before every line.
        gap: spaces between columns (at least 1, so that two cells never touch).
        rule: put a line of dashes under the first row.

    Returns:
        The lines, without trailing spaces.

    Example:
        >>> columns([["gain = 1 / sqrt(E[phi'^2])", "1.2234"], ["n", "2"]], "<>", indent="")
        ["gain = 1 / sqrt(E[phi'^2])  1.2234", 'n                                2']
    """
    if gap < 1:
        raise ValueError(f"gap must be >= 1, got {gap}")
    for row in rows:
        if len(row) != len(align):
            raise ValueError(f"every row needs {len(align)} cells (one per alignment), got {list(row)!r}")
    widths = [max((display_width(row[index]) for row in rows), default=0) for index in range(len(align))]
    lines = [
        (
            indent
            + (" " * gap).join(_pad(cell, width, side) for cell, width, side in zip(row, widths, align, strict=True))
        ).rstrip()
        for row in rows
    ]
    if rule and lines:
        lines.insert(1, indent + "-" * (sum(widths) + gap * (len(widths) - 1)))
    return lines
