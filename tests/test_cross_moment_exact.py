"""Cross moments of sin, cos and exp in closed form, and the quadrature's error estimate (issue 12).

Oracle: the characteristic function evaluated in mpmath at 40 digits, E[e^{i(a X + b Y)}] for jointly
Gaussian (X, Y): E[sin X sin Y] = (E cos(X - Y) - E cos(X + Y)) / 2 with E cos(X -+ Y) =
cos(t1 -+ t2) exp(-Var(X -+ Y) / 2); E[e^X e^Y] = exp(t1 + t2 + Var(X + Y) / 2).
"""

from __future__ import annotations

import math

import mpmath as mp
import pytest

import varprop
from varprop import ConvergenceError


def _mp_trig(name: str, m1: float, m2: float, q1: float, q2: float, c: float, slope: float = 1.0) -> float:
    with mp.workdps(40):
        a = mp.mpf(slope)
        t1, t2 = a * mp.mpf(m1), a * mp.mpf(m2)
        v1, v2, cov = a * a * mp.mpf(q1), a * a * mp.mpf(q2), a * a * mp.mpf(c) * mp.sqrt(mp.mpf(q1) * mp.mpf(q2))
        minus = mp.cos(t1 - t2) * mp.exp(-(v1 + v2 - 2 * cov) / 2)
        plus = mp.cos(t1 + t2) * mp.exp(-(v1 + v2 + 2 * cov) / 2)
        if name == "exp":
            return float(mp.exp(t1 + t2 + (v1 + v2 + 2 * cov) / 2))
        return float((minus - plus) / 2 if name == "sin" else (minus + plus) / 2)


CASES = [(q, c) for q in (0.1, 1.0, 10.0, 30.0, 100.0) for c in (-0.99, -0.3, 0.0, 0.3, 0.9, 0.99, 1.0)]


@pytest.mark.parametrize(("q", "c"), CASES)
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_trig_cross_moments_exact_at_any_q(name: str, q: float, c: float) -> None:
    """Quadrature lost 1.7e-9 at q = 10 and 1e-3 at q = 100; at q = 100, c = 0.3 it gave -9.49e-12 for 1.99e-31."""
    exact = _mp_trig(name, 0.0, 0.0, q, q, c)
    value, error = varprop.dynamics.cross_moment(name, c, q, with_error=True)
    assert value == pytest.approx(exact, rel=1e-13, abs=0), f"{name} q={q} c={c}: {value!r} vs {exact!r}"
    assert abs(value - exact) <= error


def test_issue_value_sin_q100_c03() -> None:
    assert varprop.dynamics.cross_moment("sin", 0.3, 100.0) == pytest.approx(math.exp(-100) * math.sinh(30), rel=1e-14)
    assert varprop.dynamics.cross_moment("sin", 0.3, 100.0) == pytest.approx(1.98772486795e-31, rel=1e-11)


@pytest.mark.parametrize(
    ("text", "name", "amplitude", "slope", "intercept"),
    [("2*sin(3*x + 1)", "sin", 2.0, 3.0, 1.0), ("-cos(x/2)", "cos", -1.0, 0.5, 0.0), ("exp(x)", "exp", 1.0, 1.0, 0.0)],
)
def test_formulas_and_means(text: str, name: str, amplitude: float, slope: float, intercept: float) -> None:
    m1, m2, q1, q2, c = 0.4, -1.1, 2.0, 0.5, 0.6
    # amplitude^2 E[f(a u1 + b) f(a u2 + b)]: shift the means by b / a.
    exact = amplitude**2 * _mp_trig(name, m1 + intercept / slope, m2 + intercept / slope, q1, q2, c, slope)
    value = varprop.dynamics.cross_moment(text, c, q1, var2=q2, mean=m1, mean2=m2)
    assert value == pytest.approx(exact, rel=1e-13, abs=0)


def test_derivative_cross_moment_of_sin_is_cos() -> None:
    value = varprop.dynamics.cross_moment("sin", 0.5, 3.0, derivative=True)
    assert value == pytest.approx(_mp_trig("cos", 0, 0, 3.0, 3.0, 0.5), rel=1e-14)


@pytest.mark.parametrize(("q", "c"), [(100.0, 0.3), (100.0, 0.99), (1.0, 0.5), (300.0, 0.99)])
def test_exp_cross_moment_exact(q: float, c: float) -> None:
    """exp: 1.45e-8 relative error at q = 100, c = 0.3; ConvergenceError at c = 0.99 though e^199 is a float."""
    assert varprop.dynamics.cross_moment("exp(x)", c, q) == pytest.approx(math.exp(q * (1 + c)), rel=1e-13, abs=0)


def test_exp_cross_moment_overflow_names_the_input() -> None:
    with pytest.raises(ConvergenceError, match=r"corr=0\.9.*var=400\.0.*float64 range"):
        varprop.dynamics.cross_moment("exp(x)", 0.9, 400.0)


@pytest.mark.parametrize(("q", "c"), [(q, c) for q in (1.0, 10.0, 30.0, 100.0) for c in (-0.7, 0.1, 0.6, 0.9, 0.99)])
def test_quadrature_error_estimate_bounds_oscillatory_truth(q: float, c: float) -> None:
    """sin(x) + 1 has no closed form here: E = e^-q sinh(q c) + 1; the estimate must bound the true error."""
    value, error = varprop.dynamics.cross_moment("sin(x)+1", c, q, with_error=True)
    truth = math.exp(-q) * math.sinh(q * c) + 1.0
    assert abs(value - truth) <= error, f"q={q} c={c}: true error {abs(value - truth):.3e} > estimate {error:.3e}"
    assert error <= 1e-2  # and it says how good the number is, not just "something"


def test_quadrature_rtol_raises_when_not_reached() -> None:
    with pytest.raises(ConvergenceError, match=r"estimated error .* exceeds rtol=1e-12"):
        varprop.dynamics.cross_moment("sin(x)+1", 0.99, 100.0, rtol=1e-12)
    value = varprop.dynamics.cross_moment("tanh", 0.5, 1.0, rtol=1e-10)  # reached: no error
    assert isinstance(value, float)
