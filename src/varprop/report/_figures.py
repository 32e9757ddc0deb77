"""The report's figures, drawn from a ``ReportSummary`` with ``varprop.plotting``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fixed_point, predict_jacobian_spectrum, sample_jacobian_singular_values, variance_map
from .._errors import ConvergenceError
from ..dynamics._qcurve import stability_slopes
from ..plotting.curves import depth_variance_figure, moments_convergence_figure, q_curve_figure, save_figure
from ..plotting.dynamics import variance_map_figure
from ..plotting.spectrum import jacobian_spectrum_figure
from ._summary import ReportSummary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FIGURE_NAMES", "SEED_SAMPLED_SECOND_MOMENT", "draw_figures", "is_seed_case", "pretty"]

#: The report's figures, in page order (each written as NAME.png, and NAME.svg on request).
FIGURE_NAMES = ("moments", "qcurve", "variance_map", "depth", "spectrum")
#: The Jacobian-spectrum figure samples nets at most this wide (one SVD of width^2 per net, a QR per layer).
SPECTRUM_MAX_WIDTH = 256
_SPECTRUM_POINTS_PER_DECADE = 40  # enough for a figure (percentiles to ~1e-3), half the default's time

# The seed answer (Cross Validated 320443) sampled E[elu(z)^2] and wrote "≈ 0.645" (and 1/0.645 ≈ 1.55).
SEED_SAMPLED_SECOND_MOMENT = 0.645


def pretty(label: str) -> str:
    """The ASCII labels of the text summary, with the symbols a figure can show."""
    for ascii_text, symbol in (("+-", "±"), ("sqrt(n)", "√n"), ("sqrt 2", "√2")):
        label = label.replace(ascii_text, symbol)
    return label


def is_seed_case(summary: ReportSummary) -> bool:
    """Whether the report is for the seed answer's case: ELU with alpha = 1 at q = 1."""
    return summary.activation == "elu(alpha=1.0)" and summary.var == 1.0


def draw_figures(
    summary: ReportSummary, act: Any, formats: Sequence[str] = ("png",), *, spectrum: bool = False
) -> dict[str, list[Path]]:
    """Draw and save every figure of the report; returns figure name -> paths (PNG first, then e.g. SVG).

    ``spectrum``: also the Jacobian's singular values (Gaussian vs orthogonal weights, a few seconds more).
    """
    out = summary.out_dir
    figures: dict[str, list[Path]] = {}
    if summary.monte_carlo:
        points = summary.monte_carlo
        exact_error = None if summary.exact.error is None else float(summary.exact.error[1])
        closed_gap = None
        if summary.closed_form is not None:
            closed_gap = abs(float(summary.closed_form.second_moment) - float(summary.quadrature.second_moment))
        figure = moments_convergence_figure(
            float(summary.exact.second_moment),
            [point.samples for point in points],
            [point.estimate for point in points],
            [point.standard_error for point in points],
            exact_error=exact_error,
            closed_form_gap=closed_gap,
            quantity=f"E[φ(y)²], y ~ N(0, {summary.var:g})",
            title=f"{summary.activation}: exact second moment vs Monte Carlo",
            seed_value=SEED_SAMPLED_SECOND_MOMENT if is_seed_case(summary) else None,
        )
        figures["moments"] = save_figure(figure, out / "moments", formats)

    slopes = stability_slopes(act, summary.curve)
    figures["qcurve"] = save_figure(
        q_curve_figure(summary.curve, at_q=summary.var, slope=slopes), out / "qcurve", formats
    )

    if summary.schemes:
        figure = depth_variance_figure(
            {pretty(scheme.label): scheme.variances for scheme in summary.schemes},
            predicted={
                pretty(scheme.label): scheme.predicted for scheme in summary.schemes if scheme.predicted is not None
            },
            bands={
                pretty(scheme.label): (scheme.lower, scheme.upper)
                for scheme in summary.schemes
                if scheme.lower is not None and scheme.upper is not None
            },
            target=summary.var,
            title=(
                f"{summary.activation}: plain network of width {summary.width}, "
                f"{summary.batch} inputs of variance {summary.var:g}"
            ),
        )
        figures["depth"] = save_figure(figure, out / "depth", formats)

    figures["variance_map"] = save_figure(_variance_map_figure(summary, act), out / "variance_map", formats)
    if spectrum:
        figures["spectrum"] = save_figure(_spectrum_figure(summary, act), out / "spectrum", formats)
    return figures


def _variance_map_figure(summary: ReportSummary, act: Any) -> Figure:
    """The variance map with varprop's weights and its fixed points (``varprop.plotting.dynamics``)."""
    vmap = variance_map(act, weight_std=summary.gain)
    # q* = 0 sits on the axis corner, where its label would cover the tick labels; the page's table lists it.
    points = [point for point in fixed_point(act, weight_std=summary.gain) if point.q > 0]
    return variance_map_figure(
        vmap, points, title=f"{summary.activation}: variance map with varprop's gain {summary.gain:.6g}"
    )


def _spectrum_figure(summary: ReportSummary, act: Any) -> Figure:
    """The plain net's Jacobian singular values with varprop's gain, Gaussian vs orthogonal weights.

    Measured: one random net per distribution (``varprop.sample_jacobian_singular_values``, fed at q = var);
    predicted: ``varprop.predict_jacobian_spectrum`` at q = var. A prediction that does not converge is left out.
    """
    width = min(summary.width, SPECTRUM_MAX_WIDTH)
    predicted, measured = {}, {}
    for label, distribution in (("Gaussian", "gaussian"), ("orthogonal", "orthogonal")):
        measured[label] = sample_jacobian_singular_values(
            act, summary.gain, summary.depth, width, q=summary.var, distribution=distribution, seed=summary.seed
        )
        try:
            predicted[label] = predict_jacobian_spectrum(
                act,
                summary.gain,
                summary.depth,
                q=summary.var,
                distribution=distribution,
                points_per_decade=_SPECTRUM_POINTS_PER_DECADE,
            )
        except ConvergenceError:
            continue
    return jacobian_spectrum_figure(
        predicted,
        measured,
        title=f"{summary.activation}: Jacobian of a {summary.depth}-layer plain net (width {width}), varprop's gain",
    )
