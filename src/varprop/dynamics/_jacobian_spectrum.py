"""The singular values of a deep plain net's input-output Jacobian at initialization: density and percentiles.

The S-transform algebra and the moments are in ``_free_probability`` (Pennington, Schoenholz & Ganguli 2017, 2018);
here they give the density, its percentiles, and a Monte Carlo sample of random nets to compare with.

* **Density** (``predict_jacobian_spectrum``): with M(z) = z G(z) - 1 (G the Stieltjes transform of
  JJ^T) and w = M_{D^2}^{-1}(M(z)), the product formula becomes one equation in w,

      z = (1 + g) / g * [g w / (1 + g)]^L * sigma_w^(2L) * (1 + g)^(L gaussian),   g = M_{D^2}(w),

  solved by Newton's method on its logarithm (the branch chosen nearest to 0) along a log grid of
  z = x + i eps from above the spectrum's top edge down (continuation: each point starts from the
  previous solution), then polished at eps = 1e-9 x. The density of the eigenvalues of JJ^T is
  -Im G(x) / pi, G = (1 + g) / z; singular values are their square roots. M_{D^2}(w) = E[d^2/(w - d^2)]
  is evaluated on a fixed Gauss-Legendre rule in h (``_RULE_PANELS`` panels of 14 nodes on
  [-12, 12] standard deviations, exact for the atoms of a piecewise-linear phi since a panel edge
  sits at 0); its moments agree with the engine's to ~1e-15 (checked by the tests).

Accuracy and breakdown: the grid has ``points_per_decade`` points (more where the spectrum is
narrow); percentiles are interpolated in the cumulative distribution, whose total mass found on the
grid is reported (``mass``); the mass below the grid (an atom at 0, e.g. ReLU's dead units, or the
power-law tail x^(1/(L+1)) of a Gaussian net's smallest singular values below ``SMALLEST_RATIO``)
is ``below``, and a percentile that falls in it is reported as 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .._errors import ConvergenceError
from .._validation import check_positive_int
from ..activations._activation import Activation
from ._free_probability import SpectrumSetup, jacobian_moment_series, spectrum_setup

__all__ = [
    "SMALLEST_RATIO",
    "JacobianSpectrumPrediction",
    "predict_jacobian_spectrum",
    "sample_jacobian_singular_values",
    "singular_value_percentiles",
]

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]
Distribution = Literal["gaussian", "orthogonal"]

#: The density is followed down to this fraction of the mean eigenvalue m_1 of JJ^T (a Gaussian net's
#: cumulative distribution near 0 grows like x^(1/(L+1)): at L = 30, 10% of the mass lies below ~1e-31 m_1).
SMALLEST_RATIO = 1e-80
_RULE_HALF_WIDTH = 12.0  # standard deviations: the Gaussian weight exp(-72) = 5e-32 is below double precision
_RULE_PANELS = 96  # panels of width 0.25 sd: poles of 1/(w - phi'(h)^2) >= ~0.03 sd off the axis converge
_RULE_ORDER = 14  # Gauss-Legendre nodes per panel (as the engine's DEFAULT_ORDER)
_NEGLIGIBLE_WEIGHT = 1e-20  # nodes of smaller relative weight (|z| > 9.6) change no sum at double precision
_NEWTON_TOLERANCE = 1e-13  # relative step at which Newton stops (the equation is solved to ~1e-14)
_NEWTON_FLOOR = 1e-10  # after _NEWTON_STEPS, a step this small is rounding noise (w ~ 1e-50 near the bottom)
_NEWTON_STEPS = 60
_POLISH_EPS = 1e-9  # relative imaginary part of z at which the density is finally evaluated
_MASS_FOUND = 1e-6  # the grid stops once all but this much mass is found (and the density is that small)
_MOMENT_ORDER = 8  # moments used to place the grid (top edge ~ 10 max_k m_k^(1/k))


# ---------------------------------------------------------------------------------------------- density


@dataclass(frozen=True)
class JacobianSpectrumPrediction:
    """The free-probability prediction of the singular values of J = D_L W_L ... D_1 W_1.

    Attributes:
        activation: the activation's spec.
        weight_std: sigma_w.
        bias_std: sigma_b.
        q: the pre-activation variance the D_l are drawn at (the fixed point q*).
        depth: L.
        distribution: ``"gaussian"`` or ``"orthogonal"``.
        chi1: sigma_w^2 E[phi'(h)^2]: the mean squared singular value is chi1^L.
        moments: m_1..m_8 of the squared singular values (``jacobian_moments``).
        singular_values: grid of singular values s (increasing; empty for a point mass).
        density: the density of the singular values at ``singular_values``.
        percentiles: {10: p10, 50: p50, 90: p90} of the singular values.
        spread: p90 / p10 (1 for a point mass; ``inf`` when p10 is 0).
        mass: probability mass found on the grid (1 up to the grid's quadrature error, ~1e-3).
        below: mass below the grid (an atom at 0 or a tail under ``SMALLEST_RATIO`` m_1).
        residual: the largest relative Newton step at the last iteration over the grid.
    """

    activation: str
    weight_std: float
    bias_std: float
    q: float
    depth: int
    distribution: str
    chi1: float
    moments: FloatArray
    singular_values: FloatArray
    density: FloatArray
    percentiles: dict[int, float]
    spread: float
    mass: float
    below: float
    residual: float


class _Rule:
    """M_{D^2}(w) = E[d^2 / (w - d^2)] and 1 + M on a fixed Gauss-Legendre rule in h ~ N(0, q)."""

    def __init__(self, activation: Activation, q: float) -> None:
        nodes, weights = np.polynomial.legendre.leggauss(_RULE_ORDER)
        edges = np.linspace(-_RULE_HALF_WIDTH, _RULE_HALF_WIDTH, _RULE_PANELS + 1)
        half = 0.5 * (edges[1:] - edges[:-1])
        centre = 0.5 * (edges[1:] + edges[:-1])
        z = (centre[:, None] + half[:, None] * nodes[None, :]).ravel()
        weight = (half[:, None] * weights[None, :]).ravel() * np.exp(-0.5 * z * z)
        weight /= weight.sum()
        with np.errstate(all="ignore"):
            slopes = np.asarray(activation.derivative(math.sqrt(q) * z), dtype=np.float64) ** 2
        keep = weight > _NEGLIGIBLE_WEIGHT * weight.max()
        self.square: FloatArray = slopes[keep]
        self.weight: FloatArray = weight[keep]
        self._weighted_square: FloatArray = self.weight * self.square

    def __call__(self, w: complex) -> tuple[complex, complex, complex]:
        """(g, 1 + g, dg/dw) at w."""
        inverse = 1.0 / (w - self.square)
        g = complex(np.dot(inverse, self._weighted_square))
        one_plus = complex(w * np.dot(inverse, self.weight))
        dg = complex(-np.dot(inverse * inverse, self._weighted_square))
        return g, one_plus, dg


def _log_equation(
    rule: _Rule, w: complex, log_z: complex, setup: SpectrumSetup, log_var: float
) -> tuple[complex, complex, complex]:
    """(R(w) with its imaginary part reduced to (-pi, pi], dR/dw, 1 + g) of the log of the equation in w."""
    g, one_plus, dg = rule(w)
    layers = setup.depth
    gaussian = 1.0 if setup.distribution == "gaussian" else 0.0
    log_ratio = np.log(one_plus) - np.log(g)
    value = log_ratio - layers * (log_ratio - np.log(w)) + layers * log_var + gaussian * layers * np.log(one_plus)
    value -= log_z
    value -= 2j * math.pi * round(value.imag / (2 * math.pi))
    d_ratio = dg / one_plus - dg / g
    derivative = d_ratio - layers * (d_ratio - 1.0 / w) + gaussian * layers * dg / one_plus
    return complex(value), complex(derivative), one_plus


def _newton(
    rule: _Rule, w: complex, z: complex, setup: SpectrumSetup, log_var: float
) -> tuple[complex, complex, float]:
    """Solve the equation at z from w; returns (w, 1 + g, last relative step) or raises ConvergenceError."""
    log_z = complex(np.log(z))
    step_size = math.inf
    for _ in range(_NEWTON_STEPS):
        value, derivative, one_plus = _log_equation(rule, w, log_z, setup, log_var)
        step = -value / derivative
        # Damping: never move by more than half of |w| (keeps w off the branch points 0 and the atoms).
        limit = 0.5 * abs(w)
        if abs(step) > limit:
            step *= limit / abs(step)
        w += step
        step_size = abs(step) / abs(w)
        if step_size < _NEWTON_TOLERANCE:
            break
    if step_size < _NEWTON_FLOOR:
        _, one_plus, _ = rule(w)
        return w, one_plus, step_size
    raise ConvergenceError(f"Newton's method did not converge at z={z!r} (last relative step {step_size:.3g})")


def _grid_density(
    setup: SpectrumSetup, moments: FloatArray, points_per_decade: int
) -> tuple[FloatArray, FloatArray, float]:
    """(eigenvalue grid x increasing, density of JJ^T's eigenvalues at x, largest final Newton step)."""
    rule = _Rule(setup.activation, setup.q)
    log_var = 2.0 * math.log(setup.weight_std)
    m1 = float(moments[0])
    top = 10.0 * max(float(moment) ** (1.0 / (k + 1)) for k, moment in enumerate(moments))
    relative_sd = math.sqrt(max(float(moments[1]) / (m1 * m1) - 1.0, 0.0))
    step = min(math.log(10.0) / points_per_decade, relative_sd / 60.0)
    low = math.log(m1 * SMALLEST_RATIO)
    x = top
    mean_square = float(np.sum(rule.weight * rule.square))
    w: complex = mean_square * x / m1 + 0j  # z -> infinity: M(z) ~ m1 / z and M_{D^2}(w) ~ E[d^2] / w
    xs: list[float] = []
    densities: list[float] = []
    worst = 0.0
    cumulative = 0.0
    previous: tuple[float, float] | None = None
    while math.log(x) > low:
        z_coarse = complex(x, x * step)
        try:
            w, _, _ = _newton(rule, w, z_coarse, setup, log_var)
        except ConvergenceError:
            w, _, _ = _continue(rule, w, x * math.exp(step), x, step, setup, log_var)
        try:  # the polish: the same equation almost on the real axis, from the smoothed solution
            _, one_plus, last = _newton(rule, w, complex(x, x * _POLISH_EPS), setup, log_var)
            density = -(one_plus / complex(x, x * _POLISH_EPS)).imag / math.pi
            if density < 0:
                raise ConvergenceError("the polish went to the conjugate branch")
        except ConvergenceError:  # keep the smoothed density (a Lorentzian of relative width `step`)
            _, one_plus, last = _newton(rule, w, z_coarse, setup, log_var)
            density = max(-(one_plus / z_coarse).imag / math.pi, 0.0)
        worst = max(worst, last)
        xs.append(x)
        densities.append(density)
        if previous is not None:
            cumulative += 0.5 * (previous[1] * previous[0] + density * x) * step
        previous = (x, density)
        if cumulative > 1.0 - _MASS_FOUND and density * x < _MASS_FOUND:
            break
        x *= math.exp(-step)
    return np.array(xs[::-1]), np.array(densities[::-1]), worst


def _continue(
    rule: _Rule, w: complex, x_from: float, x_to: float, step: float, setup: SpectrumSetup, log_var: float
) -> tuple[complex, complex, float]:
    """Continuation in 16 substeps from x_from to x_to when one step was too long."""
    result: tuple[complex, complex, float] = (w, 0j, math.inf)
    for x in np.geomspace(x_from, x_to, 17)[1:]:
        result = _newton(rule, result[0], complex(float(x), float(x) * step), setup, log_var)
    return result


def singular_value_percentiles(
    eigenvalues: FloatArray, density: FloatArray, levels: Sequence[int] = (10, 50, 90)
) -> tuple[dict[int, float], float, float]:
    """Percentiles of s = sqrt(lambda) from the eigenvalue density on an increasing grid.

    The cumulative distribution is the trapezoid rule in ln x from the top of the grid down, so that
    the mass below the grid (an atom at 0 or a tail) is 1 minus what was found; a percentile inside
    it is reported as 0.

    Returns:
        ({level: s_level}, mass found on the grid, mass below it).
    """
    log_x = np.log(eigenvalues)
    integrand = density * eigenvalues
    pieces = 0.5 * (integrand[1:] + integrand[:-1]) * np.diff(log_x)
    from_top = np.concatenate([np.cumsum(pieces[::-1])[::-1], [0.0]])
    mass = float(from_top[0])
    below = max(1.0 - mass, 0.0)
    cdf = 1.0 - from_top
    result: dict[int, float] = {}
    for level in levels:
        target = level / 100.0
        if target <= cdf[0]:
            result[level] = 0.0
            continue
        value = float(np.exp(np.interp(target, cdf, log_x)))
        result[level] = math.sqrt(value)
    return result, mass, below


def predict_jacobian_spectrum(
    act: Any,
    weight_std: Any,
    depth: Any,
    *,
    bias_std: Any = 0.0,
    q: Any = None,
    distribution: Any = "gaussian",
    points_per_decade: int = 100,
) -> JacobianSpectrumPrediction:
    """Predict the singular-value density of the input-output Jacobian of a deep plain net at init.

    Free probability (Pennington, Schoenholz & Ganguli 2017, 2018): S_{JJ^T} = (S_{D^2} S_{WW^T})^L,
    solved for the Stieltjes transform along a log grid of the spectral variable (see the module
    docstring). Dynamical isometry, all singular values near 1, needs chi1 = 1 *and* orthogonal
    weights with small q* (Pennington et al. 2017): Gaussian weights spread the singular values
    over many decades at any depth L >> 1.

    Args:
        act, weight_std, depth, bias_std, q, distribution: as in ``jacobian_moments`` (the activation, sigma_w > 0,
            the number of layers L, sigma_b >= 0, the pre-activation variance (default the stable fixed point q*),
            ``"gaussian"`` or ``"orthogonal"`` weights).
        points_per_decade: grid density (finer where the spectrum is narrow).

    Returns:
        ``JacobianSpectrumPrediction`` (density, percentiles, spread p90/p10, moments).

    Raises:
        VarpropValueError: bad input, or no stable fixed point (give ``q``).
        ConvergenceError: Newton's method failed on the grid.

    Example:
        >>> linear = predict_jacobian_spectrum("linear", 1.0, 1)  # Marchenko-Pastur: s = sqrt(lambda)
        >>> round(linear.percentiles[50], 3)
        0.808
    """
    setup = spectrum_setup(act, weight_std, depth, bias_std, q, distribution)
    points = check_positive_int("points_per_decade", points_per_decade)
    moments = jacobian_moment_series(setup, _MOMENT_ORDER)
    m1 = float(moments[0])
    chi1 = m1 ** (1.0 / setup.depth)
    common = {
        "activation": setup.activation.spec,
        "weight_std": setup.weight_std,
        "bias_std": setup.bias_std,
        "q": setup.q,
        "depth": setup.depth,
        "distribution": setup.distribution,
        "chi1": chi1,
        "moments": moments,
    }
    if float(moments[1]) - m1 * m1 <= 1e-12 * m1 * m1:  # variance 0 to rounding: a point mass at m1
        value = math.sqrt(m1)
        return JacobianSpectrumPrediction(
            **common,
            singular_values=np.zeros(0),
            density=np.zeros(0),
            percentiles={10: value, 50: value, 90: value},
            spread=1.0,
            mass=1.0,
            below=0.0,
            residual=0.0,
        )
    eigenvalues, density, residual = _grid_density(setup, moments, points)
    percentiles, mass, below = singular_value_percentiles(eigenvalues, density)
    singular_values = np.sqrt(eigenvalues)
    spread = percentiles[90] / percentiles[10] if percentiles[10] > 0 else math.inf
    return JacobianSpectrumPrediction(
        **common,
        singular_values=singular_values,
        density=2.0 * singular_values * density,
        percentiles=percentiles,
        spread=spread,
        mass=mass,
        below=below,
        residual=residual,
    )


# ---------------------------------------------------------------------------------------------- Monte Carlo


def _orthogonal(rng: np.random.Generator, width: int) -> FloatArray:
    """A Haar-random orthogonal matrix: QR of a Gaussian with the signs of R's diagonal moved into Q."""
    q_factor, r_factor = np.linalg.qr(rng.standard_normal((width, width)))
    return np.asarray(q_factor * np.sign(np.diag(r_factor))[None, :], dtype=np.float64)


def sample_jacobian_singular_values(
    act: Any,
    weight_std: Any,
    depth: Any,
    width: Any,
    *,
    bias_std: Any = 0.0,
    q: Any = None,
    distribution: Any = "gaussian",
    networks: int = 1,
    seed: int = 0,
) -> FloatArray:
    """Monte Carlo: the singular values of J = D_L W_L ... D_1 W_1 of random plain nets (numpy).

    Each network draws W_l (N(0, sigma_w^2 / N) entries, or sigma_w times a Haar orthogonal matrix),
    b_l ~ N(0, sigma_b^2), an input x ~ N(0, (q* - sigma_b^2) / sigma_w^2) (so that h_1 ~ N(0, q*)),
    runs h_l = W_l phi(h_{l-1}) + b_l and multiplies the Jacobian out.

    Args:
        act, weight_std, depth, bias_std, q, distribution: as in ``predict_jacobian_spectrum``.
        width: N.
        networks: independent networks (their singular values are concatenated).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        Sorted singular values, ``networks * width`` of them.

    Example:
        >>> s = sample_jacobian_singular_values("linear", 1.0, 1, 200, distribution="orthogonal")
        >>> bool(np.allclose(s, 1.0))
        True
    """
    setup = spectrum_setup(act, weight_std, depth, bias_std, q, distribution)
    size = check_positive_int("width", width)
    count = check_positive_int("networks", networks)
    rng = np.random.default_rng(seed)
    sigma_w, sigma_b = setup.weight_std, setup.bias_std
    input_std = math.sqrt(max(setup.q - sigma_b * sigma_b, 0.0)) / sigma_w
    values = []
    for _ in range(count):
        x = input_std * rng.standard_normal(size)
        jacobian = np.eye(size)
        for _layer in range(setup.depth):
            if setup.distribution == "orthogonal":
                weight = sigma_w * _orthogonal(rng, size)
            else:
                weight = sigma_w / math.sqrt(size) * rng.standard_normal((size, size))
            h = weight @ x + sigma_b * rng.standard_normal(size)
            slope = np.asarray(setup.activation.derivative(h), dtype=np.float64)
            jacobian = slope[:, None] * (weight @ jacobian)
            x = np.asarray(setup.activation.function(h), dtype=np.float64)
        values.append(np.linalg.svd(jacobian, compute_uv=False))
    return np.sort(np.concatenate(values))
