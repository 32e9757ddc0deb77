"""The ``gain``, ``table``, ``curve`` and ``report`` subcommands: formatting around the public API.

No number printed here is computed here: each comes from ``varprop.moments``, ``varprop.gain``,
``varprop.weight_std``, the gain table, the q-curve or ``varprop.report.build_report``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import VarpropValueError
from .._moments import moments, resolve_activation
from ..dynamics._qcurve import QCurve, q_curve, stability_slopes
from ..gains._gain import DISTRIBUTIONS, MODES, gain, truncated_normal_scale, uniform_bound, weight_std
from ..gains._table import TableRow, gain_table
from ..plotting._mpl import require_pyplot
from ..plotting.curves import q_curve_figure, save_figure
from ..report import DEFAULT_MC_SAMPLES, REPORT_FILES, build_report
from ..report._output import OutputFolder
from ..report._text import columns
from ._options import count, positive_real

__all__ = ["JSON_HELP", "add_json_flag", "emit_json", "power_of_ten", "prepare_output", "register", "slug"]

#: The help of every subcommand's ``--json`` flag: where the JSON goes, errors included.
JSON_HELP = (
    "print machine-readable JSON on stdout instead of text; an error is then a JSON object too, "
    '{"error", "kind", "exit_code", "command"}, on stdout, with the same exit code (see varprop --help)'
)

#: The help of every ``--var`` option: the bound is what the mathematics needs (a variance to keep).
VAR_HELP = "pre-activation variance q to preserve, a number > 0 (default 1)"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Add the ``--json`` flag every subcommand has."""
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


def prepare_output(args: argparse.Namespace, path: Path, option: str, files: Sequence[str] = ()) -> Path:
    """Create and check the output folder ``path`` of option ``option`` before any work.

    The prepared folder is recorded in ``args.outputs`` (set by ``main``), which removes it again
    if the command fails before writing into it.

    Raises:
        VarpropValueError: the folder cannot be created or written (the message names ``option``).
    """
    folder = OutputFolder.prepare(path, name=option, files=files)
    outputs = getattr(args, "outputs", None)
    if outputs is not None:
        outputs.append(folder)
    return folder.path


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python, non-finite floats to None, paths to str."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def emit_json(data: Mapping[str, Any]) -> None:
    """Print ``data`` as strict JSON (no NaN/Infinity tokens) on stdout."""
    print(json.dumps(_plain(data), indent=2, allow_nan=False))


def power_of_ten(value: int) -> str:
    """``1000`` as ``"1e3"`` (how ``--help`` prints counts; ``--samples`` reads it back), others as digits."""
    exponent = len(str(value)) - 1
    return f"1e{exponent}" if value > 1 and value == 10**exponent else str(value)


def _number(value: float, digits: int = 15) -> str:
    return f"{value:.{digits}g}"


def slug(spec: str) -> str:
    """A file-name-safe form of an activation spec: ``"elu(alpha=0.5)"`` -> ``"elu_alpha_0.5"``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", spec).strip("_") or "activation"


# ---------------------------------------------------------------------------------------------- gain


def _add_gain(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gain",
        help="gain and weight scale of one activation",
        description=(
            "Variance-preserving gain of an activation at pre-activation variance q (He et al. 2015): "
            "fan_in gain = sqrt(q / E[phi(y)^2]), fan_out gain = 1 / sqrt(E[phi'(y)^2]), y ~ N(0, q). "
            "Prints the weight variance and standard deviation for a fan, the truncated-normal scale "
            "and the uniform bound."
        ),
    )
    parser.add_argument("activation", metavar="ACT", help="spec ('elu', 'elu(alpha=0.5)') or expression in x")
    parser.add_argument("--var", type=positive_real, default=1.0, metavar="Q", help=VAR_HELP)
    parser.add_argument("--mode", choices=MODES, default="fan_in", help="fan_in (forward), fan_out or fan_avg")
    parser.add_argument("--fan-in", type=count(), metavar="N", help="inputs per unit (in_features x kernel size)")
    parser.add_argument("--fan-out", type=count(), metavar="N", help="outputs per unit (fan_out and fan_avg modes)")
    parser.add_argument(
        "--distribution",
        choices=DISTRIBUTIONS,
        default="normal",
        help="which weight scale to single out as 'weight_scale' (default normal)",
    )
    add_json_flag(parser)
    parser.set_defaults(func=run_gain)


def _fans(args: argparse.Namespace) -> tuple[int, int | None] | None:
    """(fan_in, fan_out) to pass to weight_std, or None when the needed fans were not given."""
    if args.mode == "fan_in":
        return None if args.fan_in is None else (args.fan_in, args.fan_out)
    if args.mode == "fan_out":
        if args.fan_out is None:
            return None
        # weight_std needs a fan_in argument; in fan_out mode it does not enter the result.
        return (args.fan_in if args.fan_in is not None else args.fan_out, args.fan_out)
    if args.fan_in is None and args.fan_out is None:
        return None
    if args.fan_in is None or args.fan_out is None:
        raise VarpropValueError("--mode fan_avg needs both --fan-in and --fan-out (or neither, for per-fan values)")
    return (args.fan_in, args.fan_out)


def _scales(act: Any, fan_in: int, fan_out: int | None, var: float, mode: str) -> dict[str, float]:
    normal = float(weight_std(act, fan_in, fan_out, var=var, mode=mode))  # type: ignore[arg-type]
    return {
        "weight_variance": normal * normal,
        "weight_std": normal,
        # The normal's std before the +-2 std cut, and the bound a of U(-a, a): parameters, not stds.
        "truncated_normal_std": float(truncated_normal_scale(act, fan_in, fan_out, var=var, mode=mode)),  # type: ignore[arg-type]
        "uniform_bound": float(uniform_bound(act, fan_in, fan_out, var=var, mode=mode)),  # type: ignore[arg-type]
    }


_SCALE_KEY = {
    "normal": "weight_std",
    "truncated_normal": "truncated_normal_std",
    "uniform": "uniform_bound",
    "orthogonal": "weight_std",  # the elements' root mean square, as the normal's std
}


def run_gain(args: argparse.Namespace) -> int:
    """``varprop gain``: gain, n Var[w], Var[w], std[w], truncated-normal scale and uniform bound."""
    act = resolve_activation(args.activation)
    fans = _fans(args)  # checked before any work
    result = moments(act, var=args.var, with_error=True)
    value = float(gain(act, var=args.var, mode=args.mode))
    # Per-fan coefficients: the scales for n = 1 (fan_avg: fan_in = fan_out = n), i.e. x / sqrt(n).
    per_fan = _scales(act, 1, 1, args.var, args.mode)
    scales = None if fans is None else _scales(act, fans[0], fans[1], args.var, args.mode)
    data: dict[str, Any] = {
        "activation": act.spec,
        "var": args.var,
        "mode": args.mode,
        "second_moment": result.second_moment,
        "second_moment_error": None if result.error is None else result.error[1],
        "deriv_second_moment": result.deriv_second_moment,
        "mean": result.mean,
        "method": result.method,
        "gain": value,
        "fan_var": value * value,
        "per_fan": {
            "weight_variance_times_fan": per_fan["weight_variance"],
            "weight_std_times_sqrt_fan": per_fan["weight_std"],
            "truncated_normal_std_times_sqrt_fan": per_fan["truncated_normal_std"],
            "uniform_bound_times_sqrt_fan": per_fan["uniform_bound"],
        },
        "fan_in": args.fan_in,
        "fan_out": args.fan_out,
        "distribution": args.distribution,
    }
    if scales is not None:
        data.update(scales)
        data["weight_scale"] = scales[_SCALE_KEY[args.distribution]]
    if args.json:
        emit_json(data)
        return 0
    print(_format_gain(data, scales is not None))
    return 0


def _format_gain(data: Mapping[str, Any], with_fan: bool) -> str:
    mode = data["mode"]
    fan_word = {"fan_in": "fan_in", "fan_out": "fan_out", "fan_avg": "fan (fan_in = fan_out)"}[mode]
    formula = {
        "fan_in": "sqrt(q / E[phi^2])",
        "fan_out": "1 / sqrt(E[phi'^2])",
        "fan_avg": "sqrt(2 / (1/g_in^2 + 1/g_out^2))",
    }[mode]
    per_fan = data["per_fan"]
    error = data["second_moment_error"]
    method = f"second moment ({data['method']}{'' if error is None else f', error <= {error:.0e}'})"
    lines = [f"activation {data['activation']}, pre-activation variance q = {data['var']:g}, mode {mode}", ""]
    lines += columns(
        [
            ["E[phi(y)^2], y ~ N(0, q)", _number(data["second_moment"]), method],
            ["E[phi'(y)^2]", _number(data["deriv_second_moment"]), "backward second moment"],
            [f"gain = {formula}", _number(data["gain"]), "standard deviation x sqrt(n)"],
            ["n*Var[w] = gain^2", _number(data["fan_var"]), "variance x n"],
        ],
        "<<<",
    )
    lines += [
        "",
        f"  per layer, n = {fan_word}:",
        f"    Var[w]  = {_number(per_fan['weight_variance_times_fan'])} / n   (variance)",
        f"    std[w]  = {_number(per_fan['weight_std_times_sqrt_fan'])} / sqrt(n)   (standard deviation)",
        f"    truncated normal: std before the +-2 std cut = "
        f"{_number(per_fan['truncated_normal_std_times_sqrt_fan'])} / sqrt(n)",
        f"    uniform U(-a, a): bound a = {_number(per_fan['uniform_bound_times_sqrt_fan'])} / sqrt(n)",
    ]
    if with_fan:
        fans = ", ".join(f"{key} = {data[key]}" for key in ("fan_in", "fan_out") if data[key] is not None)
        chosen = _SCALE_KEY[data["distribution"]]
        rows = [
            ("Var[w]", "weight_variance", "variance"),
            ("std[w]", "weight_std", "standard deviation (normal init)"),
            ("truncated normal", "truncated_normal_std", "std of the normal before the +-2 std cut"),
            ("uniform bound a", "uniform_bound", "U(-a, a), whose std is a / sqrt(3) = std[w]"),
        ]
        lines += ["", f"  for {fans}:"]
        marks = {chosen: "<- --distribution " + data["distribution"]}
        lines += columns(
            [[label, _number(data[key], 10), meaning, marks.get(key, "")] for label, key, meaning in rows],
            "<<<<",
            indent="    ",
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- table


def _add_table(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "table",
        help="exact gains of all registered activations beside torch.nn.init.calculate_gain",
        description=(
            "E[phi^2], fan_in gain, n*Var[w] and fan_out gain of every registered activation at variance q, "
            "beside torch.nn.init.calculate_gain where torch defines one."
        ),
    )
    parser.add_argument("--var", type=positive_real, default=1.0, metavar="Q", help=VAR_HELP)
    add_json_flag(parser)
    parser.set_defaults(func=run_table)


def run_table(args: argparse.Namespace) -> int:
    """``varprop table``: the gain table."""
    rows = gain_table(var=args.var)
    if args.json:
        emit_json({"var": args.var, "rows": [row.to_dict() for row in rows], "notes": _TABLE_NOTES})
        return 0
    print(_format_table(rows, args.var))
    return 0


_TABLE_NOTES = [
    "gain = sqrt(q / E[phi^2]) is a standard deviation factor: std[w] = gain / sqrt(fan_in); "
    "n*Var[w] = gain^2 is the variance factor: Var[w] = gain^2 / fan_in.",
    "bwd gain = 1 / sqrt(E[phi'^2]) keeps the gradients' second moment (fan_out mode).",
    "torch gain: torch.nn.init.calculate_gain; it does not depend on q. torch's tanh 5/3 and selu 3/4 "
    "are empirical choices, not derived; relu sqrt(2) and leaky_relu sqrt(2/(1+slope^2)) are exact "
    "(He et al. 2015); sigmoid 1 and linear 1 are conventions.",
    "(torch/exact)^2 is the factor by which torch's gain scales the variance at every layer.",
]


def _format_table(rows: Sequence[TableRow], var: float) -> str:
    cells = [["activation", "E[phi^2]", "gain", "n*Var[w]", "bwd gain", "torch gain", "(torch/exact)^2"]]
    for row in rows:
        if row.torch_gain is None:
            torch_text, ratio_text = "-", "-"
        else:
            empirical = "*" if "empirical" in row.torch_note else ""
            torch_text = f"{row.torch_gain:.6g}{empirical}"
            ratio_text = f"{(row.torch_gain / row.gain) ** 2:.4f}"
        cells.append(
            [
                row.activation,
                f"{row.second_moment:.8f}",
                f"{row.gain:.6f}",
                f"{row.fan_var:.6f}",
                f"{row.backward_gain:.6f}",
                torch_text,
                ratio_text,
            ]
        )
    lines = [f"exact gains at pre-activation variance q = {var:g}", ""]
    lines += columns(cells, "<>>>>>>", indent="", rule=True)
    lines.append("")
    lines.append("* empirical in torch (tanh 5/3; selu 3/4, pytorch PR 50664), not derived.")
    for note in _TABLE_NOTES:
        lines.extend(textwrap.wrap(note, width=100, initial_indent="- ", subsequent_indent="  "))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- curve


def _add_curve(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "curve",
        help="c(q) = E[phi(sqrt(q) z)^2]/q and gain(q) over q in [1e-4, 1e4] (PNG and SVG)",
        description=(
            "The q-curve: c(q) = E[phi(sqrt(q) z)^2] / q and gain(q) = 1/sqrt(c(q)) over q in [1e-4, 1e4], "
            "with the limits q -> 0 and q -> inf marked, and the stability slope when available."
        ),
    )
    parser.add_argument("activation", metavar="ACT", help="spec ('elu', 'gelu') or expression in x")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="output folder (default .)")
    parser.add_argument("--points", type=count(2), default=81, metavar="N", help="grid points in q, >= 2 (default 81)")
    parser.add_argument("--no-plot", action="store_true", help="only print the data (no matplotlib needed)")
    add_json_flag(parser)
    parser.set_defaults(func=run_curve)


def run_curve(args: argparse.Namespace) -> int:
    """``varprop curve``: q-curve data, limits, and the figure."""
    act = resolve_activation(args.activation)
    stem = f"qcurve-{slug(act.spec)}"
    if not args.no_plot:  # before any work: matplotlib is there and the folder can be written
        require_pyplot()
        out = prepare_output(args, args.out, "--out", [f"{stem}.png", f"{stem}.svg"])
    curve = q_curve(act, points=args.points)
    slopes = stability_slopes(act, curve)
    files: list[Path] = []
    if not args.no_plot:
        figure = q_curve_figure(curve, slope=slopes)
        files = save_figure(figure, out / stem)
    if args.json:
        data = curve.to_dict()
        data["stability_slope"] = None if slopes is None else slopes
        data["files"] = files
        emit_json(data)
        return 0
    print(_format_curve(curve, slopes, files))
    return 0


def _format_curve(curve: QCurve, slopes: np.ndarray | None, files: Sequence[Path]) -> str:
    small = "inf (phi(0) != 0)" if curve.small_q_limit is None else f"{curve.small_q_limit:.6g}"
    large = "no limit" if curve.large_q_limit is None else f"{curve.large_q_limit:.6g}"
    lines = [
        f"q-curve of {curve.activation}: c(q) = E[phi(sqrt(q) z)^2] / q, gain(q) = 1/sqrt(c(q))",
        f"  c(q) -> {small} as q -> 0,  c(q) -> {large} as q -> inf",
        "",
    ]
    cells = [["q", "c(q)", "gain(q)", "n*Var[w]"] + (["slope"] if slopes is not None else [])]
    decades = np.flatnonzero(np.isclose(np.log10(curve.q), np.round(np.log10(curve.q)), atol=1e-9))
    for index in decades:
        gain_value = curve.gain[index]
        row = [f"{curve.q[index]:.0e}", f"{curve.c[index]:.8g}", f"{gain_value:.8g}", f"{gain_value**2:.8g}"]
        if slopes is not None:
            row.append(f"{slopes[index]:.6g}")
        cells.append(row)
    lines += columns(cells, ">" * len(cells[0]))
    if slopes is not None:
        lines += ["  slope: of the variance map at its fixed point q, with the gain at q (< 1 stable, > 1 unstable)"]
    if files:
        lines += ["", "wrote " + ", ".join(str(path) for path in files)]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- report


def _add_report(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="the main job: exact moments, Monte Carlo, q-curve and a deep-network simulation (HTML)",
        description=(
            "Write an HTML report for one activation (ELU by default): exact moments vs closed form vs "
            "Monte Carlo, the q-curve, the stability of the variance map, and a simulated deep plain "
            "network under PyTorch's default init, He, Glorot and varprop's gain."
        ),
    )
    parser.add_argument("activation", metavar="ACT", nargs="?", default="elu", help="activation (default elu)")
    parser.add_argument(
        "--out", type=Path, default=Path("varprop-report"), metavar="DIR", help="output folder (default varprop-report)"
    )
    parser.add_argument("--var", type=positive_real, default=1.0, metavar="Q", help=VAR_HELP)
    parser.add_argument(
        "--depth", type=count(), default=50, metavar="L", help="layers of the simulated network (default 50)"
    )
    parser.add_argument("--width", type=count(), default=512, metavar="N", help="units per layer (default 512)")
    parser.add_argument(
        "--batch", type=count(), default=128, metavar="B", help="inputs pushed through the network (default 128)"
    )
    parser.add_argument("--seed", type=count(0), default=0, metavar="S", help="random seed, >= 0 (default 0)")
    parser.add_argument("--svg", action="store_true", help="also write the figures as SVG")
    parser.add_argument(
        "--spectrum",
        action="store_true",
        help="also plot the Jacobian's singular values, Gaussian vs orthogonal weights (free probability)",
    )
    parser.add_argument(
        "--samples",
        type=count(),
        nargs="+",
        default=list(DEFAULT_MC_SAMPLES),
        metavar="N",
        help=f"Monte Carlo sample sizes, as 1000 or 1e3 (default {' '.join(map(power_of_ten, DEFAULT_MC_SAMPLES))})",
    )
    add_json_flag(parser)
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """``varprop report``: build the report folder and print its summary."""
    act = resolve_activation(args.activation)  # every argument is checked before any work
    require_pyplot()
    out = prepare_output(args, args.out, "--out", REPORT_FILES)
    summary = build_report(
        act,
        out,
        var=args.var,
        depth=args.depth,
        width=args.width,
        batch=args.batch,
        seed=args.seed,
        mc_samples=args.samples,
        svg=args.svg,
        spectrum=args.spectrum,
    )
    if args.json:
        emit_json(summary.to_dict())
    else:
        print(summary.format_text())
    return 0


def register(subparsers: Any) -> None:
    """Add the gain, table, curve and report subcommands to ``subparsers``."""
    _add_gain(subparsers)
    _add_table(subparsers)
    _add_curve(subparsers)
    _add_report(subparsers)
