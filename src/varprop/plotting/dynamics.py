"""Figures of the depth dynamics: the phase diagram, the stability slope over q, and the variance map.

Every function draws data computed by the public API (``phase_diagram``, ``edge_of_chaos``,
``stability``, ``variance_map``, ``fixed_point``); matplotlib is imported on first use
(``pip install 'varprop[plot]'``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..dynamics import EdgeOfChaos, FixedPoint, PhaseDiagram, Stability, VarianceMap
from ._style import new_figure, style_axes, styled

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["phase_diagram_figure", "stability_figure", "variance_map_figure"]

_COLORS = ("#d62728", "#ff7f0e", "#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
_KIND_MARKERS = {"stable": "o", "neutral": "s", "unstable": "X"}


@styled
def phase_diagram_figure(diagram: PhaseDiagram, edge: Sequence[EdgeOfChaos] = (), title: str | None = None) -> Figure:
    """Ordered and chaotic phases over (sigma_b, sigma_w), as in Schoenholz et al. (2017), fig. 1.

    The colour is log10 chi1 at the fixed point reached from ``diagram.start_var`` (blue: ordered,
    chi1 < 1; red: chaotic, chi1 > 1); the black contour is chi1 = 1 from the grid and the dots are
    exact ``edge_of_chaos`` solutions. White: the variance grows without bound.

    Args:
        diagram: from ``varprop.dynamics.phase_diagram``.
        edge: exact edge-of-chaos points (e.g. from ``varprop.dynamics.edge_of_chaos_curve``).
        title: figure title (default: none).

    Returns:
        The matplotlib figure.
    """
    fig, (ax,) = new_figure([1.0], 5.2, layout="constrained")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_chi = np.log10(diagram.chi1)
    finite = np.isfinite(log_chi)
    bound = float(np.nanmax(np.abs(log_chi[finite]))) if finite.any() else 1.0
    bound = min(max(bound, 0.05), 1.0)
    mesh = ax.pcolormesh(
        diagram.bias_std,
        diagram.weight_std,
        np.ma.masked_invalid(log_chi),
        cmap="RdBu_r",
        vmin=-bound,
        vmax=bound,
        shading="auto",
        rasterized=True,  # keeps the SVG small
    )
    colorbar = fig.colorbar(mesh, ax=ax)
    colorbar.set_label("log10 χ1 at the fixed point")
    style_axes(colorbar.ax)
    if finite.any() and np.nanmin(log_chi) < 0 < np.nanmax(log_chi):
        ax.contour(diagram.bias_std, diagram.weight_std, log_chi, levels=[0.0], colors="k", linewidths=1.2)
    if edge:
        ax.plot(
            [point.bias_std for point in edge],
            [point.weight_std for point in edge],
            "o",
            color="k",
            markersize=3.5,
            label="edge of chaos (exact)",
        )
        ax.legend(loc="lower right")
    box = {"facecolor": "white", "alpha": 0.75, "edgecolor": "none"}
    ax.text(0.03, 0.05, "ordered (χ1 < 1)", transform=ax.transAxes, color="#1f4e9c", bbox=box)
    ax.text(0.03, 0.92, "chaotic (χ1 > 1)", transform=ax.transAxes, color="#a31c1c", bbox=box)
    if np.isinf(diagram.q).any():
        ax.text(0.97, 0.92, "blank: variance grows without bound", transform=ax.transAxes, ha="right", bbox=box)
    ax.set_xlabel("σ_b (bias standard deviation)")
    ax.set_ylabel("σ_w (weight std × √fan_in)")
    style_axes(ax)
    ax.grid(False)  # the colour map is the data
    if title:
        ax.set_title(title)
    return fig


@styled
def stability_figure(curves: Mapping[str, Stability], title: str | None = None) -> Figure:
    """Slope of the variance map at its fixed point q, against q, for several activations.

    slope(q) = 1 + d ln c(q) / d ln q with the gain that makes q the fixed point: below 1 the
    variance returns to q with depth (stable), above 1 deviations grow geometrically.

    Args:
        curves: label -> ``varprop.stability(act, var=q_array)``.
        title: figure title.

    Returns:
        The matplotlib figure.
    """
    fig, (ax,) = new_figure([1.0], 4.8, layout="constrained")
    low, high = math.inf, -math.inf
    for index, (label, curve) in enumerate(curves.items()):
        q = np.atleast_1d(np.asarray(curve.var, dtype=np.float64))
        slope = np.atleast_1d(np.asarray(curve.slope, dtype=np.float64))
        ax.plot(q, slope, color=_COLORS[index % len(_COLORS)], linewidth=1.8, label=label)
        low, high = min(low, float(q.min())), max(high, float(q.max()))
    if math.isfinite(low):
        ax.axhspan(1.0, max(ax.get_ylim()[1], 1.05), color="#d62728", alpha=0.06, zorder=0)
        ax.axhspan(min(ax.get_ylim()[0], 0.95), 1.0, color="#1f77b4", alpha=0.06, zorder=0)
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1.1)
    ax.set_xscale("log")
    ax.set_xlabel("target pre-activation variance q")
    ax.set_ylabel("slope of the variance map at q")
    ax.text(0.02, 0.97, "unstable (> 1)", transform=ax.transAxes, va="top", color="#a31c1c")
    ax.text(0.02, 0.03, "stable (< 1)", transform=ax.transAxes, va="bottom", color="#1f4e9c")
    ax.legend(loc="best")
    style_axes(ax, minor_grid=True)
    if title:
        ax.set_title(title)
    return fig


@styled
def variance_map_figure(
    vmap: VarianceMap,
    fixed_points: Sequence[FixedPoint] = (),
    q_max: float | None = None,
    points: int = 201,
    title: str | None = None,
) -> Figure:
    """The variance map q -> q' against the identity, with its fixed points marked by kind.

    Args:
        vmap: from ``varprop.dynamics.variance_map``.
        fixed_points: from ``varprop.dynamics.fixed_point`` (drawn as markers: o stable, s neutral, X unstable).
        q_max: right end of the q axis (default: 2.5 x the largest fixed point, at least 3).
        points: grid points.
        title: figure title.

    Returns:
        The matplotlib figure.
    """
    finite = [point.q for point in fixed_points if math.isfinite(point.q)]
    top = q_max if q_max is not None else max(3.0, 2.5 * max(finite, default=1.0))
    q = np.linspace(0.0, top, points)
    mapped = np.asarray(vmap(q), dtype=np.float64)
    fig, (ax,) = new_figure([1.0], 3.9, left=0.85, top=0.45)
    ax.plot(q, q, color="0.5", linestyle="--", linewidth=1.1, label="q' = q")
    ax.plot(q, mapped, color=_COLORS[3], linewidth=2.0, label="q' = σ_w² E[φ(√q z)²] + σ_b²")
    for point in fixed_points:
        marker = _KIND_MARKERS.get(point.kind, "o")
        ax.plot([point.q], [point.q], marker, color="k", markersize=7, clip_on=False, zorder=3)
        ax.annotate(
            f"q* = {point.q:.4g} ({point.kind}, slope {point.slope:.3g})",
            xy=(point.q, point.q),
            xytext=(10, 8) if point.q == 0 else (6, -12),
            textcoords="offset points",
        )
    ax.set_xlim(0.0, top)
    ax.set_ylim(0.0, max(top, float(np.nanmax(mapped[np.isfinite(mapped)], initial=top))))
    ax.set_xlabel("q (layer l)")
    ax.set_ylabel("q' (layer l + 1)")
    ax.legend(loc="upper left")
    style_axes(ax, minor_grid=True)
    ax.set_title(title or f"{vmap.activation.spec}: σ_w = {vmap.weight_std:.6g}, σ_b = {vmap.bias_std:.6g}")
    return fig
