"""The ``varprop`` command line: a thin layer over the public API.

Subcommands are registered by modules that expose ``register(subparsers)``: ``basic`` (gain, table,
curve, report) and, when present, ``dynamics`` (fixedpoint, eoc, ...), ``inspect`` (a torch model)
and ``reproduce`` (published numbers). Every subcommand takes ``--json``.

Every argument is checked before any work. A mistake (a usage error, a bad value, an output folder
that cannot be written, a ``VarpropError``) exits with code 2 and one line on stderr, without a
traceback; with ``--json`` the error is a JSON object on stdout instead (see ``EXIT_CODES``).
Warnings are one line each on stderr, ``varprop COMMAND: warning: ...``.

Example:
    >>> main(["gain", "elu", "--json"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from .. import VarpropError, __version__
from . import basic
from .basic import emit_json

__all__ = ["EXIT_CODES", "EXIT_ERROR", "EXIT_IO_ERROR", "build_parser", "main"]

EXIT_ERROR = 2  # a mistake: usage, a bad value, an unusable output folder, a VarpropError (argparse's own code)
EXIT_IO_ERROR = 1  # the command was valid but writing a file failed while it ran

#: What the exit codes mean (``varprop --help`` prints this).
EXIT_CODES = """\
exit codes and errors:
  0  success
  1  a file could not be written while the command ran (disk full, ...); `varprop reproduce`: a
     checked row is outside its tolerance
  2  a mistake in the command: unknown command or option, a bad value, an output folder that cannot
     be written, an input varprop refuses (every argument is checked before any work)
  An error prints one line on stderr, "varprop COMMAND: error: MESSAGE". With --json it prints
  instead, on stdout, one JSON object {"error": MESSAGE, "kind": KIND, "exit_code": CODE,
  "command": COMMAND}: KIND is "usage" (the command line), "io" (writing a file failed) or the
  name of the varprop exception (VarpropValueError, VarpropTypeError, ConvergenceError, ...).
"""

_DESCRIPTION = """\
Exact variance-preserving initialization for any activation function.

He et al. (2015): a layer y' = W phi(y) with zero-mean weights has Var[y'] = n Var[w] E[phi(y)^2].
varprop computes E[phi(y)^2] exactly, hence the gain and the weight scale, for any activation and
any pre-activation variance q (ELU at q = 1: n Var[w] = 1.5505..., std[w] = 1.2452.../sqrt(n)).
"""

_EPILOG = f"""\
examples:
  varprop gain elu --fan-in 512
  varprop gain "leaky_relu(negative_slope=0.2)" --mode fan_out --fan-out 256
  varprop gain "x*sigmoid(1.702*x)" --var 2
  varprop table
  varprop curve gelu --out figures
  varprop report            (ELU by default; writes varprop-report/index.html)

{EXIT_CODES}"""


class UsageError(Exception):
    """The command line does not parse (raised by ``_Parser.error`` instead of exiting)."""


# argparse takes "-1e3" and "-inf" for options (it knows only "-1" and "-1.5" as negative numbers), so
# `--var -1e3` said "expected one argument"; with this pattern the value reaches the option's check.
_NEGATIVE_NUMBER = re.compile(r"^-(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^-(?:inf|infinity|nan)$", re.I)


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors raised to ``main`` (which prints them in one line, or as JSON)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _optional_modules() -> list[str]:
    """Subcommand modules registered when they exist (written alongside the core they wrap)."""
    return ["dynamics", "inspect", "reproduce"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered.

    Returns:
        The top-level parser; each subcommand sets ``func`` (``Namespace -> int``). Its ``error``
        raises ``UsageError`` instead of exiting.
    """
    parser = _Parser(
        prog="varprop",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"varprop {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    basic.register(subparsers)
    for name in _optional_modules():
        qualified = f"{__name__}.{name}"
        # A missing module is skipped; a module that exists but fails to import is a bug: let it raise.
        if importlib.util.find_spec(qualified) is not None:
            importlib.import_module(qualified).register(subparsers)
    return parser


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether ``--json`` was given (looked up before parsing, so that usage errors are JSON too)."""
    options = argv[: list(argv).index("--")] if "--" in argv else argv
    return "--json" in options


def _command(argv: Sequence[str], parser: argparse.ArgumentParser) -> str | None:
    """The subcommand named on the command line, if any (for the error's prefix)."""
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in subparsers.choices else None


def _fail(message: str, *, kind: str, code: int, command: str | None, as_json: bool) -> int:
    """Report an error as one line on stderr, or as a JSON object on stdout with ``--json``."""
    if as_json:
        emit_json({"error": message, "kind": kind, "exit_code": code, "command": command})
    else:
        prefix = "varprop" if command is None else f"varprop {command}"
        print(f"{prefix}: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``varprop`` command line.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code (``EXIT_CODES``): 0 on success, 2 on a mistake (usage error, bad value,
        unusable output folder, ``VarpropError``: one line on stderr, or a JSON object on stdout
        with ``--json``), 1 when writing a file fails while the command runs.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(arguments)
    parser = build_parser()
    command = _command(arguments, parser)
    try:
        args = parser.parse_args(arguments)
    except UsageError as exc:
        return _fail(str(exc), kind="usage", code=EXIT_ERROR, command=command, as_json=as_json)
    except SystemExit as exc:  # --help and --version print and exit 0
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    func: Callable[[argparse.Namespace], int] = args.func
    args.outputs = []  # OutputFolder values prepared by the command, removed again if it fails
    fail: dict[str, Any] = {"command": args.command, "as_json": as_json}
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command)
            return func(args)
    except VarpropError as exc:
        _remove_unused(args.outputs)
        return _fail(str(exc), kind=type(exc).__name__, code=EXIT_ERROR, **fail)
    except BrokenPipeError:  # e.g. `varprop table | head`: stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        _remove_unused(args.outputs)
        return _fail(str(exc), kind="io", code=EXIT_IO_ERROR, **fail)


def _warning_printer(command: str) -> Callable[..., None]:
    """``warnings.showwarning`` for the command line: one line, "varprop COMMAND: warning: ...", no source path."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        print(f"varprop {command}: warning: {message}", file=sys.stderr if file is None else file)

    return show


def _remove_unused(outputs: Sequence[Any]) -> None:
    for output in outputs:
        output.remove_if_unused()
