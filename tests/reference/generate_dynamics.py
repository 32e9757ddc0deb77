"""Generate high-precision references for the depth-dynamics tests (``dynamics_reference.json``).

It deliberately does NOT import varprop: the activations are defined again below in mpmath, so the
file is an independent oracle. Every quantity is computed by tanh-sinh quadrature (``mpmath.quad``)
split at the kinks and at z = 0, at ``mp.dps = 40`` (25 for the nested two-dimensional integrals),
and every root with ``mpmath.findroot``:

* ``slopes``: slope(q) = E[(z^2 - 1) phi(sqrt(q) z)^2] / (2 E[phi(sqrt(q) z)^2]) (the heat-equation
  form of q F'(q) / F(q)) and E[phi^2], E[phi'^2] at q;
* ``edge_of_chaos``: (q*, weight_std) solving q = E[phi^2] / E[phi'^2] + bias_std^2, weight_std =
  E[phi'^2]^(-1/2); the ELU integrals use the closed forms of ``shared/seed.md``;
* ``fixed_points``: q* = weight_std^2 E[phi(sqrt(q*) z)^2] + bias_std^2 and the slope there;
* ``cross_moments``: E[phi(u1) phi(u2)] for (u1, u2) Gaussian with variances (q1, q2), correlation c
  and means (m1, m2), as an outer integral over u1 of phi(u1) E[phi(u2) | u1]; the inner conditional
  expectation is a closed form for relu, ELU, hardtanh and GELU and a nested quad for tanh;
* ``selu``: alpha_01 and lambda_01 from E[selu(z)] = 0, E[selu(z)^2] = 1 (z ~ N(0, 1)), solved with
  findroot on the integrals, and the Jacobian of Klambauer et al.'s (mean, variance) map at (0, 1)
  (omega = 0, tau = 1): d mu~/d nu = E[(z^2 - 1) selu] / 2, d nu~/d nu = E[(z^2 - 1) selu^2] / 2.

Regenerate (about five minutes on 2 cores)::

    python tests/reference/generate_dynamics.py --processes 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import mpmath as mp

OUTPUT = os.path.join(os.path.dirname(__file__), "dynamics_reference.json")
DPS = 40
NESTED_DPS = 25

Function = Callable[[Any], Any]


def _phi(x: Any) -> Any:
    return mp.npdf(x)


def _cdf(x: Any) -> Any:
    return mp.ncdf(x)


# Activations and derivatives in mpmath (PyTorch's definitions), with their kinks.
def relu(x: Any) -> Any:
    return x if x > 0 else mp.mpf(0)


def relu_d(x: Any) -> Any:
    return mp.mpf(1) if x > 0 else mp.mpf(0)


def elu(x: Any, alpha: Any = 1) -> Any:
    return x if x > 0 else alpha * mp.expm1(x)


def elu_d(x: Any, alpha: Any = 1) -> Any:
    return mp.mpf(1) if x > 0 else alpha * mp.exp(x)


SELU_ALPHA = mp.mpf("1.6732632423543772848170429916717")
SELU_SCALE = mp.mpf("1.0507009873554804934193349852946")


def selu(x: Any) -> Any:
    return SELU_SCALE * elu(x, SELU_ALPHA)


def selu_d(x: Any) -> Any:
    return SELU_SCALE * elu_d(x, SELU_ALPHA)


def tanh_d(x: Any) -> Any:
    return mp.sech(x) ** 2


def silu(x: Any) -> Any:
    return x / (1 + mp.exp(-x))


def silu_d(x: Any) -> Any:
    sig = 1 / (1 + mp.exp(-x))
    return sig * (1 + x * (1 - sig))


def gelu(x: Any) -> Any:
    return x * _cdf(x)


def gelu_d(x: Any) -> Any:
    return _cdf(x) + x * _phi(x)


def mish(x: Any) -> Any:
    return x * mp.tanh(mp.log1p(mp.exp(x)))


def mish_d(x: Any) -> Any:
    softplus = mp.log1p(mp.exp(x))
    return mp.tanh(softplus) + x * mp.sech(softplus) ** 2 / (1 + mp.exp(-x))


def hardtanh(x: Any) -> Any:
    return max(mp.mpf(-1), min(mp.mpf(1), x))


ACTIVATIONS: dict[str, tuple[Function, Function, tuple[float, ...]]] = {
    "relu": (relu, relu_d, (0.0,)),
    "elu": (elu, elu_d, (0.0,)),
    "selu": (selu, selu_d, (0.0,)),
    "tanh": (mp.tanh, tanh_d, ()),
    "silu": (silu, silu_d, ()),
    "gelu": (gelu, gelu_d, ()),
    "mish": (mish, mish_d, ()),
}


def gauss(g: Function, q: Any, kinks: tuple[float, ...] = (), mean: Any = 0) -> Any:
    """E[g(mean + sqrt(q) z)] by tanh-sinh quadrature, split at z = 0, +-1, +-4 and at the kinks."""
    sigma = mp.sqrt(q)
    points = sorted({mp.mpf(0), mp.mpf(-4), mp.mpf(-1), mp.mpf(1), mp.mpf(4), *((k - mean) / sigma for k in kinks)})
    total = mp.quad(lambda z: g(mean + sigma * z) * _phi(z), [-mp.inf, *points, mp.inf])
    return total


def slope_entry(name: str, q: Any) -> dict[str, Any]:
    function, derivative, kinks = ACTIVATIONS[name]
    q = mp.mpf(q)
    second = gauss(lambda y: function(y) ** 2, q, kinks)
    heat = gauss(lambda y: ((y * y / q) - 1) * function(y) ** 2, q, kinks) / 2
    deriv = gauss(lambda y: derivative(y) ** 2, q, kinks)
    return {
        "activation": name,
        "q": float(q),
        "second_moment": mp.nstr(second, DPS),
        "deriv_second_moment": mp.nstr(deriv, DPS),
        "slope": mp.nstr(heat / second, DPS),
    }


# ELU closed forms (shared/seed.md): A = erfcx(s/sqrt 2)/2 = E[e^z; z<0], B = erfcx(sqrt(2) s)/2.
def _erfcx(x: Any) -> Any:
    return mp.exp(x * x) * mp.erfc(x)


def elu_moments(q: Any, alpha: Any = 1) -> tuple[Any, Any]:
    sigma = mp.sqrt(q)
    a_term = _erfcx(sigma / mp.sqrt(2)) / 2
    b_term = _erfcx(mp.sqrt(2) * sigma) / 2
    second = q / 2 + alpha**2 * (b_term - 2 * a_term + mp.mpf(1) / 2)
    deriv = mp.mpf(1) / 2 + alpha**2 * b_term
    return second, deriv


def eoc_entry(name: str, bias_std: str, guess: float) -> dict[str, Any]:
    bias_var = mp.mpf(bias_std) ** 2

    def moments(q: Any) -> tuple[Any, Any]:
        if name == "elu":
            return elu_moments(q)
        function, derivative, kinks = ACTIVATIONS[name]
        return gauss(lambda y: function(y) ** 2, q, kinks), gauss(lambda y: derivative(y) ** 2, q, kinks)

    def equation(q: Any) -> Any:
        second, deriv = moments(q)
        return second / deriv + bias_var - q

    q_star = mp.findroot(equation, mp.mpf(guess), tol=mp.mpf(10) ** (-DPS + 5))
    _, deriv = moments(q_star)
    return {
        "activation": name,
        "bias_std": bias_std,
        "q": mp.nstr(q_star, DPS),
        "weight_std": mp.nstr(1 / mp.sqrt(deriv), DPS),
    }


def fixed_point_entry(name: str, weight_std: str, bias_std: str, guess: float) -> dict[str, Any]:
    function, _, kinks = ACTIVATIONS[name]
    weight_var, bias_var = mp.mpf(weight_std) ** 2, mp.mpf(bias_std) ** 2
    q_star = mp.findroot(
        lambda q: weight_var * gauss(lambda y: function(y) ** 2, q, kinks) + bias_var - q,
        mp.mpf(guess),
        tol=mp.mpf(10) ** (-DPS + 5),
    )
    heat = gauss(lambda y: ((y * y / q_star) - 1) * function(y) ** 2, q_star, kinks) / 2
    return {
        "activation": name,
        "weight_std": weight_std,
        "bias_std": bias_std,
        "q": mp.nstr(q_star, DPS),
        "slope": mp.nstr(weight_var * heat / q_star, DPS),
    }


# Conditional expectations E[phi(u2) | u1] = E[phi(m + s Z)], closed forms where available.
def relu_conditional(m: Any, s: Any) -> Any:
    return m * _cdf(m / s) + s * _phi(m / s)


def elu_conditional(m: Any, s: Any) -> Any:
    # E[x; x > 0] + E[e^x - 1; x < 0] for x ~ N(m, s^2).
    positive = m * _cdf(m / s) + s * _phi(m / s)
    negative = mp.exp(m + s * s / 2) * _cdf(-(m + s * s) / s) - _cdf(-m / s)
    return positive + negative


def hardtanh_conditional(m: Any, s: Any) -> Any:
    # E[clip(x, -1, 1)] = E[x; |x| < 1] + P(x > 1) - P(x < -1).
    upper, lower = (1 - m) / s, (-1 - m) / s
    inside = m * (_cdf(upper) - _cdf(lower)) + s * (_phi(lower) - _phi(upper))
    return inside + (1 - _cdf(upper)) - _cdf(lower)


def gelu_conditional(m: Any, s: Any) -> Any:
    # E[x Phi(x)] for x ~ N(m, s^2) = m E[Phi(x)] + s^2 E[phi(x)] (Stein), with r = sqrt(1 + s^2):
    # E[Phi(x)] = Phi(m / r), E[phi(x)] = phi(m / r) / r.
    r = mp.sqrt(1 + s * s)
    return m * _cdf(m / r) + s * s * _phi(m / r) / r


def nested_conditional(function: Function) -> Callable[[Any, Any], Any]:
    def conditional(m: Any, s: Any) -> Any:
        # Split where the argument crosses 0 (tanh's bend) when that is inside the Gaussian's bulk.
        bend = -m / s
        points = sorted({mp.mpf(0), mp.mpf(-4), mp.mpf(4), *([bend] if abs(bend) < 30 else [])})
        return mp.quad(lambda z: function(m + s * z) * _phi(z), [-mp.inf, *points, mp.inf])

    return conditional


CROSS: dict[str, tuple[Function, Callable[[Any, Any], Any], tuple[float, ...]]] = {
    "relu": (relu, relu_conditional, (0.0,)),
    "elu": (elu, elu_conditional, (0.0,)),
    "hardtanh": (hardtanh, hardtanh_conditional, (-1.0, 1.0)),
    "tanh": (mp.tanh, nested_conditional(mp.tanh), ()),
    "gelu": (gelu, gelu_conditional, ()),
}


def cross_entry(name: str, corr: str, var1: str, var2: str, mean1: str, mean2: str) -> dict[str, Any]:
    function, conditional, kinks = CROSS[name]
    nested = name == "tanh"
    with mp.workdps(NESTED_DPS if nested else DPS):
        c, q1, q2, m1, m2 = (mp.mpf(v) for v in (corr, var1, var2, mean1, mean2))
        rho = c * mp.sqrt(q2 / q1)
        s = mp.sqrt(q2 * (1 - c * c))
        sigma1 = mp.sqrt(q1)
        # Split the outer integral at phi's kinks and where the inner mean crosses a kink (its bend).
        points = {mp.mpf(0), mp.mpf(-4), mp.mpf(-1), mp.mpf(1), mp.mpf(4)}
        for kink in kinks:
            points.add((kink - m1) / sigma1)
            if rho != 0:
                points.add(((kink - m2) / rho) / sigma1)
        value = mp.quad(
            lambda z: function(m1 + sigma1 * z) * conditional(m2 + rho * sigma1 * z, s) * _phi(z),
            [-mp.inf, *sorted(points), mp.inf],
        )
        digits = NESTED_DPS if nested else DPS
        return {
            "activation": name,
            "corr": corr,
            "var1": var1,
            "var2": var2,
            "mean1": mean1,
            "mean2": mean2,
            "value": mp.nstr(value, digits),
            "digits": digits,
        }


def selu_entry() -> dict[str, Any]:
    def equations(alpha: Any, scale: Any) -> list[Any]:
        first = gauss(lambda y: scale * elu(y, alpha), 1, (0.0,))
        second = gauss(lambda y: (scale * elu(y, alpha)) ** 2, 1, (0.0,))
        return [first, second - 1]

    alpha, scale = mp.findroot(equations, (mp.mpf("1.67"), mp.mpf("1.05")), tol=mp.mpf(10) ** (-DPS + 5))

    def unit(y: Any) -> Any:
        return scale * elu(y, alpha)

    dmean_dvar = gauss(lambda y: (y * y - 1) * unit(y), 1, (0.0,)) / 2
    dvar_dvar = gauss(lambda y: (y * y - 1) * unit(y) ** 2, 1, (0.0,)) / 2
    return {
        "alpha": mp.nstr(alpha, DPS),
        "scale": mp.nstr(scale, DPS),
        "jacobian_dmean_dvar": mp.nstr(dmean_dvar, DPS),
        "jacobian_dvar_dvar": mp.nstr(dvar_dvar, DPS),
        "spectral_norm": mp.nstr(mp.sqrt(dmean_dvar**2 + dvar_dvar**2), DPS),
    }


SLOPES = [(name, 1) for name in ("elu", "selu", "tanh", "relu", "silu", "gelu", "mish")]
SLOPES += [("silu", 30), ("silu", 100), ("gelu", 30), ("tanh", 0.01), ("elu", 100)]
EOC = [("tanh", "0.3", 0.76), ("tanh", "1.0", 3.0), ("tanh", "0.1", 0.27), ("elu", "0.1", 0.44), ("elu", "0.5", 4.9)]
EOC += [("gelu", "0.5", 6.4)]
FIXED = [("tanh", "1.5", "0", 0.79), ("tanh", "1.2", "0.3", 0.5), ("elu", "1.3", "0.2", 2.0)]
CROSS_CASES = [
    ("tanh", "-0.9", "2", "2", "0", "0"),
    ("tanh", "0.3", "2", "2", "0", "0"),
    ("tanh", "0.999999", "2", "2", "0", "0"),
    ("tanh", "0.6", "0.5", "3", "0.4", "-0.2"),
    ("gelu", "0.5", "1", "1", "0", "0"),
    ("gelu", "0.99", "4", "4", "0", "0"),
    ("elu", "0.5", "1", "1", "0", "0"),
    ("elu", "0.99999", "1", "1", "0", "0"),
    ("elu", "-0.7", "2", "0.5", "0.3", "-1"),
    ("relu", "0.8", "1", "2", "0.5", "-0.5"),
    ("hardtanh", "0.9", "2", "2", "0", "0"),
    ("hardtanh", "0.5", "1", "3", "0.2", "0.7"),
]


def _job(task: tuple[str, tuple[Any, ...]]) -> tuple[str, dict[str, Any]]:
    mp.mp.dps = DPS
    kind, args = task
    if kind == "slopes":
        return kind, slope_entry(*args)
    if kind == "edge_of_chaos":
        return kind, eoc_entry(*args)
    if kind == "fixed_points":
        return kind, fixed_point_entry(*args)
    if kind == "cross_moments":
        return kind, cross_entry(*args)
    return kind, selu_entry()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--output", default=OUTPUT)
    args = parser.parse_args()
    tasks: list[tuple[str, tuple[Any, ...]]] = [("cross_moments", case) for case in CROSS_CASES]
    tasks += [("slopes", case) for case in SLOPES] + [("edge_of_chaos", case) for case in EOC]
    tasks += [("fixed_points", case) for case in FIXED] + [("selu", ())]
    start = time.time()
    results: dict[str, Any] = {"slopes": [], "edge_of_chaos": [], "fixed_points": [], "cross_moments": []}
    with multiprocessing.Pool(args.processes) as pool:
        for kind, entry in pool.imap(_job, tasks):
            if kind == "selu":
                results["selu"] = entry
            else:
                results[kind].append(entry)
            print(f"{time.time() - start:7.1f}s {kind}: {entry}", flush=True)
    results["metadata"] = {
        "command": "python tests/reference/generate_dynamics.py --processes 2",
        "mpmath": mp.__version__,
        "python": platform.python_version(),
        "dps": DPS,
        "nested_dps": NESTED_DPS,
        "seconds": round(time.time() - start, 1),
    }
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=1)
        handle.write("\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
