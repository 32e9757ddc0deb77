"""SELU parameters for a fixed point with non-zero mean (Klambauer et al. 2017, generalized; issue 12).

Oracle: mpmath at 30 digits, independent of varprop's formulas: the moments E[selu(z)], E[selu(z)^2]
for z ~ N(mu omega, nu tau) by mp.quad split at 0 must reproduce (mu, nu) at varprop's (alpha, scale);
for one case (alpha, scale) is also solved with mp.findroot from varprop's answer perturbed by 10%.
"""

from __future__ import annotations

import mpmath as mp
import pytest

import varprop
from varprop import VarpropValueError


def _mp_moments(alpha: mp.mpf, scale: mp.mpf, m: mp.mpf, s: mp.mpf) -> tuple[mp.mpf, mp.mpf]:
    density = lambda z: mp.exp(-(((z - m) / s) ** 2) / 2) / (s * mp.sqrt(2 * mp.pi))  # noqa: E731
    selu = lambda z: scale * (z if z > 0 else alpha * mp.expm1(z))  # noqa: E731
    first = mp.quad(lambda z: selu(z) * density(z), [-mp.inf, min(0, m), max(0, m), mp.inf])
    second = mp.quad(lambda z: selu(z) ** 2 * density(z), [-mp.inf, min(0, m), max(0, m), mp.inf])
    return first, second


CASES = [(0.1, 1.0, 0.0, 1.0), (-0.1, 1.0, 0.0, 1.0), (0.5, 2.0, 0.0, 1.0), (0.2, 0.8, 1.0, 1.0), (0.3, 1.0, -0.5, 1.2)]


@pytest.mark.parametrize(("mean", "var", "weight_sum", "weight_sum_squares"), CASES)
def test_fixed_point_with_mean_satisfies_the_equations(
    mean: float, var: float, weight_sum: float, weight_sum_squares: float
) -> None:
    """mpmath's E[selu(z)], Var[selu(z)] at varprop's (alpha, scale) are (mean, var) to 1e-14."""
    alpha, scale = varprop.selu.selu_parameters(var, mean, weight_sum=weight_sum, weight_sum_squares=weight_sum_squares)
    with mp.workdps(30):
        m = mp.mpf(mean) * mp.mpf(weight_sum)
        s = mp.sqrt(mp.mpf(var) * mp.mpf(weight_sum_squares))
        first, second = _mp_moments(mp.mpf(alpha), mp.mpf(scale), m, s)
        assert float(first) == pytest.approx(mean, rel=1e-14, abs=1e-16)
        assert float(second - first**2) == pytest.approx(var, rel=1e-14)
    mapped = varprop.selu.selu_moment_map(
        mean, var, alpha=alpha, scale=scale, weight_sum=weight_sum, weight_sum_squares=weight_sum_squares
    )
    assert mapped == pytest.approx((mean, var), rel=1e-13, abs=1e-15)


def test_fixed_point_with_mean_against_mpmath_findroot() -> None:
    """The root itself, solved by mp.findroot from varprop's answer perturbed by 10%."""
    mean, var = 0.1, 1.0
    alpha, scale = varprop.selu.selu_parameters(var, mean)
    with mp.workdps(30):

        def equations(a: mp.mpf, lam: mp.mpf) -> list[mp.mpf]:
            first, second = _mp_moments(a, lam, mp.mpf(0), mp.mpf(1))
            return [first - mp.mpf(mean), second - first**2 - mp.mpf(var)]

        exact_alpha, exact_scale = mp.findroot(equations, (mp.mpf(alpha) * 1.1, mp.mpf(scale) * 0.9))
    assert alpha == pytest.approx(float(exact_alpha), rel=1e-13)
    assert scale == pytest.approx(float(exact_scale), rel=1e-13)


def test_zero_mean_keeps_the_paper_constants() -> None:
    """alpha_01 = 1.6732632423543772848, lambda_01 = 1.0507009873554804934 (Klambauer et al. 2017, eq. 14)."""
    alpha, scale = varprop.selu.selu_parameters(1.0, 0.0)
    assert alpha == pytest.approx(1.6732632423543772848, rel=2e-16)
    assert scale == pytest.approx(1.0507009873554804934, rel=2e-16)


def test_unreachable_fixed_point_names_the_input() -> None:
    with pytest.raises(VarpropValueError, match=r"no SELU .* fixed point mean=2\.0, var=0\.1"):
        varprop.selu.selu_parameters(0.1, 2.0)
