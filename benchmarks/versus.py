"""Benchmark: the same calls timed under two source trees (before and after a change), alternately, as ratios.

Each round starts one worker process per tree (``PYTHONPATH=<tree>``) in alternating order (old then new, new then
old, ...), so that a change of the machine's load falls on both alike. A worker times every case as the fastest of a
few calls (the least disturbed measurement on a shared machine) and prints them as JSON; the ratio of a case is
median(new) / median(old) over the rounds, with the range of the per-round ratios beside it. Only public names are
called, so the same worker code runs on both trees; the models are those of ``benchmarks/models.py``.

Cases:

- ``moments``: ``varprop.moments(act, var=v)`` with a new v each call (*scalar*), the same call repeated (*cached*),
  one call over 1,000 variances, per point (*vectorized*), for closed-form and table-backed activations;
- ``models``: ``varprop.torch.init_model`` on the plain MLP of ``benchmarks/models.py`` (depth 100, width 512):
  the process's first call for an activation (it fills that activation's moment lattice) and the fastest of the
  next three; ``calibrate='gaussian'`` on 512 rows; the 50-layer CNN, the 50-block residual MLP and the 12-layer
  transformer encoder of ``benchmarks/models.py``, analytic and calibrated.

Run (about 10 minutes on 2 shared cores with the default 5 rounds)::

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
import json
import math
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _docs import replace_section  # benchmarks/_docs.py (the script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUITES = ("moments", "models")
# Closed forms (relu, elu, selu, tanh's odd table aside) and table-backed activations of the registry.
MOMENT_SPECS = ("relu", "elu", "selu", "tanh", "sigmoid", "gelu", "silu", "softplus", "mish")
MODEL_ACTIVATIONS = ("elu", "relu", "tanh", "gelu", "silu")
DEPTH, WIDTH, ROWS, CALIBRATION_ROWS = 100, 512, 128, 512  # as benchmarks/models.py's plain MLP section


def fastest(function: Callable[[], object], repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


# ------------------------------------------------------------------------------------------------- workers


def moments_cases() -> dict[str, float]:
    import numpy as np

    import varprop

    rng = np.random.default_rng(0)
    fresh = iter(10.0 ** rng.uniform(-2, 2, size=100_000))
    grid = np.logspace(-2, 2, 1000)
    found: dict[str, float] = {}
    for spec in MOMENT_SPECS:
        act = varprop.activation(spec)
        varprop.moments(act, var=1.0)
        found[f"moments {spec}: scalar"] = fastest(lambda act=act: varprop.moments(act, var=next(fresh)), 200)
        found[f"moments {spec}: cached"] = fastest(lambda act=act: varprop.moments(act, var=1.0), 2000)
        found[f"moments {spec}: vectorized, per point"] = (
            fastest(lambda act=act: varprop.moments(act, var=grid), 5) / grid.size
        )
    return found


def models_cases() -> dict[str, float]:
    import torch
    from torch import nn

    import varprop.torch as vt
    from models import ACTIVATIONS, ResidualMLP, cnn, mlp, timed, warm_up_process  # benchmarks/models.py

    torch.set_num_threads(2)
    torch.manual_seed(0)
    warm_up_process()
    generator = torch.Generator().manual_seed(0)
    found: dict[str, float] = {}
    for name in MODEL_ACTIVATIONS:
        model = mlp(ACTIVATIONS[name], DEPTH, WIDTH)
        label = f"MLP {DEPTH} x {WIDTH}, {name}"
        found[f"{label}: analytic, first call"] = timed(lambda model=model: vt.init_model(model, (ROWS, WIDTH)))
        found[f"{label}: analytic"] = min(
            timed(lambda model=model: vt.init_model(model, (ROWS, WIDTH), generator=generator)) for _ in range(3)
        )
    model = mlp(ACTIVATIONS["elu"], DEPTH, WIDTH)
    found[f"MLP {DEPTH} x {WIDTH}, elu: calibrated"] = min(
        timed(lambda: vt.init_model(model, (CALIBRATION_ROWS, WIDTH), calibrate="gaussian", generator=generator))
        for _ in range(3)
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
        found[f"{title}: analytic"] = min(
            timed(lambda model=model, shape=shape: vt.init_model(model, shape, generator=generator)) for _ in range(3)
        )
        found[f"{title}: calibrated"] = min(
            timed(
                lambda model=model, shape=shape: vt.init_model(model, shape, calibrate="gaussian", generator=generator)
            )
            for _ in range(2)
        )
    return found


def worker(suite: str) -> None:
    import varprop

    cases = moments_cases() if suite == "moments" else models_cases()
    print(json.dumps({"varprop": str(Path(varprop.__file__).parent), "cases": cases}))


# ------------------------------------------------------------------------------------------------- driver


def run_worker(tree: Path, suite: str) -> dict[str, float]:
    environment = {**os.environ, "PYTHONPATH": str(tree), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", suite],
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
    return {name: float(seconds) for name, seconds in result["cases"].items()}


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us" if seconds < 1e-5 else f"{seconds * 1e6:.1f} us"
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


def render(
    results: dict[str, dict[str, list[float]]], suites: list[str], command: str, old: Path, new: Path, load: str
) -> str:
    lines = [
        "## Before and after: the same calls under two commits",
        "",
        f"Command: `{command}`; old = {commit(old)}, new = {commit(new)} (its working tree). Machine: {machine()}; "
        f"shared with other jobs (1-minute load average {load}), which is why the two trees run alternately, "
        f"{len(results['old'][next(iter(results['old']))])} rounds, and each figure is the fastest of a few calls.",
        "",
        "| case | old (median) | new (median) | new / old | per-round range |",
        "|---|---|---|---|---|",
    ]
    ratios = []
    for case, old_times in results["old"].items():
        new_times = results["new"][case]
        ratio = median(new_times) / median(old_times)
        ratios.append((ratio, case))
        rounds = [n / o for n, o in zip(new_times, old_times, strict=True)]
        lines.append(
            f"| {case} | {duration(median(old_times))} | {duration(median(new_times))} | {ratio:.2f} | "
            f"{min(rounds):.2f} - {max(rounds):.2f} |"
        )
    slowest = max(ratios)
    lines += [
        "",
        f"Suites: {', '.join(suites)}. Largest ratio: {slowest[0]:.2f} ({slowest[1]}); median ratio "
        f"{median([ratio for ratio, _ in ratios]):.2f}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="the old tree's src folder (the one that holds varprop/)")
    parser.add_argument("--new", type=Path, default=ROOT / "src", help="the new tree's src folder (default: this one)")
    parser.add_argument("--suite", choices=SUITES, nargs="+", default=list(SUITES), help="what to time (default all)")
    parser.add_argument("--rounds", type=int, default=5, help="worker processes per tree (default 5)")
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    parser.add_argument("--worker", choices=SUITES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args.worker)
        return 0
    if args.old is None or args.rounds < 1:
        parser.error("give --old <src folder of the tree to compare with> and --rounds >= 1")
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    results: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    load_before = os.getloadavg()[0]
    for round_index in range(args.rounds):
        order = ("old", "new") if round_index % 2 == 0 else ("new", "old")
        for suite in args.suite:
            for label in order:
                for case, seconds in run_worker(trees[label], suite).items():
                    results[label].setdefault(case, []).append(seconds)
        print(f"round {round_index + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    load = f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    suites = " ".join(args.suite)
    command = f"python benchmarks/versus.py --old <{commit(trees['old'])}>/src --suite {suites} --rounds {args.rounds}"
    section = render(
        results, args.suite, command + (" --write" if args.write else ""), trees["old"], trees["new"], load
    )
    print(section)
    if args.write:
        replace_section("versus", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
