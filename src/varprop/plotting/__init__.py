"""Optional figures (``pip install 'varprop[plot]'``); matplotlib is imported only when a figure is drawn.

Every function draws data computed by the public API and returns a matplotlib figure; ``save_figure``
writes it as PNG and SVG. ``curves``: the q-curve, Monte Carlo convergence and variance through depth;
``dynamics``: the variance map, stability over q and the phase diagram; ``signal``: signal
propagation statistics of a torch model (from ``varprop.torch.signal_stats``); ``spectrum``: the Jacobian's
singular values at init beside the free-probability prediction.
"""

from __future__ import annotations

from ._mpl import require_pyplot
from .curves import depth_variance_figure, moments_convergence_figure, q_curve_figure, save_figure
from .dynamics import phase_diagram_figure, stability_figure, variance_map_figure
from .signal import plot_signal
from .spectrum import jacobian_spectrum_figure

__all__ = [
    "depth_variance_figure",
    "jacobian_spectrum_figure",
    "moments_convergence_figure",
    "phase_diagram_figure",
    "plot_signal",
    "q_curve_figure",
    "require_pyplot",
    "save_figure",
    "stability_figure",
    "variance_map_figure",
]
