"""The ``fixedpoint`` and ``eoc`` subcommands: formatting around the depth-dynamics API.

No number printed here is computed here: each comes from ``varprop.dynamics.fixed_point``, ``varprop.gain``,
``varprop.dynamics.edge_of_chaos`` or ``varprop.dynamics.phase_diagram``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import activation, gain
from ..dynamics import EdgeOfChaos, FixedPoint, edge_of_chaos_curve, fixed_point, phase, phase_diagram
from ..plotting import phase_diagram_figure, require_pyplot, save_figure
from ..report import columns
from ._options import non_negative_real
from .basic import add_json_flag, emit_json, prepare_output, slug

__all__ = ["register", "run_eoc", "run_fixedpoint"]

#: sigma_b values tabulated by ``varprop eoc`` when none are given.
DEFAULT_BIAS_STDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 1.5, 2.0)


def _scale(value: float) -> str:
    if math.isinf(value):
        return "inf"
    return f"{value:.6g}"


# ------------------------------------------------------------------------------------------ fixedpoint


def _add_fixedpoint(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fixedpoint",
        help="fixed points of the variance map q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 and their stability",
        description=(
            "Every fixed point q* of the mean-field variance map of a plain deep network, with the slope "
            "of the map there (stable < 1 < unstable), chi1 (ordered < 1 < chaotic) and the depth scales "
            "-1/ln(slope), -1/ln(chi1) (Schoenholz et al. 2017)."
        ),
    )
    parser.add_argument("activation", metavar="ACT", help="spec ('elu', 'tanh') or expression in x")
    parser.add_argument(
        "--weight-std",
        type=non_negative_real,
        default=None,
        metavar="S",
        help="sigma_w >= 0, weights ~ N(0, S^2 / fan_in) (default: the exact gain at q = 1)",
    )
    parser.add_argument(
        "--bias-std",
        type=non_negative_real,
        default=0.0,
        metavar="B",
        help="sigma_b >= 0, biases ~ N(0, B^2) (default 0)",
    )
    add_json_flag(parser)
    parser.set_defaults(func=run_fixedpoint)


def _point_dict(point: FixedPoint) -> dict[str, Any]:
    return {
        "q": point.q,
        "slope": point.slope,
        "kind": point.kind,
        "chi1": point.chi1,
        "phase": str(phase(point.chi1)),
        "depth_scale_q": point.depth_scale_q,
        "depth_scale_c": point.depth_scale_c,
        "continuum": point.continuum,
    }


def run_fixedpoint(args: argparse.Namespace) -> int:
    """``varprop fixedpoint``: the fixed points of the variance map as a table or JSON."""
    act = activation(args.activation)
    weight = float(gain(act, 1.0)) if args.weight_std is None else args.weight_std
    points = fixed_point(act, weight, args.bias_std)
    if args.json:
        emit_json(
            {
                "activation": act.spec,
                "weight_std": weight,
                "bias_std": args.bias_std,
                "fixed_points": [_point_dict(point) for point in points],
            }
        )
        return 0
    print(_format_fixedpoint(act.spec, weight, args.bias_std, args.weight_std is None, points))
    return 0


def _format_fixedpoint(
    spec: str, weight: float, bias: float, default_weight: bool, points: Sequence[FixedPoint]
) -> str:
    note = "  (the exact gain at q = 1)" if default_weight else ""
    lines = [
        f"variance map of {spec}: q' = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2",
        f"  sigma_w = {weight:.15g}{note}, sigma_b = {bias:g}",
        "",
    ]
    cells = [["q*", "slope", "kind", "chi1 (phase)", "xi_q", "xi_c"]]
    cells += [
        [
            f"{point.q:.15g}",
            f"{point.slope:.8g}",
            point.kind,
            f"{point.chi1:.8g} ({phase(point.chi1)})",
            _scale(point.depth_scale_q),
            _scale(point.depth_scale_c),
        ]
        for point in points
    ]
    lines += columns(cells, ">><>>>")
    if any(point.continuum for point in points):
        lines.append("  every q >= 0 is a fixed point: the map is the identity (deviations random-walk)")
    lines += [
        "",
        "  slope: dq'/dq at q* (< 1 stable, 1 neutral, > 1 unstable)",
        "  chi1 = sigma_w^2 E[phi'^2] at q*: the correlation map's slope at c = 1 and the gradient's factor per",
        "    layer; phase: ordered (chi1 < 1), critical (chi1 = 1, the edge of chaos) or chaotic (chi1 > 1)",
        "  xi_q = -1/ln|slope|, xi_c = -1/ln chi1: layers per factor e (negative: growth)",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ eoc


def _add_eoc(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eoc",
        help="edge of chaos (chi1 = 1) and the ordered/chaotic phase diagram over (sigma_b, sigma_w)",
        description=(
            "The edge of chaos: for each sigma_b the sigma_w where chi1 = sigma_w^2 E[phi'(sqrt(q*) z)^2] = 1 "
            "at the fixed point q* (Poole et al. 2016; Schoenholz et al. 2017), and the phase diagram "
            "(PNG and SVG) with the ordered and chaotic regions."
        ),
    )
    parser.add_argument("activation", metavar="ACT", help="spec ('tanh', 'elu') or expression in x")
    parser.add_argument(
        "--bias-std",
        type=non_negative_real,
        nargs="+",
        default=None,
        metavar="B",
        help=f"sigma_b values >= 0 to tabulate (default {' '.join(f'{b:g}' for b in DEFAULT_BIAS_STDS)})",
    )
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="output folder (default .)")
    parser.add_argument("--no-plot", action="store_true", help="only print the table (no matplotlib needed)")
    add_json_flag(parser)
    parser.set_defaults(func=run_eoc)


def _edge_dict(point: EdgeOfChaos) -> dict[str, Any]:
    return {
        "bias_std": point.bias_std,
        "weight_std": point.weight_std,
        "q": point.q,
        "slope": point.slope,
        "kind": point.kind,
        "continuum": point.continuum,
        "others": [{"q": q, "weight_std": weight} for q, weight in point.others],
    }


def run_eoc(args: argparse.Namespace) -> int:
    """``varprop eoc``: edge-of-chaos table and phase-diagram figure."""
    act = activation(args.activation)
    biases = list(DEFAULT_BIAS_STDS if args.bias_std is None else args.bias_std)
    stem = f"eoc-{slug(act.spec)}"
    if not args.no_plot:  # before any work: matplotlib is there and the folder can be written
        require_pyplot()
        out = prepare_output(args, args.out, "--out", [f"{stem}.png", f"{stem}.svg"])
    points = edge_of_chaos_curve(act, biases)
    found = {point.bias_std for point in points}
    missing = [bias for bias in biases if float(bias) not in found]
    files: list[Path] = []
    if not args.no_plot:
        top_bias = max(2.0, max(biases))
        top_weight = max(4.0, 1.5 * max((point.weight_std for point in points), default=0.0))
        diagram = phase_diagram(act, np.linspace(0.0, top_bias, 101), np.linspace(0.05, top_weight, 101))
        curve = edge_of_chaos_curve(act, np.linspace(0.0, top_bias, 21))
        figure = phase_diagram_figure(diagram, curve, title=f"{act.spec}: ordered and chaotic phases")
        files = save_figure(figure, out / stem)
    if args.json:
        emit_json(
            {
                "activation": act.spec,
                "edge_of_chaos": [_edge_dict(point) for point in points],
                "no_edge_of_chaos": missing,
                "files": files,
            }
        )
        return 0
    print(_format_eoc(act.spec, points, missing, files))
    return 0


def _format_eoc(spec: str, points: Sequence[EdgeOfChaos], missing: Sequence[float], files: Sequence[Path]) -> str:
    lines = [f"edge of chaos of {spec}: chi1 = sigma_w^2 E[phi'(sqrt(q*) z)^2] = 1 at the fixed point q*", ""]
    cells = [["sigma_b", "sigma_w", "q*", "q* under the variance map"]]
    for point in points:
        stability = f"{point.kind} (slope {point.slope:.6g})"
        if point.continuum:
            stability = "every q is a fixed point"
        cells.append([f"{point.bias_std:g}", f"{point.weight_std:.15g}", f"{point.q:.15g}", stability])
    lines += columns(cells, ">>><")
    if missing:
        lines.append(f"  no edge of chaos at sigma_b = {', '.join(f'{b:g}' for b in missing)}")
    lines.append("  sigma_w below the edge: ordered (inputs become correlated); above: chaotic")
    if files:
        lines += ["", "wrote " + ", ".join(str(path) for path in files)]
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    """Add ``fixedpoint`` and ``eoc`` to the ``varprop`` command line."""
    _add_fixedpoint(subparsers)
    _add_eoc(subparsers)
