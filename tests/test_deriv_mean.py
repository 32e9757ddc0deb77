"""E[phi'(y)] (``varprop.gaussian.deriv_mean``) against mpmath at 30 digits, for every registered activation (issue 12).

Oracle: the mpmath definitions of phi' in ``tests/reference/generate_moments.py`` (independent of varprop),
integrated against the Gaussian with its split points (kinks, zeros, graded around features and z = 0) at
mp.dps = 30; and for formulas, mpmath's numerical derivative of the formula.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import mpmath as mp
import pytest

import varprop
from varprop import ConvergenceError

sys.path.insert(0, str(Path(__file__).parent / "reference"))
import generate_moments as oracle

REFERENCES = {reference.spec: reference for reference in oracle.build_references()}
POINTS = [(0.0, 1.0), (-1.0, 0.01), (0.3, 4.0), (-5.0, 1.0)]


def _mp_deriv_mean(spec: str, mean: float, var: float) -> float:
    reference = REFERENCES[spec]
    with mp.workdps(30):
        centre, sigma = mp.mpf(mean), mp.sqrt(mp.mpf(var))

        def integrand(z: mp.mpf) -> mp.mpf:
            return reference.derivative(centre + sigma * z) * mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi)

        points = [mp.ninf, *oracle.split_points(reference, centre, sigma, False), mp.inf]
        return float(sum(oracle._quad_relative(integrand, a, b)[0] for a, b in itertools.pairwise(points)))


@pytest.mark.parametrize("spec", sorted(REFERENCES))
def test_deriv_mean_against_mpmath(spec: str) -> None:
    for mean, var in POINTS:
        exact = _mp_deriv_mean(spec, mean, var)
        value, error = varprop.gaussian.deriv_mean(spec, var=var, mean=mean, with_error=True)
        scale = max(abs(exact), 1e-300)
        assert abs(value - exact) <= 1e-13 * max(scale, 1e-3 * abs(exact) + 1e-16), (
            f"{spec} mean={mean} var={var}: {value!r} vs {exact!r}"
        )
        assert abs(value - exact) <= error + 1e-28, f"{spec} mean={mean} var={var}: estimate {error:.3e}"


def test_closed_forms_match_quadrature_and_stein() -> None:
    """Closed form vs the engine on the same activation given as a formula (no closed form): relu, elu, gelu."""
    for spec, formula in [("relu", "relu(x)"), ("elu", "maximum(x, 0) + expm1(minimum(x, 0))"), ("gelu", "x*ndtr(x)")]:
        for mean, var in POINTS:
            closed = varprop.gaussian.deriv_mean(spec, var=var, mean=mean)
            quadrature = varprop.gaussian.deriv_mean(formula, var=var, mean=mean)
            assert closed == pytest.approx(quadrature, rel=1e-13, abs=1e-300), (spec, mean, var)


def test_relu_is_the_normal_cdf() -> None:
    with mp.workdps(30):
        assert varprop.gaussian.deriv_mean("relu", var=4.0, mean=1.0) == pytest.approx(float(mp.ncdf(0.5)), rel=1e-15)


def test_arrays_zero_variance_and_singular_formulas() -> None:
    values = varprop.gaussian.deriv_mean("tanh", var=[0.0, 1.0], mean=[0.5, 0.0])
    with mp.workdps(30):
        assert values[0] == pytest.approx(float(1 - mp.tanh(0.5) ** 2), rel=1e-15)
    # sqrt(abs(x)): phi' = sign(x) / (2 sqrt|x|), integrable; E[phi'] = 0 at mean 0 by symmetry, and at mean 1
    # E[sign(y) |y|^-1/2] / 2 (mpmath with y = +-u^2).
    value, error = varprop.gaussian.deriv_mean("sqrt(abs(x))", mean=1.0, with_error=True)
    with mp.workdps(30):
        density = lambda y: mp.exp(-((y - 1) ** 2) / 2) / mp.sqrt(2 * mp.pi)  # noqa: E731
        exact = float(mp.quad(lambda u: density(u * u) - density(-u * u), [0, 1, 2, mp.inf]))  # (1/2) 2u du / u
    assert abs(value - exact) <= error <= 1e-12
    assert abs(value - exact) <= 1e-13
    with pytest.raises(ConvergenceError, match="E\\[phi'\\] of 'expr:log\\(abs\\(x\\)\\)' diverges"):
        varprop.gaussian.deriv_mean("log(abs(x))")
