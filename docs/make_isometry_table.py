"""Print the measured tables of ``docs/theory.md``'s sections 7-9: gradient growth against chi1^L, and the Jacobian
spectrum of deep tanh networks, by initialization (varprop.torch.init_model on plain MLPs, CPU, float32/float64).

    python docs/make_isometry_table.py > /tmp/isometry_tables.md

Gradient growth: a plain tanh MLP of 21 Linear layers of width 512, a random linear readout of the last
pre-activation, backpropagated over a batch of 256 N(0, 1) inputs; ln(E[g_0^2] / E[g_20^2]) against the mean-field
prediction 20 ln chi1 (Schoenholz et al. 2017, eq. 8). Jacobian spectrum: a 30-layer width-128 tanh MLP in float64,
the singular values of d output / d input at one N(0, I) input (torch.autograd.functional.jacobian), their 10th,
50th and 90th percentiles and the spread p90 / p10 (Pennington et al. 2017). Seeds 0, 1, 2 (weights and input).
"""

from __future__ import annotations

import math

import torch
from torch import nn

import varprop
import varprop.torch as vt

SEEDS = (0, 1, 2)
# (label, init_model keywords)
SCHEMES: tuple[tuple[str, dict[str, str]], ...] = (
    ("variance, normal (target_var 1)", {}),
    ("variance, orthogonal (target_var 1)", {"distribution": "orthogonal"}),
    ("critical, normal", {"objective": "critical"}),
    ("critical, orthogonal", {"objective": "critical", "distribution": "orthogonal"}),
)


def _mlp(depth: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(width, width)]
    for _ in range(depth - 1):
        layers += [nn.Tanh(), nn.Linear(width, width)]
    return nn.Sequential(*layers)


def _log_growth(net: nn.Sequential, x: torch.Tensor, seed: int) -> float:
    outputs: list[torch.Tensor] = []

    def keep(module: nn.Module, args: object, output: torch.Tensor) -> None:
        output.retain_grad()
        outputs.append(output)

    hooks = [m.register_forward_hook(keep) for m in net if isinstance(m, nn.Linear)]
    y = net(x)
    (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))).sum().backward()
    for hook in hooks:
        hook.remove()
    grads = [output.grad for output in (outputs[0], outputs[-1])]
    first, last = (float(g.pow(2).mean()) for g in grads if g is not None)
    return math.log(first / last)


def gradient_table() -> list[str]:
    chi1 = float(varprop.stability("tanh", var=1.0).chi1)
    lines = [
        "### Gradient growth over 20 layers of a width-512 tanh MLP (measured vs chi1^20)",
        "",
        "| initialization | predicted ln(chi1^20) | measured ln(E[g_0^2] / E[g_20^2]), seeds 0, 1, 2 |",
        "|---|---|---|",
    ]
    for label, options in SCHEMES:
        predicted = 0.0 if options.get("objective") == "critical" else 20 * math.log(chi1)
        measured = []
        for seed in SEEDS:
            net = _mlp(21, 512)
            vt.init_model(net, (64, 512), generator=torch.Generator().manual_seed(seed), **options)  # type: ignore[arg-type]
            x = torch.randn(256, 512, generator=torch.Generator().manual_seed(100 + seed))
            measured.append(f"{_log_growth(net, x, seed):.4f}")
        lines.append(f"| {label} | {predicted:.4f} | {', '.join(measured)} |")
    return lines


def jacobian_table() -> list[str]:
    lines = [
        "### Jacobian singular values of a 30-layer width-128 tanh MLP",
        "",
        "| initialization | p10, p50, p90 (seed 0) | spread p90 / p10, seeds 0, 1, 2 |",
        "|---|---|---|",
    ]
    for label, options in SCHEMES:
        spreads, shown = [], ""
        for seed in SEEDS:
            net = _mlp(30, 128).double()
            vt.init_model(net, (64, 128), generator=torch.Generator().manual_seed(seed), **options)  # type: ignore[arg-type]
            x = torch.randn(128, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            values = torch.linalg.svdvals(torch.autograd.functional.jacobian(net, x))
            p10, p50, p90 = (float(torch.quantile(values, level)) for level in (0.1, 0.5, 0.9))
            spreads.append(f"{p90 / p10:.4g}")
            if seed == SEEDS[0]:
                shown = f"{p10:.3g}, {p50:.3g}, {p90:.3g}"
        lines.append(f"| {label} | {shown} | {', '.join(spreads)} |")
    return lines


def main() -> None:
    torch.set_num_threads(1)
    print("\n\n".join("\n".join(section) for section in (gradient_table(), jacobian_table())))


if __name__ == "__main__":
    main()
