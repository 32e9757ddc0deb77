"""What ``build_report`` computed: plain data, its JSON form and its plain-text summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .. import Moments
from ..dynamics import QCurve
from ._text import columns

__all__ = ["MonteCarloPoint", "ReportSummary", "SchemeResult", "StabilityResult"]

FloatArray = NDArray[np.float64]

# Layers whose simulated variance is printed in the text summary (those beyond the depth are skipped).
_SUMMARY_LAYERS = (1, 10, 25, 50)


@dataclass(frozen=True)
class MonteCarloPoint:
    """One Monte Carlo estimate of E[phi(y)^2] (the seed's method).

    Attributes:
        samples: number of samples.
        estimate: the estimate of E[phi(y)^2].
        standard_error: its standard error.
        abs_error: |estimate - exact|.
        seconds: wall time of the estimate.
    """

    samples: int
    estimate: float
    standard_error: float
    abs_error: float
    seconds: float


@dataclass(frozen=True)
class SchemeResult:
    """One initialization scheme in the deep-network simulation.

    Attributes:
        name: short name (``"varprop"``).
        label: what it is, for tables and legends.
        std_times_sqrt_fan: the weight standard deviation times sqrt(fan_in).
        variances: simulated pre-activation variance at layers 1..depth (median over the inputs of
            mean_i y_{l,i}^2, ``PlainNetworkSimulation.median``).
        lower: its 16% quantile over inputs.
        upper: its 84% quantile over inputs.
        predicted: ``varprop.dynamics.predict_drift``'s median at layers 1..depth, or ``None``.
        predicted_lower: the predicted 16% quantile, or ``None``.
        predicted_upper: the predicted 84% quantile, or ``None``.
    """

    name: str
    label: str
    std_times_sqrt_fan: float
    variances: FloatArray
    lower: FloatArray | None = None
    upper: FloatArray | None = None
    predicted: FloatArray | None = None
    predicted_lower: FloatArray | None = None
    predicted_upper: FloatArray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "label": self.label,
            "std_times_sqrt_fan": self.std_times_sqrt_fan,
            "var_times_fan": self.std_times_sqrt_fan**2,
            "variances": self.variances.tolist(),
            **{
                key: None if value is None else value.tolist()
                for key, value in (
                    ("lower", self.lower),
                    ("upper", self.upper),
                    ("predicted", self.predicted),
                    ("predicted_lower", self.predicted_lower),
                    ("predicted_upper", self.predicted_upper),
                )
            },
        }


@dataclass(frozen=True)
class StabilityResult:
    """The variance map q -> n Var[w] E[phi(sqrt(q) z)^2] with varprop's weights (``varprop.stability``).

    Attributes:
        target: the target variance q, a fixed point by construction of the gain.
        slope: the map's slope F'(q) at the target (|slope| < 1: deviations decay).
        kind: ``"stable"``, ``"neutral"`` or ``"unstable"``.
        chi1: per-layer factor of the gradient's second moment, n Var[w] E[phi'^2].
        doubling_depth: layers over which a small deviation halves (stable) or doubles (unstable).
        verdict: one sentence from ``varprop.stability``.
        fixed_points: every fixed point of the map as ``(q, slope, kind)``, from ``varprop.dynamics.fixed_point``.
        phase: ``"ordered"``, ``"critical"`` or ``"chaotic"`` (chi1 < 1, = 1, > 1; Schoenholz et al. 2017).
        depth_scale_q: xi_q = -1 / ln|slope|, layers for a variance deviation to change by e.
        depth_scale_c: xi_c = -1 / ln chi1, the correlation map's depth scale at c = 1.
    """

    target: float
    slope: float
    kind: str
    chi1: float
    doubling_depth: float
    verdict: str
    fixed_points: tuple[tuple[float, float, str], ...] = ()
    phase: str = ""
    depth_scale_q: float = math.nan
    depth_scale_c: float = math.nan


@dataclass(frozen=True)
class ReportSummary:
    """Everything ``varprop report`` computed, with the files it wrote.

    Attributes:
        activation: canonical spec string.
        var: pre-activation variance q.
        exact: ``varprop.moments`` (method ``auto``) with error estimates.
        quadrature: ``varprop.moments(method="quadrature")`` with error estimates.
        closed_form: ``varprop.moments(method="closed_form")``, or ``None`` if the activation has none.
        gain: fan_in gain sqrt(q / E[phi^2]) (standard deviation times sqrt(fan_in)).
        backward_gain: fan_out gain 1 / sqrt(E[phi'^2]).
        width: layer width (fan_in = fan_out) of the simulated network.
        depth: number of layers of the simulated network.
        batch: inputs pushed through it.
        seed: random seed.
        monte_carlo: Monte Carlo estimates of E[phi^2] at increasing sample sizes.
        schemes: the simulated initialization schemes.
        stability: the variance map's fixed point and stability, or ``None`` if unavailable.
        curve: the q-curve.
        out_dir: the report folder.
        index: path of ``index.html``.
        scales: ``varprop.weight_std`` at fan_in = ``width``: ``weight_variance``, ``weight_std``,
            ``truncated_normal_std`` and ``uniform_bound``.
        figures: figure name -> written files (PNG and SVG).
        seconds: wall time of the whole report.
        notes: caveats (e.g. a section skipped because a module is missing).
    """

    activation: str
    var: float
    exact: Moments
    quadrature: Moments
    closed_form: Moments | None
    gain: float
    backward_gain: float
    width: int
    depth: int
    batch: int
    seed: int
    monte_carlo: tuple[MonteCarloPoint, ...]
    schemes: tuple[SchemeResult, ...]
    stability: StabilityResult | None
    curve: QCurve
    out_dir: Path
    index: Path
    scales: dict[str, float] = field(default_factory=dict)
    figures: dict[str, list[Path]] = field(default_factory=dict)
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def fan_var(self) -> float:
        """n Var[w] = gain^2 (a variance times the fan): the seed's "1.55" for ELU at q = 1."""
        return self.gain * self.gain

    @property
    def closed_form_gap(self) -> float | None:
        """Largest |closed form - quadrature| over E[phi], E[phi^2], E[phi'^2], or ``None``."""
        if self.closed_form is None:
            return None
        pairs = (
            (self.closed_form.mean, self.quadrature.mean),
            (self.closed_form.second_moment, self.quadrature.second_moment),
            (self.closed_form.deriv_second_moment, self.quadrature.deriv_second_moment),
        )
        return max(abs(float(a) - float(b)) for a, b in pairs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the summary (arrays as lists, paths as strings)."""

        def moments_dict(result: Moments | None) -> dict[str, Any] | None:
            if result is None:
                return None
            data: dict[str, Any] = {
                "mean": result.mean,
                "second_moment": result.second_moment,
                "variance": result.variance,
                "deriv_second_moment": result.deriv_second_moment,
                "method": result.method,
            }
            if result.error is not None:
                data["error"] = list(result.error)
            return data

        return {
            "activation": self.activation,
            "var": self.var,
            "moments": moments_dict(self.exact),
            "quadrature": moments_dict(self.quadrature),
            "closed_form": moments_dict(self.closed_form),
            "closed_form_gap": self.closed_form_gap,
            "gain": self.gain,
            "fan_var": self.fan_var,
            "backward_gain": self.backward_gain,
            "weight_scales": dict(self.scales),
            "network": {
                "depth": self.depth,
                "width": self.width,
                "batch": self.batch,
                "seed": self.seed,
                "schemes": [scheme.to_dict() for scheme in self.schemes],
            },
            "monte_carlo": [point.__dict__ for point in self.monte_carlo],
            "stability": None
            if self.stability is None
            else {
                **{key: value for key, value in self.stability.__dict__.items() if key != "fixed_points"},
                "fixed_points": [
                    {"q": q, "slope": slope, "kind": kind} for q, slope, kind in self.stability.fixed_points
                ],
            },
            "q_curve": self.curve.to_dict(),
            "out_dir": str(self.out_dir),
            "index": str(self.index),
            "figures": {name: [str(path) for path in paths] for name, paths in self.figures.items()},
            "seconds": self.seconds,
            "notes": list(self.notes),
        }

    def format_text(self) -> str:
        """The plain-text summary ``varprop report`` prints (every number from the computation)."""
        exact = self.exact
        errors = exact.error or (math.nan,) * 4
        closed = (
            "no closed form"
            if self.closed_form_gap is None
            else f"closed form and quadrature agree to {self.closed_form_gap:.1e}"
        )
        lines = [
            f"varprop report: {self.activation} at pre-activation variance q = {self.var:g}",
            "",
            f"exact Gaussian moments, y ~ N(0, q)  [{exact.method}; {closed}]",
            f"  E[phi(y)^2]    {float(exact.second_moment):<20.15g}  (error estimate {float(errors[1]):.1e})",
            f"  E[phi(y)]      {float(exact.mean):<20.15g}",
            f"  Var[phi(y)]    {float(exact.variance):<20.15g}",
            f"  E[phi'(y)^2]   {float(exact.deriv_second_moment):<20.15g}",
            "",
            "weights of a layer with fan_in n",
            f"  n*Var[w] = q / E[phi^2]    {self.fan_var:<18.15g}  variance:           Var[w] = {self.fan_var:.6g} / n",
            f"  gain = std[w]*sqrt(n)      {self.gain:<18.15g}  standard deviation: std[w] = {self.gain:.6g} / sqrt(n)",
            f"  n = {self.width}: Var[w] = {self.scales.get('weight_variance', math.nan):.6g}, "
            f"std[w] = {self.scales.get('weight_std', math.nan):.6g}",
        ]
        if self.monte_carlo:
            lines += ["", "Monte Carlo estimates of E[phi(y)^2] (the seed answer's method)"]
            cells = [["samples", "estimate", "std. error", "|error|", "time"]]
            cells += [
                [
                    f"{point.samples:.0e}",
                    f"{point.estimate:.8f}",
                    f"{point.standard_error:.1e}",
                    f"{point.abs_error:.1e}",
                    f"{point.seconds:.2f}s",
                ]
                for point in self.monte_carlo
            ]
            lines += columns(cells, ">>>>>")
        if self.schemes:
            layers = [layer for layer in _SUMMARY_LAYERS if layer <= self.depth]
            if self.depth not in layers:
                layers.append(self.depth)
            lines += [
                "",
                f"plain network, {self.depth} layers of width {self.width}, {self.batch} inputs of variance "
                f"{self.var:g}: pre-activation variance",
            ]
            cells = [["initialization", "std[w]*sqrt(n)", *(f"layer {layer}" for layer in layers)]]
            cells += [
                [
                    scheme.label,
                    f"{scheme.std_times_sqrt_fan:.6f}",
                    *(f"{float(scheme.variances[layer - 1]):.4g}" for layer in layers),
                ]
                for scheme in self.schemes
            ]
            lines += columns(cells, "<" + ">" * (len(layers) + 1))
        if self.stability is not None:
            stability = self.stability
            points = ", ".join(f"q* = {q:.6g} ({kind})" for q, _, kind in stability.fixed_points)
            lines += [
                "",
                "variance map q -> n*Var[w]*E[phi(sqrt(q) z)^2] with varprop's weights",
                f"  fixed points: {points}" if points else "  fixed points: none found",
                f"  at q = {stability.target:g}: slope {stability.slope:.6g}, {stability.kind} "
                f"(xi_q = {stability.depth_scale_q:.4g} layers); gradient factor per layer chi1 = "
                f"{stability.chi1:.6g}, {stability.phase} (xi_c = {stability.depth_scale_c:.4g} layers)",
                f"  {stability.verdict}",
            ]
        lines += [""]
        lines += [f"note: {note}" for note in self.notes]
        count = len(self.figures)
        kinds = sorted({path.suffix[1:].upper() for paths in self.figures.values() for path in paths})
        lines.append(f"wrote {self.index} and {count} figures ({' + '.join(kinds)}) in {self.seconds:.1f} s")
        return "\n".join(line.rstrip() for line in lines)
