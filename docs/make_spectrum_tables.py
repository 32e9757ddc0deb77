"""Print the numbers of docs/theory.md's section "Dynamical isometry and the Jacobian spectrum" (Markdown).

    python docs/make_spectrum_tables.py > /tmp/spectrum_tables.md

Tables: the free-probability prediction (``varprop.predict_jacobian_spectrum``) for a 30-layer tanh net with
Gaussian and orthogonal weights, at varprop's target_var = 1 gain and on the edge of chaos at q* = 1/64; the
same nets initialized by ``varprop.torch.init_model`` and measured with ``varprop.torch.jacobian_spectrum``
(width 128, 4 inputs, seeds fixed below); the predicted spread over depth. Takes about a minute on one core.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import varprop
import varprop.torch as vt
from varprop.dynamics._variance_map import gaussian_rows

DEPTH = 30
WIDTH = 128
CRITICAL_Q = 1.0 / 64.0  # issue 11's near-linear critical point for tanh (Pennington et al. 2017)
DEPTHS = (2, 10, 30, 100)
SEED = 0


def critical_scales(q: float = CRITICAL_Q) -> tuple[float, float]:
    """sigma_w^2 = 1/E[tanh'(sqrt(q) z)^2] (chi1 = 1), sigma_b^2 = q - sigma_w^2 E[tanh(sqrt(q) z)^2] (q fixed)."""
    deriv, second = gaussian_rows(varprop.activation("tanh"), 0.0, q, ["deriv", "second"])
    weight_std = 1.0 / math.sqrt(float(deriv))
    return weight_std, math.sqrt(q - weight_std**2 * float(second))


def settings() -> list[tuple[str, float, float, str]]:
    gain = float(varprop.gain("tanh", 1.0))
    weight_std, bias_std = critical_scales()
    return [
        ("target_var = 1, Gaussian", gain, 0.0, "gaussian"),
        ("target_var = 1, orthogonal", gain, 0.0, "orthogonal"),
        ("critical q* = 1/64, Gaussian", weight_std, bias_std, "gaussian"),
        ("critical q* = 1/64, orthogonal", weight_std, bias_std, "orthogonal"),
    ]


def fmt(value: float) -> str:
    return "inf" if not math.isfinite(value) else f"{value:.4g}"


def prediction_table() -> list[str]:
    lines = [
        f"### Predicted singular values of J, tanh, L = {DEPTH} (free probability)",
        "",
        "| weights | sigma_w | sigma_b | q* | chi1 | p10 | p50 | p90 | spread p90/p10 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, weight_std, bias_std, distribution in settings():
        p = varprop.predict_jacobian_spectrum("tanh", weight_std, DEPTH, bias_std=bias_std, distribution=distribution)
        cells = [label, f"{weight_std:.6f}", f"{bias_std:.6f}", f"{p.q:.6g}", f"{p.chi1:.6f}"]
        cells += [fmt(p.percentiles[level]) for level in (10, 50, 90)] + [fmt(p.spread)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plain_tanh(weight_std: float, bias_std: float, distribution: str, seed: int) -> nn.Sequential:
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(DEPTH):
        linear = nn.Linear(WIDTH, WIDTH)
        with torch.no_grad():
            if distribution == "orthogonal":
                nn.init.orthogonal_(linear.weight, gain=weight_std, generator=generator)
            else:
                linear.weight.normal_(0.0, weight_std / math.sqrt(WIDTH), generator=generator)
            linear.bias.normal_(0.0, bias_std, generator=generator)
        layers += [linear, nn.Tanh()]
    return nn.Sequential(*layers)


def measured_table() -> list[str]:
    lines = [
        f"### Measured: {DEPTH} x (Linear({WIDTH}, {WIDTH}), Tanh), varprop.torch.jacobian_spectrum at 4 inputs",
        "",
        "float32 nets (as built by PyTorch), N(0, 1) inputs; the Jacobian is exact (torch.func.jacrev + svdvals).",
        "Singular values below ~1e-7 of the largest are float32 rounding: a measured Gaussian p10 is that floor,",
        "not the true value. init_model's first layer maps the input variance 1 to the target (q* for",
        "objective='critical'); the last row uses the critical scales in every layer, the first included.",
        "",
        "| net | p10 | p50 | p90 | spread p90/p10 | predicted spread |",
        "|---|---|---|---|---|---|",
    ]
    batch = torch.randn(4, WIDTH, generator=torch.Generator().manual_seed(SEED + 1))
    weight_std, bias_std = critical_scales()
    predicted = {
        (kind, critical): varprop.predict_jacobian_spectrum(
            "tanh",
            weight_std if critical else float(varprop.gain("tanh", 1.0)),
            DEPTH,
            bias_std=bias_std if critical else 0.0,
            distribution=kind,
        ).spread
        for kind in ("gaussian", "orthogonal")
        for critical in (False, True)
    }
    rows = []
    for label, options, key in (
        ("init_model (normal, target_var = 1)", {}, ("gaussian", False)),
        ("init_model (orthogonal, target_var = 1)", {"distribution": "orthogonal"}, ("orthogonal", False)),
        ("init_model (objective='critical', normal)", {"objective": "critical"}, ("gaussian", True)),
        (
            "init_model (objective='critical', distribution='orthogonal')",
            {"objective": "critical", "distribution": "orthogonal"},
            ("orthogonal", True),
        ),
    ):
        model = nn.Sequential(*[module for _ in range(DEPTH) for module in (nn.Linear(WIDTH, WIDTH), nn.Tanh())])
        vt.init_model(model, (64, WIDTH), generator=torch.Generator().manual_seed(SEED), **options)
        rows.append((label, model, predicted[key]))
    by_hand = plain_tanh(weight_std, bias_std, "orthogonal", SEED)
    rows.append(("critical scales in every layer, torch orthogonal_", by_hand, predicted[("orthogonal", True)]))
    for label, model, spread in rows:
        spectrum = vt.jacobian_spectrum(model, batch)
        cells = [label] + [fmt(spectrum.percentiles[level]) for level in (10, 50, 90)]
        cells += [fmt(spectrum.spread), fmt(spread)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def depth_table() -> list[str]:
    weight_std, bias_std = critical_scales()
    lines = [
        "### Predicted spread p90/p10 over depth, tanh on the edge of chaos (q* = 1/64)",
        "",
        "| L | Gaussian | orthogonal |",
        "|---|---|---|",
    ]
    for depth in DEPTHS:
        spreads = [
            varprop.predict_jacobian_spectrum("tanh", weight_std, depth, bias_std=bias_std, distribution=kind).spread
            for kind in ("gaussian", "orthogonal")
        ]
        lines.append(f"| {depth} | " + " | ".join(fmt(value) for value in spreads) + " |")
    return lines


def main() -> None:
    print("\n".join([*prediction_table(), "", *measured_table(), "", *depth_table()]))


if __name__ == "__main__":
    main()
