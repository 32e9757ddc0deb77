"""varprop.torch.jacobian_spectrum against torch.autograd, its Lanczos path against its exact path, and the
dynamical-isometry criterion of issue 11 (critical orthogonal tanh vs Gaussian weights at target_var = 1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import varprop
import varprop.torch as vt
from varprop._errors import VarpropTypeError, VarpropValueError
from varprop.dynamics._variance_map import gaussian_rows


def plain_tanh(width: int, depth: int) -> nn.Sequential:
    """depth x (Linear, Tanh): J = D_L W_L ... D_1 W_1, the net of varprop.predict_jacobian_spectrum."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers)


def critical_tanh_scales(q: float = 1.0 / 64.0) -> tuple[float, float]:
    """(sigma_w, sigma_b) on the edge of chaos at the fixed point q, from the core's Gaussian expectations.

    sigma_w^2 = 1 / E[phi'(sqrt(q) z)^2] (chi1 = 1), sigma_b^2 = q - sigma_w^2 E[phi(sqrt(q) z)^2] (q fixed);
    q = 1/64 is the near-linear point issue 11 asks for (Pennington et al. 2017).
    """
    deriv, second = gaussian_rows(varprop.activation("tanh"), 0.0, q, ["deriv", "second"])
    weight_std = 1.0 / math.sqrt(float(deriv))
    return weight_std, math.sqrt(q - weight_std**2 * float(second))


def orthogonal_init_(model: nn.Sequential, weight_std: float, bias_std: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model:
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight, gain=weight_std, generator=generator)
                module.bias.normal_(0.0, bias_std, generator=generator)


def test_exact_matches_autograd_jacobian() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 7), nn.ELU()).double()
    batch = torch.randn(3, 6, dtype=torch.float64)
    spectrum = vt.jacobian_spectrum(model, batch, inputs=3)
    assert spectrum.method == "exact" and (spectrum.output_dim, spectrum.input_dim) == (7, 6)
    for row, values in zip(batch, spectrum.singular_values, strict=True):
        jacobian = torch.autograd.functional.jacobian(lambda x: model(x[None])[0], row)
        expected = np.sort(torch.linalg.svdvals(jacobian).numpy())
        np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-15)
    pooled = np.sort(np.concatenate(spectrum.singular_values))
    # 18 values: the 10th percentile is the smallest v with at least 1.8 of them at or below it, the 2nd one.
    assert spectrum.percentiles[10] == pooled[1]
    assert spectrum.percentiles[90] == pooled[16]
    assert spectrum.spread == pooled[16] / pooled[1]


def test_lanczos_with_a_full_krylov_space_is_exact() -> None:
    """With as many steps as the dimension, the Ritz values are the eigenvalues of J^T J (full reorthogonalization)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(24, 24), nn.Tanh(), nn.Linear(24, 24)).double()
    batch = torch.randn(2, 24, dtype=torch.float64)
    exact = vt.jacobian_spectrum(model, batch, inputs=2)
    lanczos = vt.jacobian_spectrum(
        model, batch, inputs=2, exact_max_width=8, iterations=24, probes=1, generator=torch.Generator().manual_seed(0)
    )
    assert lanczos.method == "lanczos" and lanczos.iterations == 24
    for expected, values, weights in zip(exact.singular_values, lanczos.singular_values, lanczos.weights, strict=True):
        np.testing.assert_allclose(values, expected, rtol=1e-9)
        assert weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_lanczos_percentiles_within_the_stated_accuracy() -> None:
    """Stochastic Lanczos quadrature on a 256-wide critical orthogonal tanh net against the exact SVD."""
    weight_std, bias_std = critical_tanh_scales()
    model = plain_tanh(256, 8).double()
    orthogonal_init_(model, weight_std, bias_std, seed=3)
    batch = torch.randn(2, 256, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    exact = vt.jacobian_spectrum(model, batch, inputs=2)
    lanczos = vt.jacobian_spectrum(
        model, batch, inputs=2, exact_max_width=128, iterations=60, probes=2, generator=torch.Generator().manual_seed(5)
    )
    assert 0 < lanczos.cdf_error < 0.2, lanczos.cdf_error  # the Chebyshev-Markov-Stieltjes bound is pessimistic
    for level in (10, 50, 90):
        low = lanczos.percentile(max(level - 100 * lanczos.cdf_error, 1e-9))
        high = lanczos.percentile(min(level + 100 * lanczos.cdf_error, 100.0))
        assert low <= exact.percentiles[level] <= high, (level, low, exact.percentiles[level], high)


def test_measured_spectrum_matches_free_probability() -> None:
    """A 20-layer width-256 critical orthogonal tanh net fed at its fixed point against the prediction."""
    weight_std, bias_std = critical_tanh_scales()
    model = plain_tanh(256, 20).double()
    orthogonal_init_(model, weight_std, bias_std, seed=6)
    q = 1.0 / 64.0
    input_std = math.sqrt(q - bias_std**2) / weight_std  # so that the first pre-activations have variance q*
    batch = input_std * torch.randn(4, 256, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    measured = vt.jacobian_spectrum(model, batch, inputs=4)
    predicted = varprop.predict_jacobian_spectrum("tanh", weight_std, 20, bias_std=bias_std, distribution="orthogonal")
    values, weights = measured.pooled()
    for level, value in predicted.percentiles.items():
        fraction = float(weights[values <= value].sum())
        # One random net (its 4 inputs share the weights): the fraction below a percentile of 256 values
        # fluctuates by ~sqrt(p (1 - p) / 256) = 0.019 at most, eigenvalue repulsion makes it less.
        assert fraction == pytest.approx(level / 100, abs=0.06), (level, fraction, measured.percentiles)


def test_bad_input() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(VarpropTypeError, match="floating-point tensor"):
        vt.jacobian_spectrum(model, [[1.0, 2.0, 3.0, 4.0]])  # type: ignore[arg-type]
    with pytest.raises(VarpropValueError, match="inputs=5 but the batch has only 2 rows"):
        vt.jacobian_spectrum(model, torch.randn(2, 4), inputs=5)
    with pytest.raises(VarpropTypeError, match=r"torch\.nn\.Module"):
        vt.jacobian_spectrum(lambda x: x, torch.randn(2, 4))  # type: ignore[arg-type]
    training = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with pytest.raises(VarpropValueError, match=r"batch of one.*model\.eval\(\)"):
        vt.jacobian_spectrum(training, torch.randn(3, 4))
    assert vt.jacobian_spectrum(training.eval(), torch.randn(3, 4)).method == "exact"


def test_issue_11_criterion_with_init_model_options() -> None:
    """Issue 11's "Done when": init_model(objective='critical', distribution='orthogonal') on a 30-layer
    width-128 tanh net has a Jacobian spread p90/p10 at least 10x tighter than Gaussian weights at target_var=1,
    and the spread free probability predicts at its (sigma_w, sigma_b) (its first layer maps the N(0, 1) input
    to q*, which scales every singular value alike and leaves the spread)."""
    batch = torch.randn(4, 128, generator=torch.Generator().manual_seed(8))
    gaussian = plain_tanh(128, 30)
    vt.init_model(gaussian, (64, 128), generator=torch.Generator().manual_seed(9))
    critical = plain_tanh(128, 30)
    report = vt.init_model(
        critical,
        (64, 128),
        objective="critical",
        distribution="orthogonal",
        generator=torch.Generator().manual_seed(9),
    )
    gaussian_spectrum = vt.jacobian_spectrum(gaussian, batch)
    critical_spectrum = vt.jacobian_spectrum(critical, batch)
    assert gaussian_spectrum.spread / critical_spectrum.spread >= 10.0, (
        gaussian_spectrum.percentiles,
        critical_spectrum.percentiles,
    )
    point = report.settings["critical"]
    predicted = varprop.predict_jacobian_spectrum(
        "tanh", point["sigma_w"], 30, bias_std=point["sigma_b"], distribution="orthogonal"
    )
    assert critical_spectrum.spread == pytest.approx(predicted.spread, rel=0.15), critical_spectrum.percentiles
