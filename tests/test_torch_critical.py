"""``init_model(..., objective="critical")``: the edge of chaos as an initialization, measured on deep networks.

Oracles: the core's ``critical_point`` (itself checked against mpmath in test_criticality.py), the variance measured
by forward hooks, and the gradient's second moment measured by backpropagation against chi1^L (Schoenholz et al.
2017, eq. 8: each layer multiplies it by chi1).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import varprop  # noqa: E402
import varprop.torch as vt  # noqa: E402
from torch_helpers import check_predictions, chunked_variances  # noqa: E402
from varprop import VarpropValueError, VarpropWarning  # noqa: E402
from varprop.dynamics._criticality import critical_point  # noqa: E402


def _mlp(act: type[nn.Module], depth: int, width: int, inputs: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(inputs, width)]
    for _ in range(depth - 1):
        layers += [act(), nn.Linear(width, width)]
    return nn.Sequential(*layers)


def _log_gradient_growth(net: nn.Sequential, x: torch.Tensor, seed: int) -> float:
    """ln(E[g_0^2] / E[g_last^2]): the gradient's second moment at the first pre-activation over the last one, for
    a random linear readout of the last (depth - 1 layers of backpropagation in between)."""
    outputs: list[torch.Tensor] = []

    def keep(module: nn.Module, args: object, output: torch.Tensor) -> None:
        output.retain_grad()
        outputs.append(output)

    hooks = [m.register_forward_hook(keep) for m in net if isinstance(m, nn.Linear)]
    y = net(x)
    (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))).sum().backward()
    for hook in hooks:
        hook.remove()
    first, last = (float(o.grad.pow(2).mean()) for o in (outputs[0], outputs[-1]))  # type: ignore[union-attr]
    return math.log(first / last)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_growth_is_chi1_to_the_depth(seed: int) -> None:
    """tanh at target_var 1: chi1 = 1.178, so 20 layers of backpropagation multiply E[g^2] by 1.178^20 = 26.4
    (measured ln 3.25-3.30 over seeds 0-3 against 3.273); objective='critical' keeps it at 1 (|ln| < 0.03)."""
    x = torch.randn(256, 512, generator=torch.Generator().manual_seed(100 + seed))
    chi1 = float(varprop.stability("tanh", var=1.0).chi1)
    plain = _mlp(nn.Tanh, 21, 512, 512)
    vt.init_model(plain, (64, 512), generator=torch.Generator().manual_seed(seed))
    measured = _log_gradient_growth(plain, x, seed)
    assert abs(measured - 20 * math.log(chi1)) < 0.15, (measured, 20 * math.log(chi1))
    for distribution, allowed in (("orthogonal", 0.02), ("normal", 0.1)):
        critical = _mlp(nn.Tanh, 21, 512, 512)
        report = vt.init_model(
            critical,
            (64, 512),
            objective="critical",
            distribution=distribution,
            generator=torch.Generator().manual_seed(seed),
        )
        assert report.settings["critical"]["gradient_factor"] == pytest.approx(1.0, abs=1e-10)
        growth = _log_gradient_growth(critical, x, seed)
        assert abs(growth) < allowed, (distribution, growth)


def test_critical_orthogonal_tanh_jacobian_is_isometric() -> None:
    """Issue 11: a 30-layer width-128 tanh net with objective='critical', distribution='orthogonal' has a Jacobian
    singular-value spread (90th / 10th percentile) at least 10x tighter than Gaussian weights at target_var 1
    (measured 1.33-1.37 against ~1e15, seeds 0-2)."""

    def spread(net: nn.Module, x: torch.Tensor) -> float:
        values = torch.linalg.svdvals(torch.autograd.functional.jacobian(net, x))
        return float(torch.quantile(values, 0.9) / torch.quantile(values, 0.1))

    x = torch.randn(128, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gaussian = _mlp(nn.Tanh, 30, 128, 128).double()
    vt.init_model(gaussian, (64, 128), generator=torch.Generator().manual_seed(0))
    isometric = _mlp(nn.Tanh, 30, 128, 128).double()
    vt.init_model(
        isometric,
        (64, 128),
        objective="critical",
        distribution="orthogonal",
        generator=torch.Generator().manual_seed(0),
    )
    tight, loose = spread(isometric, x), spread(gaussian, x)
    assert tight < 1.6 and loose > 10.0 * tight, (tight, loose)


@pytest.mark.parametrize(("act", "name"), [(nn.Tanh, "tanh"), (nn.ELU, "elu"), (nn.GELU, "gelu")])
@pytest.mark.parametrize("realized", [True, False])
def test_critical_settings_biases_and_predictions(act: type[nn.Module], name: str, realized: bool) -> None:
    point = critical_point(name)
    net = _mlp(act, 6, 256, 64)
    report = vt.init_model(
        net, (32, 64), objective="critical", realized=realized, generator=torch.Generator().manual_seed(3)
    )
    settings = report.settings["critical"]
    assert report.settings["objective"] == "critical"
    assert (settings["sigma_w"], settings["sigma_b"], settings["q*"], settings["chi1"]) == (
        point.weight_std,
        point.bias_std,
        point.q,
        point.chi1,
    )
    assert settings["depth"] == 6
    for row in report.layers:
        assert row.target_var == point.q
    biases = torch.cat([m.bias.detach() for m in net if isinstance(m, nn.Linear)]).double()
    tolerance = 5.0 / math.sqrt(2.0 * biases.numel())  # relative standard error of a sample std: 1 / sqrt(2n)
    assert abs(float(biases.std()) / point.bias_std - 1.0) < tolerance
    measured = chunked_variances(net, lambda g: torch.randn(512, 64, generator=g))
    if realized or name != "gelu":
        # (mean-field GELU drifts by 10-50% over 6 layers of width 256 with objective='variance' at q = 4 as well:
        # per-unit means of a non-zero-mean activation, which realized=True, the default, propagates)
        assert not check_predictions(report, measured), check_predictions(report, measured)
    if realized:
        assert all(abs(measured[row.name][0] / point.q - 1.0) < 0.2 for row in report.layers[1:])
    text = str(report)
    assert f"edge of chaos for {point.activation}: sigma_w {point.weight_std:.6g}" in text
    assert "predicted gradient factor chi1^6 = 1" in text
    row = report.activations[0]
    assert row.phase == "critical" and row.kind == "stable" and row.slope == pytest.approx(point.slope, rel=1e-15)
    # the drift band is predicted for the network as drawn: (sigma_w, sigma_b), not the zero-bias gain
    assert (row.weight_std, row.bias_std) == (point.weight_std, point.bias_std)
    band = row.drift()
    expected = varprop.dynamics.predict_drift(
        row.activation, row.chain_depth, round(row.width), point.weight_std, point.bias_std, input_var=row.input_var
    )
    assert band is not None
    assert band[0] == pytest.approx(float(expected.lower[-1]) / row.input_var, rel=1e-9)
    assert band[1] == pytest.approx(float(expected.upper[-1]) / row.input_var, rel=1e-9)


def test_same_seed_same_weights_and_biases() -> None:
    def build() -> list[torch.Tensor]:
        net = _mlp(nn.Tanh, 4, 32, 16)
        vt.init_model(net, (8, 16), objective="critical", generator=torch.Generator().manual_seed(5))
        return [p.detach().clone() for p in net.parameters()]

    first, second = build(), build()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_relu_warns_and_draws_the_variance_preserving_weights() -> None:
    net = _mlp(nn.ReLU, 4, 32, 16)
    with pytest.warns(VarpropWarning, match=r"'relu' has no non-trivial edge of chaos"):
        report = vt.init_model(net, (8, 16), objective="critical", generator=torch.Generator().manual_seed(1))
    reference = _mlp(nn.ReLU, 4, 32, 16)
    vt.init_model(reference, (8, 16), generator=torch.Generator().manual_seed(1))
    for ours, theirs in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    assert "critical" not in report.settings and any("no non-trivial" in w for w in report.warnings)


def test_critical_errors() -> None:
    mixed = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.ELU(), nn.Linear(8, 8))
    original = [p.detach().clone() for p in mixed.parameters()]
    with pytest.raises(VarpropValueError, match=r"2 different activations \('tanh', 'elu\(alpha=1.0\)'\)"):
        vt.init_model(mixed, (4, 8), objective="critical")
    assert all(torch.equal(a, b) for a, b in zip(original, mixed.parameters(), strict=True))  # untouched
    with pytest.raises(VarpropValueError, match="needs an activation"):
        vt.init_model(nn.Linear(8, 8), (4, 8), objective="critical")
    with pytest.raises(VarpropValueError, match=r"got target_var=2\.0"):
        vt.init_model(_mlp(nn.Tanh, 2, 8, 8), (4, 8), objective="critical", target_var=2.0)
    with pytest.raises(VarpropValueError, match="calibration rescales each layer's output as if its bias were 0"):
        vt.init_model(_mlp(nn.Tanh, 2, 8, 8), (4, 8), objective="critical", calibrate="gaussian")
    with pytest.raises(VarpropValueError, match="valid choices: 'variance', 'critical'"):
        vt.init_model(_mlp(nn.Tanh, 2, 8, 8), (4, 8), objective="chaos")


def _correlation_growth(net: nn.Sequential, seed: int) -> float:
    """(1 - c) at the last pre-activation over (1 - c) at the second, mean over 64 pairs of nearby inputs
    (x and (x + 0.03 d) / sqrt(1 + 0.03^2), correlation 0.99955)."""
    generator = torch.Generator().manual_seed(50 + seed)
    x = torch.randn(64, 1024, generator=generator, dtype=torch.float64)
    nearby = (x + 0.03 * torch.randn(64, 1024, generator=generator, dtype=torch.float64)) / math.sqrt(1 + 0.03**2)
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o)) for m in net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        net(torch.cat([x, nearby]))
    for hook in hooks:
        hook.remove()

    def distance(output: torch.Tensor) -> float:
        first, second = output[:64], output[64:]
        cosine = (first * second).sum(1) / torch.sqrt((first * first).sum(1) * (second * second).sum(1))
        return float((1.0 - cosine).mean())

    return distance(outputs[-1]) / distance(outputs[1])


@pytest.mark.parametrize("seed", [0, 1])
def test_correlation_deviation_grows_as_chi1_to_the_depth(seed: int) -> None:
    """Schoenholz et al. (2017): near c = 1 the correlation map is 1 - c' = chi_c (1 - c), chi_c = chi1. A tanh MLP
    of width 1024 at target_var 1 (chi1 = 1.178): 1 - c grows by 1.178^9 = 4.36 over 9 layers (measured 4.38-4.43,
    seeds 0-2); on the edge of chaos (objective='critical', orthogonal) it stays (1.0012-1.0026)."""
    chi1 = float(varprop.stability("tanh", var=1.0).chi1)
    plain = _mlp(nn.Tanh, 11, 1024, 1024).double()
    vt.init_model(plain, (64, 1024), generator=torch.Generator().manual_seed(seed))
    assert _correlation_growth(plain, seed) == pytest.approx(chi1**9, rel=0.05)
    critical = _mlp(nn.Tanh, 11, 1024, 1024).double()
    vt.init_model(
        critical,
        (64, 1024),
        objective="critical",
        distribution="orthogonal",
        generator=torch.Generator().manual_seed(seed),
    )
    assert _correlation_growth(critical, seed) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_orthogonal_critical_weights_have_singular_values_sigma_w(dtype: torch.dtype) -> None:
    """Every hidden square layer of a critical orthogonal tanh MLP is sigma_w times an orthogonal matrix (realized
    rescaling is one scalar per layer), in float32 and float64 (regression: in float64 the drawn biases were read from
    a work buffer that the weights then overwrote, and the weights came out 5x too small)."""
    point = critical_point("tanh")
    net = _mlp(nn.Tanh, 4, 64, 64).to(dtype)
    vt.init_model(
        net, (16, 64), objective="critical", distribution="orthogonal", generator=torch.Generator().manual_seed(0)
    )
    for layer in [m for m in net if isinstance(m, nn.Linear)][1:]:
        values = torch.linalg.svdvals(layer.weight.detach().double())
        assert float(values.max() - values.min()) < 1e-5 * float(values.max())
        # the realized factor corrects sigma_w for this draw of biases and weights: within a few per cent
        assert float(values.mean()) == pytest.approx(point.weight_std, rel=0.05), float(values.mean())
