"""The q-curve: how the variance-preserving constant of an activation depends on the variance q.

c(q) = E[phi(sqrt(q) z)^2] / q, z ~ N(0, 1), is the factor by which a layer with n Var[w] = 1 scales
the pre-activation variance q; the variance-preserving gain at q is gain(q) = 1 / sqrt(c(q)), and
n Var[w] = 1 / c(q). For ELU, c(1) = 0.644945417492924 (the seed's 0.645), c -> 1 as q -> 0 and
c -> 1/2 as q -> infinity (the seed answer states both limits).

Limits, for an activation with one-sided slopes phi'(0-), phi'(0+) at 0 and asymptotic slopes
s_- = lim phi(x)/x (x -> -inf), s_+ = lim phi(x)/x (x -> +inf): phi(sqrt(q) z)/sqrt(q) tends to
s_+ z for z > 0 and s_- z for z < 0, so

    c(q) -> (phi'(0-)^2 + phi'(0+)^2) / 2   as q -> 0, when phi(0) = 0 (else c ~ phi(0)^2 / q -> inf),
    c(q) -> (s_-^2 + s_+^2) / 2             as q -> infinity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import VarpropValueError
from .._validation import check_positive_int, check_real
from ..activations import activation as resolve_activation
from ..gaussian import moments
from ._variance_map import stability

__all__ = ["QCurve", "q_curve", "q_limits", "stability_slopes"]

FloatArray = NDArray[np.float64]

_ZERO_TOLERANCE = 1e-12  # |phi(0)| below this counts as phi(0) = 0
_SLOPE_PROBES = (1e7, 1e8, 1e9)  # x at which the asymptotic slope is read (two secants must agree)
_SLOPE_AGREEMENT = 1e-6  # relative (and absolute) agreement required between the two secants


def _asymptotic_slope(act: Any, sign: float) -> float | None:
    """lim phi(x)/x as x -> sign * infinity, or ``None`` if it does not settle (no limit).

    Read as secant slopes (phi(x2) - phi(x1)) / (x2 - x1) far out, which cancel a constant offset
    exactly (softshrink's x - lambd, tanhshrink's x - tanh x) where phi(x)/x would keep a 1/x error.
    """
    x = sign * np.array(_SLOPE_PROBES)
    with np.errstate(all="ignore"):
        values = np.asarray(act(x), dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return None
    near = float((values[1] - values[0]) / (x[1] - x[0]))
    far = float((values[2] - values[1]) / (x[2] - x[1]))
    if abs(near - far) > _SLOPE_AGREEMENT * max(1.0, abs(far)):
        return None
    return 0.0 if abs(far) < _SLOPE_AGREEMENT else far


def q_limits(act: Any) -> tuple[float | None, float | None]:
    """Limits of c(q) = E[phi(sqrt(q) z)^2] / q as q -> 0 and as q -> infinity.

    Args:
        act: activation spec, ``Activation`` or callable.

    Returns:
        ``(small_q_limit, large_q_limit)``; ``None`` where c(q) has no finite limit (phi(0) != 0 as
        q -> 0, or phi(x)/x has no limit as x -> +-infinity).

    Example:
        >>> q_limits("elu")
        (1.0, 0.5)
    """
    activation = resolve_activation(act)
    with np.errstate(all="ignore"):
        at_zero = float(np.asarray(activation(np.array([0.0])))[0])
        tiny = np.array([-1e-300, 1e-300])
        slopes = np.asarray(activation.derivative(tiny), dtype=np.float64)
    small: float | None = None
    if abs(at_zero) <= _ZERO_TOLERANCE and np.all(np.isfinite(slopes)):
        small = float(0.5 * (slopes[0] ** 2 + slopes[1] ** 2))
    left, right = _asymptotic_slope(activation, -1.0), _asymptotic_slope(activation, 1.0)
    large = None if left is None or right is None else 0.5 * (left * left + right * right)
    return small, large


@dataclass(frozen=True)
class QCurve:
    """c(q) and gain(q) of one activation over a grid of pre-activation variances.

    Attributes:
        activation: canonical spec string.
        q: the variances (log-spaced).
        second_moment: E[phi(sqrt(q) z)^2].
        c: second_moment / q (n Var[w] = 1 / c preserves the variance q).
        gain: sqrt(q / second_moment) = 1 / sqrt(c), the fan_in gain at q.
        small_q_limit: lim c(q) as q -> 0, or ``None`` if infinite.
        large_q_limit: lim c(q) as q -> infinity, or ``None`` if there is no finite limit.
    """

    activation: str
    q: FloatArray
    second_moment: FloatArray
    c: FloatArray
    gain: FloatArray
    small_q_limit: float | None
    large_q_limit: float | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as lists)."""
        return {
            "activation": self.activation,
            "q": self.q.tolist(),
            "second_moment": self.second_moment.tolist(),
            "c": self.c.tolist(),
            "gain": [value if math.isfinite(value) else None for value in self.gain.tolist()],
            "small_q_limit": self.small_q_limit,
            "large_q_limit": self.large_q_limit,
        }


def q_curve(
    act: Any, q_min: float = 1e-4, q_max: float = 1e4, points: int = 81, include: Sequence[float] = ()
) -> QCurve:
    """Compute c(q) = E[phi(sqrt(q) z)^2] / q and gain(q) = 1/sqrt(c(q)) on a log grid of q.

    Args:
        act: activation spec, ``Activation`` or callable.
        q_min: smallest variance (> 0).
        q_max: largest variance (> q_min).
        points: number of log-spaced grid points (>= 2).
        include: extra variances (> 0) to put on the grid, e.g. the one a report marks.

    Returns:
        A ``QCurve``; the moments come from one vectorized ``varprop.moments`` call.

    Raises:
        VarpropValueError: bad range (gain is ``inf`` where E[phi^2] = 0, e.g. hardshrink at tiny q).

    Example:
        >>> curve = q_curve("elu", points=9)
        >>> round(float(curve.c[4]), 15)  # q = 1
        0.644945417492924
    """
    low = check_real("q_min", q_min, minimum=0.0, strict=True)
    high = check_real("q_max", q_max, minimum=low, strict=True)
    count = check_positive_int("points", points)
    if count < 2:
        raise VarpropValueError(f"points must be >= 2, got {count}")
    activation = resolve_activation(act)
    extra = [check_real("include", value, minimum=0.0, strict=True) for value in include]
    grid = np.unique(np.concatenate([np.logspace(math.log10(low), math.log10(high), count), extra]))
    second = np.asarray(moments(activation, var=grid).second_moment, dtype=np.float64)
    c = second / grid
    small, large = q_limits(activation)
    with np.errstate(divide="ignore"):
        gains = 1.0 / np.sqrt(c)  # inf where E[phi^2] underflows to 0 (hardshrink at tiny q)
    return QCurve(
        activation=activation.spec,
        q=grid,
        second_moment=second,
        c=c,
        gain=gains,
        small_q_limit=small,
        large_q_limit=large,
    )


def stability_slopes(act: Any, curve: QCurve) -> FloatArray:
    """The stability slope of the fixed point q at each q of ``curve`` (``varprop.dynamics.stability``).

    With the weights set to varprop's gain at q, q is a fixed point of the variance map; its slope
    there, 1 + d ln c(q) / d ln q, says whether deviations grow (> 1) or decay (< 1) with depth.

    Returns:
        The slopes (NaN where E[phi^2] = 0, which no gain can fix).
    """
    slopes = np.full(curve.q.shape, np.nan)
    usable = curve.second_moment > 0
    if usable.any():
        slopes[usable] = np.asarray(stability(act, var=curve.q[usable]).slope, dtype=np.float64)
    return slopes
