"""The README's "Initializations that train" example: a 30-layer width-128 tanh MLP initialized three ways, with
the singular-value spread (p90 / p10) of its input-output Jacobian at 4 inputs (``varprop.torch.jacobian_spectrum``).

Run: ``python examples/critical_tanh.py`` (CPU, a few seconds).
"""

from __future__ import annotations

import torch
from torch import nn

import varprop
import varprop.torch as vt


def mlp(depth: int = 30, width: int = 128) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers[:-1]).double()  # (float64: float32 resolves singular values only to ~1e-7)


def main() -> None:
    print(varprop.stability("tanh", var=1.0).verdict)
    point = varprop.dynamics.critical_point("tanh")
    print(f"critical point: sigma_w {point.weight_std:.6g}, sigma_b {point.bias_std:.6g}, q* {point.q:g}")
    batch = torch.randn(256, 128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for label, options in (
        ("variance, normal (target_var=1)", {}),
        ("variance, orthogonal", {"distribution": "orthogonal"}),
        ("critical, orthogonal", {"objective": "critical", "distribution": "orthogonal"}),
    ):
        model = mlp()
        vt.init_model(model, batch, generator=torch.Generator().manual_seed(0), **options)
        spectrum = vt.jacobian_spectrum(model, batch, inputs=4)
        print(
            f"{label:32s} Jacobian singular values p10 {spectrum.percentiles[10]:.3g}, "
            f"p90 {spectrum.percentiles[90]:.3g}, spread p90/p10 {spectrum.spread:.3g}"
        )


if __name__ == "__main__":
    main()
