"""Benchmark: accuracy and speed of Gaussian moments, varprop against its peers, in one run.

Accuracy: the largest error over the registry x variance x mean grid of the committed 40-digit
mpmath references (``tests/reference/moments_reference.json``), for E[phi], E[phi^2], E[phi'^2].
An error is measured as |computed - exact| / max(|exact|, 1e-2 * scale) where the scale is E[|phi|]
for E[phi] and the value itself for the non-negative moments: relative error, except where the
exact value is far below the integrand's own size (E[tanh] at mean 0 is 0), where it is relative to
that size. The library target is <= 1e-13 everywhere.

Peers, each on the same grid and the same numpy activation functions (so only the integration
differs): Gauss-Hermite with 25 nodes (neural-tangents' default) and 100 nodes; Monte Carlo with
1e5, 1e6 and 1e7 samples (the seed answer's method); ``scipy.integrate.quad`` over (-inf, inf);
AnyInit 0.4.0's ``ActivationProfile(name, fn).moments(mu, var)`` (E[phi] and E[phi^2] only).

Speed: time per (activation, variance) point: varprop scalar call (first call with new values, and
a repeated call served by its cache), varprop vectorized over 1,000 points (for the activations without
closed forms served by the precomputed tables of ``varprop.gaussian._moment_tables``), and each peer.

Scalar calls against earlier versions (``--scalar REV ...``): ``moments(act, var=v)`` with a new v each call, for
this tree and for each git revision named (exported with ``git archive`` into a temporary folder), each in its own
process, the processes interleaved over several rounds (the fastest per activation kept: the machine is shared).

Run (about 3 minutes on 2 cores)::

    python benchmarks/moments.py            # prints the markdown tables
    python benchmarks/moments.py --write    # also replaces the section in docs/benchmarks.md
    python benchmarks/moments.py --scalar c3d4775 3838eb2 --write   # scalar calls: section moments-scalar
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate

import varprop
from _docs import replace_section  # benchmarks/_docs.py (the script's directory is on sys.path)
from varprop import moments

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REFERENCE = os.path.join(ROOT, "tests", "reference", "moments_reference.json")
FIELDS = ("first_moment", "second_moment", "deriv_second_moment")
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

Triple = tuple[float, float, float]


def load_reference() -> list[dict[str, Any]]:
    with open(REFERENCE) as handle:
        return list(json.load(handle)["entries"])


def error(computed: float, exact: float, scale: float) -> float:
    if not math.isfinite(computed):
        return math.inf
    return abs(computed - exact) / max(abs(exact), 1e-2 * scale, 1e-300)


def scales(entry: dict[str, Any]) -> Triple:
    return float(entry["abs_first_moment"]), float(entry["second_moment"]), float(entry["deriv_second_moment"])


def exact(entry: dict[str, Any]) -> Triple:
    return float(entry["first_moment"]), float(entry["second_moment"]), float(entry["deriv_second_moment"])


# --------------------------------------------------------------------------- peers


def gauss_hermite(act: varprop.Activation, nodes: int) -> Callable[[float, float], Triple]:
    z, w = hermegauss(nodes)
    w = w * INV_SQRT_2PI

    def run(mean: float, var: float) -> Triple:
        y = mean + math.sqrt(var) * z
        value, slope = act.function(y), act.derivative(y)
        return float(w @ value), float(w @ value**2), float(w @ slope**2)

    return run


def monte_carlo(act: varprop.Activation, samples: int) -> Callable[[float, float], Triple]:
    def run(mean: float, var: float) -> Triple:
        result = varprop.gaussian.monte_carlo_moments(act, var=var, mean=mean, samples=samples, seed=0)
        return result.mean, result.second_moment, result.deriv_second_moment

    return run


def scipy_quad(act: varprop.Activation) -> Callable[[float, float], Triple]:
    def one(g: Callable[[np.ndarray], np.ndarray], mean: float, sigma: float) -> float:
        def integrand(z: float) -> float:
            return float(g(np.array(mean + sigma * z))) * math.exp(-0.5 * z * z) * INV_SQRT_2PI

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(integrate.quad(integrand, -np.inf, np.inf, limit=200)[0])

    def run(mean: float, var: float) -> Triple:
        sigma = math.sqrt(var)
        return (
            one(act.function, mean, sigma),
            one(lambda y: act.function(y) ** 2, mean, sigma),
            one(lambda y: act.derivative(y) ** 2, mean, sigma),
        )

    return run


def anyinit(act: varprop.Activation) -> Callable[[float, float], Triple] | None:
    try:
        from anyinit.core.profile import ActivationProfile
    except ImportError:
        return None

    def run(mean: float, var: float) -> Triple:
        # A fresh profile per point: AnyInit caches by (mu, var), and we time the quadrature.
        state = ActivationProfile(act.name, act.function).moments(mean, var)
        return float(state.mean), float(state.m2), math.nan

    return run


# --------------------------------------------------------------------------- measurement


def accuracy(entries: list[dict[str, Any]], quick: bool) -> list[tuple[str, str, float, str]]:
    """Worst error of each method over the grid; returns rows (method, points, worst, where)."""
    by_spec: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_spec.setdefault(entry["spec"], []).append(entry)
    rows = []

    def worst_of(
        name: str,
        make: Callable[[varprop.Activation], Callable[[float, float], Triple] | None],
        subset: bool,
        oscillating_up_to: float = math.inf,
    ) -> None:
        worst, where, count = 0.0, "", 0
        for spec, group in by_spec.items():
            act = varprop.activation(spec)
            method = make(act)
            if method is None:
                return
            for entry in group:
                if subset and not (entry["mean"] in (0.0, 1.0) and entry["var"] in (1e-2, 1.0, 1e2)):
                    continue
                if spec in ("sin", "cos") and entry["var"] > oscillating_up_to:
                    continue
                try:
                    values = method(entry["mean"], entry["var"])
                except Exception:  # a peer that fails counts as an infinite error
                    values = (math.nan, math.nan, math.nan)
                for field, value, reference, scale in zip(FIELDS, values, exact(entry), scales(entry), strict=True):
                    if math.isnan(value) and name.startswith("AnyInit") and field == "deriv_second_moment":
                        continue
                    err = error(value, reference, scale)
                    count += 1
                    if err > worst or math.isnan(err):
                        worst, where = err, f"{spec} {field} mean={entry['mean']:g} var={entry['var']:g}"
        rows.append((name, str(count), worst, where))

    def varprop_vectorized(act: varprop.Activation) -> Callable[[float, float], Triple]:
        group = by_spec[act.spec] if act.spec in by_spec else by_spec[act.name]
        means = np.array([e["mean"] for e in group])
        variances = np.array([e["var"] for e in group])
        result = moments(act, var=variances, mean=means)
        table = {
            (m, v): (a, b, c)
            for m, v, a, b, c in zip(
                means, variances, result.mean, result.second_moment, result.deriv_second_moment, strict=True
            )
        }
        return lambda mean, var: table[(mean, var)]

    worst_of("varprop (vectorized)", varprop_vectorized, False)
    worst_of("varprop (scalar calls)", lambda act: lambda m, v: _scalar(act, m, v), False)
    worst_of("varprop quadrature only", lambda act: lambda m, v: _scalar(act, m, v, "quadrature"), False)
    worst_of(
        "varprop quadrature only, sin/cos at var <= 1",
        lambda act: lambda m, v: _scalar(act, m, v, "quadrature"),
        False,
        oscillating_up_to=1.0,
    )
    worst_of("Gauss-Hermite 25", lambda act: gauss_hermite(act, 25), False)
    worst_of("Gauss-Hermite 100", lambda act: gauss_hermite(act, 100), False)
    worst_of("scipy.integrate.quad", scipy_quad, quick)
    worst_of("AnyInit 0.4.0", anyinit, False)
    worst_of("Monte Carlo 1e5", lambda act: monte_carlo(act, 10**5), True)
    if not quick:
        worst_of("Monte Carlo 1e7", lambda act: monte_carlo(act, 10**7), True)
    return rows


def _scalar(act: varprop.Activation, mean: float, var: float, method: str = "auto") -> Triple:
    result = moments(act, var=var, mean=mean, method=method)  # type: ignore[arg-type]
    return float(result.mean), float(result.second_moment), float(result.deriv_second_moment)


def per_call(function: Callable[[], object], repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls (after one warm-up call): on a shared machine the minimum is the
    least disturbed measurement, and it is taken alike for varprop and every peer."""
    function()
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def timing_row(spec: str, rng: np.random.Generator, quick: bool) -> list[str]:
    """Seconds per point of each method for one activation, mean 0, var in [1e-2, 1e2]."""
    act = varprop.activation(spec)
    fresh = iter(10.0 ** rng.uniform(-2, 2, size=100_000))
    cold = per_call(lambda: moments(act, var=next(fresh)), 200)
    cached = per_call(lambda: moments(act, var=1.0), 2000)
    grid = np.logspace(-2, 2, 1000)
    served = moments(act, var=grid).method
    vectorized = per_call(lambda: moments(act, var=grid), 5) / grid.size
    quadrature_grid = per_call(lambda: moments(act, var=grid, method="quadrature"), 3) / grid.size
    hermite = gauss_hermite(act, 100)
    gh = per_call(lambda: hermite(0.0, next(fresh)), 500)
    quad_run = scipy_quad(act)
    quad = per_call(lambda: quad_run(0.0, next(fresh)), 5 if quick else 20)
    any_run = anyinit(act)
    any_time = math.nan
    if any_run is not None:
        any_time = per_call(lambda: any_run(0.0, next(fresh)), 20 if quick else 50)
    sampler = monte_carlo(act, 10**6)
    mc6 = per_call(lambda: sampler(0.0, 1.0), 1 if quick else 3)
    return [
        spec,
        served,
        f"{cold * 1e6:.0f}",
        f"{cached * 1e6:.1f}",
        f"{vectorized * 1e6:.2f}",
        f"{quadrature_grid * 1e6:.1f}",
        f"{gh * 1e6:.0f}",
        f"{quad * 1e6:.0f}",
        f"{any_time * 1e6:.0f}",
        f"{mc6 * 1e6:.0f}",
        f"{any_time / vectorized:.0f}x" if any_run else "n/a",
        f"{any_time / quadrature_grid:.0f}x" if any_run else "n/a",
    ]


def timing(specs: list[str], quick: bool) -> list[list[str]]:
    rng = np.random.default_rng(0)
    return [timing_row(spec, rng, quick) for spec in specs]


# Scalar calls against earlier versions: closed forms of each family, table-served and quadrature activations.
SCALAR_SPECS = ("relu", "leaky_relu", "elu", "selu", "hardtanh", "hardswish", "gelu", "erf", "sin",
                "tanh", "sigmoid", "silu", "softplus", "mish")  # fmt: skip
SCALAR_ROUNDS = 5


def scalar_call_times(repeat: int) -> dict[str, float]:
    """Seconds per scalar ``moments(act, var=v)`` call with a new v each time, for ``SCALAR_SPECS``."""
    rng = np.random.default_rng(0)
    times = {}
    for spec in SCALAR_SPECS:
        act = varprop.activation(spec)
        fresh = iter(10.0 ** rng.uniform(-2, 2, size=100_000))
        times[spec] = per_call(lambda: moments(act, var=next(fresh)), repeat)  # noqa: B023 (called right here)
    return times


def scalar_versions(revisions: list[str], rounds: int) -> tuple[list[str], dict[str, dict[str, float]], str]:
    """Scalar-call times of this tree and of each git revision, one process per version per round."""
    labels = [*revisions, "this tree"]
    best: dict[str, dict[str, float]] = {label: {} for label in labels}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        sources = {}
        for revision in revisions:
            target = os.path.join(folder, revision)
            os.makedirs(target)
            archive = subprocess.run(["git", "-C", ROOT, "archive", revision, "src"], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", target], input=archive.stdout, check=True)
            sources[revision] = os.path.join(target, "src")
        sources["this tree"] = os.path.join(ROOT, "src")
        for round_index in range(rounds):
            order = labels[round_index % len(labels) :] + labels[: round_index % len(labels)]
            for label in order:
                env = {**os.environ, "PYTHONPATH": sources[label]}
                command = [sys.executable, os.path.abspath(__file__), "--scalar-child"]
                result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                for spec, seconds in json.loads(result.stdout).items():
                    best[label][spec] = min(seconds, best[label].get(spec, math.inf))
    load = f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after"
    return labels, best, load


def render_scalar(labels: list[str], best: dict[str, dict[str, float]], rounds: int, command: str, load: str) -> str:
    new = best["this tree"]
    served = {spec: moments(spec, var=1.0).method for spec in SCALAR_SPECS}
    head = " | ".join(f"{label} (us)" for label in labels)
    ratios = " | ".join(f"this tree / {label}" for label in labels[:-1])
    lines = [
        "### Scalar calls against earlier versions",
        "",
        f"Machine: {machine()}.  ",
        f"Command: `{command}` (one run; every figure below comes from it). Each version in its own process, "
        f"{rounds} rounds interleaved, the fastest of 300 calls `moments(act, var=v)` (a new v drawn from "
        f"[1e-2, 1e2] each call, so the result cache does not serve it) per round and the fastest round kept; "
        f"the machine is shared (1-minute load average {load} the timings). Target: no ratio above 2.",
        "",
        f"| activation | served by | {head} | {ratios} |",
        "|---|---|" + "---|" * (2 * len(labels) - 1),
    ]
    for spec in SCALAR_SPECS:
        cells = [f"{best[label][spec] * 1e6:.1f}" for label in labels]
        cells += [f"{new[spec] / best[label][spec]:.2f}" for label in labels[:-1]]
        lines.append(f"| {spec} | {served[spec]} | " + " | ".join(cells) + " |")
    worst = {label: max(new[spec] / best[label][spec] for spec in SCALAR_SPECS) for label in labels[:-1]}
    lines += ["", "Largest ratio: " + ", ".join(f"{ratio:.2f} against {label}" for label, ratio in worst.items()) + "."]
    return "\n".join(lines) + "\n"


def machine() -> str:
    try:
        model = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        name = next((line.split(":", 1)[1].strip() for line in model.splitlines() if "Model name" in line), "?")
    except OSError:
        name = platform.processor() or "?"
    anyinit_version = "not installed"
    try:
        import anyinit

        anyinit_version = getattr(anyinit, "__version__", "installed")
    except ImportError:
        pass
    return (
        f"{name}, {os.cpu_count()} cores; Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, varprop {varprop.__version__}, AnyInit {anyinit_version}"
    )


def render(acc: list[tuple[str, str, float, str]], times: list[list[str]], command: str, load: str) -> str:
    lines = [
        "## Gaussian moments: accuracy and speed",
        "",
        f"Machine: {machine()}.  ",
        f"Command: `{command}` (one run; every figure below comes from it).",
        "",
        "### Accuracy over the reference grid",
        "",
        "Worst error against the 40-digit mpmath references of every registered activation, "
        "var in {1e-6, 1e-4, 1e-2, 1, 1e2, 1e4, 1e6}, mean in {-5, -1, 0, 0.3, 1, 5}; "
        "error = |computed - exact| / max(|exact|, 1e-2 E[|g|]). Target for varprop: <= 1e-13. "
        "Monte Carlo runs on the subset mean in {0, 1}, var in {1e-2, 1, 1e2}.",
        "",
        "| method | values compared | worst error | where |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {count} | {worst:.1e} | {where} |" for name, count, worst, where in acc]
    lines += [
        "",
        "### Time per point (microseconds)",
        "",
        "Mean 0, variances drawn from [1e-2, 1e2]; each figure is the fastest of several calls (the machine is "
        f"shared; 1-minute load average {load}). *scalar*: `moments(act, var=v)` with a new v each call; "
        "*cached*: the same call repeated (served by the result cache); *vectorized*: one call over 1,000 "
        "variances, per point (*served by*: its `Moments.method`; *table*: the precomputed tables of "
        "`varprop.gaussian._moment_tables`; cos and hardsigmoid: closed forms, the variance from their tables where "
        "E[phi^2] - E[phi]^2 cancels); *quadrature*: the same forcing `method='quadrature'`; peers per point. "
        "The last two columns are AnyInit's per-point time over varprop's (target >= 50x for the vectorized call).",
        "",
        "| activation | served by | scalar | cached | vectorized | quadrature | GH-100 | scipy quad | AnyInit | MC 1e6 "
        "| AnyInit / vectorized | AnyInit / quadrature |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in times]
    lines += ["", summary(times)]
    return "\n".join(lines) + "\n"


def summary(times: list[list[str]]) -> str:
    """One sentence: the vectorized per-point costs of closed forms and tables, against the two targets."""
    vectorized = {row[0]: float(row[4]) for row in times}
    closed = sorted(vectorized[row[0]] for row in times if row[1] == "closed form")
    tabled = {row[0]: vectorized[row[0]] for row in times if row[1] != "closed form"}
    ratios = {row[0]: float(row[10].rstrip("x")) for row in times if row[10] != "n/a"}
    median = closed[len(closed) // 2]
    text = f"Vectorized, per point: closed forms {closed[0]:.2f}-{closed[-1]:.2f} us (median {median:.2f}"
    text += f", relu {vectorized['relu']:.2f})" if "relu" in vectorized else ")"
    if tabled:
        slowest = max(tabled, key=lambda spec: tabled[spec])
        text += (
            f"; the others ({', '.join(sorted(tabled))}) {min(tabled.values()):.2f}-{tabled[slowest]:.2f} us: the "
            f"slowest, {slowest}, is {tabled[slowest] / median:.2f}x the closed-form median"
        )
        if "relu" in vectorized:
            text += f" and {tabled[slowest] / vectorized['relu']:.1f}x relu"
        text += " (target <= 3x)"
    if ratios:
        worst = min(ratios, key=lambda spec: ratios[spec])
        text += f"; AnyInit's per-point time is at least {ratios[worst]:.0f}x varprop's vectorized one ({worst}"
        if tabled and any(spec in ratios for spec in tabled):
            text += f"; {min(ratios[spec] for spec in tabled if spec in ratios):.0f}x over the tabled activations"
        text += ", target >= 50x)"
    return text + "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and no 1e7 Monte Carlo")
    parser.add_argument("--scalar", nargs="+", metavar="REV", help="only time scalar calls, against these revisions")
    parser.add_argument("--scalar-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scalar_child:
        print(json.dumps(scalar_call_times(300)))
        return 0
    if args.scalar:
        command = "python benchmarks/moments.py --scalar " + " ".join(args.scalar)
        command += (" --quick" if args.quick else "") + (" --write" if args.write else "")
        rounds = 2 if args.quick else SCALAR_ROUNDS
        labels, best, load = scalar_versions(args.scalar, rounds)
        section = render_scalar(labels, best, rounds, command, load)
        print(section)
        if args.write:
            replace_section("moments-scalar", section)
        return 0
    command = "python benchmarks/moments.py" + (" --quick" if args.quick else "") + (" --write" if args.write else "")
    entries = load_reference()
    acc = accuracy(entries, args.quick)
    # torch's Threshold has no defaults: time it with the reference grid's parameters
    specs = [
        name if name != "threshold" else "threshold(threshold=0.5, value=-1.0)"
        for name in varprop.activations.registered_activations()
    ]
    load_before = os.getloadavg()[0]
    times = timing(specs, args.quick)
    load = f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after the timings"
    section = render(acc, times, command, load)
    print(section)
    if args.write:
        replace_section("moments", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
