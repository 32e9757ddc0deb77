"""Figures of the numerics core: the q-curve, Monte Carlo convergence, and variance through depth.

Every function takes data computed by the public API (``varprop.moments``, ``q_curve``, ...) and
only draws it; matplotlib is imported on first use (``pip install 'varprop[plot]'``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..dynamics import QCurve
from ._mpl import require_pyplot
from ._style import DPI, FONT_SIZES, new_figure, style_axes, styled

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "depth_variance_figure",
    "moments_convergence_figure",
    "q_curve_figure",
    "save_figure",
]

_FLOOR = 1e-17  # errors below double precision are drawn at this floor of log axes
_WIDE_RANGE = 20.0  # data spanning more than this factor get a log axis
_COLORS = ("#d62728", "#ff7f0e", "#7f7f7f", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b")


def _drop_hidden_minor_labels(fig: Figure) -> None:
    """Log axes spanning several decades never show minor tick labels; skip laying them out (it is slow)."""
    from matplotlib.ticker import NullFormatter

    for ax in fig.axes:
        for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            low, high = sorted(limits)
            if axis.get_scale() == "log" and low > 0 and high / low > 100:
                axis.set_minor_formatter(NullFormatter())


def save_figure(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``fig`` as ``stem.png`` and ``stem.svg`` (reproducible: no date in the SVG), then close it.

    Args:
        fig: the figure.
        stem: output path without suffix; parent folders are created.
        formats: file formats to write.

    Returns:
        The written paths, in ``formats`` order.
    """
    plt = require_pyplot()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    _drop_hidden_minor_labels(fig)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        metadata = {"Date": None} if fmt == "svg" else {"Software": None} if fmt == "png" else None
        fig.savefig(path, dpi=DPI, metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


def _thin_log_ticks(ax: Any, count: int = 5) -> None:
    """At most ``count`` decades labelled on a log x axis (a narrow panel cannot show one label per decade)."""
    from matplotlib.ticker import LogLocator

    ax.xaxis.set_major_locator(LogLocator(base=10.0, numticks=count))


def _format_limit(value: float) -> str:
    known = (("1", 1.0), ("1/2", 0.5), ("0", 0.0), ("2", 2.0), ("1/4", 0.25), ("√2", math.sqrt(2.0)))
    for text, exact in known:
        if math.isclose(value, exact, rel_tol=1e-9, abs_tol=1e-12):
            return text
    return f"{value:.4g}"


def _mark_limits(ax: Any, q: np.ndarray, small: float | None, large: float | None, transform: Any = None) -> None:
    """Dashed asymptotes for q -> 0 (left half) and q -> inf (right half), labelled with their value."""
    for value, side in ((small, "left"), (large, "right")):
        if value is None:
            continue
        shown = value if transform is None else transform(value)
        if shown is None or not math.isfinite(shown) or (ax.get_yscale() == "log" and shown <= 0):
            continue
        lo, hi = (q[0], math.sqrt(q[0] * q[-1])) if side == "left" else (math.sqrt(q[0] * q[-1]), q[-1])
        ax.hlines(shown, lo, hi, colors="0.35", linestyles="--", linewidth=1.2, zorder=1)
        arrow = "q → 0" if side == "left" else "q → ∞"
        label = f"{arrow}: {_format_limit(shown)}"
        ax.annotate(
            label,
            xy=(lo if side == "left" else hi, shown),
            xytext=(4 if side == "left" else -4, 5),
            textcoords="offset points",
            ha=side,
            va="bottom",
            color="0.25",
        )


@styled
def q_curve_figure(
    curve: QCurve,
    at_q: float = 1.0,
    slope: ArrayLike | None = None,
    slope_label: str = "slope F′(q) of the variance map",
) -> Figure:
    """The q-curve c(q) = E[phi(sqrt(q) z)^2]/q and gain(q) = 1/sqrt(c(q)) on a log q axis.

    Args:
        curve: the q-curve data (``QCurve``, as ``varprop report`` and ``varprop curve`` compute it).
        at_q: the variance to mark on both curves (the seed's q = 1).
        slope: optional stability slope on ``curve.q`` (from ``varprop.stability``), drawn in a
            third panel with the stability edge at 1.
        slope_label: y label of that panel.

    Returns:
        The figure (save it with ``save_figure``).
    """
    panels = 3 if slope is not None else 2
    fig, axes = new_figure([1.0] * panels, height=3.6, gap=0.95, top=1.05)
    q, c, gains = curve.q, curve.c, curve.gain
    index = int(np.argmin(np.abs(np.log(q / at_q))))
    marked_q = q[index]

    ax = axes[0]
    ax.semilogx(q, c, color=_COLORS[3], linewidth=2, label="c(q) = E[φ(√q z)²] / q")
    _log_if_wide(ax, c)
    _mark_limits(ax, q, curve.small_q_limit, curve.large_q_limit)
    _mark_point(ax, q, c, index, f"c({marked_q:g}) = {c[index]:.6g}")
    ax.set_xlabel("pre-activation variance q")
    ax.set_ylabel("c(q) = E[φ²] / q")
    ax.set_title("variance factor of one layer\nwith n·Var[w] = 1")
    _pad_ylim(ax, c, curve.small_q_limit, curve.large_q_limit)
    style_axes(ax)

    def to_gain(value: float) -> float | None:
        return None if value <= 0 else 1.0 / math.sqrt(value)

    ax = axes[1]
    finite = np.isfinite(gains)
    ax.semilogx(q[finite], gains[finite], color=_COLORS[4], linewidth=2, label="gain(q) = std[w]·√n")
    _log_if_wide(ax, gains[finite])
    _mark_limits(ax, q, curve.small_q_limit, curve.large_q_limit, transform=to_gain)
    ax.axhline(math.sqrt(2.0), color=_COLORS[5], linewidth=1, linestyle=":", zorder=1)
    ax.annotate(
        "He (ReLU): √2",
        xy=(q[0], math.sqrt(2.0)),
        xytext=(4, 4),
        textcoords="offset points",
        ha="left",
        color=_COLORS[5],
    )
    _mark_point(ax, q, gains, index, f"gain = {gains[index]:.6g}\nn·Var[w] = {gains[index] ** 2:.6g}")
    ax.set_xlabel("pre-activation variance q")
    ax.set_ylabel("gain(q) = √(q / E[φ²])  (std[w]·√fan_in)")
    ax.set_title("variance-preserving gain\n(a standard deviation)")
    limit_gains = [to_gain(v) for v in (curve.small_q_limit, curve.large_q_limit) if v is not None]
    _pad_ylim(ax, np.append(gains[finite], math.sqrt(2.0)), *limit_gains)
    style_axes(ax)

    if slope is not None:
        ax = axes[2]
        values = np.asarray(slope, dtype=np.float64)
        ax.semilogx(q, values, color=_COLORS[6], linewidth=2)
        _log_if_wide(ax, values)
        ax.axhline(1.0, color="0.35", linestyle="--", linewidth=1.2)
        if math.isfinite(values[index]):
            ax.plot([marked_q], [values[index]], "o", color=_COLORS[0], zorder=3)
            ax.annotate(
                f"F′ = {values[index]:.4g}",
                xy=(marked_q, values[index]),
                xytext=(8, -12),
                textcoords="offset points",
                color=_COLORS[0],
            )
        ax.annotate("edge of stability: 1", xy=(q[0], 1.0), xytext=(4, 5), textcoords="offset points")
        ax.set_xlabel("fixed point q")
        ax.set_ylabel(slope_label)
        ax.set_title("stability of the fixed point q\n(< 1: stable)")
        _pad_ylim(ax, np.append(values[np.isfinite(values)], 1.0))
        style_axes(ax)

    for ax in axes:
        _thin_log_ticks(ax)
    fig.suptitle(f"{curve.activation}: the constant depends on the variance q")
    return fig


def _mark_point(ax: Any, x: np.ndarray, y: np.ndarray, index: int, text: str) -> None:
    """Mark ``(x[index], y[index])`` with ``text`` on the empty side: upper left of a rising curve, else upper right."""
    ax.plot([x[index]], [y[index]], "o", color=_COLORS[0], zorder=3)
    rising = y[min(index + 1, y.size - 1)] > y[max(index - 1, 0)]
    ax.annotate(
        text,
        xy=(x[index], y[index]),
        xytext=(-8, 8) if rising else (8, 8),
        textcoords="offset points",
        ha="right" if rising else "left",
        color=_COLORS[0],
    )


def _log_if_wide(ax: Any, values: ArrayLike) -> None:
    """Use a log y axis when the positive data span more than a factor of 20."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data) & (data > 0)]
    if data.size and data.max() > _WIDE_RANGE * data.min():
        ax.set_yscale("log")


def _pad_ylim(ax: Any, values: ArrayLike, *extra: float | None) -> None:
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    points = [float(v) for v in extra if v is not None and math.isfinite(v)]
    if ax.get_yscale() == "log":
        return  # matplotlib's log autoscaling is fine
    if data.size == 0 and not points:
        return
    low = min([*data.tolist(), *points])
    high = max([*data.tolist(), *points])
    pad = 0.08 * (high - low) if high > low else 0.1 * max(abs(high), 1.0)
    ax.set_ylim(low - pad, high + pad)


@styled
def moments_convergence_figure(
    exact: float,
    samples: Sequence[int],
    estimates: Sequence[float],
    standard_errors: Sequence[float],
    *,
    exact_error: float | None = None,
    closed_form_gap: float | None = None,
    quantity: str = "E[φ(z)²]",
    title: str = "",
    seed_value: float | None = None,
) -> Figure:
    """Monte Carlo estimates against the exact value: the estimate with 95% error bars, and |error|.

    Args:
        exact: the exact value (``varprop.moments``).
        samples: Monte Carlo sample sizes.
        estimates: the Monte Carlo estimates at those sizes.
        standard_errors: their standard errors.
        exact_error: the error estimate of the exact value (drawn as its error floor).
        closed_form_gap: |closed form - quadrature|, if the activation has a closed form (drawn in
            the error panel: the two exact methods agree to this).
        quantity: label of the estimated quantity.
        title: figure title.
        seed_value: a value to annotate (the seed answer's 0.645).

    Returns:
        The figure.
    """
    n = np.asarray(samples, dtype=np.float64)
    est = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(standard_errors, dtype=np.float64)
    fig, axes = new_figure([1.0, 1.0], height=4.0, gap=1.05)

    ax = axes[0]
    ax.axhline(exact, color=_COLORS[3], linewidth=1.6, label=f"exact (varprop): {exact:.15g}", zorder=1)
    ax.errorbar(
        n, est, yerr=1.96 * se, fmt="o", color=_COLORS[0], capsize=4, label="Monte Carlo ± 1.96 s.e. (95%)", zorder=3
    )
    if seed_value is not None:
        ax.axhline(seed_value, color="0.5", linewidth=1, linestyle=":", zorder=1)
        ax.annotate(
            f"seed answer: ≈ {seed_value:g}",
            xy=(n[-1], seed_value),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            color="0.35",
        )
    ax.set_xscale("log")
    ax.set_xlabel("Monte Carlo samples")
    ax.set_ylabel(quantity)
    ax.set_title("the seed's method (sampling) converges slowly")
    ax.legend(loc="upper right")
    spread = float(np.max(np.abs(est - exact) + 1.96 * se))
    style_axes(ax)
    largest = n >= n.max() / 100  # the three largest sizes of a decade grid: zoom in on them
    if 2 <= int(largest.sum()) < n.size:
        ax.set_ylim(exact - 2.9 * spread, exact + 1.3 * spread)  # room for the inset below the data
        _zoom_inset(ax, n[largest], est[largest], se[largest], exact, seed_value)
    else:
        ax.set_ylim(exact - 1.4 * spread, exact + 1.9 * spread)

    ax = axes[1]
    errors = np.maximum(np.abs(est - exact), _FLOOR)
    ax.loglog(n, errors, "o-", color=_COLORS[0], label="|Monte Carlo − exact|")
    ax.loglog(n, se, "--", color=_COLORS[1], label="standard error ∝ 1/√N")
    if exact_error is not None:
        shown = max(exact_error, _FLOOR)
        ax.axhline(shown, color=_COLORS[3], linewidth=1.6, label=f"varprop error estimate ({exact_error:.1e})")
    if closed_form_gap is not None:
        ax.axhline(
            max(closed_form_gap, _FLOOR),
            color=_COLORS[4],
            linewidth=1.2,
            linestyle="-.",
            label=f"|closed form − quadrature| ({closed_form_gap:.1e})",
        )
    ax.set_xlabel("Monte Carlo samples")
    ax.set_ylabel(f"absolute error of {quantity}")
    ax.set_title("error: sampling vs exact")
    ax.set_ylim(_FLOOR / 3, max(1.0, float(np.max(errors)) * 3))
    ax.legend(loc="center right")
    style_axes(ax)
    if title:
        fig.suptitle(title)
    return fig


def _zoom_inset(
    ax: Any, n: np.ndarray, est: np.ndarray, se: np.ndarray, exact: float, seed_value: float | None
) -> None:
    """Inset of the largest sample sizes, where the error bars are too small to see at full scale."""
    inset = ax.inset_axes((0.40, 0.06, 0.57, 0.36))
    inset.axhline(exact, color=_COLORS[3], linewidth=1.4)
    inset.errorbar(n, est, yerr=1.96 * se, fmt="o", color=_COLORS[0], capsize=3, markersize=4)
    half = float(np.max(np.abs(est - exact) + 1.96 * se)) * 1.25
    if seed_value is not None and abs(seed_value - exact) < 3 * half:
        inset.axhline(seed_value, color="0.5", linewidth=1, linestyle=":")
        inset.annotate(
            f"seed: {seed_value:g}",
            xy=(n[0] / 2.5, seed_value),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize=FONT_SIZES["small"],
        )
        half = max(half, abs(seed_value - exact) * 1.25)
    inset.set_xscale("log")
    inset.set_xlim(n[0] / 2.5, n[-1] * 2.5)
    inset.set_ylim(exact - half, exact + half)
    inset.set_title(f"zoom: N ≥ {n[0]:.0e}", fontsize=FONT_SIZES["small"])
    style_axes(inset, tick_size="small")


@styled
def depth_variance_figure(
    variances: Mapping[str, ArrayLike],
    *,
    predicted: Mapping[str, ArrayLike] | None = None,
    bands: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None,
    target: float | None = 1.0,
    title: str = "",
) -> Figure:
    """Per-layer pre-activation variance of a deep plain network, one line per initialization.

    Args:
        variances: scheme label -> simulated variance at layers 1..L (e.g. the median over inputs).
        predicted: optional scheme label -> predicted variance (drawn dotted, same colour).
        bands: optional scheme label -> (lower, upper) spread of the simulation (drawn shaded).
        target: the variance to keep (drawn as a reference line).
        title: figure title.

    Returns:
        The figure (log variance axis; values that overflow or underflow are clipped to its edge).
    """
    fig, (ax, zoom) = new_figure([6.5, 5.2], height=4.6, gap=0.75, top=0.8 if title else 0.4)
    tiny, huge = 1e-300, 1e300

    def clipped(values: ArrayLike) -> np.ndarray:
        data = np.asarray(values, dtype=np.float64)
        return np.clip(np.nan_to_num(data, nan=huge, posinf=huge, neginf=tiny), tiny, huge)

    for axes in (ax, zoom):
        for index, (label, values) in enumerate(variances.items()):
            color = _COLORS[index % len(_COLORS)]
            data = np.asarray(values, dtype=np.float64)
            layers = np.arange(1, data.size + 1)
            legend = f"{label}: layer {data.size} → {data[-1]:.3g}"
            axes.semilogy(layers, clipped(data), "-", color=color, linewidth=2, label=legend)
            if bands is not None and label in bands:
                lower, upper = bands[label]
                axes.fill_between(layers, clipped(lower), clipped(upper), color=color, alpha=0.2, linewidth=0)
            if predicted is not None and label in predicted:
                model = clipped(predicted[label])
                axes.semilogy(np.arange(1, model.size + 1), model, ":", color="k", linewidth=1.3, zorder=4)
        if target is not None:
            axes.axhline(target, color="0.3", linewidth=1, linestyle="--", zorder=1)
        axes.set_xlabel("layer")
        style_axes(axes)
    if predicted:
        ax.plot([], [], ":", color="k", label="predicted (varprop.dynamics.predict_drift)")
    if bands:
        ax.fill_between([], [], [], color="0.5", alpha=0.3, label="16–84% of inputs (simulated)")
    ax.set_ylabel("pre-activation variance (mean over units)")
    ax.legend(loc="lower left")
    centre = 1.0 if target is None else target
    zoom.set_ylim(centre / 1e3, centre * 1e2)
    zoom.set_title(f"zoom: {centre / 1e3:g} to {centre * 1e2:g}")
    if title:
        fig.suptitle(title)
    return fig
