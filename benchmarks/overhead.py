"""Fixed cost per layer: ``init_model`` (analytic, mean-field, calibrated) against torch's ``reset_parameters`` on
models of small and of wide layers, best of N calls within one process after a warm-up.

Run: ``python benchmarks/overhead.py`` (about 4 minutes on 2 CPU cores; ``--quick`` for a smoke run); ``--write``
replaces the "Initialization time: fixed cost per layer" section of docs/benchmarks.md; ``--profile MODEL`` prints a
cProfile of one analytic call (``--profile MODEL --calibrated``: of one calibrated call) instead of the table.

Per model, one warm-up call of every method (moment lattices filled, PyTorch's meta-kernel machinery imported, the
sampler threads started), then ``--rounds`` rounds, each timing every method once in turn (a change of load hits every
method alike); each cell is the best round. Methods: torch's ``reset_parameters`` of every submodule; one forward pass
on the calibration batch under ``torch.no_grad()`` (calibration's own pass is gradient-free); ``init_model(model,
shape)`` (analytic: realized weights), ``realized=False`` (mean-field), ``calibrate="gaussian"`` (a batch of the
example's shape, after a mean-field pass); and ``draws``, the seeded normal draws of every weight alone
(``draw_weights``: what the analytic call cannot do without). The garbage collector runs before each call, outside
the timing. Ratios: analytic, mean-field and draws over ``reset_parameters``; calibrated over (``reset_parameters`` +
the forward pass).
Fixed cost per layer: (analytic - reset_parameters) / the report's weight-layer rows.
"""

# ruff: noqa: E402 - the imports follow the thread settings, which must precede numpy and torch
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse
import contextlib
import cProfile
import functools
import gc
import io
import pstats
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import varprop.torch as vt
from _docs import replace_section  # benchmarks/_docs.py (the script's directory is on sys.path)
from models import ResidualMLP, cnn, machine, mlp, reset, warm_up_process
from varprop.torch._calibration_batch import calibration_batch
from varprop.torch.sampling.sharded_random import draw_rows_into, name_seed


@dataclass(frozen=True)
class Case:
    title: str
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]


def _transformer(layers: int, d_model: int, heads: int, ffn: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(d_model, heads, ffn, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


CASES: dict[str, Case] = {
    "mlp-20x256": Case("MLP 20 x Linear(256) + ELU", functools.partial(mlp, nn.ELU, 20, 256), (128, 256)),
    "residual-256": Case(
        "residual MLP 50 x (Linear-GELU-Linear), width 256", functools.partial(ResidualMLP, 50, 256), (256, 256)
    ),
    "transformer-12": Case(
        "TransformerEncoder 12 layers, d 256, 4 heads, FFN 1024, pre-norm, 64 tokens",
        functools.partial(_transformer, 12, 256, 4, 1024),
        (8, 64, 256),
    ),
    "cnn-50": Case("CNN 50 x Conv3x3(32) + ReLU, 16x16", functools.partial(cnn, 50, 32, nn.ReLU), (32, 3, 16, 16)),
    "mlp-100x512": Case("MLP 100 x Linear(512) + ELU", functools.partial(mlp, nn.ELU, 100, 512), (128, 512)),
    "mlp-50x1024": Case("MLP 50 x Linear(1024) + ELU", functools.partial(mlp, nn.ELU, 50, 1024), (128, 1024)),
    "mlp-12x4096": Case("MLP 12 x Linear(4096) + ELU", functools.partial(mlp, nn.ELU, 12, 4096), (128, 4096)),
}
QUICK = ("mlp-20x256", "transformer-12", "mlp-100x512")
# wall: time.perf_counter; cpu: time.process_time, the process's CPU time (all its threads): steadier than the wall
# clock on a shared machine for one torch thread (nothing waits for a second thread), not for two (an OpenMP thread
# that spins while it waits is counted). auto: cpu for one torch thread, wall for more.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def clock_for(choice: str, threads: int) -> str:
    return ("cpu" if threads == 1 else "wall") if choice == "auto" else choice


METHODS = ("reset", "draws", "forward", "analytic", "mean-field", "calibrated")


def draw_weights(model: nn.Module) -> None:
    """What sampling alone costs ``init_model``: the unit-std rank-invariant normal draw (``sharded_random``) of every
    parameter of two or more dimensions, straight into it (the draws an analytic call makes, without the rest)."""
    for name, param in model.named_parameters():
        if param.dim() >= 2:  # (detached: the sampler threads run outside this thread's no_grad)
            draw_rows_into(param.detach(), tuple(param.shape), 0, 1.0, "normal", name_seed(0, name))


def _methods(model: nn.Module, shape: tuple[int, ...], batch: torch.Tensor) -> dict[str, Callable[[], Any]]:
    def forward() -> None:
        with torch.no_grad():
            model(batch)

    return {
        "reset": functools.partial(reset, model),
        "draws": functools.partial(draw_weights, model),
        "forward": forward,
        "analytic": functools.partial(vt.init_model, model, shape),
        "mean-field": functools.partial(vt.init_model, model, shape, realized=False),
        "calibrated": functools.partial(vt.init_model, model, shape, calibrate="gaussian"),
    }


def _call(function: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:
    gc.collect()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = clock()
        result = function()
        return clock() - start, result


@dataclass
class Measured:
    best: dict[str, float]
    layers: int
    phases: dict[str, float]  # report.timings of the best analytic call


def measure(case: Case, rounds: int, clock: Callable[[], float]) -> Measured:
    torch.manual_seed(0)
    model = case.build()
    # the forward pass on the batch that calibrate='gaussian' makes (at least 64 rows: calibration_batch)
    batch = calibration_batch(model, "gaussian", (torch.randn(case.shape),), None, None)[0]
    methods = _methods(model, case.shape, batch)
    report = None
    for function in methods.values():  # warm-up
        _call(function)
    best = {name: float("inf") for name in methods}
    phases: dict[str, float] = {}
    for _ in range(rounds):
        for name, function in methods.items():
            seconds, result = _call(function, clock)
            if seconds < best[name]:
                best[name] = seconds
                if name == "analytic":
                    report, phases = result, dict(result.timings)
    assert isinstance(report, vt.InitReport)
    return Measured(best, len(report.layers), phases)


def section(names: list[str], rounds: int, threads: int, clock: str) -> list[str]:
    load = os.getloadavg()[0]
    lines = [
        f"### torch threads {threads}, {'CPU time' if clock == 'cpu' else 'wall clock'}",
        "",
        "| model | layers | reset (ms) | draws (ms) | forward (ms) | analytic (ms) | analytic ratio | draws ratio | "
        "mean-field ratio | calibrated (ms) | calibrated ratio | (analytic - reset) per layer (ms) | "
        "analytic phases (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        case = CASES[name]
        found = measure(case, rounds, CLOCKS[clock])
        best, ms = found.best, {key: value * 1e3 for key, value in found.best.items()}
        per_layer = (best["analytic"] - best["reset"]) / max(found.layers, 1) * 1e3
        phases = " / ".join(f"{found.phases.get(f'{p}_s', 0.0) * 1e3:.0f}" for p in ("trace", "propagate", "write"))
        lines.append(
            f"| {case.title} | {found.layers} | {ms['reset']:.1f} | {ms['draws']:.1f} | {ms['forward']:.1f} | "
            f"{ms['analytic']:.1f} | {best['analytic'] / best['reset']:.2f}x | {best['draws'] / best['reset']:.2f}x | "
            f"{best['mean-field'] / best['reset']:.2f}x | "
            f"{ms['calibrated']:.1f} | {best['calibrated'] / (best['reset'] + best['forward']):.2f}x | "
            f"{per_layer:.2f} | {phases} |"
        )
        print(lines[-1], flush=True)
    return [*lines, "", f"Load average {load:.2f} before this table, {os.getloadavg()[0]:.2f} after it."]


def profile(name: str, calibrated: bool, top: int, clock: str) -> None:
    """cProfile of one init_model call on a warmed-up model: the functions by own time and by cumulative time."""
    case = CASES[name]
    model = case.build()
    kwargs: dict[str, Any] = {"calibrate": "gaussian"} if calibrated else {}
    for _ in range(2):
        _call(functools.partial(vt.init_model, model, case.shape, **kwargs))
    profiler = cProfile.Profile(CLOCKS[clock])
    gc.collect()
    profiler.enable()
    report = vt.init_model(model, case.shape, **kwargs)
    profiler.disable()
    print(
        f"{case.title}: {'calibrated' if calibrated else 'analytic'}, {len(report.layers)} weight layers, "
        f"timings {', '.join(f'{k} {v * 1e3:.1f} ms' for k, v in report.timings.items())}"
    )
    for order in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats(order).print_stats(top)
        print(stream.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three models, 2 rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per model (default 7)")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="torch thread counts, one table each (default 2 1)"
    )
    parser.add_argument("--models", nargs="+", choices=list(CASES), help="only these models")
    parser.add_argument("--profile", choices=list(CASES), help="print a cProfile of one call on this model instead")
    parser.add_argument("--calibrated", action="store_true", help="with --profile: a calibrated call")
    parser.add_argument("--top", type=int, default=40, help="with --profile: rows per listing (default 40)")
    parser.add_argument(
        "--clock",
        choices=["auto", *CLOCKS],
        default="auto",
        help="wall, cpu (process time) or auto (default: cpu for one torch thread, wall for more)",
    )
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads[0])
    warm_up_process()
    if args.profile is not None:
        profile(args.profile, args.calibrated, args.top, clock_for(args.clock, args.threads[0]))
        return
    names = args.models or (list(QUICK) if args.quick else list(CASES))
    rounds = 2 if args.quick else args.rounds
    command = "python benchmarks/overhead.py" + "".join(
        f" {flag}"
        for flag, on in (
            ("--quick", args.quick),
            (f"--rounds {args.rounds}", args.rounds != 7 and not args.quick),
            ("--threads " + " ".join(map(str, args.threads)), args.threads != [2, 1]),
            ("--models " + " ".join(names), bool(args.models)),
            (f"--clock {args.clock}", args.clock != "auto"),
            ("--write", args.write),
        )
        if on
    )
    started, load = time.perf_counter(), os.getloadavg()
    lines = [
        "## Initialization time: fixed cost per layer",
        "",
        f"Command: `{command}` (OMP/BLAS threads 2). Machine:",
        "",
        *machine(),
        "",
        f"Best of {rounds} rounds after a warm-up call of each method, every method once per round in turn, one "
        "process. Ratios: analytic, mean-field and draws over torch's `reset_parameters` (draws: the seeded normal "
        "draws of every weight that the analytic call makes, alone: `draw_weights`); calibrated over "
        "(`reset_parameters` + one forward pass under `no_grad` on the calibration batch). Per layer: (analytic - "
        "reset) / weight-layer rows of the report. Phases: the best analytic call's `report.timings` (trace / "
        "propagate / write, ms). One table per torch thread count: on a shared 2-core machine every parallel "
        "torch operation can wait a scheduler slice for its second thread, so the 1-thread table is the steadier "
        "measure of the fixed cost (see the load averages), timed in the process's CPU time (`time.process_time`, "
        "all threads: what the load of other processes changes least) unless `--clock` says otherwise; with two "
        "threads, the wall clock (`time.perf_counter`: an OpenMP thread that spins while it waits would count as CPU "
        "time). The phases are always wall-clock (`report.timings`).",
    ]
    for threads in args.threads:
        torch.set_num_threads(threads)
        lines += ["", *section(names, rounds, threads, clock_for(args.clock, threads))]
    lines += [
        "",
        f"Load average {load[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; total run time "
        f"{time.perf_counter() - started:.0f} s.",
    ]
    print("\n".join(lines))
    if args.write:
        replace_section("overhead", "\n".join(lines))


if __name__ == "__main__":
    main()
