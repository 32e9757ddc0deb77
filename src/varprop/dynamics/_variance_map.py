"""Depth dynamics in the mean-field picture: the variance map, its fixed points and their stability.

A plain deep network y_{l+1} = W_{l+1} phi(y_l) + b_{l+1}, with i.i.d. weights of variance
weight_std^2 / fan_in and biases of variance bias_std^2, has (in the wide limit) Gaussian
pre-activations whose variance q follows the *variance map* (Poole et al. 2016; Schoenholz et
al. 2017; the seed's closing remark made quantitative)::

    q_{l+1} = F(q_l) = weight_std^2 * E[phi(sqrt(q_l) z)^2] + bias_std^2,     z ~ N(0, 1).

He et al. (2015) choose weight_std so that a target q is a fixed point. Whether a deep network
*stays* there depends on the slope F'(q*) (stable < 1 < unstable). The slope needs the derivative
of a Gaussian expectation in its variance; it is computed exactly, without differentiating phi,
from the heat-equation identity (the Gaussian density's own derivative in the variance)::

    d/dq E[g(m + sqrt(q) z)] = E[(z^2 - 1) g(m + sqrt(q) z)] / (2 q),

valid for any g with finite moments, including discontinuous ones. With the gain that makes q the
fixed point, slope(q) = q F'(q) / F(q) = 1 + d ln c(q) / d ln q, c(q) = E[phi(sqrt(q) z)^2] / q.

Every expectation goes through the graded Gauss-Legendre engine ``varprop.gaussian._quadrature``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .._errors import VarpropValueError
from .._validation import as_real_array, check_real
from ..activations import Activation
from ..activations import activation as resolve_activation
from ..gaussian import ROOT_NOISE, Scalar, float_or_array, gaussian_expectation, refuse_singular, scan_roots
from ._verdicts import NEUTRAL_TOLERANCE, phase, stability_verdict

__all__ = [
    "NEUTRAL_TOLERANCE",
    "SEARCH_RANGE",
    "FixedPoint",
    "MeanVarianceMap",
    "Stability",
    "VarianceMap",
    "fixed_point",
    "mean_variance_map",
    "stability",
    "variance_map",
]

FloatArray = NDArray[np.float64]
Kind = Literal["stable", "neutral", "unstable"]

#: Fixed points are searched for in q_min <= q <= q_max (pre-activation std from 1e-10 to 1e10).
SEARCH_RANGE = (1e-20, 1e20)
_POINTS_PER_DECADE = 8  # scan resolution of the fixed-point search (roots are then polished by brentq)
_IDENTITY_TOLERANCE = 1e-12  # |F(q) - q| <= this * q on the whole scan: the map is the identity


def check_std(name: str, value: Any) -> float:
    """A standard deviation: a finite real number >= 0 whose square is finite (the message names the bad value)."""
    std = check_real(name, value, minimum=0.0)
    if std > _MAX_STD:
        raise VarpropValueError(
            f"{name}={std!r} is too large: its square (the variance) exceeds the float64 range; use {name} <= 1e154"
        )
    return std


_MAX_STD = math.sqrt(float(np.finfo(np.float64).max))  # 1.34e154: the largest std whose square is finite


# ---------------------------------------------------------------------------------------------- engine

Row = Literal["first", "second", "second_dvar", "deriv", "deriv_dvar", "fourth", "z_second"]


def gaussian_rows(act: Activation, mean: Any, var: Any, rows: Sequence[Row]) -> FloatArray:
    """Several Gaussian expectations of phi(y), y ~ N(mean, var), in one vectorized engine call.

    Rows: ``first`` E[phi], ``second`` E[phi^2], ``second_dvar`` var * d/dvar E[phi^2]
    = E[(z^2 - 1) phi^2] / 2 (heat equation; 0 at var = 0), ``deriv`` E[phi'^2], ``deriv_dvar``
    var * d/dvar E[phi'^2], ``fourth`` E[phi^4], ``z_second`` E[z phi^2] = sqrt(var) d/dmean E[phi^2]
    (Stein's lemma; 0 at var = 0).

    Returns:
        Array of shape ``(len(rows), *broadcast_shape)``.
    """
    refuse_singular(act.spec, act.extra.get("singular_points", ()), "the depth dynamics")  # issue 12: poles
    mean_b, var_b = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64))
    shape = mean_b.shape
    mean_f, var_f = mean_b.ravel(), var_b.ravel()
    sigma = np.sqrt(var_f)
    inv_sigma = np.where(sigma > 0, 1.0 / np.where(sigma > 0, sigma, 1.0), 0.0)
    need_z = any(row in ("second_dvar", "deriv_dvar", "z_second") for row in rows)
    need_deriv = any(row in ("deriv", "deriv_dvar") for row in rows)

    def integrand(y: FloatArray, point: NDArray[np.intp]) -> list[FloatArray]:
        value = act.function(y)
        square = value * value
        slope_sq = act.derivative(y) ** 2 if need_deriv else square
        z = (y - mean_f[point]) * inv_sigma[point] if need_z else y
        z2m1 = 0.5 * (z * z - 1.0) if need_z else y
        table = {
            "first": value,
            "second": square,
            "second_dvar": z2m1 * square,
            "deriv": slope_sq,
            "deriv_dvar": z2m1 * slope_sq,
            "fourth": square * square,
            "z_second": z * square,
        }
        return [table[row] for row in rows]

    if mean_f.size == 1:  # the engine's lean scalar path (used by the root polishing)
        result = gaussian_expectation(
            integrand, np.asarray(mean_f[0]), np.asarray(var_f[0]), kinks=act.kinks, features=act.features
        )
    else:
        result = gaussian_expectation(integrand, mean_f, var_f, kinks=act.kinks, features=act.features)
    values = np.array(result.value, dtype=np.float64).reshape(len(rows), -1)
    degenerate = var_f == 0
    if degenerate.any():
        for index, row in enumerate(rows):
            if row in ("second_dvar", "deriv_dvar", "z_second"):
                values[index, degenerate] = 0.0
    return values.reshape((len(rows), *shape))


def second_moment_dvar_at_zero(act: Activation, mean: float) -> float:
    """lim_{q -> 0} d/dq E[phi(mean + sqrt(q) z)^2] = phi'(m)^2 + phi(m) phi''(m) (one-sided phi' at a kink).

    With phi(m) = 0 (the case of a fixed point at q = 0) this is (phi'(m+)^2 + phi'(m-)^2) / 2,
    exact. Otherwise phi''(m) comes from a central difference of phi' (step 1e-4 (1 + |m|),
    relative error ~1e-8); at a kink of phi with phi(m) != 0 the true limit is infinite.
    """
    point = np.array([np.nextafter(mean, -np.inf), np.nextafter(mean, np.inf)])
    with np.errstate(all="ignore"):
        left, right = (float(v) for v in act.derivative(point))
        at_mean = float(act.function(np.array([mean]))[0])
    limit = 0.5 * (left * left + right * right)
    if at_mean != 0.0:
        step = 1e-4 * (1.0 + abs(mean))
        with np.errstate(all="ignore"):
            ahead, behind = (float(v) for v in act.derivative(np.array([mean + step, mean - step])))
        limit += at_mean * (ahead - behind) / (2.0 * step)
    return limit


def classify(slope: Any) -> Any:
    """``"stable"`` (|slope| < 1 - tol), ``"neutral"`` (|slope - 1| <= tol) or ``"unstable"``; vectorized.

    A negative slope (F decreasing) is stable when its magnitude is below 1: deviations alternate in
    sign and shrink. ``tol`` is ``NEUTRAL_TOLERANCE``.
    """
    slope_a = np.asarray(slope, dtype=np.float64)
    kinds = np.where(
        np.abs(slope_a - 1.0) <= NEUTRAL_TOLERANCE,
        "neutral",
        np.where(np.abs(slope_a) < 1.0, "stable", "unstable"),
    )
    return str(kinds) if kinds.ndim == 0 else kinds


def depth_scale(factor: Any) -> Any:
    """-1 / ln|factor| (Schoenholz et al. 2017): layers over which a deviation changes by a factor e.

    Positive when deviations shrink (|factor| < 1), negative when they grow, ``inf`` when neutral
    (|factor - 1| <= ``NEUTRAL_TOLERANCE``) and 0 when factor = 0. Vectorized.
    """
    factor_a = np.abs(np.asarray(factor, dtype=np.float64))
    with np.errstate(divide="ignore"):
        scale = np.where(factor_a == 0.0, 0.0, -1.0 / np.log(np.where(factor_a == 0.0, 0.5, factor_a)))
    scale = np.where(np.abs(np.asarray(factor, dtype=np.float64) - 1.0) <= NEUTRAL_TOLERANCE, np.inf, scale)
    return float_or_array(scale)


# ---------------------------------------------------------------------------------------------- maps


@dataclass(frozen=True)
class VarianceMap:
    """The variance map q -> q' of a plain deep network (build it with ``variance_map``).

    q' = weight_std^2 * E[phi(bias_mean + sqrt(q) z)^2] + bias_std^2 (Poole et al. 2016). With
    zero-mean weights the pre-activations have mean ``bias_mean`` and variance q at every layer.

    Attributes:
        activation: the activation.
        weight_std: sigma_w; each weight has standard deviation sigma_w / sqrt(fan_in).
        bias_std: sigma_b, the standard deviation of the biases.
        bias_mean: mean of the biases (0 for the usual zero initialization).
    """

    activation: Activation
    weight_std: float
    bias_std: float = 0.0
    bias_mean: float = 0.0

    def _var(self, var: Any) -> FloatArray:
        return as_real_array("var", var, minimum=0.0)

    def __call__(self, var: Any) -> Scalar:
        """q' = weight_std^2 E[phi(sqrt(q) z)^2] + bias_std^2, vectorized over q."""
        q = self._var(var)
        (second,) = gaussian_rows(self.activation, self.bias_mean, q, ["second"])
        return float_or_array(self.weight_std**2 * second + self.bias_std**2)

    def slope(self, var: Any) -> Scalar:
        """dq'/dq = weight_std^2 E[(z^2 - 1) phi(sqrt(q) z)^2] / (2q) (heat equation; exact limit at q = 0)."""
        q = self._var(var)
        (second_dvar,) = gaussian_rows(self.activation, self.bias_mean, q, ["second_dvar"])
        positive = q > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            derivative = np.where(positive, second_dvar / np.where(positive, q, 1.0), 0.0)
        if not positive.all():
            derivative = np.where(positive, derivative, second_moment_dvar_at_zero(self.activation, self.bias_mean))
        return float_or_array(self.weight_std**2 * derivative)

    def backward(self, var: Any) -> Scalar:
        """Gradient second-moment factor per layer, weight_std^2 E[phi'(sqrt(q) z)^2] (chi_1 at a fixed point).

        Backpropagation multiplies the gradient's second moment by this factor per layer
        (Schoenholz et al. 2017, eq. 8); it is also the slope of the correlation map at c = 1.
        """
        q = self._var(var)
        (deriv,) = gaussian_rows(self.activation, self.bias_mean, q, ["deriv"])
        if (q == 0).any():
            deriv = np.where(q == 0, _deriv_second_moment_at_zero(self.activation, self.bias_mean), deriv)
        return float_or_array(self.weight_std**2 * deriv)

    def iterate(self, var: Any, depth: int) -> FloatArray:
        """The deterministic trajectory q_0 = var, q_1 = F(q_0), ..., q_depth (shape ``(depth + 1, *shape)``)."""
        q = self._var(var)
        layers = [q]
        for _ in range(int(depth)):
            layers.append(np.asarray(self(layers[-1]), dtype=np.float64))
        return np.stack(layers)


def _deriv_second_moment_at_zero(act: Activation, mean: float) -> float:
    """E[phi'(y)^2] as var -> 0: the mean of the one-sided squared derivatives at ``mean``."""
    point = np.array([np.nextafter(mean, -np.inf), np.nextafter(mean, np.inf)])
    with np.errstate(all="ignore"):
        left, right = (float(v) for v in act.derivative(point))
    return 0.5 * (left * left + right * right)


def variance_map(act: Any, weight_std: Any, bias_std: Any = 0.0, *, bias_mean: Any = 0.0) -> VarianceMap:
    """The mean-field variance map of a plain deep network (Poole et al. 2016; Schoenholz et al. 2017).

    q_{l+1} = weight_std^2 * E[phi(bias_mean + sqrt(q_l) z)^2] + bias_std^2, z ~ N(0, 1): the
    He et al. (2015) relation Var[y'] = n Var[w] E[x^2] applied layer after layer.

    Args:
        act: activation spec (``"elu"``), ``Activation`` or numpy callable.
        weight_std: sigma_w >= 0: weights have standard deviation sigma_w / sqrt(fan_in) (the gain).
        bias_std: sigma_b >= 0, the standard deviation of the biases.
        bias_mean: mean of the biases, hence of every pre-activation.

    Returns:
        A vectorized ``VarianceMap``: ``map(q)``, ``map.slope(q)``, ``map.backward(q)``, ``map.iterate(q, depth)``.

    Raises:
        VarpropValueError: negative, NaN or infinite ``weight_std`` / ``bias_std``.

    Example:
        >>> vmap = variance_map("relu", weight_std=2**0.5)
        >>> round(vmap(3.0), 12), round(vmap.slope(3.0), 12)
        (3.0, 1.0)
    """
    return VarianceMap(
        activation=resolve_activation(act),
        weight_std=check_std("weight_std", weight_std),
        bias_std=check_std("bias_std", bias_std),
        bias_mean=check_real("bias_mean", bias_mean),
    )


@dataclass(frozen=True)
class MeanVarianceMap:
    """The mean-aware map (mean, var) -> (mean', var') of a plain deep network (see ``mean_variance_map``)."""

    activation: Activation
    weight_std: float
    bias_std: float = 0.0
    bias_mean: float = 0.0
    weight_sum: float = 0.0

    def __call__(self, mean: Any, var: Any) -> tuple[Scalar, Scalar]:
        """(mean', var') = (weight_sum E[phi] + bias_mean, weight_std^2 E[phi^2] + bias_std^2), y ~ N(mean, var)."""
        mean_a = as_real_array("mean", mean)
        var_a = as_real_array("var", var, minimum=0.0)
        first, second = gaussian_rows(self.activation, mean_a, var_a, ["first", "second"])
        return (
            float_or_array(self.weight_sum * first + self.bias_mean),
            float_or_array(self.weight_std**2 * second + self.bias_std**2),
        )

    def jacobian(self, mean: float, var: float) -> FloatArray:
        """d(mean', var') / d(mean, var) at one point (var > 0), as a 2 x 2 array.

        d/dmean E[g] = E[z g] / sigma (Stein's lemma) and d/dvar E[g] = E[(z^2 - 1) g] / (2 var)
        (heat equation): no derivative of phi is needed.
        """
        mean_value = check_real("mean", mean)
        var_value = check_real("var", var, minimum=0.0, strict=True)
        sigma = math.sqrt(var_value)
        act = self.activation

        def integrand(y: FloatArray, point: NDArray[np.intp]) -> list[FloatArray]:
            value = act.function(y)
            z = (y - mean_value) / sigma
            return [z * value, 0.5 * (z * z - 1.0) * value, z * value * value, 0.5 * (z * z - 1.0) * value * value]

        z_first, heat_first, z_second, heat_second = gaussian_expectation(
            integrand, np.asarray(mean_value), np.asarray(var_value), kinks=act.kinks, features=act.features
        ).value
        return np.array(
            [
                [self.weight_sum * z_first / sigma, self.weight_sum * heat_first / var_value],
                [self.weight_std**2 * z_second / sigma, self.weight_std**2 * heat_second / var_value],
            ]
        )


def mean_variance_map(
    act: Any, weight_std: Any, bias_std: Any = 0.0, *, bias_mean: Any = 0.0, weight_sum: Any = 0.0
) -> MeanVarianceMap:
    """The mean-aware map of a plain deep network: pre-activation (mean, var) -> (mean', var').

    For y'_i = sum_j W_ij phi(y_j) + b_i with i.i.d. W_ij of mean weight_sum / n and variance
    weight_std^2 / n, b_i ~ N(bias_mean, bias_std^2), and y_j ~ N(mean, var), the next layer's
    pre-activations (over units, wide limit) have

        mean' = weight_sum * E[phi(y)] + bias_mean,   var' = weight_std^2 * E[phi(y)^2] + bias_std^2.

    The variance involves the second moment E[phi^2], not Var[phi] (the seed's note): a non-zero mean
    of phi(y) does not cancel for zero-mean weights. With ``weight_sum = 0`` (the usual case) the mean
    is ``bias_mean`` after one layer and the map reduces to ``variance_map(..., bias_mean=...)``.

    Args:
        act: activation spec, ``Activation`` or callable.
        weight_std: sigma_w >= 0.
        bias_std: sigma_b >= 0.
        bias_mean: mean of the biases.
        weight_sum: mean of the sum of one unit's incoming weights, n E[W_ij] (Klambauer et al.'s omega).

    Returns:
        A ``MeanVarianceMap``: ``map(mean, var)`` and ``map.jacobian(mean, var)``.

    Example:
        >>> mvm = mean_variance_map("relu", weight_std=2**0.5, bias_mean=0.5)
        >>> [round(v, 12) for v in mvm(0.5, 1.0)]
        [0.5, 2.080721479949]
    """
    return MeanVarianceMap(
        activation=resolve_activation(act),
        weight_std=check_std("weight_std", weight_std),
        bias_std=check_std("bias_std", bias_std),
        bias_mean=check_real("bias_mean", bias_mean),
        weight_sum=check_real("weight_sum", weight_sum),
    )


# ---------------------------------------------------------------------------------------------- fixed points


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point q* = F(q*) of the variance map and its stability.

    Attributes:
        q: the fixed-point variance q* (0 when the zero signal is a fixed point).
        slope: F'(q*) = dq_{l+1}/dq_l at q*; a small deviation is multiplied by it at every layer.
        kind: ``"stable"`` (|slope| < 1), ``"neutral"`` (|slope - 1| <= ``NEUTRAL_TOLERANCE``) or
            ``"unstable"``.
        chi1: weight_std^2 E[phi'(sqrt(q*) z)^2]: the per-layer factor of the gradient's second moment
            and the slope of the correlation map at c = 1 (< 1 ordered, > 1 chaotic).
        depth_scale_q: -1 / ln|slope| (Schoenholz et al. 2017's xi_q): layers for a deviation of q to
            shrink by e; negative when it grows, ``inf`` when neutral.
        depth_scale_c: -1 / ln chi1 (xi_c at c* = 1): positive in the ordered phase, negative in the
            chaotic phase, ``inf`` at the edge of chaos.
        continuum: True when every q >= 0 is a fixed point (the map is the identity, e.g. ReLU at
            weight_std sqrt(2), bias_std 0); the list then holds this single entry with q = 0.
    """

    q: float
    slope: float
    kind: str
    chi1: float
    depth_scale_q: float
    depth_scale_c: float
    continuum: bool = False


def _make_fixed_point(vmap: VarianceMap, q: float, continuum: bool = False, slope: float | None = None) -> FixedPoint:
    slope_value = float(vmap.slope(q)) if slope is None else slope
    chi1 = float(vmap.backward(q))
    return FixedPoint(
        q=q,
        slope=slope_value,
        kind=classify(slope_value),
        chi1=chi1,
        depth_scale_q=float(depth_scale(slope_value)),
        depth_scale_c=float(depth_scale(chi1)),
        continuum=continuum,
    )


def fixed_point(act: Any, weight_std: Any, bias_std: Any = 0.0, *, bias_mean: Any = 0.0) -> list[FixedPoint]:
    """Every fixed point q* = weight_std^2 E[phi(sqrt(q*) z)^2] + bias_std^2 of the variance map.

    The map is scanned on a log grid of q over ``SEARCH_RANGE`` (1e-20 to 1e20, 8 points per decade,
    one vectorized quadrature call) for sign changes of h(q) = F(q)/q - 1, and for extrema of h that
    touch or cross zero between grid points; each root is polished with brentq to ~1e-15 relative.
    q* = 0 is included when F(0) = 0 (phi(bias_mean) = 0 and no bias noise). The stability of each
    fixed point is the slope F'(q*) (Schoenholz et al. 2017): deviations die out (stable), random-walk
    (neutral) or grow geometrically (unstable).

    Args:
        act: activation spec, ``Activation`` or callable.
        weight_std: sigma_w >= 0 (weights have standard deviation sigma_w / sqrt(fan_in)).
        bias_std: sigma_b >= 0.
        bias_mean: mean of the biases (the pre-activation mean).

    Returns:
        The fixed points in increasing q (see ``FixedPoint``).

    Raises:
        VarpropValueError: bad input, or no fixed point exists: the variance then grows without bound
            (or decays to a fixed point outside ``SEARCH_RANGE``); the message says which.

    Example:
        >>> [(round(p.q, 12), p.kind) for p in fixed_point("tanh", weight_std=1.5)]
        [(0.0, 'unstable'), (0.793354042607, 'stable')]
    """
    vmap = variance_map(act, weight_std, bias_std, bias_mean=bias_mean)
    sigma_w2, sigma_b2 = vmap.weight_std**2, vmap.bias_std**2
    result: list[FixedPoint] = []
    with np.errstate(all="ignore"):
        at_mean = float(vmap.activation(np.array([vmap.bias_mean]))[0])
    zero_is_fixed = sigma_w2 * at_mean * at_mean + sigma_b2 == 0.0
    q_grid = np.logspace(
        math.log10(SEARCH_RANGE[0]),
        math.log10(SEARCH_RANGE[1]),
        _POINTS_PER_DECADE * round(math.log10(SEARCH_RANGE[1] / SEARCH_RANGE[0])) + 1,
    )
    second, second_dvar = gaussian_rows(vmap.activation, vmap.bias_mean, q_grid, ["second", "second_dvar"])
    mapped = sigma_w2 * second + sigma_b2
    if np.all(np.abs(mapped - q_grid) <= _IDENTITY_TOLERANCE * q_grid):
        return [_make_fixed_point(vmap, 0.0, continuum=True, slope=1.0)]
    if zero_is_fixed:
        result.append(_make_fixed_point(vmap, 0.0))

    def h_at(q: float) -> float:
        (value,) = gaussian_rows(vmap.activation, vmap.bias_mean, q, ["second"])
        return float((sigma_w2 * value + sigma_b2) / q - 1.0)

    def dh_at(q: float) -> float:
        value, dvar = gaussian_rows(vmap.activation, vmap.bias_mean, q, ["second", "second_dvar"])
        return float((sigma_w2 * (dvar - value) - sigma_b2) / q)

    h_grid = mapped / q_grid - 1.0
    dh_grid = (sigma_w2 * (second_dvar - second) - sigma_b2) / q_grid
    for q_root, touching in scan_roots(np.log(q_grid), h_grid, dh_grid, h_at, dh_at, ROOT_NOISE):
        result.append(_make_fixed_point(vmap, q_root, slope=1.0 if touching else None))
    if not result:
        grows = h_grid[-1] > 0
        raise VarpropValueError(
            f"the variance map of {vmap.activation.spec!r} with weight_std={vmap.weight_std!r}, "
            f"bias_std={vmap.bias_std!r} has no fixed point for q in [{SEARCH_RANGE[0]:g}, {SEARCH_RANGE[1]:g}]: "
            + (
                "q_{l+1} > q_l everywhere, so the variance grows without bound; lower weight_std "
                f"(e.g. varprop.gain({vmap.activation.spec!r}, var) makes var a fixed point)"
                if grows
                else "q_{l+1} < q_l everywhere on the searched range (the variance decays below it)"
            )
        )
    return result


# ---------------------------------------------------------------------------------------------- stability


@dataclass(frozen=True)
class Stability:
    """How a deep plain network behaves around a target variance, with the gain that makes it a fixed point.

    Fields are floats for scalar ``var`` and arrays (of str for ``kind`` and ``verdict``) otherwise.

    Attributes:
        var: the target pre-activation variance q.
        weight_std: the gain sqrt(q / E[phi(sqrt(q) z)^2]) that makes q a fixed point (zero bias).
        slope: F'(q) = 1 + d ln c(q) / d ln q with c(q) = E[phi(sqrt(q) z)^2] / q.
        kind: ``"stable"``, ``"neutral"`` or ``"unstable"`` (tolerance ``NEUTRAL_TOLERANCE``).
        chi1: weight_std^2 E[phi'(sqrt(q) z)^2] (gradient factor per layer; > 1 chaotic, < 1 ordered).
        depth_scale_q: -1 / ln|slope| (negative when deviations grow, ``inf`` when neutral).
        doubling_depth: layers over which a small (say 1%) deviation from q doubles (unstable) or
            halves (stable): ln 2 / |ln slope|; ``inf`` when neutral.
        verdict: one sentence for reports: the phase (chi1, xi_c), then the variance (slope).
        phase: ``"ordered"``, ``"critical"`` or ``"chaotic"`` (chi1 < 1, = 1, > 1; ``varprop.dynamics._verdicts``).
        depth_scale_c: -1 / ln chi1, Schoenholz et al. (2017)'s xi_c of the correlation map at c = 1
            (negative in the chaotic phase, ``inf`` at the edge of chaos).
    """

    var: Scalar
    weight_std: Scalar
    slope: Scalar
    kind: Any
    chi1: Scalar
    depth_scale_q: Scalar
    doubling_depth: Scalar
    verdict: Any
    phase: Any = "critical"
    depth_scale_c: Scalar = math.inf


def stability(act: Any, var: Any = 1.0) -> Stability:
    """Stability of the target variance ``var`` under the exact gain that makes it a fixed point.

    With weight_std^2 = q / E[phi(sqrt(q) z)^2] (He et al.'s gain at q, zero bias) the variance map
    F has F(q) = q and slope

        F'(q) = E[(z^2 - 1) phi(sqrt(q) z)^2] / (2 E[phi(sqrt(q) z)^2]) = 1 + d ln c(q) / d ln q,

    by the heat-equation identity (no derivative of phi needed). The seed's remark that the right
    constant depends on the incoming variance is exactly d ln c / d ln q != 0; its sign decides
    stability. Checked values (q = 1): ELU 0.891, SELU 0.783, tanh 0.461, ReLU 1, SiLU 1.173,
    GELU 1.144, Mish 1.076. The phase comes from chi1 = weight_std^2 E[phi'(sqrt(q) z)^2], the slope of
    the correlation map at c = 1 (Schoenholz et al. 2017): tanh at q = 1 has a stable variance but
    chi1 = 1.178, chaotic (gradients x1.178^L in second moment over L layers).

    Args:
        act: activation spec, ``Activation`` or callable.
        var: target variance q > 0, scalar or array.

    Returns:
        A ``Stability`` (fields are arrays for array ``var``).

    Raises:
        VarpropValueError: ``var`` not > 0, or E[phi^2] = 0 there (no gain can reach it).

    Example:
        >>> s = stability("silu", var=1.0)
        >>> s.kind, round(s.slope, 3)
        ('unstable', 1.173)
        >>> t = stability("tanh")
        >>> t.kind, t.phase, round(t.chi1, 4)
        ('stable', 'chaotic', 1.1778)
    """
    activation = resolve_activation(act)
    q = as_real_array("var", var, minimum=0.0)
    if (q <= 0).any():
        raise VarpropValueError(f"var must be > 0, got {float(q[q <= 0].flat[0])!r}")
    second, second_dvar, deriv = gaussian_rows(activation, 0.0, q, ["second", "second_dvar", "deriv"])
    if (second <= 0).any():
        bad = float(q[second <= 0].flat[0])
        raise VarpropValueError(
            f"E[phi^2] = 0 for {activation.spec!r} at var={bad!r}: no gain makes it a fixed point "
            "(the activation kills the signal there)"
        )
    slope = second_dvar / second
    gain_sq = q / second
    chi1 = gain_sq * deriv
    kind = classify(slope)
    with np.errstate(divide="ignore"):
        doubling = np.where(
            np.abs(slope - 1.0) <= NEUTRAL_TOLERANCE, np.inf, math.log(2.0) / np.abs(np.log(np.abs(slope)))
        )
    kinds = np.asarray(kind)
    depth_c = np.asarray(depth_scale(chi1), dtype=np.float64)
    verdicts = np.vectorize(stability_verdict, otypes=[object])(kinds, slope, doubling, q, chi1, depth_c).astype(str)
    return Stability(
        var=float_or_array(q),
        weight_std=float_or_array(np.sqrt(gain_sq)),
        slope=float_or_array(slope),
        kind=kind,
        chi1=float_or_array(chi1),
        depth_scale_q=depth_scale(slope),
        doubling_depth=float_or_array(doubling),
        verdict=str(verdicts) if verdicts.ndim == 0 else verdicts,
        phase=phase(chi1),
        depth_scale_c=depth_scale(chi1),
    )
