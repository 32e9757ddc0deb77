"""Generate 40-digit Gaussian moments of every registered activation (``moments_reference.json``).

For y ~ N(mean, var) and each activation phi this computes, with mpmath only,

    first_moment        = E[phi(y)]
    second_moment       = E[phi(y)^2]
    deriv_second_moment = E[phi'(y)^2]      (phi' the almost-everywhere derivative)
    abs_first_moment    = E[|phi(y)|]       (the scale that judges cancellation in E[phi])

It deliberately does NOT import varprop: every activation is defined again below, in mpmath,
following PyTorch's definitions (``torch.nn.functional``), so the file is an independent oracle.

Method. y = mean + sigma z; each moment is the integral over z of g(mean + sigma z) times the
standard normal density, by tanh-sinh quadrature (``mpmath.quad``) at ``mp.dps = 40`` over the whole
real line, split

* at every kink of phi (points where phi or a derivative jumps), mapped to z = (kink - mean) / sigma,
  at any distance; kinks beyond |z| = 32 also get points 2^j / |z| (j = 0..6) on both sides;
* at every zero of phi (|phi| has a kink there), for sin and cos at every multiple of pi/2;
* geometrically (ratio 2) around every smooth feature of phi (a bend of width w at x0 becomes a
  bend of width w / sigma at (x0 - mean) / sigma in z): tanh at var 1e6 is a step of width 1e-3;
* geometrically around z = 0 (0, +-1/4, +-1/2, ..., +-32), the Gaussian itself.

mpmath's convergence test is absolute (error <= 2^-prec / 8), so an interval whose integral is much
smaller than 1 (a Gaussian tail beyond a distant kink) is integrated a second time with the
integrand divided by a power of two close to its value: every interval is then accurate to ~40
digits relative to itself, and each moment to ~40 digits relative to the sum of the absolute values
of its pieces (<= E[|phi|], E[phi^2], E[phi'^2]).

sin and cos at var >= 1e4 oscillate ~10^4 times across the Gaussian; there the reference uses the
characteristic function instead (E[e^{i y}] = e^{i mean - var/2}) and the Fourier series
|sin y| = 2/pi - (4/pi) sum_k cos(2 k y) / (4 k^2 - 1) for E[|phi|]; these entries say
``"method": "characteristic function"``.

Self-check (``--check N``): N entries (every activation, a spread of means and variances) are
recomputed at mp.dps = 50 with twice as many split points (grading ratio sqrt 2, a finer grid
around 0); the number of agreeing significant digits, relative to the scale of each moment, is
stored in the metadata.

Regenerate (about an hour on 2 cores)::

    python tests/reference/generate_moments.py --processes 2 --check 60

Progress goes to stdout; finished entries are cached in ``--cache`` (a JSON-lines file) so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import mpmath
from mpmath import mp, mpf

DPS = 40
CHECK_DPS = 50
VARIANCES = (1e-6, 1e-4, 1e-2, 1.0, 1e2, 1e4, 1e6)
MEANS = (-5.0, -1.0, 0.0, 0.3, 1.0, 5.0)
SIGNIFICANT_DIGITS = 30  # digits written to the JSON (>= 25 requested)
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "moments_reference.json")
DEFAULT_CACHE = os.path.join("/tmp", "varprop_moments_cache.jsonl")

Scalar = Callable[[mpf], mpf]

# PyTorch constants, as in torch/nn/functional.py and aten/src/ATen/native/Activation.cpp.
SELU_ALPHA = "1.6732632423543772848170429916717"  # Klambauer et al. 2017, eq. (14) solution
SELU_SCALE = "1.0507009873554804934193349852946"
GELU_TANH_CUBIC = "0.044715"  # Hendrycks & Gimpel 2016, tanh approximation
RRELU_LOWER = 1.0 / 8.0  # torch default lower = 1/8
RRELU_UPPER = 1.0 / 3.0  # torch default upper = 1/3 (as the float64 torch stores)


@dataclass(frozen=True)
class Reference:
    """One activation as mpmath callables: phi, phi', kinks, zeros and smooth features (in x)."""

    spec: str
    function: Scalar
    derivative: Scalar
    kinks: tuple[float, ...] = ()
    features: tuple[tuple[float, float], ...] = ()
    zeros: tuple[float, ...] = (0.0,)
    periodic: str | None = None  # "sin" or "cos": zeros at multiples of pi/2, closed form at large var


def _step(x: mpf) -> mpf:
    return mpf(1) if x > 0 else mpf(0)


def _sigmoid(x: mpf) -> mpf:
    return 1 / (1 + mp.exp(-x))


def _softplus_exact(x: mpf) -> mpf:
    # log(1 + e^x) without overflow concerns (mpmath exponents are unbounded) and without the
    # cancellation of log1p at large negative x (log1p is accurate for small arguments).
    return mp.log1p(mp.exp(x))


def _normal_cdf(x: mpf) -> mpf:
    return mp.erfc(-x / mp.sqrt(2)) / 2


def _normal_pdf(x: mpf) -> mpf:
    return mp.exp(-x * x / 2) / mp.sqrt(2 * mp.pi)


def _leaky(slope: float) -> tuple[Scalar, Scalar]:
    s = mpf(slope)
    return (lambda x: x if x > 0 else s * x), (lambda x: mpf(1) if x > 0 else s)


def _elu(alpha: float) -> tuple[Scalar, Scalar]:
    a = mpf(alpha)
    return (lambda x: x if x > 0 else a * mp.expm1(x)), (lambda x: mpf(1) if x > 0 else a * mp.exp(x))


def _celu(alpha: float) -> tuple[Scalar, Scalar]:
    a = mpf(alpha)
    return (lambda x: x if x > 0 else a * mp.expm1(x / a)), (lambda x: mpf(1) if x > 0 else mp.exp(x / a))


def _selu() -> tuple[Scalar, Scalar]:
    a, s = mpf(SELU_ALPHA), mpf(SELU_SCALE)
    return (lambda x: s * x if x > 0 else s * a * mp.expm1(x)), (lambda x: s if x > 0 else s * a * mp.exp(x))


def _hardtanh(low: float, high: float) -> tuple[Scalar, Scalar]:
    lo, hi = mpf(low), mpf(high)
    return (lambda x: min(max(x, lo), hi)), (lambda x: mpf(1) if lo < x < hi else mpf(0))


def _softshrink(lambd: float) -> tuple[Scalar, Scalar]:
    la = mpf(lambd)
    return (lambda x: x - la if x > la else (x + la if x < -la else mpf(0))), (
        lambda x: mpf(1) if abs(x) > la else mpf(0)
    )


def _hardshrink(lambd: float) -> tuple[Scalar, Scalar]:
    la = mpf(lambd)
    return (lambda x: x if abs(x) > la else mpf(0)), (lambda x: mpf(1) if abs(x) > la else mpf(0))


def _threshold(threshold: float, value: float) -> tuple[Scalar, Scalar]:
    t, v = mpf(threshold), mpf(value)
    return (lambda x: x if x > t else v), (lambda x: mpf(1) if x > t else mpf(0))


def _softplus(beta: float, threshold: float = 20.0) -> tuple[Scalar, Scalar]:
    # torch: (1/beta) log(1 + exp(beta x)), reverting to x where beta x > threshold (a jump of
    # log1p(e^-20) ~ 2e-9 at x = threshold / beta that is part of torch's definition).
    b, t = mpf(beta), mpf(threshold)

    def function(x: mpf) -> mpf:
        return x if b * x > t else _softplus_exact(b * x) / b

    def derivative(x: mpf) -> mpf:
        return mpf(1) if b * x > t else _sigmoid(b * x)

    return function, derivative


def _gelu_tanh() -> tuple[Scalar, Scalar]:
    c, k = mp.sqrt(2 / mp.pi), mpf(GELU_TANH_CUBIC)

    def function(x: mpf) -> mpf:
        return x * (1 + mp.tanh(c * (x + k * x**3))) / 2

    def derivative(x: mpf) -> mpf:
        t = mp.tanh(c * (x + k * x**3))
        return (1 + t) / 2 + x * (1 - t * t) * c * (1 + 3 * k * x * x) / 2

    return function, derivative


def _mish() -> tuple[Scalar, Scalar]:
    def function(x: mpf) -> mpf:
        return x * mp.tanh(_softplus_exact(x))

    def derivative(x: mpf) -> mpf:
        t = mp.tanh(_softplus_exact(x))
        return t + x * (1 - t * t) * _sigmoid(x)

    return function, derivative


def build_references() -> list[Reference]:
    """Every activation of the registry, with torch's defaults, plus a few non-default parameters."""
    unit = ((0.0, 1.0),)
    refs: list[Reference] = [
        Reference("relu", *_leaky(0.0), kinks=(0.0,)),
        Reference(
            "relu6", lambda x: min(max(x, mpf(0)), mpf(6)), lambda x: mpf(1) if 0 < x < 6 else mpf(0), (0.0, 6.0)
        ),
        Reference("leaky_relu", *_leaky(0.01), kinks=(0.0,)),
        Reference("leaky_relu(negative_slope=0.2)", *_leaky(0.2), kinks=(0.0,)),
        Reference("prelu", *_leaky(0.25), kinks=(0.0,)),
        Reference("rrelu", *_leaky(0.0), kinks=(0.0,)),  # replaced below (slope in mpmath)
        Reference("elu", *_elu(1.0), kinks=(0.0,), features=unit),
        Reference("elu(alpha=0.5)", *_elu(0.5), kinks=(0.0,), features=unit),
        Reference("elu(alpha=2.0)", *_elu(2.0), kinks=(0.0,), features=unit),
        Reference("celu", *_celu(1.0), kinks=(0.0,), features=unit),
        Reference("celu(alpha=2.0)", *_celu(2.0), kinks=(0.0,), features=((0.0, 2.0),)),
        Reference("selu", *_selu(), kinks=(0.0,), features=unit),
        Reference("gelu", lambda x: x * _normal_cdf(x), lambda x: _normal_cdf(x) + x * _normal_pdf(x), features=unit),
        Reference("gelu(approximate='tanh')", *_gelu_tanh(), features=unit),
        Reference("hardtanh", *_hardtanh(-1.0, 1.0), kinks=(-1.0, 1.0)),
        Reference("hardtanh(min_val=-2.0, max_val=0.5)", *_hardtanh(-2.0, 0.5), kinks=(-2.0, 0.5)),
        Reference(
            "hardsigmoid",
            lambda x: mpf(0) if x <= -3 else (mpf(1) if x >= 3 else x / 6 + mpf(1) / 2),
            lambda x: mpf(1) / 6 if -3 < x < 3 else mpf(0),
            kinks=(-3.0, 3.0),
        ),
        Reference(
            "hardswish",
            lambda x: mpf(0) if x <= -3 else (x if x >= 3 else x * (x + 3) / 6),
            lambda x: mpf(0) if x < -3 else (mpf(1) if x > 3 else (2 * x + 3) / 6),
            kinks=(-3.0, 3.0),
        ),
        Reference("softshrink", *_softshrink(0.5), kinks=(-0.5, 0.5)),
        Reference("softshrink(lambd=1.0)", *_softshrink(1.0), kinks=(-1.0, 1.0)),
        Reference("hardshrink", *_hardshrink(0.5), kinks=(-0.5, 0.5)),
        Reference("threshold(threshold=0.5, value=-1.0)", *_threshold(0.5, -1.0), kinks=(0.5,)),
        Reference("threshold(threshold=-1.0, value=0.5)", *_threshold(-1.0, 0.5), kinks=(-1.0,)),
        Reference("identity", lambda x: x, lambda x: mpf(1)),
        Reference("sin", mp.sin, mp.cos, zeros=(), periodic="sin"),
        Reference("cos", mp.cos, lambda x: -mp.sin(x), zeros=(), periodic="cos"),
        Reference("erf", mp.erf, lambda x: 2 / mp.sqrt(mp.pi) * mp.exp(-x * x), features=unit),
        Reference(
            "silu", lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))), features=unit
        ),
        Reference("mish", *_mish(), features=unit),
        Reference("softplus", *_softplus(1.0), kinks=(20.0,), features=unit, zeros=()),
        Reference("softplus(beta=2.0)", *_softplus(2.0), kinks=(10.0,), features=((0.0, 0.5),), zeros=()),
        Reference("sigmoid", _sigmoid, lambda x: _sigmoid(x) * (1 - _sigmoid(x)), features=unit, zeros=()),
        Reference("tanh", mp.tanh, lambda x: 1 - mp.tanh(x) ** 2, features=unit),
        Reference("softsign", lambda x: x / (1 + abs(x)), lambda x: 1 / (1 + abs(x)) ** 2, kinks=(0.0,), features=unit),
        Reference("logsigmoid", lambda x: -_softplus_exact(-x), lambda x: _sigmoid(-x), features=unit, zeros=()),
        Reference("tanhshrink", lambda x: x - mp.tanh(x), lambda x: mp.tanh(x) ** 2, features=unit),
    ]
    rrelu_slope = (mpf(RRELU_LOWER) + mpf(RRELU_UPPER)) / 2  # torch eval mode: the mean slope
    rrelu = Reference(
        "rrelu", lambda x: x if x > 0 else rrelu_slope * x, lambda x: mpf(1) if x > 0 else rrelu_slope, kinks=(0.0,)
    )
    return [rrelu if r.spec == "rrelu" else r for r in refs]


# --------------------------------------------------------------------------------------------------
# Split points and integration


def _graded(centre: mpf, width: mpf, ratio: mpf, limit: mpf) -> list[mpf]:
    """centre +- width * ratio^j for j >= 0 while the offset stays below ``limit``."""
    out = [centre]
    offset = width
    while offset <= limit:
        out += [centre - offset, centre + offset]
        offset *= ratio
    return out


def split_points(ref: Reference, mean: mpf, sigma: mpf, fine: bool) -> list[mpf]:
    """Sorted split points in z (finite), the quadrature runs over (-inf, points..., inf)."""
    ratio = mp.sqrt(2) if fine else mpf(2)
    reach = mpf(32)  # beyond |z| = 32 the Gaussian weight is < e^-512: only kinks matter there
    points: list[mpf] = [mpf(0)]
    points += [p for p in _graded(mpf(0), mpf(1) / (16 if fine else 4), ratio, reach)]
    for kink in (*ref.kinks, *ref.zeros):
        z = (mpf(kink) - mean) / sigma
        points.append(z)
        if abs(z) > reach:
            points += _graded(z, 1 / abs(z), ratio, mpf(64) / abs(z))
    for location, width in ref.features:
        z = (mpf(location) - mean) / sigma
        points += [p for p in _graded(z, mpf(width) / sigma, ratio, 2 * reach) if abs(p) <= 2 * reach]
    if ref.periodic is not None:
        # Zeros and extrema of sin/cos: multiples of pi/2 within |z| <= 24 (e^-288 beyond).
        step = mp.pi / 2 / (4 if fine else 1)
        lo = int(mp.floor((mean - 24 * sigma) / step))
        hi = int(mp.ceil((mean + 24 * sigma) / step))
        points += [(k * step - mean) / sigma for k in range(lo, hi + 1)]
    unique = sorted(set(points))
    return unique


def _quad_relative(f: Scalar, a: mpf, b: mpf) -> tuple[mpf, mpf]:
    """Integral of f over [a, b] accurate relative to itself (mpmath's test is absolute)."""
    value, error = mp.quad(f, [a, b], error=True)
    for _ in range(4):
        if value == 0 or abs(value) > mpf(2) ** -8:
            break
        scale = mpf(2) ** mp.mag(value)
        scaled, error = mp.quad(lambda z, scale=scale: f(z) / scale, [a, b], error=True)
        scaled_value = scaled * scale
        error *= scale
        settled = abs(mp.mag(scaled_value) - mp.mag(value)) <= 4
        value = scaled_value
        if settled:
            break
    return value, error


def gaussian_moments(ref: Reference, mean_f: float, var_f: float, fine: bool = False) -> dict[str, object]:
    """The four moments at the current mp.dps, with relative error estimates."""
    mean, sigma = mpf(mean_f), mp.sqrt(mpf(var_f))
    inv_sqrt_2pi = 1 / mp.sqrt(2 * mp.pi)
    cache: dict[mpf, tuple[mpf, mpf, mpf]] = {}

    def evaluate(z: mpf) -> tuple[mpf, mpf, mpf]:
        hit = cache.get(z)
        if hit is None:
            y = mean + sigma * z
            hit = (ref.function(y), ref.derivative(y), mp.exp(-z * z / 2) * inv_sqrt_2pi)
            cache[z] = hit
        return hit

    integrands: dict[str, Scalar] = {
        "first_moment": lambda z: evaluate(z)[0] * evaluate(z)[2],
        "second_moment": lambda z: evaluate(z)[0] ** 2 * evaluate(z)[2],
        "deriv_second_moment": lambda z: evaluate(z)[1] ** 2 * evaluate(z)[2],
        "abs_first_moment": lambda z: abs(evaluate(z)[0]) * evaluate(z)[2],
    }
    points = [mp.ninf, *split_points(ref, mean, sigma, fine), mp.inf]
    result: dict[str, object] = {}
    worst = mpf(0)
    for name, integrand in integrands.items():
        total = mpf(0)
        magnitude = mpf(0)
        error = mpf(0)
        for a, b in itertools.pairwise(points):
            value, err = _quad_relative(integrand, a, b)
            total += value
            magnitude += abs(value)
            error += err
        result[name] = total
        if magnitude > 0:
            worst = max(worst, error / magnitude)
    result["quad_error"] = worst
    result["intervals"] = len(points) - 1
    return result


def characteristic_moments(ref: Reference, mean_f: float, var_f: float) -> dict[str, object]:
    """sin/cos moments from E[e^{iky}] = e^{ik mean - k^2 var / 2} (oscillations too fast for quad)."""
    mean, var = mpf(mean_f), mpf(var_f)
    damp1, damp2 = mp.exp(-var / 2), mp.exp(-2 * var)
    if ref.periodic == "sin":
        first = mp.sin(mean) * damp1
        second = (1 - mp.cos(2 * mean) * damp2) / 2
        deriv = (1 + mp.cos(2 * mean) * damp2) / 2
        sign = -1  # |sin y| = 2/pi - 4/pi sum cos(2ky)/(4k^2-1)
    else:
        first = mp.cos(mean) * damp1
        second = (1 + mp.cos(2 * mean) * damp2) / 2
        deriv = (1 - mp.cos(2 * mean) * damp2) / 2
        sign = 1  # |cos y| = 2/pi + 4/pi sum (-1)^(k+1) cos(2ky)/(4k^2-1)
    series = mpf(0)
    k = 1
    while True:
        term = mp.cos(2 * k * mean) * mp.exp(-2 * k * k * var) / (4 * k * k - 1)
        series += term * (sign if ref.periodic == "sin" else (-1) ** (k + 1))
        if mp.exp(-2 * k * k * var) < mpf(10) ** (-mp.dps - 5):
            break
        k += 1
    absolute = 2 / mp.pi + 4 / mp.pi * series
    return {
        "first_moment": first,
        "second_moment": second,
        "deriv_second_moment": deriv,
        "abs_first_moment": absolute,
        "quad_error": mpf(0),
        "intervals": 0,
        "method": "characteristic function",
    }


MOMENT_NAMES = ("first_moment", "second_moment", "deriv_second_moment", "abs_first_moment")


def compute_entry(task: tuple[str, float, float, int, bool]) -> dict[str, object]:
    """Worker: one (spec, mean, var) at the given precision; values as decimal strings."""
    spec, mean, var, dps, fine = task
    mp.dps = dps
    ref = REFERENCES[spec]
    start = time.perf_counter()
    if ref.periodic is not None and var >= 1e4:
        raw = characteristic_moments(ref, mean, var)
    else:
        raw = gaussian_moments(ref, mean, var, fine=fine)
    entry: dict[str, object] = {"spec": spec, "mean": mean, "var": var}
    for name in MOMENT_NAMES:
        entry[name] = mp.nstr(
            raw[name], SIGNIFICANT_DIGITS + (10 if fine else 0), strip_zeros=False, min_fixed=-4, max_fixed=6
        )
    entry["quad_error"] = float(raw["quad_error"])  # type: ignore[arg-type]
    if "method" in raw:
        entry["method"] = raw["method"]
    entry["seconds"] = round(time.perf_counter() - start, 3)
    return entry


REFERENCES: dict[str, Reference] = {ref.spec: ref for ref in build_references()}


# --------------------------------------------------------------------------------------------------
# Published / seed checks


def published_checks() -> list[dict[str, str]]:
    """Numbers quoted in the seed answer and in papers, recomputed here at 40 digits."""
    mp.dps = DPS
    elu_second = gaussian_moments(REFERENCES["elu"], 0.0, 1.0)["second_moment"]
    selu = gaussian_moments(REFERENCES["selu"], 0.0, 1.0)
    relu = gaussian_moments(REFERENCES["relu"], 0.0, 1.0)
    assert isinstance(elu_second, mpf)
    digits = SIGNIFICANT_DIGITS
    return [
        {
            "name": "elu_second_moment_unit_var",
            "quantity": "E[elu(z)^2], z ~ N(0, 1)",
            "value": mp.nstr(elu_second, digits),
            "quoted": "0.644945417492924",
            "source": "seed.md notes (40-digit quadrature); the seed answer quotes ~0.645",
        },
        {
            "name": "elu_weight_var_times_fan_in",
            "quantity": "n Var[w] = 1 / E[elu(z)^2]",
            "value": mp.nstr(1 / elu_second, digits),
            "quoted": "1.55051880806793",
            "source": "seed.md notes; the seed answer quotes ~1.55",
        },
        {
            "name": "elu_weight_std_times_sqrt_fan_in",
            "quantity": "sqrt(n) std[w] = E[elu(z)^2]^(-1/2)",
            "value": mp.nstr(1 / mp.sqrt(elu_second), digits),
            "quoted": "1.24519830070071",
            "source": "seed.md notes",
        },
        {
            "name": "relu_second_moment_unit_var",
            "quantity": "E[relu(z)^2], z ~ N(0, 1)",
            "value": mp.nstr(relu["second_moment"], digits),  # type: ignore[arg-type]
            "quoted": "0.5",
            "source": "He et al. 2015, Delving deep into rectifiers, eq. (8)",
        },
        {
            "name": "selu_fixed_point_mean",
            "quantity": "E[selu(z)], z ~ N(0, 1)",
            "value": mp.nstr(selu["first_moment"], digits),  # type: ignore[arg-type]
            "quoted": "0",
            "source": "Klambauer et al. 2017, Self-normalizing neural networks: (0, 1) is the fixed point "
            "(zero up to the rounding of torch's 32-digit constants)",
        },
        {
            "name": "selu_fixed_point_second_moment",
            "quantity": "E[selu(z)^2], z ~ N(0, 1)",
            "value": mp.nstr(selu["second_moment"], digits),  # type: ignore[arg-type]
            "quoted": "1",
            "source": "Klambauer et al. 2017, Self-normalizing neural networks",
        },
    ]


# --------------------------------------------------------------------------------------------------
# Driver


def all_tasks() -> list[tuple[str, float, float, int, bool]]:
    tasks = [(spec, mean, var, DPS, False) for spec in REFERENCES for var in VARIANCES for mean in MEANS]
    # Expensive ones first (oscillatory sin/cos, near-steps at large var) so the pool ends evenly.
    tasks.sort(key=lambda t: (REFERENCES[t[0]].periodic is None, -t[2]))
    return tasks


def check_tasks(count: int) -> list[tuple[str, float, float, int, bool]]:
    """A spread of entries: every activation, means and variances cycling through the grid."""
    specs = list(REFERENCES)
    tasks = []
    for i in range(count):
        spec = specs[i % len(specs)]
        var = VARIANCES[(3 * i + 1) % len(VARIANCES)]
        mean = MEANS[(5 * i + 2) % len(MEANS)]
        tasks.append((spec, mean, var, CHECK_DPS, True))
    return tasks


def _run(
    pool_size: int, tasks: Sequence[tuple[str, float, float, int, bool]], label: str, cache: str | None
) -> list[dict[str, object]]:
    done: dict[tuple[str, float, float], dict[str, object]] = {}
    if cache is not None and os.path.exists(cache):
        with open(cache) as handle:
            for line in handle:
                entry = json.loads(line)
                done[(entry["spec"], entry["mean"], entry["var"])] = entry
    todo = [t for t in tasks if (t[0], t[1], t[2]) not in done]
    print(f"[{label}] {len(tasks)} entries, {len(tasks) - len(todo)} cached, {len(todo)} to compute", flush=True)
    start = time.perf_counter()
    results = [done[(t[0], t[1], t[2])] for t in tasks if (t[0], t[1], t[2]) in done]
    sink = open(cache, "a") if cache is not None else None  # noqa: SIM115
    try:
        with multiprocessing.Pool(pool_size) as pool:
            for i, entry in enumerate(pool.imap_unordered(compute_entry, todo), 1):
                results.append(entry)
                if sink is not None:
                    sink.write(json.dumps(entry) + "\n")
                    sink.flush()
                elapsed = time.perf_counter() - start
                print(
                    f"[{label}] {i}/{len(todo)} {elapsed:7.0f}s  {entry['spec']} mean={entry['mean']} "
                    f"var={entry['var']} ({entry['seconds']}s, err~{entry['quad_error']:.1e})",
                    flush=True,
                )
    finally:
        if sink is not None:
            sink.close()
    return results


def _agreeing_digits(a: str, b: str, scale: str) -> float:
    mp.dps = CHECK_DPS
    diff = abs(mpf(a) - mpf(b))
    ref = max(abs(mpf(b)), abs(mpf(scale)) * mpf(10) ** -10)
    if diff == 0:
        return float(SIGNIFICANT_DIGITS)
    if ref == 0:
        return 0.0
    return float(min(SIGNIFICANT_DIGITS, -mp.log10(diff / ref)))


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="JSON-lines file of finished entries ('' for none)")
    parser.add_argument("--check", type=int, default=60, help="entries recomputed at higher precision")
    parser.add_argument("--only", default="", help="comma-separated specs (for experiments)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    wall = time.perf_counter()
    tasks = all_tasks()
    if args.only:
        keep = set(args.only.split(","))
        tasks = [t for t in tasks if t[0] in keep]
    entries = _run(args.processes, tasks, "main", args.cache or None)
    by_key = {(e["spec"], e["mean"], e["var"]): e for e in entries}
    checks = check_tasks(args.check)
    if args.only:
        checks = [t for t in checks if t[0] in keep]
    check_entries = _run(args.processes, checks, "check", None)
    check_report = []
    for high in check_entries:
        low = by_key.get((high["spec"], high["mean"], high["var"]))
        if low is None:
            continue
        digits = {}
        for name in MOMENT_NAMES:
            scale_name = "abs_first_moment" if name == "first_moment" else name
            digits[name] = round(_agreeing_digits(str(low[name]), str(high[name]), str(high[scale_name])), 1)
        check_report.append({"spec": high["spec"], "mean": high["mean"], "var": high["var"], "digits": digits})
    min_digits = min((min(c["digits"].values()) for c in check_report), default=None)  # type: ignore[attr-defined]
    order = {spec: i for i, spec in enumerate(REFERENCES)}
    entries.sort(key=lambda e: (order[str(e["spec"])], float(e["var"]), float(e["mean"])))  # type: ignore[arg-type]
    for entry in entries:
        entry.pop("seconds", None)
        entry["quad_error"] = float(f"{entry['quad_error']:.1e}")  # type: ignore[str-format]
    document = {
        "metadata": {
            "description": "Gaussian moments E[phi(y)], E[phi(y)^2], E[phi'(y)^2], E[|phi(y)|] for y ~ N(mean, var); "
            "values are decimal strings, quad_error is mpmath's estimated error relative to the sum of |pieces|",
            "command": "python tests/reference/generate_moments.py --processes 2 --check " + str(args.check),
            "generator": "tests/reference/generate_moments.py (mpmath only, independent of varprop)",
            "mpmath_version": mpmath.__version__,
            "python_version": platform.python_version(),
            "dps": DPS,
            "significant_digits": SIGNIFICANT_DIGITS,
            "means": list(MEANS),
            "variances": list(VARIANCES),
            "specs": list(REFERENCES),
            "seconds": round(time.perf_counter() - wall),
            "self_check": {
                "method": f"{len(check_report)} entries recomputed at dps={CHECK_DPS} with a finer split "
                "(ratio sqrt 2, 4x finer grid at 0, quarter-period splits for sin/cos); digits agreeing "
                "relative to the moment's scale (E[|phi|] for E[phi], the moment itself otherwise)",
                "min_digits": min_digits,
                "entries": check_report,
            },
        },
        "published": published_checks(),
        "entries": entries,
    }
    with open(args.output, "w") as handle:
        json.dump(document, handle, indent=1)
        handle.write("\n")
    print(
        f"wrote {args.output}: {len(entries)} entries in {time.perf_counter() - wall:.0f}s; "
        f"self-check min digits {min_digits}",
        flush=True,
    )


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    main()
