"""``build_report``: compute everything through the public API, draw it, and write the HTML page."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import VarpropValueError, gain, moments, weight_std
from .. import activation as resolve_activation
from ..dynamics import fixed_point, predict_drift, q_curve, simulate_plain_network, stability
from ..gains import truncated_normal_scale, uniform_bound
from ..gaussian import monte_carlo_moments
from ..plotting import require_pyplot
from ..validation import check_positive_int, check_real
from ._figures import FIGURE_NAMES, draw_figures
from ._html import render_html
from ._output import OutputFolder
from ._summary import MonteCarloPoint, ReportSummary, SchemeResult, StabilityResult

__all__ = ["DEFAULT_MC_SAMPLES", "REPORT_FILES", "build_report"]

DEFAULT_MC_SAMPLES = (10**3, 10**4, 10**5, 10**6, 10**7)

#: Every file ``build_report`` may write into its folder (the SVG files only with ``svg=True``).
REPORT_FILES = ("index.html", *(f"{name}.{fmt}" for name in FIGURE_NAMES for fmt in ("png", "svg")))


def _schemes(act_gain: float, width: int) -> list[tuple[str, str, float]]:
    """(name, label, std[w] * sqrt(fan_in)) of the compared initializations for a square layer."""
    fan_in = fan_out = width
    return [
        # torch.nn.Linear/Conv default: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        # whose standard deviation is 1/sqrt(3 fan_in).
        ("torch_default", "PyTorch default U(+-1/sqrt(n))", 1.0 / math.sqrt(3.0)),
        # He et al. 2015 with the ReLU gain: Var[w] = 2 / fan_in.
        ("he", "He (ReLU gain sqrt 2)", math.sqrt(2.0)),
        # Glorot & Bengio 2010: Var[w] = 2 / (fan_in + fan_out).
        ("glorot", "Glorot 2/(fan_in+fan_out)", math.sqrt(2.0 * fan_in / (fan_in + fan_out))),
        ("varprop", "varprop gain", act_gain),
    ]


def _monte_carlo(act: Any, var: float, exact: float, sizes: Sequence[int], seed: int) -> tuple[MonteCarloPoint, ...]:
    points = []
    for index, size in enumerate(sizes):
        start = time.perf_counter()
        estimate = monte_carlo_moments(act, var=var, samples=size, seed=seed + index)
        elapsed = time.perf_counter() - start
        points.append(
            MonteCarloPoint(
                samples=int(size),
                estimate=estimate.second_moment,
                standard_error=estimate.second_moment_se,
                abs_error=abs(estimate.second_moment - exact),
                seconds=elapsed,
            )
        )
    return tuple(points)


def _simulate(
    act: Any,
    schemes: list[tuple[str, str, float]],
    *,
    var: float,
    depth: int,
    width: int,
    batch: int,
    seed: int,
) -> tuple[SchemeResult, ...]:
    """Simulate and predict the per-layer variance for each scheme (``varprop.dynamics.simulate_plain_network``).

    Every scheme's network starts from the same first layer (weights of variance 1/width, so that
    q_1 = var: the input is not an activation's output) and uses the same seed, hence the same
    random matrices up to the scale: the curves differ only by the hidden layers' weight scale.
    """
    results = []
    for name, label, std_times_sqrt_fan in schemes:
        simulated = simulate_plain_network(
            act, depth, width, weight_std=std_times_sqrt_fan, input_var=var, batch=batch, seed=seed
        )
        predicted = predict_drift(act, depth, width, weight_std=std_times_sqrt_fan, input_var=var)
        results.append(
            SchemeResult(
                name=name,
                label=label,
                std_times_sqrt_fan=std_times_sqrt_fan,
                variances=simulated.median,
                lower=simulated.lower,
                upper=simulated.upper,
                predicted=np.asarray(predicted.median, dtype=np.float64),
                predicted_lower=np.asarray(predicted.lower, dtype=np.float64),
                predicted_upper=np.asarray(predicted.upper, dtype=np.float64),
            )
        )
    return tuple(results)


def _stability(act: Any, var: float, act_gain: float) -> StabilityResult:
    result = stability(act, var=var)
    points = fixed_point(act, weight_std=act_gain)
    return StabilityResult(
        target=var,
        slope=float(result.slope),
        kind=str(result.kind),
        chi1=float(result.chi1),
        doubling_depth=float(result.doubling_depth),
        verdict=str(result.verdict),
        fixed_points=tuple((float(point.q), float(point.slope), str(point.kind)) for point in points),
        phase=str(result.phase),
        depth_scale_q=float(result.depth_scale_q),
        depth_scale_c=float(result.depth_scale_c),
    )


def build_report(
    act: Any = "elu",
    out_dir: str | Path = "varprop-report",
    *,
    var: float = 1.0,
    depth: int = 50,
    width: int = 512,
    batch: int = 128,
    seed: int = 0,
    mc_samples: Sequence[int] = DEFAULT_MC_SAMPLES,
    svg: bool = False,
    spectrum: bool = False,
) -> ReportSummary:
    """Write the varprop report for one activation: ``index.html`` and its figures in ``out_dir``.

    The report puts the exact moments (``varprop.moments``) beside the closed form and Monte Carlo
    estimates at several sample sizes (the seed answer's method), draws the q-curve, the stability
    of the variance map (``varprop.stability``, ``varprop.dynamics.fixed_point``), and simulates a deep plain
    network (``varprop.dynamics.simulate_plain_network``, beside ``varprop.dynamics.predict_drift``) under PyTorch's
    default init, He, Glorot and varprop's gain. Takes a few seconds (the 1e7-sample Monte Carlo
    about one). Every argument, the output folder included, is checked before any work.

    Args:
        act: activation spec, ``Activation`` or callable (default ELU, the seed's activation).
        out_dir: output folder, created (and proven writable) before any work; existing report files
            are overwritten; folders created for it are removed again if the report fails.
        var: pre-activation variance q to preserve (> 0).
        depth: layers of the simulated network.
        width: units per layer (fan_in = fan_out = width).
        batch: inputs pushed through the network (the plot shows their median and 16-84% band).
        seed: random seed of the Monte Carlo estimates and the simulation.
        mc_samples: Monte Carlo sample sizes (empty to skip).
        svg: also write every figure as SVG (PNG is always written, and inlined in the page).
        spectrum: also draw the singular values of the plain network's Jacobian, sampled and predicted
            by free probability for Gaussian and orthogonal weights (``varprop.dynamics.predict_jacobian_spectrum``;
            a few seconds more).

    Returns:
        A ``ReportSummary`` (``format_text()`` is what the CLI prints, ``to_dict()`` its JSON).

    Raises:
        VarpropValueError: bad arguments, an output folder that cannot be created or written, or an
            activation with no finite gain at ``var``.
        VarpropError: matplotlib missing (install ``varprop[plot]``).

    Example:
        >>> summary = build_report("elu", "varprop-report")  # doctest: +SKIP
        >>> round(summary.fan_var, 12)  # doctest: +SKIP
        1.550518808068
    """
    start = time.perf_counter()
    activation = resolve_activation(act)
    q = check_real("var", var, minimum=0.0, strict=True)
    depth = check_positive_int("depth", depth)
    width = check_positive_int("width", width)
    batch = check_positive_int("batch", batch)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise VarpropValueError(f"seed must be a non-negative integer, got {seed!r}")
    sizes = [check_positive_int("mc_samples", size) for size in mc_samples]
    require_pyplot()  # fail before computing anything if matplotlib is missing
    folder = OutputFolder.prepare(out_dir, name="out_dir", files=REPORT_FILES)
    try:
        summary = _compute(activation, folder.path, q, depth=depth, width=width, batch=batch, seed=seed, sizes=sizes)
        figures = draw_figures(summary, activation, ("png", "svg") if svg else ("png",), spectrum=spectrum)
    except BaseException:
        folder.remove_if_unused()
        raise
    summary = _replace(summary, figures=figures, seconds=time.perf_counter() - start)
    summary.index.write_text(render_html(summary), encoding="utf-8")
    return summary


def _compute(
    activation: Any, out: Path, q: float, *, depth: int, width: int, batch: int, seed: int, sizes: Sequence[int]
) -> ReportSummary:
    """Every number of the report (no file is written here)."""
    exact = moments(activation, var=q, with_error=True)
    quadrature = moments(activation, var=q, with_error=True, method="quadrature")
    closed = moments(activation, var=q, method="closed_form") if activation.closed_form is not None else None
    forward = float(gain(activation, var=q, mode="fan_in"))
    backward = float(gain(activation, var=q, mode="fan_out"))
    std = float(weight_std(activation, width, var=q))
    scales = {
        "weight_variance": std * std,
        "weight_std": std,
        "truncated_normal_std": float(truncated_normal_scale(activation, width, var=q)),  # std before the cut
        "uniform_bound": float(uniform_bound(activation, width, var=q)),  # a of U(-a, a)
    }
    monte_carlo = _monte_carlo(activation, q, float(exact.second_moment), sizes, seed)
    curve = q_curve(activation, include=(q,))
    stability_result = _stability(activation, q, forward)
    schemes = _simulate(activation, _schemes(forward, width), var=q, depth=depth, width=width, batch=batch, seed=seed)
    return ReportSummary(
        activation=activation.spec,
        var=q,
        exact=exact,
        quadrature=quadrature,
        closed_form=closed,
        gain=forward,
        backward_gain=backward,
        width=width,
        depth=depth,
        batch=batch,
        seed=seed,
        monte_carlo=monte_carlo,
        schemes=schemes,
        stability=stability_result,
        curve=curve,
        out_dir=out,
        index=out / "index.html",
        scales=scales,
    )


def _replace(summary: ReportSummary, **changes: Any) -> ReportSummary:
    return dataclasses.replace(summary, **changes)
