"""The edge of chaos as an initialization: one (sigma_w, sigma_b, q*) per activation with chi1 = 1 at a stable q*.

For a chosen fixed-point variance q the edge-of-chaos conditions (Poole et al. 2016; Schoenholz et al. 2017) are
solved in closed form, no root finding:

    sigma_w^2 = 1 / E[phi'(sqrt(q) z)^2]                      (chi1 = 1),
    sigma_b^2 = q - sigma_w^2 E[phi(sqrt(q) z)^2]             (q is a fixed point of the variance map),

which is a point when sigma_b^2 >= 0. How q is chosen (``critical_point``'s default) depends on the activation:

- odd activations (tanh, erf, softsign, hardtanh: phi(-x) = -phi(x)): q* = 1/64, the near-linear regime. There
  E[phi'^2] is within a few percent of phi'(0)^2, so the Jacobian of a deep network with orthogonal weights has all
  its singular values near 1 (dynamical isometry, Pennington, Schoenholz & Ganguli 2017, who show the spread shrinks
  as q* -> 0 along the critical line); for tanh sigma_w = 1.0152, sigma_b = 0.00216. An odd activation that is
  linear near 0 (hardtanh: neutral there) takes the smallest stable q* of 1/16, 1/4, 1, 2, 4, ...
- other activations (ELU, SELU, GELU, SiLU, Mish; Hayou, Doucet & Rousseau 2019): the smallest q* in 1, 2, 4, ...,
  2^13 whose point exists (sigma_b^2 >= 0) and is stable (variance-map slope < 1): ELU and SELU at q* = 1, Mish 2,
  GELU 4, SiLU 16 (their points at smaller q* are unstable: the variance drifts off the edge of chaos).
- positively homogeneous activations (ReLU, leaky ReLU, identity): chi1 = sigma_w^2 E[phi'^2] does not depend on q,
  so chi1 = 1 only at He et al.'s sigma_w with sigma_b = 0, where every q is a fixed point (neutral) and biases
  make the variance grow without bound: no non-trivial point; ``critical_point`` raises and says what to use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import VarpropValueError
from .._validation import check_real
from ..activations import activation as resolve_activation
from ..activations._activation import Activation
from ._edge_of_chaos import edge_of_chaos
from ._variance_map import NEUTRAL_TOLERANCE, classify, depth_scale, gaussian_rows
from ._verdicts import phase

__all__ = ["ODD_FIXED_POINT", "CriticalPoint", "critical_point"]

#: q* of odd (tanh-like) activations: the near-linear regime (std 1/8), where tanh's E[phi'^2] = 0.970.
ODD_FIXED_POINT = 1.0 / 64.0
# Odd activations that are linear near 0 (hardtanh: neutral at 1/64) try these next, then the candidates below.
_ODD_FALLBACKS = (1.0 / 16.0, 0.25)
#: q* tried, in order, for the other activations: 1, 2, 4, ..., 2^13 (pre-activation std up to 90).
_CANDIDATES = tuple(2.0**k for k in range(14))
# Odd activations: |phi(x) + phi(-x)| <= 1e-12 (1 + |phi(x)|) on this grid (std-normal quantiles out to 8).
_ODD_GRID = np.linspace(0.05, 8.0, 160)
_ODD_TOLERANCE = 1e-12


@dataclass(frozen=True)
class CriticalPoint:
    """A point on the edge of chaos chosen as an initialization.

    Attributes:
        activation: the activation's spec.
        weight_std: sigma_w: weights of standard deviation sigma_w / sqrt(fan_in).
        bias_std: sigma_b: biases drawn from N(0, sigma_b^2).
        q: the fixed point q* of the variance map (the pre-activation variance of every layer).
        chi1: sigma_w^2 E[phi'(sqrt(q*) z)^2], 1 to rounding.
        slope: the variance map's slope at q* (chi_q; < 1 stable).
        kind: ``"stable"``, ``"neutral"`` or ``"unstable"`` (of q*).
        phase: ``"critical"`` (or ``"ordered"``/``"chaotic"`` if rounding moved chi1 beyond the tolerance).
        depth_scale_q: xi_q = -1 / ln chi_q, layers for a variance deviation to shrink by e.
        depth_scale_c: xi_c = -1 / ln chi1 (``inf`` at the edge of chaos).
        rule: how q* was chosen, in words.
    """

    activation: str
    weight_std: float
    bias_std: float
    q: float
    chi1: float
    slope: float
    kind: str
    phase: str
    depth_scale_q: float
    depth_scale_c: float
    rule: str

    def gradient_factor(self, depth: int) -> float:
        """chi1^depth: the predicted factor of the gradient's second moment over ``depth`` layers."""
        return float(self.chi1**depth)


def _is_odd(act: Activation) -> bool:
    with np.errstate(all="ignore"):
        ahead = np.asarray(act.function(_ODD_GRID), dtype=np.float64)
        behind = np.asarray(act.function(-_ODD_GRID), dtype=np.float64)
    return bool(np.all(np.abs(ahead + behind) <= _ODD_TOLERANCE * (1.0 + np.abs(ahead))))


def _point_at(act: Activation, q: float) -> tuple[float, float, float]:
    """(sigma_w^2, sigma_b^2, slope) of the chi1 = 1 point whose fixed point is q."""
    second, second_dvar, deriv = gaussian_rows(act, 0.0, q, ["second", "second_dvar", "deriv"])
    if not float(deriv) > 0.0:
        return math.nan, -math.inf, math.nan
    weight_var = 1.0 / float(deriv)
    return weight_var, q - weight_var * float(second), weight_var * float(second_dvar) / q


def _is_homogeneous(act: Activation) -> bool:
    """Every q is a fixed point with chi1 = 1 at sigma_b = 0 (ReLU, leaky ReLU, identity)."""
    try:
        return edge_of_chaos(act, 0.0).continuum
    except VarpropValueError:  # no edge of chaos at sigma_b = 0 at all (softplus): not homogeneous
        return False


def _homogeneous_error(act: Activation) -> VarpropValueError:
    point = edge_of_chaos(act, 0.0)
    return VarpropValueError(
        f"{act.spec!r} has no non-trivial edge of chaos: chi1 = sigma_w^2 E[phi'^2] does not depend on q, so chi1 = 1 "
        f"only at sigma_w = {point.weight_std:.12g} with sigma_b = 0, where every q is a fixed point (neutral) and "
        "any bias makes the variance grow without bound; that point is the exact variance-preserving gain: use "
        "objective='variance' (He et al. 2015), or a smooth activation (tanh, ELU) for a critical initialization"
    )


def critical_point(act: Any, var: Any = None) -> CriticalPoint:
    """The initialization on the edge of chaos for an activation: (sigma_w, sigma_b) with chi1 = 1 at a stable q*.

    sigma_w^2 = 1 / E[phi'(sqrt(q*) z)^2] and sigma_b^2 = q* - sigma_w^2 E[phi(sqrt(q*) z)^2] (Poole et al. 2016;
    Schoenholz et al. 2017): the variance map q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 has the fixed point q*
    and the correlation map's slope at c = 1 (the gradient's per-layer factor) is chi1 = 1. q* defaults to 1/64 for
    odd activations (near-linear: dynamical isometry with orthogonal weights, Pennington et al. 2017) and otherwise
    to the smallest of 1, 2, 4, ... 2^13 with a stable point (Hayou et al. 2019); see the module docstring. Checked
    values: tanh at q* = 1/64: sigma_w = 1.015164, sigma_b^2 = 4.65e-6; tanh at sigma_b^2 = 0.05 has
    sigma_w^2 = 1.761 (``edge_of_chaos``; Schoenholz et al. 2017, fig. 1, read 1.76).

    Args:
        act: activation spec, ``Activation`` or callable.
        var: the fixed point q* > 0 to use instead of the default (its point may then be unstable: see ``kind``).

    Returns:
        A ``CriticalPoint``.

    Raises:
        VarpropValueError: positively homogeneous activations (ReLU: no non-trivial point; the message says what to
            use), no point at ``var`` (sigma_b^2 would be negative, e.g. sigmoid, whose mean 1/2 alone exceeds q*),
            or no stable point among the default candidates.

    Example:
        >>> point = critical_point("tanh")
        >>> round(point.weight_std, 6), round(point.bias_std, 6), point.q, point.phase
        (1.015164, 0.002157, 0.015625, 'critical')
    """
    activation = resolve_activation(act)
    if _is_homogeneous(activation):
        raise _homogeneous_error(activation)
    if var is not None:
        q = check_real("var", var, minimum=0.0, strict=True)
        candidates: tuple[float, ...] = (q,)
        rule = f"q* = {q:g} (given)"
    elif _is_odd(activation):
        candidates = (ODD_FIXED_POINT, *_ODD_FALLBACKS, *_CANDIDATES)
        rule = "q* = 1/64: odd activation, near-linear regime (dynamical isometry with orthogonal weights)"
    else:
        candidates = _CANDIDATES
        rule = "q* = the smallest of 1, 2, 4, ... with a stable point"
    tried = []
    for q in candidates:
        weight_var, bias_var, slope = _point_at(activation, q)
        tried.append(f"q={q:g}: sigma_b^2={bias_var:.3g}, slope={slope:.4g}")
        if bias_var < 0.0 or not math.isfinite(weight_var):
            continue
        if var is None and not abs(slope) < 1.0 - NEUTRAL_TOLERANCE:
            continue
        chi1 = weight_var * float(gaussian_rows(activation, 0.0, q, ["deriv"])[0])
        if q != candidates[0] and var is None and _is_odd(activation):
            rule = f"q* = {q:g}: the smallest stable point of an odd activation (1/64 is not stable)"
        return CriticalPoint(
            activation=activation.spec,
            weight_std=math.sqrt(weight_var),
            bias_std=math.sqrt(bias_var),
            q=q,
            chi1=chi1,
            slope=slope,
            kind=str(classify(slope)),
            phase=str(phase(chi1)),
            depth_scale_q=float(depth_scale(slope)),
            depth_scale_c=float(depth_scale(chi1)),
            rule=rule,
        )
    raise VarpropValueError(
        f"no critical initialization for {activation.spec!r}: chi1 = 1 at a fixed point q* needs sigma_b^2 = "
        "q* - E[phi^2] / E[phi'^2] >= 0"
        + ("" if var is not None else " and a stable q*")
        + f"; tried {'; '.join(tried)}"
        + (
            ""
            if var is not None
            else "; pass var=<q*> to choose one, or use objective='variance' (the exact variance-preserving gain)"
        )
    )
