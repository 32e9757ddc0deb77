"""The ``inspect`` subcommand: initialize a user's model and look at the signal inside it.

``varprop inspect FILE.py:FACTORY --input-shape 32,3,32,32`` executes FILE.py, calls FACTORY() to
build an ``nn.Module``, initializes it with ``varprop.torch.init_model`` (analytic or calibrated on a
Gaussian batch) or leaves it as built, prints the initialization report and the per-layer signal
statistics of ``varprop.torch.signal_stats`` on a N(0, 1) batch of that shape, writes the signal
propagation plot and optionally saves the state dict. A thin layer: every number comes from the API.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from .._errors import VarpropError, VarpropTypeError, VarpropValueError
from ..plotting._mpl import require_pyplot
from ..plotting.curves import save_figure
from ..plotting.signal import plot_signal
from ._options import count
from .basic import add_json_flag, emit_json, prepare_output

__all__ = ["INITS", "load_factory", "parse_shape", "register", "run_inspect"]

#: ``--init`` choices: varprop's analytic init, calibrated on a Gaussian batch, or the model as built.
INITS: tuple[str, ...] = ("analytic", "gaussian", "none")
_CALIBRATE = {"analytic": None, "gaussian": "gaussian"}
_LABELS = {
    "analytic": "varprop analytic",
    "gaussian": "varprop calibrated (gaussian)",
    "none": "as built (--init none)",
}

_EPILOG = """\
examples:
  varprop inspect examples/mlp_factory.py:make_model --input-shape 256,64
  varprop inspect examples/cnn_factory.py:make_model --input-shape 32,3,32,32 --compare --out figures
  varprop inspect model.py:build --input-shape 8,3,224,224 --init gaussian --save init.pt --json

FILE.py is executed as Python code (like `python FILE.py`, but with __name__ != "__main__"): only
inspect files you trust.
"""


def register(subparsers: Any) -> None:
    """Add the ``inspect`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "inspect",
        help="initialize a model from FILE.py:FACTORY and print its per-layer signal statistics",
        description=(
            "Build a model with FACTORY() from FILE.py (this executes FILE.py: only use files you trust), "
            "initialize it with varprop.torch.init_model (--init analytic: propagate moments through the "
            "graph; gaussian: then calibrate on one N(0, 1) batch; none: keep the model's own init), print "
            "the initialization report and per-layer signal statistics on a N(0, 1) batch of the input "
            "shape (mean, variance, Brock et al. 2021's average channel squared mean and channel variance, "
            "gradient variance), and write the signal propagation plot (PNG and SVG)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", metavar="FILE.py:FACTORY", help="Python file (executed!) and zero-argument factory")
    parser.add_argument(
        "--input-shape", required=True, metavar="SHAPE", help="input shape with the batch dimension, e.g. 32,3,32,32"
    )
    parser.add_argument("--init", choices=INITS, default="analytic", help="initialization (default analytic)")
    parser.add_argument(
        "--compare", action="store_true", help="plot every --init choice side by side (the model is rebuilt for each)"
    )
    parser.add_argument(
        "--seed",
        type=count(0),
        default=0,
        metavar="S",
        help="seed of model, init and batch, >= 0 (default 0)",
    )
    parser.add_argument("--save", type=Path, metavar="PATH", help="torch.save the initialized state dict to PATH")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="figure folder (default .)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the figure (no matplotlib needed)")
    parser.add_argument("--no-backward", action="store_true", help="skip the backward pass (no gradient statistics)")
    parser.add_argument(
        "--spectrum",
        action="store_true",
        help="also measure the input-output Jacobian's singular values at 4 inputs (varprop.torch.jacobian_spectrum)",
    )
    add_json_flag(parser)
    parser.set_defaults(func=run_inspect)


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"32,3,32,32"`` (or ``"32x3x32x32"``) into a tuple of positive ints.

    Raises:
        VarpropValueError: anything but positive integers separated by commas or ``x``.

    Example:
        >>> parse_shape("32, 3, 32, 32")
        (32, 3, 32, 32)
    """
    parts = [part.strip() for part in re.split(r"[,x]", text.strip())]
    if not parts or not all(re.fullmatch(r"[0-9]+", part) for part in parts) or any(int(p) == 0 for p in parts):
        raise VarpropValueError(
            f"--input-shape must be positive integers separated by commas, batch first (e.g. 32,3,32,32); got {text!r}"
        )
    return tuple(int(part) for part in parts)


def _split_target(target: str) -> tuple[Path, str]:
    path_text, colon, factory = target.rpartition(":")
    if not colon or not path_text or not factory or "/" in factory or "\\" in factory:
        raise VarpropValueError(
            f"expected FILE.py:FACTORY (e.g. examples/mlp_factory.py:make_model), got {target!r}: "
            "name the function that builds the model after a colon"
        )
    if not factory.isidentifier():
        raise VarpropValueError(f"factory name {factory!r} in {target!r} is not a Python identifier")
    return Path(path_text), factory


def _user_error(action: str, path: Path, exc: BaseException) -> VarpropError:
    """One-line error for an exception raised by the user's code, with the line in their file."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if Path(frame.filename) == path.resolve()]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return VarpropError(f"{action} {path} raised {type(exc).__name__}: {exc}{where}")


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    """Put the file's folder first on sys.path while it runs, so it can import its neighbours."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def load_factory(target: str) -> tuple[Callable[[], Any], Path, str]:
    """Execute FILE.py and return its factory (``importlib.util.spec_from_file_location``).

    Args:
        target: ``"path/to/file.py:factory_name"``.

    Returns:
        ``(factory, path, factory_name)``.

    Raises:
        VarpropValueError: malformed target, missing file, no such factory (lists the callables found).
        VarpropTypeError: the attribute is not callable.
        VarpropError: executing the file raised (the message has the exception and the line).
    """
    path, name = _split_target(target)
    if not path.is_file():
        raise VarpropValueError(f"no such file: {str(path)!r} (from {target!r})")
    module_name = "varprop_inspect_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(module_name, path.resolve())
    if spec is None or spec.loader is None:
        raise VarpropValueError(f"cannot load {str(path)!r} as Python source; give a .py file")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        with _on_path(path.resolve().parent):
            spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise _user_error("executing", path, exc) from exc
    if not hasattr(module, name):
        found = sorted(
            key
            for key, value in vars(module).items()
            if callable(value) and not key.startswith("_") and key[0].islower()
        )
        listing = ", ".join(found) if found else "none"
        raise VarpropValueError(f"{str(path)!r} defines no {name!r}; functions defined there: {listing}")
    factory = getattr(module, name)
    if not callable(factory):
        raise VarpropTypeError(f"{name!r} in {str(path)!r} is of type {type(factory).__name__}, not a function")
    return factory, path, name


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise VarpropError("varprop inspect needs PyTorch; install it with: pip install 'varprop[torch]'") from exc
    return torch


def _build(
    factory: Callable[[], Any], path: Path, name: str, init: str, shape: tuple[int, ...], seed: int
) -> tuple[Any, Any]:
    """(model, init report or None): the factory's model, seeded, initialized as asked."""
    torch = _torch()
    torch.manual_seed(seed)
    try:
        model = factory()
    except Exception as exc:
        raise _user_error(f"calling {name}() from", path, exc) from exc
    if not isinstance(model, torch.nn.Module):
        kind = type(model).__name__
        raise VarpropTypeError(f"{name}() in {str(path)!r} returned an object of type {kind}, not a torch.nn.Module")
    if init == "none":
        return model, None
    from ..torch import init_model

    generator = torch.Generator().manual_seed(seed)
    report = init_model(model, shape, calibrate=_CALIBRATE[init], generator=generator)
    return model, report


def _batch(model: Any, shape: tuple[int, ...], seed: int) -> Any:
    """A N(0, 1) batch of ``shape`` on the model's device, in its floating dtype (float32 by default)."""
    torch = _torch()
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = parameter.dtype if parameter is not None else torch.get_default_dtype()
    device = parameter.device if parameter is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(seed + 1)  # not the init's stream
    return torch.randn(shape, generator=generator, dtype=dtype).to(device)


def _stats(model: Any, shape: tuple[int, ...], seed: int, backward: bool) -> Any:
    from ..torch.report.signal import signal_stats

    batch = _batch(model, shape, seed)
    try:
        return signal_stats(model, batch, backward=backward, seed=seed)
    except RuntimeError as exc:  # torch's shape and dtype errors
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VarpropValueError(
            f"the model failed on a batch of shape {','.join(map(str, shape))}: {first_line} "
            "(is --input-shape right, batch dimension first?)"
        ) from exc


def _report_dict(report: Any) -> Any:
    return None if report is None else report.to_dict()


def run_inspect(args: argparse.Namespace) -> int:
    """``varprop inspect``: build, initialize, measure, plot, save."""
    shape = parse_shape(args.input_shape)  # every argument is checked before any work
    target_path, target_name = _split_target(args.target)
    _torch()
    stem = f"signal-{re.sub(r'[^A-Za-z0-9_.-]+', '_', target_path.stem)}-{target_name}"
    if not args.no_plot:
        require_pyplot()
        out = prepare_output(args, args.out, "--out", [f"{stem}.png", f"{stem}.svg"])
    if args.save is not None:
        prepare_output(args, args.save.parent, "--save", [args.save.name])
    factory, path, name = load_factory(args.target)
    backward = not args.no_backward
    model, report = _build(factory, path, name, args.init, shape, args.seed)
    stats = _stats(model, shape, args.seed, backward)
    compared: dict[str, Any] = {}  # --init choice -> its statistics, for --compare
    if args.compare:
        for init in INITS:
            if init == args.init:
                compared[init] = stats
            else:
                other_model, _ = _build(factory, path, name, init, shape, args.seed)
                compared[init] = _stats(other_model, shape, args.seed, backward)
    spectrum = None
    if args.spectrum:
        from ..torch.report.jacobian import jacobian_spectrum

        batch = _batch(model, shape, args.seed)
        spectrum = jacobian_spectrum(model, batch, generator=_torch().Generator().manual_seed(args.seed))
    files: list[Path] = []
    if not args.no_plot:
        title = f"{path.name}:{name}, input {'x'.join(map(str, shape))}"
        runs = {_LABELS[init]: other for init, other in compared.items()} or {_LABELS[args.init]: stats}
        figure = plot_signal(runs, title=title)
        files = save_figure(figure, out / stem)
    if args.save is not None:
        _torch().save(model.state_dict(), args.save)
    parameters = sum(p.numel() for p in model.parameters())
    if args.json:
        emit_json(
            {
                "target": args.target,
                "input_shape": list(shape),
                "init": args.init,
                "seed": args.seed,
                "parameters": parameters,
                "report": _report_dict(report),
                "signal": stats.to_dict(),
                "compare": {init: other.to_dict() for init, other in compared.items()},
                "jacobian": None if spectrum is None else spectrum.to_dict(),
                "files": files,
                "saved": args.save,
            }
        )
        return 0
    lines = [f"model {path}:{name}: {type(model).__name__}, {parameters} parameters; --init {args.init}", ""]
    if report is not None:
        lines += [str(report), ""]
    lines.append(str(stats))
    if spectrum is not None:
        lines += ["", str(spectrum)]
    if files:
        lines += ["", "wrote " + ", ".join(str(file) for file in files)]
    if args.save is not None:
        lines.append(f"saved the state dict to {args.save}")
    print("\n".join(lines))
    return 0
