"""The free-probability prediction of the Jacobian spectrum (varprop.dynamics._free_probability) against oracles.

Oracles: Fuss-Catalan numbers (moments of a product of L Wishart matrices, exact integers), the
Marchenko-Pastur law's percentiles (mpmath quadrature of the closed-form density, 30 digits), the
orthogonal linear net (every singular value sigma_w^L), the engine's moments of phi'^2, the series
route against the density route, and Monte Carlo of random tanh networks.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import varprop
from varprop._errors import ConvergenceError, VarpropValueError
from varprop.dynamics._free_probability import (
    _Rule,
    _slope_moments,
    jacobian_moments,
    predict_jacobian_spectrum,
    sample_jacobian_singular_values,
)


def fuss_catalan(depth: int, k: int) -> int:
    """FC_L(k) = binom((L+1)k, k) / (Lk + 1): the k-th moment of a product of L square Wishart matrices."""
    return math.comb((depth + 1) * k, k) // (depth * k + 1)


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 30])
def test_linear_gaussian_moments_are_fuss_catalan(depth: int) -> None:
    moments = jacobian_moments("identity", 1.0, depth, order=8)
    expected = np.array([fuss_catalan(depth, k) for k in range(1, 9)], dtype=np.float64)
    np.testing.assert_allclose(moments, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("weight_std", "depth"), [(1.0, 7), (1.3, 4), (0.8, 30)])
def test_linear_orthogonal_net_is_isometric(weight_std: float, depth: int) -> None:
    moments = jacobian_moments("identity", weight_std, depth, q=1.0, distribution="orthogonal", order=6)
    expected = weight_std ** (2 * depth * np.arange(1, 7))
    np.testing.assert_allclose(moments, expected, rtol=1e-12, atol=0)
    prediction = predict_jacobian_spectrum("identity", weight_std, depth, q=1.0, distribution="orthogonal")
    for value in prediction.percentiles.values():
        assert value == pytest.approx(weight_std**depth, rel=1e-12)
    assert prediction.spread == pytest.approx(1.0, rel=1e-12)


def test_gaussian_scale_enters_as_chi1_power() -> None:
    """Scaling sigma_w by c multiplies m_k by c^(2Lk) (linear net): the series carry sigma_w exactly."""
    base = jacobian_moments("identity", 1.0, 3, order=5)
    scaled = jacobian_moments("identity", 1.2, 3, q=1.0, order=5)
    np.testing.assert_allclose(scaled, base * 1.2 ** (6 * np.arange(1, 6)), rtol=1e-12, atol=0)


def _marchenko_pastur_percentile(level: float) -> float:
    """Singular-value percentile of a square Wishart (Marchenko-Pastur, ratio 1), 30 digits.

    The eigenvalue density sqrt(x(4-x))/(2 pi x) with x = 4 sin^2(phi) integrates to
    F = (2/pi)(phi + sin(phi) cos(phi)); the singular value is s = sqrt(x) = 2 sin(phi).
    """
    mpmath.mp.dps = 30
    target = mpmath.mpf(level) / 100
    phi = mpmath.findroot(lambda t: 2 / mpmath.pi * (t + mpmath.sin(t) * mpmath.cos(t)) - target, 0.5)
    return float(2 * mpmath.sin(phi))


def test_marchenko_pastur_percentiles() -> None:
    prediction = predict_jacobian_spectrum("identity", 1.0, 1)
    for level, value in prediction.percentiles.items():
        expected = _marchenko_pastur_percentile(level)
        # The grid (100 points per decade, trapezoid in ln x) makes the distribution function accurate to ~1e-4.
        assert value == pytest.approx(expected, rel=1e-3), (level, value, expected)
    assert prediction.mass == pytest.approx(1.0, abs=2e-4)
    # The density itself, away from the edges 0 and 4 (eigenvalue x = s^2).
    s = prediction.singular_values
    inside = (s**2 > 0.05) & (s**2 < 3.9)
    x = s[inside] ** 2
    exact = np.sqrt(x * (4 - x)) / (2 * np.pi * x) * 2 * s[inside]
    np.testing.assert_allclose(prediction.density[inside], exact, rtol=1e-6)


@pytest.mark.parametrize(
    ("act", "bias_std", "distribution", "depth"),
    [("identity", 0.0, "gaussian", 3), ("tanh", 0.3, "orthogonal", 10), ("elu", 0.1, "gaussian", 4)],
)
def test_density_reproduces_the_series_moments(act: str, bias_std: float, distribution: str, depth: int) -> None:
    """The density route (Newton on the Stieltjes transform) against the moment route (power series)."""
    weight_std = 1.0 if act == "identity" else varprop.edge_of_chaos(act, bias_std).weight_std
    prediction = predict_jacobian_spectrum(
        act, weight_std, depth, bias_std=bias_std, distribution=distribution, points_per_decade=200
    )
    x = prediction.singular_values**2
    eigen_density = prediction.density / (2 * prediction.singular_values)
    for k in (1, 2, 3):
        integral = np.trapezoid(eigen_density * x ** (k + 1), np.log(x))
        # The trapezoid rule at the square-root edge converges as the grid step squared: ~5e-4 here.
        assert integral == pytest.approx(prediction.moments[k - 1], rel=1e-3), (k, integral)
    assert prediction.residual < 1e-10


@pytest.mark.parametrize(("act", "var"), [("tanh", 1.0), ("tanh", 0.01), ("elu", 1.0), ("relu", 1.0), ("gelu", 0.5)])
def test_rule_matches_the_engine(act: str, var: float) -> None:
    """The fixed Gauss-Legendre rule of M_{D^2} has the engine's moments of phi'^2."""
    activation = varprop.activation(act)
    rule = _Rule(activation, var)
    engine = _slope_moments(activation, var, 4)
    rule_moments = np.array([np.sum(rule.weight * rule.square**k) for k in range(1, 5)])
    np.testing.assert_allclose(rule_moments, engine, rtol=1e-13, atol=0)


def test_tanh_against_monte_carlo() -> None:
    """Random tanh nets on the edge of chaos (orthogonal and Gaussian weights) against the prediction."""
    point = varprop.edge_of_chaos("tanh", 0.1)
    for distribution in ("orthogonal", "gaussian"):
        prediction = predict_jacobian_spectrum("tanh", point.weight_std, 6, bias_std=0.1, distribution=distribution)
        sample = sample_jacobian_singular_values(
            "tanh", point.weight_std, 6, 400, bias_std=0.1, distribution=distribution, networks=3, seed=1
        )
        for level, value in prediction.percentiles.items():
            # The fraction of the 1200 sampled values below the predicted percentile: binomial standard
            # deviation sqrt(0.09 / 1200) = 0.009 at most (less: eigenvalues repel), plus O(1/N) finite size.
            fraction = float(np.mean(sample <= value))
            assert fraction == pytest.approx(level / 100, abs=0.03), (distribution, level, fraction)
        np.testing.assert_allclose(np.mean(sample**2), prediction.moments[0], rtol=0.05)


def test_critical_orthogonal_tanh_is_isometric_and_gaussian_at_var_1_is_not() -> None:
    """Pennington et al. 2017's contrast at L = 30: orthogonal weights at chi1 = 1 and small q* vs Gaussian at q = 1."""
    gaussian = predict_jacobian_spectrum("tanh", varprop.gain("tanh", 1.0), 30)
    point = varprop.edge_of_chaos("tanh", 0.05)
    critical = predict_jacobian_spectrum("tanh", point.weight_std, 30, bias_std=0.05, distribution="orthogonal")
    assert critical.chi1 == pytest.approx(1.0, rel=1e-12)
    assert gaussian.chi1 == pytest.approx(1.1778, rel=1e-4)  # varprop.stability('tanh', var=1).chi1
    assert critical.spread < 30, critical.percentiles
    assert gaussian.spread > 1e20, gaussian.percentiles


def test_relu_has_an_atom_at_zero() -> None:
    """ReLU's dead units: half of each D's entries are 0, and the free product keeps the larger atom at 0.

    (For free a, b the atom of ab at 0 is max(mu_a({0}), mu_b({0})): here exactly 1/2.)
    """
    prediction = predict_jacobian_spectrum("relu", math.sqrt(2.0), 3)
    assert prediction.below == pytest.approx(0.5, abs=1e-3)
    assert prediction.percentiles[10] == 0.0
    assert prediction.spread == math.inf
    sample = sample_jacobian_singular_values("relu", math.sqrt(2.0), 3, 200, seed=2)
    assert np.mean(sample < 1e-8 * sample[-1]) >= 0.5


def test_bad_input() -> None:
    with pytest.raises(VarpropValueError, match=r"'uniform'.*\('gaussian', 'orthogonal'\)"):
        predict_jacobian_spectrum("tanh", 1.0, 3, distribution="uniform")
    with pytest.raises(VarpropValueError, match="no stable fixed point"):
        jacobian_moments("identity", 1.3, 3)
    with pytest.raises(VarpropValueError, match="depth"):
        jacobian_moments("tanh", 1.0, 0)


def test_not_converged_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Newton's method that runs out of steps raises ConvergenceError with the point and the last step."""
    from varprop.dynamics import _free_probability as free

    monkeypatch.setattr(free, "_NEWTON_STEPS", 1)
    monkeypatch.setattr(free, "_NEWTON_FLOOR", 0.0)
    with pytest.raises(ConvergenceError, match=r"did not converge at z=.*last relative step"):
        predict_jacobian_spectrum("tanh", 1.2, 3)
