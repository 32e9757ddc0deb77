"""Generate ``moment_tables.npz``: piecewise Chebyshev tables of the moments of registered activations.

For each activation in ``TABLED`` (the registered ones without closed forms, at their default parameters, and
those whose closed-form variance cancels), the domain |mean| <= MEAN_LIMIT, VAR_MIN <= var <= VAR_MAX in the
coordinates (mean, u = log var) starts as ROOTS_MEAN x ROOTS_U panels. On each panel the moments E[phi], E[phi^2],
E[phi'^2], Var[phi] are computed by the engine's quadrature (relative error ~1e-16; the variance around phi(mean),
without cancellation) at DEGREE x DEGREE Chebyshev points of the first kind, turned into the three interpolated
functions of ``varprop.gaussian._moment_tables.tabulated_rows`` and into tensor Chebyshev coefficients (a discrete
cosine transform in each coordinate; coefficients below the rounding noise set to 0). The runtime evaluation is then
compared with the quadrature at a 9 x 9 grid of test points spanning the panel, edges and corners included. The
error at a test point is measured as ``benchmarks/moments.py`` and ``tests/test_engine.py`` measure it:
|table - quadrature| / max(|value|, 1e-2 E[|phi|]) for E[phi], relative for the positive moments, and for the
variance relative to max(Var, VARIANCE_FLOOR E[phi^2]) (the quadrature's own variance is no more accurate). A panel
whose worst error exceeds TOLERANCE is halved in the coordinate whose trailing coefficients are larger, down to
MAX_DEPTH halvings per coordinate and MAX_TOTAL_DEPTH in all; a panel that still fails becomes a hole (the
engine's exact path).

Each panel stores, per moment, SAFETY times its largest deviation from the quadrature at the test points (absolute
for E[phi], relative for the others) plus QUADRATURE_ERROR relative: the error estimate of a table result. Each
table's arrays are hashed (SHA-256, ``varprop.gaussian._moment_tables.table_digest``) into the file.

Run (about 3 minutes on 2 cores; prints panels, holes and the worst test error per activation)::

    python -m varprop.gaussian._tables.generate            # writes src/varprop/gaussian/_tables/moment_tables.npz
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ...activations._activation import Activation
from ...activations._registry import activation
from .._moment_tables import TABLE_FILE, MomentTable, table_digest, tabulated_rows
from .._quadrature import gaussian_expectation

FloatArray = NDArray[np.float64]

#: Activations with a table: no closed form (the first eight), or a closed form whose variance
#: E[phi^2] - E[phi]^2 cancels at small variances (cos at mean 0, hardsigmoid around 1/2).
TABLED = ("logsigmoid", "mish", "sigmoid", "silu", "softplus", "softsign", "tanh", "tanhshrink", "cos", "hardsigmoid")
MEAN_LIMIT = 6.0  # the reference grid's means reach +-5; beyond, the exact path
VAR_MIN = 1e-4  # pre-activation variances of initialization live in [1e-2, 1e2]; outside [VAR_MIN, VAR_MAX] ...
VAR_MAX = 1e3  # ... the exact path
# cos: its table serves only the variance where E[phi^2] - E[phi]^2 cancels (small variances); beyond var ~1 the
# quadrature does not resolve cos's oscillations (``tests/test_engine.py``) and its closed form serves alone.
# hardsigmoid's cancels only below var ~0.15 (and its kinks at +-3 would cost hundreds of panels at small variances).
VAR_MAX_OF = {"cos": 1.0, "hardsigmoid": 1.0}
ROOTS_MEAN = 6  # root panels of width 2 in mean
ROOTS_U = 8  # and of width ln(1e7) / 8 = 2.01 in u = log(var)
MAX_DEPTH = 5  # halvings per coordinate: the finest panel is 1/16 wide in mean ...
MAX_TOTAL_DEPTH = 7  # ... and at most 2^7 panels come from one root panel
# tanhshrink ~ x^3 / 3 near 0: E[phi] at mean ~0 is judged on the scale 1e-2 E|phi| ~ var^1.5 / 150, which needs
# panels down to 1/64 in mean at var 1e-3.
DEPTH_OF = {"tanhshrink": (7, 9)}
DEGREE = 16  # Chebyshev points per coordinate and panel
TEST_GRID = 9  # test points per coordinate and panel (a uniform grid, edges included)
TOLERANCE = 5e-14  # worst accepted test error (the library's target is 1e-13; the quadrature's ~1e-16 to 2e-14)
SAFETY = 4.0  # the stored error bound: SAFETY x the worst test deviation ...
NEGLIGIBLE = 1e-15  # coefficients below this fraction of their moment's largest are set to 0 (rounding noise)
QUADRATURE_ERROR = 1e-15  # ... + the quadrature's own relative error (varprop.gaussian._quadrature: ~1e-16)
VARIANCE_FLOOR = 1e-3  # see reference_moments
_FLOOR_SCALE = 1e-2  # E[phi] is judged relative to max(|E[phi]|, 1e-2 E[|phi|]), as benchmarks/moments.py does


@dataclass
class Panel:
    """A panel of the k-d tree being built: its bounds, depths, and (once fitted) coefficients and errors."""

    mean_lo: float
    mean_hi: float
    u_lo: float
    u_hi: float
    depth_mean: int = 0
    depth_u: int = 0
    coefficients: FloatArray = field(default_factory=lambda: np.zeros(0))
    error: FloatArray = field(default_factory=lambda: np.zeros(0))
    worst: float = math.inf


def chebyshev_points(count: int) -> FloatArray:
    """Chebyshev points of the first kind on [-1, 1], x_k = cos(pi (k + 1/2) / count)."""
    return np.cos(np.pi * (np.arange(count) + 0.5) / count)


def transform_matrix(count: int) -> FloatArray:
    """The matrix that maps values at ``chebyshev_points(count)`` to Chebyshev coefficients (DCT-II)."""
    k = np.arange(count)
    matrix = (2.0 / count) * np.cos(np.pi * np.outer(k, k + 0.5) / count)
    matrix[0] *= 0.5
    return matrix


def reference_moments(act: Activation, mean: FloatArray, var: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Rows E[phi], E[phi^2], E[phi'^2], Var[phi], E[phi] - phi(mean) by quadrature; the error scales of the first
    four.

    E[phi] and the variance are integrated around phi(mean) (s = phi(y) - phi(mean): E[phi] = phi(mean) + E[s],
    Var = E[s^2] - E[s]^2), so their rounding error scales with phi's variation rather than with phi; E[phi^2] and
    E[phi'^2] directly.
    """
    centre = act.function(mean)

    def integrand(y: FloatArray, point: NDArray[np.intp]) -> list[FloatArray]:
        value, slope = act.function(y), act.derivative(y)
        shifted = value - centre[point]
        return [shifted, shifted * shifted, value * value, slope * slope, np.abs(value)]

    shift, shifted_second, second, deriv, magnitude = gaussian_expectation(
        integrand, mean, var, kinks=act.kinks, features=act.features
    ).value
    variance = np.maximum(shifted_second - shift * shift, 0.0)
    values = np.stack([centre + shift, second, deriv, variance, shift])
    scales = np.abs(values[:4])
    scales[0] = np.maximum(scales[0], _FLOOR_SCALE * magnitude)
    # The quadrature's variance is itself only as accurate as phi(y) - phi(mean) in float64 (relative error
    # ~1e-16 |phi(mean)| / |phi(y) - phi(mean)|): it is judged against VARIANCE_FLOOR E[phi^2] where smaller.
    scales[3] = np.maximum(scales[3], VARIANCE_FLOOR * values[1])
    return values, scales


def fit(act: Activation, panel: Panel) -> None:
    """Fill the panel's coefficients (n, 3 n layout of ``MomentTable``), error bounds and worst test error."""
    nodes = chebyshev_points(DEGREE)
    tests = np.linspace(-1.0, 1.0, TEST_GRID)
    half_m, mid_m = 0.5 * (panel.mean_hi - panel.mean_lo), 0.5 * (panel.mean_hi + panel.mean_lo)
    half_u, mid_u = 0.5 * (panel.u_hi - panel.u_lo), 0.5 * (panel.u_hi + panel.u_lo)
    grid_m, grid_u = np.meshgrid(mid_m + half_m * nodes, mid_u + half_u * nodes, indexing="ij")
    node_m, node_var = grid_m.ravel(), np.exp(grid_u.ravel())
    values, node_scales = reference_moments(act, node_m, node_var)
    rows = tabulated_rows(values[4], values[3], values[2], act.function(node_m), node_var)
    at_nodes = rows.reshape(3, DEGREE, DEGREE)
    matrix = transform_matrix(DEGREE)
    coefficients = np.einsum("ik,qkl,jl->qij", matrix, at_nodes, matrix)  # (3, n_mean, n_u)
    # Coefficients below the rounding noise of the values carry no information: zeroed, they compress. A enters
    # E[phi] as var A / (1 + var), so its noise (that of E[phi] over var) is judged on E[phi]'s scale.
    noise = NEGLIGIBLE * np.abs(coefficients).max(axis=(1, 2))
    var_hi = math.exp(panel.u_hi)
    noise[0] = max(noise[0], NEGLIGIBLE * float(node_scales[0].min()) * (1.0 + var_hi) / var_hi)
    coefficients[np.abs(coefficients) < noise[:, None, None]] = 0.0
    panel.coefficients = np.ascontiguousarray(coefficients.transpose(1, 0, 2).reshape(DEGREE, 3 * DEGREE))
    # The test: the runtime evaluation itself (a one-panel table) against the quadrature.
    grid_m, grid_u = np.meshgrid(mid_m + half_m * tests, mid_u + half_u * tests, indexing="ij")
    test_m = np.clip(grid_m, panel.mean_lo, panel.mean_hi).ravel()
    test_var = np.exp(np.clip(grid_u, panel.u_lo, panel.u_hi).ravel())
    single = MomentTable(
        spec="",
        mean_limit=max(abs(panel.mean_lo), abs(panel.mean_hi)),
        var_min=float(np.exp(panel.u_lo)),
        var_max=float(np.exp(panel.u_hi)),
        finder=np.zeros((1, 1), dtype=np.int32),
        bounds=np.array([[panel.mean_lo, panel.mean_hi, panel.u_lo, panel.u_hi]]),
        coefficients=panel.coefficients[None],
        error=np.zeros((1, 2, 4)),
    )
    result = single.evaluate(test_m, test_var, act.function)
    if not result.inside.all():
        raise RuntimeError(f"test points outside their panel {panel}")
    predicted = result.values
    values, scales = reference_moments(act, test_m, test_var)
    values = values[:4]
    deviation = np.abs(predicted - values)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0: a moment that is exactly 0, and so is the table's
        panel.worst = float(np.max(np.where(deviation == 0.0, 0.0, deviation / scales)))
    panel.error = np.zeros((2, 4))
    panel.error[0, 0] = SAFETY * deviation[0].max()
    panel.error[1] = QUADRATURE_ERROR
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(deviation[1:] == 0.0, 0.0, deviation[1:] / np.abs(values[1:]))
    panel.error[1, 1:] += SAFETY * relative.max(axis=1)


def split(panel: Panel, max_depth: int) -> list[Panel]:
    """Halve the panel where its coefficients decay slowest (in the other coordinate if that one is exhausted)."""
    coefficients = np.abs(panel.coefficients.reshape(DEGREE, 3, DEGREE))
    scale = np.maximum(coefficients.max(axis=(0, 2), keepdims=True), 1e-300)
    tails_mean = (coefficients[-3:] / scale).max(axis=(0, 2))
    tails_u = (coefficients[:, :, -3:] / scale).max(axis=(0, 2))
    # Judge by B and D, which set the relative accuracy; A (multiplied by var) only where those converged.
    rows = [1, 2] if max(tails_mean[1:].max(), tails_u[1:].max()) > 1e-14 else [0, 1, 2]
    tail_mean, tail_u = float(tails_mean[rows].max()), float(tails_u[rows].max())
    along_mean = tail_mean >= tail_u
    if panel.depth_mean >= max_depth:
        along_mean = False
    if panel.depth_u >= max_depth:
        along_mean = True
    if along_mean:
        middle = 0.5 * (panel.mean_lo + panel.mean_hi)
        return [
            Panel(panel.mean_lo, middle, panel.u_lo, panel.u_hi, panel.depth_mean + 1, panel.depth_u),
            Panel(middle, panel.mean_hi, panel.u_lo, panel.u_hi, panel.depth_mean + 1, panel.depth_u),
        ]
    middle = 0.5 * (panel.u_lo + panel.u_hi)
    return [
        Panel(panel.mean_lo, panel.mean_hi, panel.u_lo, middle, panel.depth_mean, panel.depth_u + 1),
        Panel(panel.mean_lo, panel.mean_hi, middle, panel.u_hi, panel.depth_mean, panel.depth_u + 1),
    ]


def build(spec: str) -> tuple[dict[str, NDArray[np.generic]], dict[str, float]]:
    """One activation's table arrays (``TABLE_ARRAYS`` and its digest) and a summary."""
    act = activation(spec)
    var_max = VAR_MAX_OF.get(spec, VAR_MAX)
    max_depth, max_total = DEPTH_OF.get(spec, (MAX_DEPTH, MAX_TOTAL_DEPTH))
    u_lo, u_hi = math.log(VAR_MIN), math.log(var_max)
    width_m, width_u = 2.0 * MEAN_LIMIT / ROOTS_MEAN, (u_hi - u_lo) / ROOTS_U
    pending = [
        Panel(-MEAN_LIMIT + i * width_m, -MEAN_LIMIT + (i + 1) * width_m, u_lo + j * width_u, u_lo + (j + 1) * width_u)
        for i in range(ROOTS_MEAN)
        for j in range(ROOTS_U)
    ]
    for panel in pending:  # exact outer edges
        panel.mean_hi = MEAN_LIMIT if panel.mean_hi > MEAN_LIMIT - 1e-9 else panel.mean_hi
        panel.u_hi = u_hi if panel.u_hi > u_hi - 1e-9 else panel.u_hi
    leaves: list[Panel] = []
    holes: list[Panel] = []
    fitted = 0
    while pending:
        panel = pending.pop()
        fit(act, panel)
        fitted += 1
        if fitted % 200 == 0:
            print(
                f"  {spec}: {fitted} fits, {len(leaves)} panels, {len(holes)} holes, {len(pending)} pending", flush=True
            )
        if panel.worst <= TOLERANCE:
            leaves.append(panel)
        elif (panel.depth_mean >= max_depth and panel.depth_u >= max_depth) or (
            panel.depth_mean + panel.depth_u >= max_total
        ):
            holes.append(panel)
        else:
            pending.extend(split(panel, max_depth))
    cells_m, cells_u = ROOTS_MEAN << max_depth, ROOTS_U << max_depth
    finder = np.full((cells_m, cells_u), -1, dtype=np.int32)
    for index, panel in enumerate(leaves):
        i0 = round((panel.mean_lo + MEAN_LIMIT) / (2 * MEAN_LIMIT) * cells_m)
        i1 = round((panel.mean_hi + MEAN_LIMIT) / (2 * MEAN_LIMIT) * cells_m)
        j0 = round((panel.u_lo - u_lo) / (u_hi - u_lo) * cells_u)
        j1 = round((panel.u_hi - u_lo) / (u_hi - u_lo) * cells_u)
        finder[i0:i1, j0:j1] = index
    arrays: dict[str, NDArray[np.generic]] = {
        "domain": np.array([MEAN_LIMIT, VAR_MIN, var_max]),
        "finder": finder,
        "bounds": np.array([[p.mean_lo, p.mean_hi, p.u_lo, p.u_hi] for p in leaves]).reshape(-1, 4),
        "coefficients": np.stack([p.coefficients for p in leaves]),
        "error": np.stack([p.error for p in leaves]),
    }
    arrays["digest"] = np.array(table_digest(arrays))
    summary = {
        "panels": len(leaves),
        "holes": len(holes),
        "fitted": fitted,
        "worst": max(p.worst for p in leaves),
        "hole_area": sum((p.mean_hi - p.mean_lo) * (p.u_hi - p.u_lo) for p in holes),
    }
    return arrays, summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), TABLE_FILE)
    parser.add_argument("--out", default=default, help=f"output file (default: {default})")
    parser.add_argument("--only", nargs="*", default=None, help="activation specs (default: TABLED)")
    args = parser.parse_args(argv)
    data: dict[str, NDArray[np.generic]] = {}
    specs = []
    for name in args.only or TABLED:
        start = time.perf_counter()
        spec = activation(name).spec
        arrays, summary = build(spec)
        specs.append(spec)
        data.update({f"{spec}/{key}": value for key, value in arrays.items()})
        print(
            f"{spec}: {summary['panels']} panels, {summary['holes']} holes (area {summary['hole_area']:.3g}), "
            f"{summary['fitted']} fits, worst test error {summary['worst']:.2e}, {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    data["specs"] = np.array(specs)
    np.savez_compressed(args.out, **data)  # type: ignore[arg-type]
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
