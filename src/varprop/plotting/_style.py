"""The one figure style of ``varprop.plotting``: width, resolution, font sizes and axes, set here only.

A page (the ``varprop report``) shows its figures at one width, the width of its text column. Every
figure is therefore drawn at the same width in inches, ``FIGURE_WIDTH``, with fonts in points from
``FONT_SIZES`` and saved at ``DPI``: shown side by side, their text has the same size, whatever the
number of panels, and every PNG has the same pixel width (``FIGURE_WIDTH * DPI``).

Every public figure function is decorated with ``styled`` (the rc settings below apply while it
draws), creates its figure with ``new_figure`` and finishes each axes with ``style_axes``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, cast

from ._mpl import require_pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "FIGURE_WIDTH",
    "FONT_SIZES",
    "new_figure",
    "style_axes",
    "styled",
]

#: Width of every figure in inches. At the report's column (about 1050 CSS px at 1280 px, 770 at
#: 800 px) an inch is 77-105 px, so 10-point text shows at 11-15 px.
FIGURE_WIDTH = 10.0
#: Resolution of saved raster figures: 1500 px wide, sharp on high-density screens.
DPI = 150

#: Font sizes in points, by role; no other size is used in any figure.
FONT_SIZES: dict[str, float] = {
    "figure_title": 13.0,
    "title": 11.5,
    "label": 11.0,
    "tick": 10.0,
    "note": 10.0,  # annotations and text in the axes
    "legend": 9.5,
    "small": 8.5,  # insets and dense tick labels
}

_RC: dict[str, Any] = {
    "font.size": FONT_SIZES["note"],
    "axes.titlesize": FONT_SIZES["title"],
    "axes.labelsize": FONT_SIZES["label"],
    "xtick.labelsize": FONT_SIZES["tick"],
    "ytick.labelsize": FONT_SIZES["tick"],
    "legend.fontsize": FONT_SIZES["legend"],
    "legend.title_fontsize": FONT_SIZES["legend"],
    "figure.titlesize": FONT_SIZES["figure_title"],
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}

P = ParamSpec("P")


def styled(draw: Callable[P, Figure]) -> Callable[P, Figure]:
    """Decorator of every figure function: draw under the style's rc settings (fonts by role)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Figure:
        plt = require_pyplot()
        with plt.rc_context(_RC):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(
    ratios: Sequence[float],
    height: float,
    *,
    layout: Literal["fixed", "constrained"] = "fixed",
    gap: float = 0.9,
    left: float = 0.85,
    right: float = 0.2,
    bottom: float = 0.65,
    top: float = 0.75,
) -> tuple[Figure, list[Any]]:
    """A figure ``FIGURE_WIDTH`` wide with a row of axes whose widths are in the ratios ``ratios``.

    Args:
        ratios: relative widths of the axes, left to right.
        height: height of the axes in inches (``"fixed"``) or of the whole figure (``"constrained"``).
        layout: ``"fixed"``: margins in inches (fast and reproducible); ``"constrained"``:
            matplotlib's constrained layout (for labels whose size is not known in advance).
        gap: space between axes in inches (room for the next y label), ``"fixed"`` only.
        left: left margin in inches (room for the y label), ``"fixed"`` only.
        right: right margin in inches, ``"fixed"`` only.
        bottom: bottom margin in inches (x label), ``"fixed"`` only.
        top: top margin in inches (titles and the figure title), ``"fixed"`` only.

    Returns:
        The figure and its axes, as a list.
    """
    plt = require_pyplot()
    count = len(ratios)
    if layout == "constrained":
        fig, axes = plt.subplots(
            1, count, figsize=(FIGURE_WIDTH, height), width_ratios=list(ratios), layout="constrained", squeeze=False
        )
        return cast("Figure", fig), list(axes[0])
    total_height = height + bottom + top
    axes_width = FIGURE_WIDTH - left - right - gap * (count - 1)
    fig, axes = plt.subplots(
        1,
        count,
        figsize=(FIGURE_WIDTH, total_height),
        width_ratios=list(ratios),
        squeeze=False,
        gridspec_kw={
            "left": left / FIGURE_WIDTH,
            "right": 1 - right / FIGURE_WIDTH,
            "bottom": bottom / total_height,
            "top": 1 - top / total_height,
            "wspace": gap / (axes_width / count),
        },
    )
    return cast("Figure", fig), list(axes[0])


def style_axes(ax: Any, *, tick_size: str = "tick", minor_grid: bool = False) -> None:
    """The axes style: a light grid, no top and right spines, tick labels at ``FONT_SIZES[tick_size]``."""
    ax.grid(True, which="major", alpha=0.35)
    if minor_grid:
        ax.grid(True, which="minor", alpha=0.12)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(which="both", labelsize=FONT_SIZES[tick_size])
