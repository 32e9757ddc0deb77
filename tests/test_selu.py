"""SELU's self-normalizing constants and its (mean, variance) map, against Klambauer et al. (2017) and mpmath.

References: Klambauer, Unterthiner, Mayr & Hochreiter (2017), "Self-Normalizing Neural Networks":
alpha_01 = 1.6732632423543772848170429916717, lambda_01 = 1.0507009873554804934193349852946 (the
values PyTorch's SELU uses), Jacobian [[0, 0.088834], [0, 0.782648]] with spectral norm 0.7877 at
(mu, nu) = (0, 1), omega = 0, tau = 1. 40-digit solutions of the same equations by mpmath findroot
on tanh-sinh integrals: ``tests/reference/dynamics_reference.json``
(``python tests/reference/generate_dynamics.py --processes 2``).
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import numpy as np
import pytest

from varprop import VarpropValueError, moments
from varprop.dynamics._variance_map import stability
from varprop.selu._fixed_point import selu_jacobian, selu_moment_map, selu_parameters

REFERENCE = os.path.join(os.path.dirname(__file__), "reference", "dynamics_reference.json")
with open(REFERENCE) as _handle:
    SELU: dict[str, Any] = json.load(_handle)["selu"]

# Klambauer et al. (2017), eq. (14) and the text below it.
ALPHA_01 = 1.6732632423543772848
LAMBDA_01 = 1.0507009873554804934


def test_published_constants() -> None:
    alpha, scale = selu_parameters()
    assert abs(alpha - ALPHA_01) <= 1e-15 * ALPHA_01, alpha
    assert abs(scale - LAMBDA_01) <= 1e-15 * LAMBDA_01, scale


def test_constants_against_mpmath() -> None:
    alpha, scale = selu_parameters()
    assert abs(alpha - float(SELU["alpha"])) <= 2e-16 * alpha
    assert abs(scale - float(SELU["scale"])) <= 2e-16 * scale
    # The mpmath solution itself reproduces the paper's 20 digits.
    assert SELU["alpha"].startswith("1.6732632423543772848")
    assert SELU["scale"].startswith("1.0507009873554804934")


@pytest.mark.parametrize("var", [0.25, 1.0, 2.0, 9.0])
def test_parameters_make_a_fixed_point(var: float) -> None:
    """Independent check with the moment engine: E[selu(z)] = 0 and E[selu(z)^2] = var for z ~ N(0, var)."""
    from varprop._activation import Activation

    alpha, scale = selu_parameters(var)
    act = Activation(
        name="selu_test",
        function=lambda x: np.where(x > 0, scale * x, scale * alpha * np.expm1(np.minimum(x, 0.0))),
        derivative=lambda x: np.where(x > 0, scale, scale * alpha * np.exp(np.minimum(x, 0.0))),
        kinks=(0.0,),
    )
    result = moments(act, var=var)
    assert abs(float(result.mean)) <= 1e-15 * math.sqrt(var)
    assert float(result.second_moment) == pytest.approx(var, rel=1e-14)
    mean, variance = selu_moment_map(0.0, var, alpha=alpha, scale=scale)
    assert abs(mean) <= 1e-15 * math.sqrt(var) and variance == pytest.approx(var, rel=1e-14)


def test_jacobian_published_and_mpmath() -> None:
    jac = selu_jacobian()
    # Klambauer et al.: J(0, 1) = [[0.0, 0.088834], [0.0, 0.782648]], spectral norm 0.7877.
    assert jac[0, 0] == 0.0 and jac[1, 0] == 0.0
    # The paper prints d mu~/d nu truncated to 0.088834; the 40-digit value is 0.0888347551...
    assert abs(float(jac[0, 1]) - 0.088834) < 1e-6
    assert round(float(jac[1, 1]), 6) == 0.782648
    assert round(float(np.linalg.norm(jac, 2)), 4) == 0.7877
    assert float(jac[0, 1]) == pytest.approx(float(SELU["jacobian_dmean_dvar"]), rel=1e-13)
    assert float(jac[1, 1]) == pytest.approx(float(SELU["jacobian_dvar_dvar"]), rel=1e-13)
    assert float(np.linalg.norm(jac, 2)) == pytest.approx(float(SELU["spectral_norm"]), rel=1e-13)
    # d nu~/d nu is the slope of the variance map of 'selu' at q = 1 (same heat-equation integral).
    assert float(jac[1, 1]) == pytest.approx(float(stability("selu").slope), rel=1e-13)


def test_jacobian_against_finite_differences() -> None:
    kwargs = {"weight_sum": 0.3, "weight_sum_squares": 1.1}
    mean, var, h = 0.1, 1.2, 1e-5
    jac = selu_jacobian(mean, var, **kwargs)
    for column, (dm, dv) in enumerate([(h, 0.0), (0.0, h)]):
        plus = np.array(selu_moment_map(mean + dm, var + dv, **kwargs))
        minus = np.array(selu_moment_map(mean - dm, var - dv, **kwargs))
        np.testing.assert_allclose(jac[:, column], (plus - minus) / (2 * h), rtol=1e-8, atol=1e-11)


def test_errors() -> None:
    with pytest.raises(VarpropValueError, match=re.escape("var must be > 0, got 0.0")):
        selu_parameters(0.0)
    with pytest.raises(VarpropValueError, match="NaN"):
        selu_jacobian(float("nan"))
    with pytest.raises(VarpropValueError, match="weight_sum_squares must be > 0"):
        selu_moment_map(0.0, 1.0, weight_sum_squares=-1.0)
