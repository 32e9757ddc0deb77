"""Optional figures (``pip install 'varprop[plot]'``); matplotlib is imported only when a figure is drawn.

``curves`` holds the q-curve, Monte Carlo convergence and depth-variance figures; ``dynamics``
(written with ``varprop._dynamics``) the variance map and its fixed point.
"""

from __future__ import annotations

from ._mpl import require_pyplot
from .curves import depth_variance_figure, moments_convergence_figure, q_curve_figure, save_figure

__all__ = [
    "depth_variance_figure",
    "moments_convergence_figure",
    "q_curve_figure",
    "require_pyplot",
    "save_figure",
]
