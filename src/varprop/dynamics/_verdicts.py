"""Phases and verdicts of a deep plain network at a fixed point: the variance map's slope and chi1 together.

Schoenholz et al. (2017), "Deep information propagation": at a fixed point q* of the variance map two small
perturbations evolve independently, each geometrically,

    delta q_l   ~ chi_q^l,  chi_q = F'(q*)                          (the variance map's slope),
    delta c_l   ~ chi_c^l,  chi_c = sigma_w^2 E[phi'(sqrt(q*) z)^2]  (the correlation map's slope at c = 1),

with depth scales xi_q = -1 / ln chi_q and xi_c = -1 / ln chi_c. chi_c is also chi1, the per-layer factor of the
gradient's second moment (their eq. 8). The phase is set by chi1 alone: ordered (chi1 < 1: inputs become correlated,
gradients vanish), critical (chi1 = 1, the edge of chaos) and chaotic (chi1 > 1: nearby inputs decorrelate, gradients
explode); the slope says whether the variance itself stays at q* (stable, neutral or unstable). A verdict needs both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["NEUTRAL_TOLERANCE", "PHASES", "phase", "stability_verdict"]

#: |slope - 1| <= NEUTRAL_TOLERANCE counts as neutral (and |chi1 - 1| <= it as critical). Slopes are computed to
#: ~1e-13; a slope within 1e-9 of 1 changes a deviation by a factor exp(1e-9 L), i.e. by < 0.1% over a million layers.
NEUTRAL_TOLERANCE = 1e-9
PHASES: tuple[str, ...] = ("ordered", "critical", "chaotic")


def phase(chi1: Any) -> Any:
    """``"ordered"`` (chi1 < 1 - tol), ``"critical"`` (|chi1 - 1| <= tol) or ``"chaotic"``; vectorized.

    ``tol`` is ``NEUTRAL_TOLERANCE`` (Schoenholz et al. 2017's phases of the correlation map at c = 1).

    Example:
        >>> phase(1.178), phase(0.93), phase(1.0)
        ('chaotic', 'ordered', 'critical')
    """
    chi = np.asarray(chi1, dtype=np.float64)
    phases = np.where(np.abs(chi - 1.0) <= NEUTRAL_TOLERANCE, "critical", np.where(chi < 1.0, "ordered", "chaotic"))
    return str(phases) if phases.ndim == 0 else phases


def _layers(scale: float) -> str:
    return "infinitely many" if math.isinf(scale) else f"{abs(scale):.3g}"


def _gradient_clause(phase_name: str, chi1: float, xi_c: float) -> str:
    if phase_name == "critical":
        return (
            f"critical (chi1 = {chi1:.4g}): the gradient's second moment keeps its size through depth and nearby "
            "inputs stay distinguishable (xi_c infinite)"
        )
    if phase_name == "ordered":
        return (
            f"ordered (chi1 = {chi1:.4g}): the gradient's second moment shrinks by a factor {chi1:.4g} per layer "
            f"and nearby inputs become correlated over xi_c = {_layers(xi_c)} layers"
        )
    return (
        f"chaotic (chi1 = {chi1:.4g}): the gradient's second moment grows by a factor {chi1:.4g} per layer and "
        f"nearby inputs decorrelate over xi_c = {_layers(xi_c)} layers"
    )


def stability_verdict(kind: str, slope: float, doubling: float, var: float, chi1: float, xi_c: float) -> str:
    """One sentence on a target variance ``var`` held by its exact gain: the phase (chi1, xi_c) first, then the
    variance map (slope, the layers for a deviation to halve or double)."""
    phase_name = str(phase(chi1))
    head = f"at var={var:g}: {_gradient_clause(phase_name, chi1, xi_c)}; "
    if kind == "neutral":
        return head + (
            "the variance is neutral (slope 1): deviations neither grow nor shrink, so finite-width noise makes the "
            "log-variance random-walk with depth"
        )
    if kind == "stable":
        tail = (
            f"the variance is stable (slope {slope:.4g}): a deviation halves every {doubling:.3g} layers, so deep "
            "networks return to the target"
        )
        if phase_name == "chaotic":
            tail += (
                "; for gradients too, use objective='critical' (varprop.torch.init_model) or a smaller target "
                "variance, nearer the edge of chaos"
            )
        return head + tail
    return head + (
        f"the variance is unstable (slope {slope:.4g}): a deviation doubles every {doubling:.3g} layers, so no static "
        "gain holds a deep plain network on target: calibrate each layer on a batch "
        "(varprop.torch.init_model(..., calibrate='gaussian')), choose a larger target variance (the slope "
        "falls towards 1 as var grows), or use normalization or residual connections"
    )
