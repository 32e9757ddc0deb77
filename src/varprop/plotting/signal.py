"""Signal propagation plots (Brock et al. 2021): statistics of ``signal_stats`` over depth, one panel each.

Only draws data computed by ``varprop.torch.signal_stats``; torch is not imported here and matplotlib
is imported on first use (``pip install 'varprop[plot]'``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .. import VarpropTypeError, VarpropValueError
from ._mpl import require_pyplot
from ._style import DPI, FIGURE_WIDTH, FONT_SIZES, new_figure, style_axes, styled
from .curves import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_SIGNAL_STATISTICS", "plot_signal"]

#: The panels drawn by default: Brock et al.'s two forward statistics and the backward one.
DEFAULT_SIGNAL_STATISTICS: tuple[str, ...] = ("channel_mean_sq", "channel_variance", "grad_variance")

_TITLES = {
    "mean": "mean",
    "variance": "variance",
    "channel_mean_sq": "average channel squared mean",
    "channel_variance": "average channel variance",
    "grad_variance": "gradient variance (backward)",
}
_VARIANCE_LIKE = ("variance", "channel_variance", "grad_variance")
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_TICK_PITCH = 1.35  # layer names, rotated, need this many times their font size each along the axis


class _SignalData(Protocol):
    """What ``plot_signal`` reads from a ``varprop.torch.SignalStats``."""

    @property
    def labels(self) -> list[str]: ...

    def column(self, statistic: str) -> NDArray[np.float64]: ...


def _as_runs(stats: _SignalData | Mapping[str, _SignalData]) -> dict[str, _SignalData]:
    if isinstance(stats, Mapping):
        runs = dict(stats)
        if not runs:
            raise VarpropValueError("plot_signal needs at least one SignalStats; got an empty mapping")
    else:
        runs = {"": stats}
    for label, run in runs.items():
        if not (hasattr(run, "column") and hasattr(run, "labels")):
            raise VarpropTypeError(
                f"plot_signal takes SignalStats (from varprop.torch.signal_stats) or a dict label -> SignalStats; "
                f"got {type(run).__name__}" + (f" for {label!r}" if label else "")
            )
    return runs


@styled
def plot_signal(
    stats: _SignalData | Mapping[str, _SignalData],
    path: str | Path | None = None,
    *,
    statistics: Sequence[str] = DEFAULT_SIGNAL_STATISTICS,
    target: float | None = 1.0,
    title: str = "",
) -> Figure:
    """Draw a signal propagation plot: one panel per statistic over depth, one curve per initialization.

    Brock, De and Smith (2021), "Characterizing signal propagation to close the performance gap in
    unnormalized ResNets", plot the average channel squared mean (1/C) Σ_c μ_c² and the average channel
    variance (1/C) Σ_c σ_c² at each depth; a healthy network keeps both near their input values,
    while a shrinking variance or a growing squared mean signals vanishing or mean-shifted signal.
    Here the x axis is the row index of ``signal_stats`` (execution order), the y axis is logarithmic
    (non-positive values are not drawn), except for ``"mean"``, which is drawn on a linear axis.

    Args:
        stats: a ``SignalStats``, or a dict ``{label: SignalStats}`` to compare initializations of
            the same model side by side (one curve each).
        path: where to save the figure: a file name with suffix (``"spp.png"``, ``"spp.pdf"``) writes
            that file; a name without suffix writes ``.png`` and ``.svg``. The figure is then closed
            (it is still returned and can be saved again). ``None`` leaves it open.
        statistics: the panels, from ``"mean"``, ``"variance"``, ``"channel_mean_sq"``,
            ``"channel_variance"``, ``"grad_variance"``.
        target: a reference line in the variance panels (the variance an initialization aims at; the
            backward pass of ``signal_stats`` starts from unit-variance gradients); ``None`` for none.
        title: figure title.

    Returns:
        The matplotlib figure.

    Raises:
        VarpropValueError: unknown or no statistics, empty dict.
        VarpropTypeError: ``stats`` is not ``SignalStats`` (or a dict of them).
        VarpropError: matplotlib is missing.

    Example:
        >>> fig = plot_signal({"torch default": stats_default, "varprop": stats_varprop}, "spp")  # doctest: +SKIP
    """
    runs = _as_runs(stats)
    panels = list(statistics)
    if not panels:
        raise VarpropValueError(f"plot_signal needs at least one statistic; valid choices: {', '.join(_TITLES)}")
    for statistic in panels:
        if statistic not in _TITLES:
            raise VarpropValueError(f"unknown statistic {statistic!r}; valid choices: {', '.join(_TITLES)}")
    plt = require_pyplot()
    fig, axes = new_figure([1.0] * len(panels), 4.6, layout="constrained")
    # Layer names fit along a panel's x axis up to this many (else the axis shows execution indices).
    panel_points = 72.0 * 0.85 * FIGURE_WIDTH / len(panels)
    max_names = int(panel_points / (_TICK_PITCH * FONT_SIZES["small"]))
    label_lists = [run.labels for run in runs.values()]
    shared_labels = label_lists[0] if all(labels == label_lists[0] for labels in label_lists) else None
    for ax, statistic in zip(axes, panels, strict=True):
        drawn = False
        for index, (label, run) in enumerate(runs.items()):
            values = run.column(statistic)
            depth = np.arange(values.size)
            shown = np.isfinite(values) if statistic == "mean" else np.isfinite(values) & (values > 0)
            if not shown.any():
                continue
            ax.plot(
                depth[shown],
                values[shown],
                "o-",
                color=_COLORS[index % len(_COLORS)],
                markersize=3,
                linewidth=1.5,
                label=label or None,
            )
            drawn = True
        if statistic != "mean" and drawn:
            ax.set_yscale("log")
        if not drawn:
            ax.text(0.5, 0.5, "not collected", transform=ax.transAxes, ha="center", va="center", color="0.4")
        if target is not None and statistic in _VARIANCE_LIKE and drawn:
            ax.axhline(target, color="0.35", linestyle="--", linewidth=1, zorder=1)
        style_axes(ax)
        _depth_axis(ax, shared_labels, max_names)
        ax.set_title(_TITLES[statistic])
        if len(runs) > 1 and drawn:
            ax.legend()
    if title:
        fig.suptitle(title)
    if path is not None:
        target_path = Path(path)
        if target_path.suffix:
            target_path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(target_path, dpi=DPI)
            plt.close(fig)
        else:
            save_figure(fig, target_path)
    return fig


def _depth_axis(ax: Any, labels: list[str] | None, max_names: int) -> None:
    """Layer names as x tick labels when there are few enough to fit, else the execution index."""
    if labels is not None and 0 < len(labels) <= max_names:
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=90, fontsize=FONT_SIZES["small"])
        ax.set_xlabel("layer (execution order)")
    else:
        ax.set_xlabel("layer index (execution order)")
    ax.margins(x=0.03)
