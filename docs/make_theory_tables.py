"""Print every number quoted in ``docs/theory.md`` (Markdown), from varprop's public core.

    python docs/make_theory_tables.py > /tmp/theory_tables.md

Sections: the seed's ELU constants and the corrected closed forms; the stability of the variance
map for every registered activation (exact q = 1 gain); the fixed points at that gain; the slope
over a range of target variances; the edge of chaos; SELU's constants and Jacobian; the phases
(ordered / critical / chaotic) with both depth scales; the critical initializations of
``init_model(..., objective="critical")``. The measured gradient growth and Jacobian spectra of deep
torch networks come from ``docs/make_isometry_table.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import erfcx

from varprop import moments
from varprop._errors import VarpropError
from varprop.activations._registry import activation, registered_activations
from varprop.dynamics._criticality import critical_point
from varprop.dynamics._edge_of_chaos import edge_of_chaos
from varprop.dynamics._variance_map import fixed_point, stability
from varprop.gains._gain import gain
from varprop.selu._fixed_point import selu_jacobian, selu_parameters

# Registered activations without defaults get the example of torch.nn.Threshold's documentation.
SPECS_WITHOUT_DEFAULTS = {"threshold": "threshold(threshold=0.1, value=20.0)"}
EOC_BIASES = (0.0, 0.1, 0.3, 1.0)
NEUTRAL_GRID = np.logspace(-3, 3, 601)  # target variances searched for the slope closest to 1


def specs() -> list[str]:
    return [SPECS_WITHOUT_DEFAULTS.get(name, name) for name in registered_activations()]


def seed_constants() -> list[str]:
    elu = moments("elu", var=1.0)
    g = float(gain("elu", 1.0))
    sigma = 1.0
    a_term = 0.5 * float(erfcx(sigma / math.sqrt(2)))
    b_term = 0.5 * float(erfcx(math.sqrt(2) * sigma))
    closed_mean = sigma / math.sqrt(2 * math.pi) + (a_term - 0.5)
    closed_second = sigma**2 / 2 + (b_term - 2 * a_term + 0.5)
    closed_deriv = 0.5 + b_term
    return [
        "### The seed's ELU constants (q = 1)",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| E[elu(z)^2] (quadrature) | {float(elu.second_moment):.15g} |",
        f"| E[elu(z)^2] (closed form, A and B below) | {closed_second:.15g} |",
        f"| A = erfcx(1/sqrt 2)/2 = E[e^z; z < 0] | {a_term:.15g} |",
        f"| B = erfcx(sqrt 2)/2 = E[e^(2z); z < 0] | {b_term:.15g} |",
        f"| E[elu(z)] (quadrature / closed form) | {float(elu.mean):.15g} / {closed_mean:.15g} |",
        f"| E[elu'(z)^2] (quadrature / closed form) | {float(elu.deriv_second_moment):.15g} / {closed_deriv:.15g} |",
        f"| n Var[w] = 1 / E[elu^2] | {g * g:.15g} |",
        f"| gain = sqrt(n) std[w] | {g:.15g} |",
        f"| ReLU: E[relu(z)^2], gain | {float(moments('relu').second_moment):.15g}, {float(gain('relu')):.15g} |",
    ]


def _slope(value: float) -> str:
    """A slope with enough digits to show on which side of 1 it lies."""
    if abs(value - 1.0) <= 1e-12:  # neutral to rounding (ReLU: 1 + 1e-15)
        return "1"
    if abs(value - 1.0) < 5e-5:
        return f"{value:.9f}"
    return f"{value:.4f}"


def _cell(value: float, digits: int = 4) -> str:
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}"


def classification() -> list[str]:
    lines = [
        "### Stability at q = 1 with the exact gain (every registered activation)",
        "",
        "slope = 1 + d ln c/d ln q at q = 1; 'layers' = ln 2 / |ln slope|, the depth over which a small deviation",
        "halves (stable) or doubles (unstable); chi1 = gain^2 E[phi'^2]; 'most neutral q' = the target variance in",
        "[1e-3, 1e3] whose slope is closest to 1.",
        "",
        "| activation | gain | slope | kind | layers | chi1 | slope at q = 0.01 | slope at q = 100 "
        "| most neutral q (slope) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in specs():
        act = activation(spec)
        try:
            at_one = stability(act, var=1.0)
        except VarpropError as exc:
            lines.append(f"| {act.spec} | — | — | {exc} | | | | | |")
            continue
        extremes = []
        for q in (0.01, 100.0):
            try:
                extremes.append(_cell(float(stability(act, var=q).slope)))
            except VarpropError:
                extremes.append("— (E[phi^2] = 0)")
        curve = _safe_curve(act)
        q_values = np.asarray(curve.var)
        slopes = np.asarray(curve.slope)
        best = int(np.argmin(np.abs(slopes - 1.0)))
        lines.append(
            f"| {act.spec} | {float(at_one.weight_std):.6f} | {float(at_one.slope):.4f} | {at_one.kind} | "
            f"{_cell(float(at_one.doubling_depth), 3)} | {float(at_one.chi1):.4f} | {extremes[0]} | {extremes[1]} | "
            f"{q_values[best]:.3g} ({slopes[best]:.4f}) |"
        )
    return lines


def _safe_curve(act: Any) -> Any:
    """stability over NEUTRAL_GRID, dropping the variances where E[phi^2] = 0 (dead zones)."""
    try:
        return stability(act, var=NEUTRAL_GRID)
    except VarpropError:
        alive = np.asarray(moments(act, var=NEUTRAL_GRID).second_moment) > 0
        return stability(act, var=NEUTRAL_GRID[alive])


def fixed_points() -> list[str]:
    lines = [
        "### Every fixed point of the variance map at the exact q = 1 gain (zero bias)",
        "",
        "| activation | fixed points q* (kind, slope) |",
        "|---|---|",
    ]
    for spec in specs():
        act = activation(spec)
        try:
            points = fixed_point(act, float(gain(act, 1.0)))
        except VarpropError as exc:
            lines.append(f"| {act.spec} | {exc} |")
            continue
        shown = []
        for point in points:
            if point.continuum:
                shown.append("every q >= 0 (the map is the identity)")
            else:
                shown.append(f"{point.q:.6g} ({point.kind}, {_slope(point.slope)})")
        lines.append(f"| {act.spec} | {'; '.join(shown)} |")
    return lines


def slope_profiles() -> list[str]:
    q_values = (0.01, 0.1, 1.0, 10.0, 30.0, 100.0, 1000.0)
    lines = [
        "### Slope of the variance map against the target variance q (exact gain at q)",
        "",
        "| activation | " + " | ".join(f"q = {q:g}" for q in q_values) + " |",
        "|---|" + "---|" * len(q_values),
    ]
    for name in ("elu", "selu", "tanh", "relu", "silu", "gelu", "mish", "softplus"):
        slopes = np.asarray(stability(name, var=np.array(q_values)).slope)
        lines.append(f"| {activation(name).spec} | " + " | ".join(_slope(float(s)) for s in slopes) + " |")
    return lines


def biased_fixed_points() -> list[str]:
    """With a bias the slope at q* is (1 - sigma_b^2 / q*) (1 + d ln c / d ln q): it can drop below 1."""
    lines = [
        "### SiLU, GELU and Mish with a bias: fixed points (kind, slope)",
        "",
        "| activation | sigma_w | sigma_b | fixed points q* (kind, slope) |",
        "|---|---|---|---|",
    ]
    for name in ("silu", "gelu", "mish"):
        for weight, bias in ((1.0, 1.0), (1.3, 0.3), (1.35, 2.0)):
            points = fixed_point(name, weight, bias)
            shown = "; ".join(f"{p.q:.6g} ({p.kind}, {_slope(p.slope)})" for p in points)
            lines.append(f"| {name} | {weight:g} | {bias:g} | {shown} |")
    return lines


def edge_table() -> list[str]:
    lines = [
        "### Edge of chaos: sigma_w (q*) for each sigma_b",
        "",
        "'none': no weight scale gives chi1 = 1 at a fixed point; q* = 0 marks the zero-signal solution",
        "sigma_w = 1/|phi'(0)| (bias 0, phi(0) = 0); 'any q' marks the identity map of positively homogeneous units.",
        "",
        "| activation | " + " | ".join(f"sigma_b = {b:g}" for b in EOC_BIASES) + " |",
        "|---|" + "---|" * len(EOC_BIASES),
    ]
    for spec in specs():
        act = activation(spec)
        cells = []
        for bias in EOC_BIASES:
            try:
                point = edge_of_chaos(act, bias)
            except VarpropError:
                cells.append("none")
                continue
            where = "any q" if point.continuum else f"q* {point.q:.6g}"
            cells.append(f"{point.weight_std:.12g} ({where})")
        lines.append(f"| {act.spec} | " + " | ".join(cells) + " |")
    return lines


def published_edge() -> list[str]:
    lines = [
        "### Edge of chaos, full precision (issue 3's checked values)",
        "",
        "| case | sigma_w | q* |",
        "|---|---|---|",
    ]
    for name, bias in (("tanh", 0.0), ("tanh", 0.3), ("tanh", 1.0), ("relu", 0.0), ("elu", 0.1)):
        point = edge_of_chaos(name, bias)
        lines.append(f"| {name}, sigma_b = {bias:g} | {point.weight_std!r} | {point.q!r} |")
    return lines


def selu_section() -> list[str]:
    alpha, scale = selu_parameters()
    jac = selu_jacobian()
    return [
        "### SELU (Klambauer et al. 2017)",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| alpha_01 | {alpha!r} |",
        f"| lambda_01 | {scale!r} |",
        "| Jacobian at (0, 1), omega = 0, tau = 1 "
        f"| [[{jac[0, 0]:.6f}, {jac[0, 1]:.6f}], [{jac[1, 0]:.6f}, {jac[1, 1]:.6f}]] |",
        f"| spectral norm | {float(np.linalg.norm(jac, 2)):.6f} |",
    ]


PHASE_SPECS = ("tanh", "erf", "softsign", "elu", "selu", "gelu", "silu", "mish", "relu", "sigmoid")
CRITICAL_SPECS = (
    "tanh",
    "erf",
    "softsign",
    "hardtanh",
    "elu",
    "selu",
    "mish",
    "gelu",
    "silu",
    "sigmoid",
    "relu",
    "leaky_relu",
    "softplus",
)
GRADIENT_DEPTHS = (10, 30, 100)


def phases() -> list[str]:
    lines = [
        "### Phases at q = 1 with the exact gain (zero bias): both depth scales",
        "",
        "chi_q = slope of the variance map, chi_c = chi1 = slope of the correlation map at c = 1 (the gradient's",
        "per-layer factor); xi = -1 / ln chi (negative: growth; Schoenholz et al. 2017); chi1^L the predicted",
        "factor of the gradient's second moment over L layers.",
        "",
        "| activation | chi_q (slope) | kind | xi_q | chi1 | phase | xi_c | "
        + " | ".join(f"chi1^{depth}" for depth in GRADIENT_DEPTHS)
        + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(GRADIENT_DEPTHS),
    ]
    for spec in PHASE_SPECS:
        result = stability(spec, var=1.0)
        chi1 = float(result.chi1)
        factors = " | ".join(f"{chi1**depth:.4g}" for depth in GRADIENT_DEPTHS)
        lines.append(
            f"| {activation(spec).spec} | {_slope(float(result.slope))} | {result.kind} | "
            f"{_cell(float(result.depth_scale_q))} | {_slope(chi1)} | {result.phase} | "
            f"{_cell(float(result.depth_scale_c))} | {factors} |"
        )
    return lines


def critical_points() -> list[str]:
    lines = [
        "### Critical initializations (objective='critical', varprop.dynamics.critical_point)",
        "",
        "sigma_w^2 = 1 / E[phi'^2], sigma_b^2 = q* - sigma_w^2 E[phi^2] at the default q*; chi1 = 1 there.",
        "",
        "| activation | q* | sigma_w | sigma_b | chi1 | chi_q (slope) | xi_q | how q* was chosen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in CRITICAL_SPECS:
        name = activation(spec).spec
        try:
            point = critical_point(spec)
        except VarpropError as exc:
            reason = "no non-trivial point (ReLU-like)" if "non-trivial" in str(exc) else "no point (sigma_b^2 < 0)"
            lines.append(f"| {name} | — | — | — | — | — | — | {reason} |")
            continue
        lines.append(
            f"| {name} | {point.q:g} | {point.weight_std:.6f} | {point.bias_std:.6g} | {point.chi1:.12g} | "
            f"{point.slope:.4f} | {_cell(point.depth_scale_q)} | {point.rule} |"
        )
    return lines


def main() -> None:
    sections = [seed_constants(), classification(), fixed_points(), biased_fixed_points(), slope_profiles()]
    sections += [published_edge(), edge_table()]
    sections.append(selu_section())
    sections += [phases(), critical_points()]
    print("\n\n".join("\n".join(section) for section in sections))


if __name__ == "__main__":
    main()
