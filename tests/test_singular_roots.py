"""Singular points at the zeros of non-affine sub-expressions (issue 12): found by root finding, then integrated
exactly, refused as divergent, or refused where the formula is not real.

Oracle: mpmath quadrature at 40 digits with the singular points as breakpoints, each interval split at its
middle and each half substituted y = p +- u^k, k = 1/(1 - b) (|y - p|^-b becomes smooth in u; plain tanh-sinh
misses the mass below its smallest node), and the closed form of E[log(x^2)] = -(gamma + log 2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mpmath as mp
import numpy as np
import pytest

import varprop
from varprop import ConvergenceError, VarpropValueError


def _mp_expectation(
    f: Callable[[Any], Any], mean: float, var: float, points: Callable[[], Sequence[Any]], exponent: float = 0.0
) -> float:
    """E[f(y)], y ~ N(mean, var), for f with |f| ~ |y - p|^-exponent (<= 0.6) at each p of ``points()`` (40 digits).

    ``points`` is called at 40 digits (a breakpoint off the singular point by 1e-16 costs 1e-14 relative).

    mpmath's tanh-sinh with the points as breakpoints: its nodes reach ~1e-40 of each interval, so the mass it
    misses next to a point is ~(1e-40)^(1 - exponent) / (1 - exponent) (< 1e-11 relative at 0.7... 1e-16 at 0.6).
    """
    assert exponent <= 0.6
    with mp.workdps(40):
        m, s = mp.mpf(mean), mp.sqrt(mp.mpf(var))

        def g(y: Any) -> Any:
            return f(y) * mp.exp(-(((y - m) / s) ** 2) / 2) / (s * mp.sqrt(2 * mp.pi))

        splits = {m + c * s for c in (-40, -8, -4, -2, -1, 0, 1, 2, 4, 8, 40)}
        breaks = sorted(splits | {mp.mpf(p) for p in points() if abs(mp.mpf(p) - m) < 40 * s})
        value, error = mp.quad(g, breaks, error=True, maxdegree=10)
        assert error < 1e-16 * abs(value)
        return float(value)


_PI = mp.pi
_CASES = [
    # (formula, mpmath phi, phi^2 exponent at the points, the points (mpmath), mean, var)
    ("abs(x**2-1)**-0.3", lambda y: abs(y**2 - 1) ** mp.mpf(-0.3), 0.6, lambda: [-1, 1], 0.0, 1.0),
    ("abs(x**2-1)**-0.3", lambda y: abs(y**2 - 1) ** mp.mpf(-0.3), 0.6, lambda: [-1, 1], 0.5, 2.0),
    ("abs(exp(x)-2)**-0.3", lambda y: abs(mp.exp(y) - 2) ** mp.mpf(-0.3), 0.6, lambda: [mp.log(2)], 0.0, 1.0),
    (
        "abs(sin(x))**-0.2",
        lambda y: abs(mp.sin(y)) ** mp.mpf(-0.2),
        0.4,
        lambda: [j * _PI for j in range(-12, 13)],
        0.0,
        1.0,
    ),
    ("log(x**2)", lambda y: mp.log(y**2), 0.0, lambda: [0], 0.0, 1.0),
    ("log(x**2)", lambda y: mp.log(y**2), 0.0, lambda: [0], 1.5, 0.5),
    ("log(x)", lambda y: mp.log(y), 0.0, lambda: [], 5.0, 0.01),
    ("1/(x**2+1)", lambda y: 1 / (y**2 + 1), 0.0, lambda: [], 0.3, 2.0),
]


@pytest.mark.filterwarnings("ignore::varprop.VarpropWarning")  # abs(x**2-1): kinks not at an affine argument
@pytest.mark.parametrize(("text", "oracle", "exponent", "points", "mean", "var"), _CASES)
def test_roots_of_non_affine_pieces_against_mpmath(
    text: str,
    oracle: Callable[[Any], Any],
    exponent: float,
    points: Callable[[], list[Any]],
    mean: float,
    var: float,
) -> None:
    result = varprop.moments(text, var=var, mean=mean, with_error=True)
    assert result.error is not None
    for row, power, got, estimate in (
        ("E[phi]", 1, result.mean, result.error[0]),
        ("E[phi^2]", 2, result.second_moment, result.error[1]),
    ):
        exact = _mp_expectation(lambda y, power=power: oracle(y) ** power, mean, var, points, exponent * power / 2)
        error = abs(got - exact)
        assert error <= estimate, f"{row}: true error {error:.3e} > estimate {estimate:.3e}"
        # At a simple root p of a non-affine piece u the formula is evaluated with u as its Taylor polynomial
        # in the exact offset (p is within a few ulps of the root): full accuracy, as for affine pieces.
        tolerance = 1e-13
        assert error <= tolerance * abs(exact), f"{row}: relative error {error / abs(exact):.3e}"
        assert estimate <= max(1e4 * error, 1e-12 * abs(exact)), f"{row}: estimate {estimate:.3e} too loose"


def test_log_of_square_closed_form() -> None:
    """E[log(z^2)] = -(gamma + log 2) (log of a chi-square with one degree of freedom)."""
    with mp.workdps(30):
        exact = float(-(mp.euler + mp.log(2)))
    result = varprop.moments("log(x**2)", with_error=True)
    assert result.error is not None
    assert abs(result.mean - exact) <= result.error[0] <= 1e-13
    assert result.deriv_second_moment == float("inf")  # phi' = 2/x


@pytest.mark.parametrize(
    ("text", "where", "more"),
    [
        ("1/(x**2-1)", "x=-1.0", "and 1 more"),
        ("1/sin(x)", "x=-37.69911184307752", "and 24 more within 40 std"),
        ("1/(exp(x)-2)", "x=0.6931471805599453", ""),
        ("1/sqrt(abs(x**2-1))", "x=-1.0", "and 1 more"),  # |phi|^2 ~ 1/|x - 1|: just divergent
        ("x/(x**2-2*x+1)", "x=1.0", ""),  # a double root: |phi| ~ |x - 1|^-2
    ],
)
def test_divergent_at_numerical_roots(text: str, where: str, more: str) -> None:
    with pytest.raises(ConvergenceError, match=rf"diverges: non-integrable singularity at {where}") as info:
        varprop.moments(text)
    assert more in str(info.value)
    with pytest.raises(ConvergenceError, match="diverges"):
        varprop.gain(text)


def test_poles_beyond_the_reach_do_not_count() -> None:
    """1/sin(x) at mean 1.5, var 0.001 (reach 1.5 +- 1.26): no pole within 40 std, the plain integral."""
    result = varprop.moments("1/sin(x)", mean=1.5, var=0.001, with_error=True)
    exact = _mp_expectation(lambda y: 1 / mp.sin(y) ** 2, 1.5, 0.001, list)
    assert result.error is not None
    assert abs(result.second_moment - exact) <= result.error[1] <= 1e-12 * exact
    assert abs(result.second_moment - exact) <= 1e-14 * exact


@pytest.mark.parametrize(
    ("text", "where", "mean", "var"),
    [
        ("log(x)", "x < 0", 0.0, 1.0),
        ("sqrt(x)", "x < 0", 1.0, 1.0),
        ("x**0.5", "x < 0", 0.0, 1.0),
        ("log(1-x)", "x > 1", 0.0, 1.0),
        ("sqrt(1-x**2)", "x < -1 and x > 1", 0.0, 0.1),
        ("log(x**2-1)", "-1 < x < 1", 3.0, 1.0),
    ],
)
def test_formulas_not_real_in_reach_say_where(text: str, where: str, mean: float, var: float) -> None:
    """log(x) raised the generic 'not finite' error; now the half-line where it is not real and what to do."""
    with pytest.raises(VarpropValueError, match=rf"is not real for {where}: .* is negative there.*log\(abs\(x\)\)"):
        varprop.moments(text, var=var, mean=mean)
    if mean == 0.0 and var == 1.0:
        with pytest.raises(VarpropValueError, match="is not real"):
            varprop.gain(text)


def test_detection_off_the_hot_path() -> None:
    """Registered activations and formulas without denominators, log, sqrt or fractional powers carry no search."""
    for spec in ("elu", "gelu", "silu", "tanh", "x*sigmoid(1.702*x)", "1/(1+exp(-x))", "x/abs(x-1)"):
        assert "singular_search" not in varprop.activation(spec).extra, spec
    assert "singular_search" in varprop.activation("1/(x**2-1)").extra
    assert "singular_search" in varprop.activation("log(x)").extra


def test_vectorized_calls_search_each_reach() -> None:
    """log(x) at two means: the first is real in reach, the array call raises for the second."""
    values = varprop.moments("log(x)", var=np.array([0.01, 0.0081]), mean=np.array([5.0, 4.0]))
    for got, (mean, var) in zip(values.second_moment, [(5.0, 0.01), (4.0, 0.0081)], strict=True):
        exact = _mp_expectation(lambda y: mp.log(y) ** 2, mean, var, list)
        assert got == pytest.approx(exact, rel=1e-13, abs=0)
    with pytest.raises(VarpropValueError, match="is not real for x < 0"):
        varprop.moments("log(x)", var=np.array([0.01, 1.0]), mean=np.array([5.0, 4.0]))


@pytest.mark.filterwarnings("ignore::varprop.VarpropWarning")  # abs(x**2-1): kinks not at an affine argument
@pytest.mark.parametrize(("mean", "var"), [(0.0, 1.0), (-0.7, 0.3)])
def test_derivative_moment_through_numerical_roots(mean: float, var: float) -> None:
    """abs(x**2-1)**0.8: phi' = 1.6 x sign(x^2 - 1) |x^2 - 1|^-0.2, E[phi'^2] finite (exponent 0.4)."""
    result = varprop.moments("abs(x**2-1)**0.8", var=var, mean=mean, with_error=True)
    exact = _mp_expectation(
        lambda y: (mp.mpf(1.6) * y) ** 2 * abs(y**2 - 1) ** mp.mpf(-0.4), mean, var, lambda: [-1, 1], 0.4
    )
    assert result.error is not None
    error = abs(result.deriv_second_moment - exact)
    assert error <= result.error[3], f"true error {error:.3e} > estimate {result.error[3]:.3e}"
    assert error <= 1e-13 * exact, f"relative error {error / exact:.3e}"


def test_too_many_poles_in_reach_are_refused() -> None:
    """abs(sin(x))**-0.2 at var 1e6 has 25000 singular points within 40 std: refused, not a sampled guess."""
    with pytest.raises(ConvergenceError, match=r"more than 500 zeros in \[-40000, 40000\].*use a smaller variance"):
        varprop.moments("abs(sin(x))**-0.2", var=1e6)
    with pytest.raises(ConvergenceError, match="more than 500 zeros"):
        varprop.moments("abs(sin(30*x))**-0.2")
