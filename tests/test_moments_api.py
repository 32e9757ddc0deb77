"""API-level tests of ``varprop.moments`` and ``varprop.gaussian.monte_carlo_moments`` against independent oracles.

References: the seed constants (``shared/seed.md``, 40-digit quadrature), elementary closed forms
(ReLU, identity, a point mass) and Monte Carlo within 5 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import varprop
from varprop import VarpropError, VarpropTypeError, VarpropValueError

# E[elu(z)^2], z ~ N(0, 1), and its consequences, verified with 40-digit quadrature in shared/seed.md:
# mp.quad(lambda z: elu(z)**2 * exp(-z**2/2)/sqrt(2 pi), [-inf, 0, inf]) with mp.dps = 40.
ELU_SECOND_MOMENT = 0.644945417492924
ELU_VAR_TIMES_FAN = 1.55051880806793  # 1 / E[elu^2]: n Var[w] (a variance)
ELU_STD_TIMES_SQRT_FAN = 1.24519830070071  # 1 / sqrt(E[elu^2]): std[w] sqrt(n) (a standard deviation)
SEED_RTOL = 5e-15  # the references are rounded to 15 significant digits (half a unit: <= 5e-15 relative)


def test_elu_second_moment_matches_the_seed_reference() -> None:
    result = varprop.moments("elu")
    assert result.second_moment == pytest.approx(ELU_SECOND_MOMENT, rel=SEED_RTOL, abs=0)
    assert 1.0 / result.second_moment == pytest.approx(ELU_VAR_TIMES_FAN, rel=SEED_RTOL, abs=0)
    assert 1.0 / math.sqrt(result.second_moment) == pytest.approx(ELU_STD_TIMES_SQRT_FAN, rel=SEED_RTOL, abs=0)


def test_elu_closed_form_from_seed_notes() -> None:
    """The corrected closed form of shared/seed.md, with A = erfcx(1/sqrt 2)/2, B = erfcx(sqrt 2)/2 (sigma = 1)."""
    from scipy.special import erfcx

    sigma = 1.0
    a_term, b_term = erfcx(sigma / math.sqrt(2)) / 2, erfcx(math.sqrt(2) * sigma) / 2
    expected = (
        sigma / math.sqrt(2 * math.pi) + (a_term - 0.5),
        sigma**2 / 2 + (b_term - 2 * a_term + 0.5),
        0.5 + b_term,
    )
    result = varprop.moments("elu", var=sigma**2)
    got = [float(result.mean), float(result.second_moment), float(result.deriv_second_moment)]
    np.testing.assert_allclose(got, np.array(expected, dtype=float), rtol=1e-14, atol=0)


@pytest.mark.parametrize("var", [1e-4, 0.3, 1.0, 7.0, 1e4])
def test_relu_moments_are_elementary(var: float) -> None:
    """ReLU: E[relu] = sqrt(q / 2 pi), E[relu^2] = q / 2, E[relu'^2] = 1/2 (He et al. 2015)."""
    result = varprop.moments("relu", var=var)
    expected = [math.sqrt(var / (2 * math.pi)), var / 2, var / 2 - var / (2 * math.pi), 0.5]
    got = [float(value) for value in (result.mean, result.second_moment, result.variance, result.deriv_second_moment)]
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize(("mean", "var"), [(0.0, 1.0), (2.0, 0.5), (-3.0, 4.0)])
def test_identity_with_mean(mean: float, var: float) -> None:
    result = varprop.moments("identity", var=var, mean=mean)
    np.testing.assert_allclose(
        [float(value) for value in (result.mean, result.second_moment, result.variance, result.deriv_second_moment)],
        [mean, mean**2 + var, var, 1.0],
        rtol=1e-13,
        atol=1e-15,
    )


def test_zero_variance_is_a_point_mass() -> None:
    result = varprop.moments("tanh", var=0.0, mean=0.3)
    assert result.mean == pytest.approx(math.tanh(0.3), rel=1e-15)
    assert result.second_moment == pytest.approx(math.tanh(0.3) ** 2, rel=1e-15)
    assert result.variance == 0.0


def test_scalar_in_float_out_and_broadcasting() -> None:
    scalar = varprop.moments("gelu", var=2.0, mean=0.5)
    assert all(type(value) is float for value in (scalar.mean, scalar.second_moment, scalar.variance))
    var = np.array([0.5, 1.0, 2.0])
    mean = np.array([[0.0], [0.5]])
    grid = varprop.moments("gelu", var=var, mean=mean)
    assert np.shape(grid.second_moment) == (2, 3)
    assert np.asarray(grid.second_moment)[1, 2] == pytest.approx(scalar.second_moment, rel=1e-14)
    for i, m in enumerate(mean[:, 0]):
        for j, v in enumerate(var):
            point = varprop.moments("gelu", var=float(v), mean=float(m))
            assert np.asarray(grid.variance)[i, j] == pytest.approx(point.variance, rel=1e-13)


def test_variance_is_second_moment_minus_mean_squared() -> None:
    result = varprop.moments("softplus", var=3.0, mean=-0.5)
    assert result.variance == pytest.approx(result.second_moment - result.mean**2, rel=1e-13)


def test_error_estimates_are_attached_on_request() -> None:
    assert varprop.moments("elu").error is None
    result = varprop.moments("elu", with_error=True)
    assert result.error is not None and len(result.error) == 4
    assert all(0.0 <= float(np.asarray(err)) < 1e-11 for err in result.error)
    second_error = float(np.asarray(result.error[1]))
    assert abs(float(result.second_moment) - ELU_SECOND_MOMENT) <= max(second_error, 1e-15)


def test_spec_activation_and_callable_agree() -> None:
    by_name = varprop.moments("tanh", var=2.0)
    by_value = varprop.moments(varprop.activation("tanh"), var=2.0)
    by_callable = varprop.moments(np.tanh, var=2.0)
    assert by_value.second_moment == by_name.second_moment
    assert by_callable.second_moment == pytest.approx(by_name.second_moment, rel=1e-13)


# --------------------------------------------------------------------------------------------- Monte Carlo

MC_CASES = [
    ("elu", 1.0, 0.0),
    ("tanh", 2.0, 0.3),
    ("gelu", 0.5, -0.4),
    ("relu", 1.0, 0.0),
    ("hardtanh", 1.5, 0.2),
    ("x*sigmoid(1.702*x)", 1.0, 0.0),
]


@pytest.mark.parametrize(("spec", "var", "mean"), MC_CASES)
def test_monte_carlo_agrees_within_five_standard_errors(spec: str, var: float, mean: float) -> None:
    exact = varprop.moments(spec, var=var, mean=mean)
    mc = varprop.gaussian.monte_carlo_moments(spec, var=var, mean=mean, samples=200_000, seed=12345)
    for field in ("mean", "second_moment", "variance", "deriv_second_moment"):
        estimate, se, reference = getattr(mc, field), getattr(mc, f"{field}_se"), getattr(exact, field)
        assert se > 0
        assert abs(estimate - reference) <= 5 * se, (
            f"{spec} {field}: Monte Carlo {estimate} vs exact {reference}: {abs(estimate - reference) / se:.2f} s.e."
        )


def test_monte_carlo_is_reproducible_and_shrinks_like_one_over_sqrt_n() -> None:
    first = varprop.gaussian.monte_carlo_moments("elu", samples=10_000, seed=7)
    again = varprop.gaussian.monte_carlo_moments("elu", samples=10_000, seed=7)
    assert first == again
    larger = varprop.gaussian.monte_carlo_moments("elu", samples=160_000, seed=7)
    assert larger.samples == 160_000
    assert larger.second_moment_se / first.second_moment_se == pytest.approx(0.25, rel=0.1)


def test_seed_answer_precision_is_what_sampling_gives() -> None:
    """The seed's '0.645' has 3 digits: 1e6 samples give a standard error of about 1e-3."""
    mc = varprop.gaussian.monte_carlo_moments("elu", samples=10**6, seed=0)
    assert 5e-4 < mc.second_moment_se < 2e-3
    assert round(ELU_SECOND_MOMENT, 3) == 0.645
    assert round(1 / ELU_SECOND_MOMENT, 2) == 1.55


# --------------------------------------------------------------------------------------------- bad input

BAD_VAR = [
    (-1.0, VarpropValueError, "var must be >= 0"),
    (float("nan"), VarpropValueError, "NaN"),
    (float("inf"), VarpropValueError, "finite"),
    (True, VarpropTypeError, "bool"),
    ("1.0", VarpropTypeError, "var must be a real number"),
    ([1.0, -2.0], VarpropValueError, "-2.0"),
]


@pytest.mark.parametrize(("var", "error", "message"), BAD_VAR)
def test_bad_variance_is_refused(var: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        varprop.moments("elu", var=var)


@pytest.mark.parametrize(
    ("var", "error"), [(-1.0, VarpropValueError), (float("nan"), VarpropValueError), (True, VarpropTypeError)]
)
def test_monte_carlo_bad_variance_is_refused(var: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        varprop.gaussian.monte_carlo_moments("elu", var=var, samples=10)


@pytest.mark.parametrize(
    ("samples", "error"), [(0, VarpropValueError), (True, VarpropTypeError), (1.5, VarpropTypeError)]
)
def test_monte_carlo_bad_sample_count_is_refused(samples: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="samples"):
        varprop.gaussian.monte_carlo_moments("elu", samples=samples)  # type: ignore[arg-type]


def test_bad_mean_and_method_are_refused() -> None:
    with pytest.raises(VarpropValueError, match="mean"):
        varprop.moments("elu", mean=float("nan"))
    with pytest.raises(VarpropValueError, match="'auto', 'closed_form', 'quadrature'"):
        varprop.moments("elu", method="exact")  # type: ignore[arg-type]


def test_unknown_activation_suggests_the_nearest_name() -> None:
    with pytest.raises(VarpropValueError, match="did you mean 'gelu'"):
        varprop.moments("gelus")


def test_every_error_is_a_varprop_error() -> None:
    for var in (-1, True):
        with pytest.raises(VarpropError):
            varprop.moments("elu", var=var)
