"""The q-curve c(q) = E[phi(sqrt(q) z)^2] / q and its limits, against analytic values and the moments API."""

from __future__ import annotations

import math

import numpy as np
import pytest

import varprop
from varprop._activations_builtin import SELU_ALPHA, SELU_SCALE
from varprop.dynamics._qcurve import q_curve, q_limits, stability_slopes

# (spec, lim c as q -> 0, lim c as q -> inf), from the one-sided slopes at 0 and at +-infinity:
# c -> (phi'(0-)^2 + phi'(0+)^2) / 2 when phi(0) = 0 (else inf: None), c -> (s_-^2 + s_+^2) / 2.
LIMITS = [
    ("elu", 1.0, 0.5),  # the seed answer's two limits
    ("elu(alpha=0.5)", (0.25 + 1.0) / 2, 0.5),
    ("relu", 0.5, 0.5),
    ("leaky_relu(negative_slope=0.2)", (1 + 0.04) / 2, (1 + 0.04) / 2),
    ("selu", SELU_SCALE**2 * (1 + SELU_ALPHA**2) / 2, SELU_SCALE**2 / 2),
    ("gelu", 0.25, 0.5),
    ("tanh", 1.0, 0.0),
    ("erf", 4 / math.pi, 0.0),
    ("sin", 1.0, 0.0),
    ("softshrink", 0.0, 1.0),  # phi = x - lambd far out: the offset must not leak into the limit
    ("tanhshrink", 0.0, 1.0),
    ("identity", 1.0, 1.0),
    ("sigmoid", None, 0.0),  # sigmoid(0) = 1/2: c(q) ~ 1/(4q) -> inf
    ("softplus", None, 0.5),
]


@pytest.mark.parametrize(("spec", "small", "large"), LIMITS)
def test_limits(spec: str, small: float | None, large: float | None) -> None:
    got_small, got_large = q_limits(spec)
    if small is None:
        assert got_small is None
    else:
        assert got_small == pytest.approx(small, rel=1e-12, abs=1e-15)
    assert got_large == pytest.approx(large, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("spec", "small", "large"), [case for case in LIMITS if case[1] is not None])
def test_curve_approaches_its_limits(spec: str, small: float, large: float) -> None:
    curve = q_curve(spec, q_min=1e-8, q_max=1e8, points=17)
    # Smooth activations approach the limits like q (at 0) and 1/sqrt(q) or faster (at infinity).
    assert curve.c[0] == pytest.approx(small, abs=1e-3)
    assert curve.c[-1] == pytest.approx(large, abs=1e-3)


def test_curve_is_the_moments_api() -> None:
    curve = q_curve("gelu", points=9, include=(2.0,))
    assert curve.q.size == 10 and 2.0 in curve.q and 1.0 in curve.q
    expected = np.asarray(varprop.moments("gelu", var=curve.q).second_moment) / curve.q
    np.testing.assert_allclose(curve.c, expected, rtol=1e-15, atol=0)
    np.testing.assert_allclose(curve.gain, np.asarray(varprop.gain("gelu", var=curve.q)), rtol=1e-14, atol=0)


def test_zero_second_moment_gives_infinite_gain_not_an_error() -> None:
    curve = q_curve("hardshrink", points=9)  # E[phi^2] underflows to 0 at q = 1e-4 (lambd 50 sigma out)
    assert curve.c[0] == 0.0 and math.isinf(curve.gain[0])
    assert curve.to_dict()["gain"][0] is None
    slopes = stability_slopes("hardshrink", curve)
    assert slopes is not None and math.isnan(slopes[0]) and np.isfinite(slopes[1:]).all()


def test_stability_slopes_match_dynamics() -> None:
    curve = q_curve("elu", points=5)
    slopes = stability_slopes("elu", curve)
    assert slopes is not None
    reference = np.asarray(varprop.dynamics.stability("elu", var=curve.q).slope)
    np.testing.assert_array_equal(slopes, reference)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q_min": 0.0}, "q_min"),
        ({"q_min": 10.0, "q_max": 1.0}, "q_max"),
        ({"points": 1}, "points"),
        ({"include": (-1.0,)}, "include"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(varprop.VarpropValueError, match=message):
        q_curve("elu", **kwargs)  # type: ignore[arg-type]
