"""Benchmark: the same calls timed under two source trees (before and after a change), alternately, as ratios.

Each round starts one worker process per tree (``PYTHONPATH=<tree>``) in alternating order (old then new, new then
old, ...), so that a change of the machine's load falls on both alike. A worker times every case as the fastest of a
few calls, in wall-clock and in CPU seconds, and prints them as JSON; the ratio of a case is median(new) /
median(old) over the rounds. Only public names are called, so the same worker code runs on both trees; the models
are built by ``benchmarks/models.py``.

Cases:

- ``moments``: ``varprop.moments(act, var=v)`` with a new v each call (*scalar*), the same call repeated (*cached*),
  one call over 1,000 variances, per point (*vectorized*), for closed-form and table-backed activations;
- ``models``: ``varprop.torch.init_model`` on the plain MLP of ``benchmarks/models.py`` (depth 100, width 512) for
  ELU, ReLU and GELU: the process's first call for the activation (it fills the activation's moment lattice) and
  the fastest of the next three; ``calibrate='gaussian'`` on 512 rows; the 50-layer CNN, the 50-block residual MLP
  and the 12-layer transformer encoder of ``benchmarks/models.py``, analytic, calibrated (``'gaussian'``: synthetic
  rows, as many as the example's batch, or at least 64 since issue 10) and calibrated on a given batch of the
  example's shape (the same rows under both trees). One torch thread by default (``--threads``), so that CPU time
  is the work itself.

Run (the models suite takes about 20 s a worker on an idle 2-core machine)::

    git worktree add ../old c3d4775      # the tree to compare with
    python benchmarks/versus.py --old ../old/src              # prints the markdown section
    python benchmarks/versus.py --old ../old/src --write      # also replaces it in docs/benchmarks.md
"""

# ruff: noqa: E402 - the imports follow the thread settings, which must precede numpy and torch
from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse
import contextlib
import io
import json
import math
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from _docs import replace_section  # benchmarks/_docs.py (the script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUITES = ("moments", "models")
# Closed forms (relu, elu, selu) and table-backed activations (the others) of the registry.
MOMENT_SPECS = ("relu", "elu", "selu", "tanh", "sigmoid", "gelu", "silu", "softplus", "mish")
MODEL_ACTIVATIONS = ("elu", "relu", "gelu")  # a closed form with its lattice, a piecewise-linear one, a table
DEPTH, WIDTH, ROWS, CALIBRATION_ROWS = 100, 512, 128, 512  # as benchmarks/models.py's plain MLP section

Timing = tuple[float, float]  # (wall-clock seconds, CPU seconds of the process)


def fastest(function: Callable[[], object], repeat: int, per: int = 1) -> Timing:
    """The fastest of ``repeat`` calls, in wall-clock and in CPU seconds (each its own minimum), divided by ``per``.

    CPU time counts the work of this process only, so it moves less than the wall clock when other jobs share the
    cores (with one torch thread it is the work itself; with more it adds their spinning)."""
    wall, cpu = math.inf, math.inf
    for _ in range(repeat):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            function()
        wall = min(wall, time.perf_counter() - wall_start)
        cpu = min(cpu, time.process_time() - cpu_start)
    return wall / per, cpu / per


# ------------------------------------------------------------------------------------------------- workers


def moments_cases() -> dict[str, Timing]:
    import numpy as np

    import varprop

    rng = np.random.default_rng(0)
    fresh = iter(10.0 ** rng.uniform(-2, 2, size=100_000))
    grid = np.logspace(-2, 2, 1000)
    found: dict[str, Timing] = {}
    for spec in MOMENT_SPECS:
        act = varprop.activation(spec)
        varprop.moments(act, var=1.0)
        found[f"moments {spec}: scalar"] = fastest(lambda act=act: varprop.moments(act, var=next(fresh)), 200)
        found[f"moments {spec}: cached"] = fastest(lambda act=act: varprop.moments(act, var=1.0), 2000)
        found[f"moments {spec}: vectorized, per point"] = fastest(
            lambda act=act: varprop.moments(act, var=grid), 5, per=grid.size
        )
    return found


def models_cases(threads: int) -> dict[str, Timing]:
    import torch
    from torch import nn

    import varprop.torch as vt
    from models import ACTIVATIONS, ResidualMLP, cnn, mlp, warm_up_process  # benchmarks/models.py

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    warm_up_process()
    generator = torch.Generator().manual_seed(0)
    found: dict[str, Timing] = {}
    for name in MODEL_ACTIVATIONS:
        model = mlp(ACTIVATIONS[name], DEPTH, WIDTH)
        label = f"MLP {DEPTH} x {WIDTH}, {name}"
        found[f"{label}: analytic, first call"] = fastest(lambda model=model: vt.init_model(model, (ROWS, WIDTH)), 1)
        found[f"{label}: analytic"] = fastest(
            lambda model=model: vt.init_model(model, (ROWS, WIDTH), generator=generator), 3
        )
    elu_model = mlp(ACTIVATIONS["elu"], DEPTH, WIDTH)
    found[f"MLP {DEPTH} x {WIDTH}, elu: calibrated"] = fastest(
        lambda: vt.init_model(elu_model, (CALIBRATION_ROWS, WIDTH), calibrate="gaussian", generator=generator), 2
    )
    layer = nn.TransformerEncoderLayer(256, 4, 1024, batch_first=True, norm_first=True)
    structured: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        ("CNN 50 x Conv3x3(32) + ReLU, 16x16", lambda: cnn(50, 32, nn.ReLU), (32, 3, 16, 16)),
        ("residual MLP 50 x (Linear-GELU-Linear), width 256", lambda: ResidualMLP(50, 256), (256, 256)),
        (
            "TransformerEncoder 12 x d 256, 64 tokens",
            lambda: nn.TransformerEncoder(layer, 12, enable_nested_tensor=False),
            (8, 64, 256),
        ),
    ]
    for title, build, shape in structured:
        model = build()
        found[f"{title}: analytic"] = fastest(
            lambda model=model, shape=shape: vt.init_model(model, shape, generator=generator), 2
        )
        found[f"{title}: calibrated"] = fastest(
            lambda model=model, shape=shape: vt.init_model(model, shape, calibrate="gaussian", generator=generator), 2
        )
        batch = torch.randn(shape, generator=generator)
        found[f"{title}: calibrated on its {shape[0]}-row batch"] = fastest(
            lambda model=model, batch=batch: vt.init_model(model, batch, calibrate=batch, generator=generator), 2
        )
    return found


def worker(suite: str, threads: int) -> None:
    import varprop

    cases = moments_cases() if suite == "moments" else models_cases(threads)
    print(json.dumps({"varprop": str(Path(varprop.__file__).parent), "cases": cases}))


# ------------------------------------------------------------------------------------------------- driver


def run_worker(tree: Path, suite: str, threads: int) -> dict[str, Timing]:
    environment = {**os.environ, "PYTHONPATH": str(tree), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", suite, "--threads", str(threads)],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the worker for {tree} ({suite}) failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["varprop"]).resolve() != (tree / "varprop").resolve():
        raise SystemExit(f"the worker for {tree} imported varprop from {result['varprop']}")
    return {name: (float(wall), float(cpu)) for name, (wall, cpu) in result["cases"].items()}


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def duration(seconds: float) -> str:
    if seconds < 1e-5:
        return f"{seconds * 1e6:.2f} us"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1.0 else f"{seconds:.2f} s"


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        name = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line), "?")
    except OSError:
        name = platform.processor() or "?"
    return f"{name}, {os.cpu_count()} cores, Python {platform.python_version()}"


def commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "?"


def render(results: dict[str, dict[str, list[Timing]]], command: str, trees: dict[str, Path], load: str) -> str:
    """The markdown section: per case the medians over the rounds, wall clock and CPU, and new / old."""
    rounds = len(next(iter(results["old"].values())))
    lines = [
        "## Before and after: the same calls under two commits",
        "",
        f"Command: `{command}`. old = {commit(trees['old'])}, new = {commit(trees['new'])} (the working tree of the "
        f"run). Machine: {machine()}, shared with other jobs while it ran (1-minute load average {load}): the two "
        f"trees ran alternately, {rounds} worker processes each, and each figure is the fastest of a few calls in a "
        "worker, then the median over the workers. *CPU* is the process's CPU time, which the other jobs disturb "
        "less than the wall clock; *range*: the lowest and highest new / old of the rounds (CPU).",
        "",
        "| case | old wall | new wall | new / old (wall) | old CPU | new CPU | new / old (CPU) | range (CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios: list[tuple[float, str]] = []
    for case, old_times in results["old"].items():
        new_times = results["new"][case]
        wall = [median([t[0] for t in times]) for times in (old_times, new_times)]
        cpu = [median([t[1] for t in times]) for times in (old_times, new_times)]
        per_round = [n[1] / o[1] for n, o in zip(new_times, old_times, strict=True)]
        ratios.append((cpu[1] / cpu[0], case))
        lines.append(
            f"| {case} | {duration(wall[0])} | {duration(wall[1])} | {wall[1] / wall[0]:.2f} | {duration(cpu[0])} | "
            f"{duration(cpu[1])} | {cpu[1] / cpu[0]:.2f} | {min(per_round):.2f} - {max(per_round):.2f} |"
        )
    largest = max(ratios)
    lines += [
        "",
        f"CPU new / old: median {median([ratio for ratio, _ in ratios]):.2f} over the {len(ratios)} cases, largest "
        f"{largest[0]:.2f} ({largest[1]}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="the old tree's src folder (the one that holds varprop/)")
    parser.add_argument("--new", type=Path, default=ROOT / "src", help="the new tree's src folder (default: this one)")
    parser.add_argument("--suite", choices=SUITES, nargs="+", default=list(SUITES), help="what to time (default all)")
    parser.add_argument("--rounds", type=int, default=5, help="worker processes per tree and suite (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the models suite (default 1)")
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    parser.add_argument("--worker", choices=SUITES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, args.threads)
        return 0
    if args.old is None or args.rounds < 1:
        parser.error("give --old <src folder of the tree to compare with> and --rounds >= 1")
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    results: dict[str, dict[str, list[Timing]]] = {"old": {}, "new": {}}
    load_before = os.getloadavg()[0]
    for round_index in range(args.rounds):
        order = ("old", "new") if round_index % 2 == 0 else ("new", "old")
        for suite in args.suite:
            for label in order:
                for case, timing in run_worker(trees[label], suite, args.threads).items():
                    results[label].setdefault(case, []).append(timing)
        print(f"round {round_index + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    load = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    command = (
        f"python benchmarks/versus.py --old <checkout of {commit(trees['old'])}>/src --suite {' '.join(args.suite)} "
        f"--rounds {args.rounds} --threads {args.threads}" + (" --write" if args.write else "")
    )
    section = render(results, command, trees, load)
    print(section)
    if args.write:
        replace_section("versus", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
