"""Whole-model initialization benchmark: varprop.torch.init_model against torch, He, LSUV 0.3.0 and AnyInit 0.4.0.

Run: ``python benchmarks/models.py`` (about 10 minutes on 2 CPU cores; ``--quick`` for a 2-minute smoke run).
Prints the "Whole-model initialization" section of docs/benchmarks.md (markdown) on stdout.

Measured, all in one run on one machine:
1. Plain MLPs, depth 100, width 512: min and max over layers of each Linear's output (pre-activation) variance on a
   fresh N(0, 1) batch, per activation and method, and the time each method takes.
2. Unstable activations (SiLU, GELU, Mish) after calibration: the spread over fresh batches, against the calibration
   batch size and the target variance, beside the depth-dynamics prediction (``varprop.dynamics.predict_drift``).
3. A 50-layer CNN, a 50-block residual MLP and a 12-layer ``nn.TransformerEncoder``: layer, branch and residual
   stream variances, and timings as ratios to torch's own ``reset_parameters`` (and one forward pass).
"""

# ruff: noqa: E402 - the imports follow the thread settings, which must precede numpy and torch
from __future__ import annotations

import os

# Two threads everywhere (torch, OpenMP, BLAS), set before numpy and torch load: the documented budget is 2 cores.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse
import contextlib
import gc
import io
import math
import platform
import subprocess
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

import varprop
import varprop.torch as vt
from _docs import replace_section  # benchmarks/_docs.py (the script's directory is on sys.path)

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "elu": nn.ELU,
    "selu": nn.SELU,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "hardtanh": nn.Hardtanh,
    "sigmoid": nn.Sigmoid,
}
# LSUV reruns the model once per layer (and AnyInit's empirical mode measures every layer): quadratic in depth, so
# they run on one activation per stability class (stable, neutral, unstable) to fit the 10-minute budget.
SLOW_METHODS_ON = ("elu", "relu", "silu")
SLOW_BATCH = 32  # their batch (LSUV's single batch, AnyInit's empirical batch)


def mlp(act: Callable[[], nn.Module], depth: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(depth):
        layers.append(nn.Linear(width, width))
        if index < depth - 1:
            layers.append(act())
    return nn.Sequential(*layers)


def reset(model: nn.Module) -> None:
    """torch's own initialization of every submodule: ``reset_parameters``, and ``nn.MultiheadAttention``'s
    ``_reset_parameters`` (what its constructor calls: Xavier-uniform q/k/v projections, zero biases; it has no public
    ``reset_parameters``, so without it a transformer's ``in_proj_weight`` would keep its values)."""
    for module in model.modules():
        if module is model:
            continue
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        elif isinstance(module, nn.MultiheadAttention):
            module._reset_parameters()


def timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        function()
    return time.perf_counter() - start


def he(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


def lsuv_init(model: nn.Module, batch: torch.Tensor) -> None:
    import lsuv

    lsuv.lsuv_with_singlebatch(model, batch, verbose=False)


def anyinit_init(model: nn.Module, mode: str, shape: tuple[int, ...]) -> None:
    import anyinit

    anyinit.initialize(model, mode, input_spec=shape, seed=0)


def layer_variances(model: nn.Module, batch: torch.Tensor) -> list[float]:
    return [values[0] for values in vt.measure_variances(model, batch, (nn.Linear, nn.Conv2d)).values()]


def fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def machine() -> list[str]:
    lines = []
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines()[:10]
    except OSError:
        lscpu = []
    lines.append("```")
    lines.extend(lscpu)
    lines.append(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}"
    )
    lines.append("```")
    return lines


def mlp_section(depth: int, width: int, batch: int, calibration: int, activations: list[str], slow: bool) -> list[str]:
    out = [
        f"### Plain MLP, depth {depth}, width {width}",
        "",
        f"Each cell: min / max over the {depth} layers of the Linear outputs' variance on a fresh N(0, 1) batch of "
        f"{batch} (seed 1); `-` not run (LSUV and AnyInit empirical, on batches of {SLOW_BATCH}, only on one "
        "activation per stability class). "
        "varprop analytic uses realized weights (default); `mean-field` is `realized=False`; calibrated is "
        f"`calibrate='gaussian'` on {calibration} samples (after a mean-field analytic pass, the default with "
        "calibration). Stability from `varprop.stability` at var 1.",
        "",
        "| activation | stability | torch default | He (kaiming_normal_) | LSUV 0.3.0 | AnyInit analytic | "
        "AnyInit empirical | varprop mean-field | varprop analytic | varprop calibrated |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    times: dict[str, list[float]] = {}
    ranges: dict[tuple[str, str], tuple[float, float]] = {}
    kinds: dict[str, str] = {}
    generator = torch.Generator().manual_seed(1)
    fresh = torch.randn(batch, width, generator=generator)
    calibration_batch = torch.randn(calibration, width, generator=generator)
    for name in activations:
        act = ACTIVATIONS[name]
        model = mlp(act, depth, width)
        cells = []
        stability = varprop.stability(name, 1.0)
        small = (SLOW_BATCH, width)
        methods: list[tuple[str, Callable[[nn.Module], Any]]] = [
            ("torch default", reset),
            ("He", he),
            ("LSUV", lambda m, small=small: lsuv_init(m, torch.randn(small, generator=generator))),
            ("AnyInit analytic", lambda m: anyinit_init(m, "analytic", (batch, width))),
            ("AnyInit empirical", lambda m, small=small: anyinit_init(m, "empirical", small)),
            ("mean-field", lambda m: vt.init_model(m, (batch, width), realized=False)),
            ("analytic", lambda m: vt.init_model(m, (batch, width))),
            ("calibrated", lambda m: vt.init_model(m, (calibration, width), calibrate="gaussian")),
        ]
        for label, function in methods:
            if label in ("LSUV", "AnyInit empirical") and (not slow or name not in SLOW_METHODS_ON):
                cells.append("-")
                continue
            reset(model)
            seconds = timed(lambda function=function, model=model: function(model))
            times.setdefault(label, []).append(seconds)
            variances = layer_variances(model, fresh)
            ranges[name, label] = (min(variances), max(variances))
            cells.append(f"{fmt(min(variances))} / {fmt(max(variances))}")
        kinds[name] = stability.kind
        out.append(f"| {name} | {stability.kind} ({stability.slope:.3f}) | " + " | ".join(cells) + " |")
        times.setdefault("forward", []).append(timed(lambda model=model: model(calibration_batch)))
    reference = float(np.median(times["torch default"]))
    out += [
        "",
        f"Time per model (median over activations; torch's `reset_parameters` = {reference * 1e3:.0f} ms = 1x):",
        "",
        "| method | median time (s) | ratio to torch default |",
        "|---|---|---|",
    ]
    for label, values in times.items():
        median = float(np.median(values))
        name = f"one forward pass on the {calibration} calibration samples" if label == "forward" else label
        out.append(f"| {name} | {median:.3f} | {median / reference:.1f}x |")
    per_activation = ", ".join(
        f"{name} {analytic / reset:.2f}x"
        for name, analytic, reset in zip(activations, times["analytic"], times["torch default"], strict=True)
    )
    out += [
        "",
        "varprop analytic per activation, over that model's `reset_parameters` (one call each, the first analytic "
        f"call of the process for that activation, so it includes filling its moment lattice): {per_activation}.",
    ]
    out += ["", "Targets of issue 4 in this run:", ""]
    out += _targets(ranges, kinds, times, reference)
    return out


def _targets(
    ranges: dict[tuple[str, str], tuple[float, float]],
    kinds: dict[str, str],
    times: dict[str, list[float]],
    reference: float,
) -> list[str]:
    def check(label: str, wanted: tuple[str, ...], low: float, high: float) -> str:
        names = [n for n, kind in kinds.items() if kind in wanted]
        missed = [
            f"{n} {fmt(ranges[n, label][0])}-{fmt(ranges[n, label][1])}"
            for n in names
            if not (low <= ranges[n, label][0] and ranges[n, label][1] <= high)
        ]
        verdict = "met" if not missed else "not met for " + ", ".join(missed)
        return f"- {label} within [{low}, {high}] for {'/'.join(wanted)} activations ({', '.join(names)}): {verdict}"

    analytic = float(np.median(times["analytic"])) / reference
    calibrated = float(np.median(times["calibrated"])) / (reference + float(np.median(times["forward"])))
    return [
        check("analytic", ("stable",), 0.8, 1.25),
        check("calibrated", ("stable", "neutral"), 0.9, 1.1),
        f"- analytic time <= 2x torch's reset_parameters: {analytic:.1f}x ({'met' if analytic <= 2 else 'not met'})",
        f"- calibrated time <= 2x (reset_parameters + one forward pass): {calibrated:.1f}x "
        f"({'met' if calibrated <= 2 else 'not met'})",
    ]


def spread_section(
    depth: int, width: int, batch: int, sizes: list[int], targets: list[float], repeats: int
) -> list[str]:
    from varprop.dynamics._drift import predict_drift

    out = [
        f"### Unstable activations after calibration: spread over fresh batches (depth {depth}, width {width})",
        "",
        f"Calibrated on `calibrate=<N Gaussian samples>` at `target_var`; then {repeats} fresh batches of {batch}: the "
        "cell gives the lowest min and highest max over layers and batches of the Linear outputs' variance divided "
        "by the target. `predicted` is `varprop.dynamics.predict_drift` for this depth and width at the mean-field "
        "gain: the 16-84% band of one input's variance at the last layer, divided by the target.",
        "",
        "| activation | target_var | predicted band | " + " | ".join(f"N = {n}" for n in sizes) + " |",
        "|---|---|---|" + "---|" * len(sizes),
    ]
    generator = torch.Generator().manual_seed(2)
    for name in ("silu", "gelu", "mish"):
        for target in targets:
            gain = float(varprop.gain(name, var=target))
            prediction = predict_drift(name, depth, width, gain, input_var=target, input_weight_std=1.0)
            band = f"{fmt(prediction.lower[-1] / target)} - {fmt(prediction.upper[-1] / target)}"
            cells = []
            for size in sizes:
                model = mlp(ACTIVATIONS[name], depth, width)
                calibration = torch.randn(size, width, generator=generator) * math.sqrt(target)
                vt.init_model(model, calibration, calibrate=calibration, target_var=target, generator=generator)
                lows, highs = [], []
                for _ in range(repeats):
                    values = layer_variances(model, torch.randn(batch, width, generator=generator) * math.sqrt(target))
                    lows.append(min(values) / target)
                    highs.append(max(values) / target)
                cells.append(f"{fmt(min(lows))} / {fmt(max(highs))}")
            out.append(f"| {name} | {target:g} | {band} | " + " | ".join(cells) + " |")
    return out


def cnn(depth: int, channels: int, act: Callable[[], nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), act()]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), act()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)]
    return nn.Sequential(*layers)


class ResidualMLP(nn.Module):
    def __init__(self, blocks: int, width: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)) for _ in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x

    def streams(self, x: torch.Tensor) -> list[float]:
        """Variance of the residual stream after each block."""
        found = []
        with torch.no_grad():
            for block in self.blocks:
                x = x + block(x)
                found.append(float(x.double().var()))
        return found


def stream_variances(model: nn.Module, batch: torch.Tensor) -> list[float]:
    """The residual stream after each block: ``ResidualMLP.streams`` or the outputs of a transformer's layers."""
    if isinstance(model, ResidualMLP):
        return model.streams(batch)
    found: list[float] = []
    assert isinstance(model, nn.TransformerEncoder)
    handles = [
        layer.register_forward_hook(lambda m, a, o: found.append(float(o.double().var()))) for layer in model.layers
    ]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return found


def large_layers_section(quick: bool) -> list[str]:
    """Time only, on wider layers: there sampling the weights is most of the cost, per-layer bookkeeping little."""
    out = [
        "### Time on wider layers",
        "",
        "Plain MLPs of wider layers (N(0, 1) inputs of 128 rows): best of 3 calls each. analytic: `init_model(model, "
        "(128, width))` over torch's `reset_parameters`; calibrated: `calibrate='gaussian'` on 512 rows over "
        "(`reset_parameters` + one forward pass on those rows).",
        "",
        "| width x depth | activation | reset_parameters (s) | analytic (s) | analytic ratio | calibrated (s) | "
        "calibrated ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    shapes = [(1024, 4)] if quick else [(2048, 24), (4096, 8)]
    for width, depth in shapes:
        for name in ("elu", "silu"):
            model = mlp(ACTIVATIONS[name], depth, width)
            rows = torch.randn(512, width)
            vt.init_model(model, (128, width))  # caches of this activation
            reference = min(timed(lambda model=model: reset(model)) for _ in range(3))
            forward = min(timed(lambda model=model, rows=rows: model(rows)) for _ in range(3))
            analytic = min(timed(lambda model=model, w=width: vt.init_model(model, (128, w))) for _ in range(3))
            calibrated = min(
                timed(lambda model=model, w=width: vt.init_model(model, (512, w), calibrate="gaussian"))
                for _ in range(3)
            )
            out.append(
                f"| {width} x {depth} | {name} | {reference:.3f} | {analytic:.3f} | {analytic / reference:.2f}x | "
                f"{calibrated:.3f} | {calibrated / (reference + forward):.2f}x |"
            )
    return out


def structured_section(quick: bool) -> list[str]:
    out = [
        "### CNN, residual MLP and transformer",
        "",
        "Layer variances: min / max over the weight layers' outputs on a fresh batch (for the residual models these "
        "include the branch ends, which the `scaled` policy makes small on purpose). Residual stream: variance after "
        "the first and the last block over the input's. Time: init / torch's `reset_parameters` on the same model; "
        "calibrated: init / (`reset_parameters` + one forward pass on the calibration batch); in parentheses the "
        "init's own time (one call).",
        "",
        "| model | method | layer variances min / max | stream first / last | time ratio |",
        "|---|---|---|---|---|",
    ]
    generator = torch.Generator().manual_seed(3)
    cnn_depth, residual_blocks = (12, 12) if quick else (50, 50)
    layer = nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True, norm_first=True)
    cases: list[tuple[str, Callable[[], nn.Module], tuple[int, ...], bool]] = [
        (f"CNN {cnn_depth} x Conv3x3(32) + ReLU, 16x16", lambda: cnn(cnn_depth, 32, nn.ReLU), (32, 3, 16, 16), False),
        (
            f"residual MLP {residual_blocks} x (Linear-GELU-Linear), width 256",
            lambda: ResidualMLP(residual_blocks, 256),
            (256, 256),
            True,
        ),
        (
            "TransformerEncoder 12 layers, d 256, 4 heads, pre-norm, 64 tokens",
            lambda: nn.TransformerEncoder(layer, 12, enable_nested_tensor=False),
            (8, 64, 256),
            True,
        ),
    ]
    for title, build, shape, residual in cases:
        model = build()
        fresh = torch.randn(shape, generator=generator)
        reference = min(timed(lambda model=model: reset(model)) for _ in range(3))
        forward = min(timed(lambda model=model, fresh=fresh: model(fresh)) for _ in range(2))
        methods: list[tuple[str, Callable[[nn.Module], Any], bool]] = [
            ("torch default", reset, False),
            ("varprop analytic", lambda m, shape=shape: vt.init_model(m, shape), False),
            ("varprop calibrated", lambda m, shape=shape: vt.init_model(m, shape, calibrate="gaussian"), True),
        ]
        if residual:
            methods.insert(
                2, ("varprop residual='none'", lambda m, s=shape: vt.init_model(m, s, residual="none"), False)
            )
        for label, function, calibrated in methods:
            reset(model)
            seconds = timed(lambda function=function, model=model: function(model))
            values = [v[0] for v in vt.measure_variances(model, fresh).values()]
            stream = "-"
            if residual:
                streams = stream_variances(model, fresh)
                base = float(fresh.var())
                stream = f"{fmt(streams[0] / base)} / {fmt(streams[-1] / base)}"
            ratio = seconds / (reference + forward) if calibrated else seconds / reference
            out.append(
                f"| {title} | {label} | {fmt(min(values))} / {fmt(max(values))} | {stream} | {ratio:.1f}x "
                f"({seconds * 1e3:.0f} ms) |"
            )
        out.append(
            f"| {title} | (reference) | reset_parameters {reference * 1e3:.0f} ms, forward {forward * 1e3:.0f} ms | | |"
        )
    return out


class _WarmUp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x + self.conv(x), 1)


def warm_up_process() -> float:
    """One init_model call on a tiny model, before any timing: PyTorch imports its meta-kernel machinery (sympy) on
    the first meta operation of a process, ~1 s once, which is not the cost of initializing a model."""
    begin = time.perf_counter()
    vt.init_model(_WarmUp(), (2, 2, 4, 4))
    return time.perf_counter() - begin


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not the documented numbers)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    warm_up = warm_up_process()
    objects = len(gc.get_objects())
    full_collection = timed(gc.collect)
    depth, width = (20, 128) if args.quick else (100, 512)
    activations = ["elu", "relu", "silu"] if args.quick else list(ACTIVATIONS)
    lines: list[str] = []

    def emit(new: list[str]) -> None:  # print each part as soon as it is measured
        print("\n".join(new), flush=True)
        lines.extend(new)

    command = "python benchmarks/models.py" + (" --quick" if args.quick else "") + (" --write" if args.write else "")
    emit(["## Whole-model initialization", ""])
    emit(
        [
            f"Command: `{command}` (torch threads {args.threads}; OMP/BLAS threads 2). Machine:",
            "",
            *machine(),
            "",
            f"Before any timing, one `init_model` call on a tiny model warms the process up ({warm_up:.2f} s: PyTorch "
            "imports its meta-kernel machinery on the first meta operation of a process, once). A full garbage "
            f"collection of this process takes {full_collection:.2f} s (`gc.collect()`, {objects} tracked objects): "
            "what `init_model` would pay when one started during the call (it pauses the collector instead).",
            "",
        ]
    )
    emit([*mlp_section(depth, width, 128, 512, activations, slow=True), ""])
    sizes = [256, 2048] if args.quick else [256, 2048, 8192]
    emit([*spread_section(depth, width, 256, sizes, [1.0, 30.0], 2 if args.quick else 3), ""])
    emit([*large_layers_section(args.quick), ""])
    emit([*structured_section(args.quick), ""])
    emit([f"Total run time {time.perf_counter() - started:.0f} s."])
    if args.write:
        replace_section("models", "\n".join(lines))


if __name__ == "__main__":
    main()
