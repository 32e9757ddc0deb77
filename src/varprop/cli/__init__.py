"""The ``varprop`` command line: a thin layer over the public API.

Subcommands are registered by modules that expose ``register(subparsers)``: ``basic`` (gain, table,
curve, report) and, when present, ``dynamics`` (fixedpoint, eoc, ...), ``inspect`` (a torch model)
and ``reproduce`` (published numbers). Every subcommand takes ``--json``.
Errors raised by varprop (``VarpropError``) are printed as one line on stderr with exit code 2,
without a traceback; so are argparse usage errors.

Example:
    >>> main(["gain", "elu", "--json"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence

from .._errors import VarpropError
from . import basic

__all__ = ["EXIT_ERROR", "build_parser", "main"]

EXIT_ERROR = 2  # a VarpropError (bad input) or a usage error, like argparse's own exit code
EXIT_IO_ERROR = 1  # the command was valid but a file could not be written

_DESCRIPTION = """\
Exact variance-preserving initialization for any activation function.

He et al. (2015): a layer y' = W phi(y) with zero-mean weights has Var[y'] = n Var[w] E[phi(y)^2].
varprop computes E[phi(y)^2] exactly, hence the gain and the weight scale, for any activation and
any pre-activation variance q (ELU at q = 1: n Var[w] = 1.5505..., std[w] = 1.2452.../sqrt(n)).
"""

_EPILOG = """\
examples:
  varprop gain elu --fan-in 512
  varprop gain "leaky_relu(negative_slope=0.2)" --mode fan_out --fan-out 256
  varprop gain "x*sigmoid(1.702*x)" --var 2
  varprop table
  varprop curve gelu --out figures
  varprop report            (ELU by default; writes varprop-report/index.html)
"""


def _optional_modules() -> list[str]:
    """Subcommand modules registered when they exist (written alongside the core they wrap)."""
    return ["dynamics", "inspect", "reproduce"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered.

    Returns:
        The top-level parser; each subcommand sets ``func`` (``Namespace -> int``).
    """
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="varprop",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"varprop {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    basic.register(subparsers)
    for name in _optional_modules():
        qualified = f"{__name__}.{name}"
        # A missing module is skipped; a module that exists but fails to import is a bug: let it raise.
        if importlib.util.find_spec(qualified) is not None:
            importlib.import_module(qualified).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``varprop`` command line.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 2 on bad input (``VarpropError`` or a usage error, with a
        one-line message on stderr), 1 when an output file cannot be written.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except VarpropError as exc:
        print(f"varprop {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `varprop table | head`: stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        print(f"varprop {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_IO_ERROR
