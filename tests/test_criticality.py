"""Phases (ordered / critical / chaotic), the two depth scales and the edge-of-chaos initialization, against
40-digit mpmath quadrature computed here (no varprop), published values and closed forms."""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import numpy as np
import pytest

import varprop
from varprop import VarpropValueError
from varprop.dynamics._criticality import ODD_FIXED_POINT, critical_point
from varprop.dynamics._verdicts import phase

mpmath.mp.dps = 40


def _gauss(function: Callable[[mpmath.mpf], mpmath.mpf], q: float) -> mpmath.mpf:
    """E[f(sqrt(q) z)], z ~ N(0, 1), by mpmath quadrature split at 0 (kinks of ELU and ReLU lie there)."""
    scale = mpmath.sqrt(mpmath.mpf(q))

    def integrand(z: mpmath.mpf) -> mpmath.mpf:
        return function(scale * z) * mpmath.exp(-z * z / 2)

    return mpmath.quad(integrand, [-mpmath.inf, 0, mpmath.inf]) / mpmath.sqrt(2 * mpmath.pi)


def _tanh2(x: mpmath.mpf) -> mpmath.mpf:
    return mpmath.tanh(x) ** 2


def _sech4(x: mpmath.mpf) -> mpmath.mpf:
    return mpmath.sech(x) ** 4


def _elu2(x: mpmath.mpf) -> mpmath.mpf:
    return x * x if x > 0 else (mpmath.exp(x) - 1) ** 2


def _elu_deriv2(x: mpmath.mpf) -> mpmath.mpf:
    return mpmath.mpf(1) if x > 0 else mpmath.exp(2 * x)


def test_tanh_at_var_1_is_chaotic_not_stable() -> None:
    """Issue 11: chi1 = q E[sech^4] / E[tanh^2] at q = 1 is 1.178 > 1 (chaotic) though the variance is stable."""
    chi1 = float(_gauss(_sech4, 1.0) / _gauss(_tanh2, 1.0))
    result = varprop.stability("tanh", var=1.0)
    assert float(result.chi1) == pytest.approx(chi1, rel=1e-12)
    assert round(chi1, 3) == 1.178  # the number
    assert result.kind == "stable" and result.phase == "chaotic"
    assert float(result.depth_scale_c) == pytest.approx(-1.0 / math.log(chi1), rel=1e-11)
    assert result.verdict.startswith("at var=1: chaotic"), result.verdict
    assert "the variance is stable" in result.verdict and "objective='critical'" in result.verdict


@pytest.mark.parametrize(
    ("name", "q", "expected"),
    [("relu", 3.0, "critical"), ("elu", 1.0, "chaotic"), ("tanh", 0.01, "chaotic"), ("selu", 1.0, "chaotic")],
)
def test_stability_phase_table(name: str, q: float, expected: str) -> None:
    result = varprop.stability(name, var=q)
    assert result.phase == expected, (name, q, float(result.chi1))
    assert expected in result.verdict


def test_elu_chi1_against_mpmath() -> None:
    """ELU at q = 1 with its exact gain: chi1 = q E[phi'^2] / E[phi^2] (40-digit quadrature)."""
    chi1 = float(_gauss(_elu_deriv2, 1.0) / _gauss(_elu2, 1.0))
    result = varprop.stability("elu", var=1.0)
    assert float(result.chi1) == pytest.approx(chi1, rel=1e-12)
    assert float(result.depth_scale_c) == pytest.approx(-1.0 / math.log(chi1), rel=1e-10)


def test_phase_is_vectorized_with_the_neutral_tolerance() -> None:
    values = np.array([0.5, 1.0 - 1e-12, 1.0 + 1e-12, 1.0 + 1e-6, 2.0])
    assert list(phase(values)) == ["ordered", "critical", "critical", "chaotic", "chaotic"]
    result = varprop.stability("tanh", var=np.array([0.01, 1.0]))
    assert list(result.phase) == ["chaotic", "chaotic"]


def test_critical_point_of_tanh_against_mpmath() -> None:
    """sigma_w^2 = 1 / E[sech^4], sigma_b^2 = q - sigma_w^2 E[tanh^2] at q* = 1/64 (Poole et al. 2016)."""
    q = ODD_FIXED_POINT
    weight_var = 1 / _gauss(_sech4, q)
    bias_var = q - weight_var * _gauss(_tanh2, q)
    point = critical_point("tanh")
    assert point.q == q == 1 / 64
    assert point.weight_std**2 == pytest.approx(float(weight_var), rel=1e-13)
    # sigma_b^2 = 4.65e-6 is a difference of numbers of size q: 1e-15 q / 4.65e-6 ~ 3e-12 relative
    assert point.bias_std**2 == pytest.approx(float(bias_var), rel=1e-9)
    assert point.chi1 == pytest.approx(1.0, abs=1e-13) and point.phase == "critical"
    assert point.kind == "stable" and math.isinf(point.depth_scale_c)
    assert point.depth_scale_q == pytest.approx(-1.0 / math.log(point.slope), rel=1e-12)
    assert point.gradient_factor(30) == pytest.approx(1.0, abs=1e-11)
    # the point really is a fixed point with chi1 = 1 under the core's maps
    vmap = varprop.variance_map("tanh", point.weight_std, point.bias_std)
    assert float(vmap(q)) == pytest.approx(q, rel=1e-13)
    assert float(vmap.backward(q)) == pytest.approx(1.0, rel=1e-13)
    assert float(varprop.correlation_map("tanh", point.weight_std, point.bias_std, var=q).chi1) == pytest.approx(
        1.0, rel=1e-12
    )


def test_tanh_critical_line_published_values() -> None:
    """Poole et al. 2016 / Schoenholz et al. 2017 (fig. 1): the tanh critical line starts at (sigma_b, sigma_w) =
    (0, 1) and passes sigma_w^2 = 1.76 at sigma_b^2 = 0.05 (read off the figure, 3 digits)."""
    near_zero = critical_point("tanh", var=1e-6)
    # series: E[sech^4(sqrt(q) z)] = 1 - 2q + O(q^2), so sigma_w = 1 + q + O(q^2)
    assert near_zero.weight_std == pytest.approx(1.0 + 1e-6, abs=1e-11)
    assert near_zero.bias_std < 1e-8
    point = varprop.edge_of_chaos("tanh", math.sqrt(0.05))
    assert round(point.weight_std**2, 2) == 1.76
    again = critical_point("tanh", var=point.q)
    assert again.weight_std == pytest.approx(point.weight_std, rel=1e-12)
    assert again.bias_std**2 == pytest.approx(0.05, rel=1e-10)


def test_critical_point_of_elu_against_mpmath() -> None:
    """ELU's default point is q* = 1 (the smallest candidate with a stable point)."""
    weight_var = 1 / _gauss(_elu_deriv2, 1.0)
    bias_var = 1 - weight_var * _gauss(_elu2, 1.0)
    point = critical_point("elu")
    assert point.q == 1.0 and point.kind == "stable"
    assert point.weight_std**2 == pytest.approx(float(weight_var), rel=1e-13)
    assert point.bias_std**2 == pytest.approx(float(bias_var), rel=1e-11)


@pytest.mark.parametrize(("name", "q"), [("selu", 1.0), ("mish", 2.0), ("gelu", 4.0), ("silu", 16.0)])
def test_default_points_are_the_smallest_stable_candidates(name: str, q: float) -> None:
    point = critical_point(name)
    assert point.q == q and point.slope < 1.0
    if q > 1.0:
        below = critical_point(name, var=q / 2)
        assert below.kind == "unstable", (name, below.slope)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "identity"])
def test_homogeneous_activations_have_no_point(name: str) -> None:
    with pytest.raises(VarpropValueError, match=r"no non-trivial edge of chaos.*objective='variance'"):
        critical_point(name)


def test_no_point_errors_name_the_activation() -> None:
    with pytest.raises(VarpropValueError, match=r"no critical initialization for 'softplus.*tried q=1: sigma_b\^2="):
        critical_point("softplus")
    with pytest.raises(VarpropValueError, match="var must be"):
        critical_point("tanh", var=0.0)
