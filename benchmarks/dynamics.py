"""Depth-dynamics benchmark: deep plain networks in numpy against varprop's predictions.

Prints Markdown for the "Depth dynamics" section of ``docs/benchmarks.md``::

    python benchmarks/dynamics.py            # about 10 minutes on 2 cores
    python benchmarks/dynamics.py --quick    # smaller networks, about a minute

1. The issue-3 measurement: a plain 100-layer width-1024 network (explicit Gaussian weight
   matrices) with the exact q = 1 gain on every hidden layer and a variance-preserving first layer,
   fed fresh N(0, 1) inputs: the batch variance of the last layer's pre-activations.
2. Finite-width drift: predicted (``varprop.dynamics.predict_drift``) against measured
   (``simulate_plain_network``, exact per-layer sampling) 16/50/84% quantiles of the per-input
   variance, for stable, neutral and unstable activations, several depths and widths.
3. Wall-clock cost of the core functions.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from varprop.dynamics._correlation import cross_moment
from varprop.dynamics._drift import predict_drift, simulate_plain_network
from varprop.dynamics._edge_of_chaos import edge_of_chaos, phase_diagram
from varprop.dynamics._variance_map import fixed_point, stability
from varprop.gains._gain import gain


def headline(depth: int, width: int, seeds: int, batch: int) -> list[str]:
    lines = [
        f"### A plain {depth}-layer, width-{width} network at the exact q = 1 gain",
        "",
        f"Explicit weight matrices, first layer with unit gain (q_1 = 1), batch of {batch} fresh N(0, 1) inputs;",
        "'final' is the last layer's pre-activation variance over the batch; the slope is that of the",
        "variance map at q* = 1 (`varprop.stability`).",
        "",
        "| activation | slope at q = 1 | seed | final variance | min over layers | max over layers |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("silu", "gelu", "mish", "elu", "tanh", "relu"):
        weight = float(gain(name, 1.0))
        slope = float(stability(name).slope)
        for seed in range(seeds):
            sim = simulate_plain_network(name, depth, width, weight, batch=batch, seed=seed, method="weights")
            path = sim.batch_mean[:, 0]
            lines.append(f"| {name} | {slope:.4f} | {seed} | {path[-1]:.3g} | {path.min():.3g} | {path.max():.3g} |")
    return lines


def drift_table(shapes: list[tuple[int, int]], samples: int) -> list[str]:
    lines = [
        "### Finite-width drift: predicted vs measured",
        "",
        f"Per-input pre-activation variance at the last layer, {samples} inputs (8 per network), exact q = 1 gain,",
        "first layer with unit gain; q16/q50/q84 are the 16/50/84% quantiles, spread = (ln q84 - ln q16)/2;",
        "ratio = predicted / measured spread.",
        "",
        "| activation | depth | width | measured q16 / q50 / q84 | predicted q16 / q50 / q84 "
        "| spread meas. | spread pred. | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    worst = 1.0
    for name in ("elu", "tanh", "selu", "relu", "silu", "gelu", "mish"):
        weight = float(gain(name, 1.0))
        for depth, width in shapes:
            sim = simulate_plain_network(
                name, depth, width, weight, batch=8, networks=samples // 8, seed=depth + width, method="kernel"
            )
            pred = predict_drift(name, depth, width, weight)
            ratio = float(pred.log_spread[-1] / sim.log_spread[-1])
            worst = max(worst, ratio, 1 / ratio)
            lines.append(
                f"| {name} | {depth} | {width} | {sim.lower[-1]:.3g} / {sim.median[-1]:.3g} / {sim.upper[-1]:.3g} "
                f"| {pred.lower[-1]:.3g} / {pred.median[-1]:.3g} / {pred.upper[-1]:.3g} "
                f"| {sim.log_spread[-1]:.3f} | {pred.log_spread[-1]:.3f} | {ratio:.2f} |"
            )
    lines += ["", f"Largest disagreement of the spread: a factor {worst:.2f}."]
    return lines


def _time(function: Callable[[], Any], repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def timings() -> list[str]:
    q = np.logspace(-2, 2, 100)
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("`stability('silu', var=<100 values>)`", lambda: stability("silu", var=q)),
        ("`fixed_point('tanh', 1.5)`", lambda: fixed_point("tanh", 1.5)),
        ("`fixed_point('elu', gain('elu'))`", lambda: fixed_point("elu", float(gain("elu")))),
        ("`edge_of_chaos('tanh', 0.3)`", lambda: edge_of_chaos("tanh", 0.3)),
        ("`edge_of_chaos('elu', 0.1)`", lambda: edge_of_chaos("elu", 0.1)),
        ("`cross_moment('relu', 0.9)` (nested quadrature)", lambda: cross_moment("relu", 0.9)),
        ("`cross_moment('gelu', 0.999999)`", lambda: cross_moment("gelu", 0.999999)),
        (
            "`phase_diagram('tanh', 121 x 121 grid)`",
            lambda: phase_diagram("tanh", np.linspace(0, 2, 121), np.linspace(0.05, 4, 121)),
        ),
        ("`predict_drift('silu', depth=100, width=1024)`", lambda: predict_drift("silu", 100, 1024, 1.6770)),
    ]
    lines = ["### Cost", "", "| call | seconds (best of 3) |", "|---|---|"]
    for label, function in cases:
        lines.append(f"| {label} | {_time(function):.4f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller networks (about a minute)")
    args = parser.parse_args()
    start = time.time()
    if args.quick:
        depth, width, seeds, batch, shapes, samples = 50, 256, 2, 32, [(30, 128), (50, 256)], 1024
    else:
        depth, width, seeds, batch = 100, 1024, 3, 64
        shapes, samples = [(30, 128), (50, 256), (100, 256), (100, 1024)], 2048
    lines = ["## Depth dynamics", ""]
    lines += [f"Command: `python benchmarks/dynamics.py{' --quick' if args.quick else ''}`", ""]
    lines += [*headline(depth, width, seeds, batch), "", *drift_table(shapes, samples), "", *timings()]
    lines += [
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}; "
        f"total {time.time() - start:.0f} s.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
