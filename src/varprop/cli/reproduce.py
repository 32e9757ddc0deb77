"""The ``reproduce`` subcommand: published numbers of the literature beside varprop's live values.

No number is computed here: the rows come from ``varprop.reproduce_table``; this module
only formats them as text, JSON or the Markdown page ``docs/reproduce.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..literature._reproduce import GROUPS, NUMERICAL_RTOL, ReproRow, ReproTable, reproduce_table
from ..report._text import display_width
from .basic import JSON_HELP, emit_json

__all__ = ["EXIT_MISMATCH", "format_markdown", "format_text", "register", "run_reproduce"]

EXIT_MISMATCH = 1  # a checked row is outside its tolerance (so CI can run `varprop reproduce`)

MARKDOWN_COMMAND = "varprop reproduce --markdown > docs/reproduce.md"

_POLICY = (
    "A row is checked when the published figure is exact or rounded from an exact value: it passes when "
    "|varprop - published| <= (half a unit in the published figure's last digit; one unit where the source "
    f"truncates; nothing for exact figures) + {NUMERICAL_RTOL:g} x |published| (the engine's accuracy target). "
    "Rows marked 'info' compare with figures that are not exact by design (Monte Carlo estimates, PyTorch's "
    "recommended gains): they inform and never fail."
)


def register(subparsers: Any) -> None:
    """Add the ``reproduce`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "reproduce",
        help="published numbers (He 2015, the seed, Klambauer 2017, edge of chaos, torch) recomputed live",
        description=(
            "Recompute published numbers of the initialization literature with varprop, live, and compare: "
            "He et al. 2015 (ReLU and PReLU), the seed answer's ELU 0.645 / 1.55 and the exact values, "
            "Klambauer et al. 2017 (SELU's alpha_01, lambda_01, Jacobian norm 0.7877), edge-of-chaos points "
            "(Poole, Schoenholz, Hayou), and torch.nn.init.calculate_gain beside the exact gains. "
            "Exit status 1 when a checked row is outside its tolerance."
        ),
        epilog=f"docs/reproduce.md is produced by: {MARKDOWN_COMMAND}",
    )
    formats = parser.add_mutually_exclusive_group()  # --json as every subcommand has it, or --markdown
    formats.add_argument("--json", action="store_true", help=JSON_HELP)
    formats.add_argument("--markdown", action="store_true", help="print the Markdown page docs/reproduce.md")
    parser.set_defaults(func=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    """``varprop reproduce``: build the table and print it; exit 1 if a checked row fails."""
    table = reproduce_table()
    if args.json:
        emit_json(table.to_dict())
    elif args.markdown:
        print(format_markdown(table), end="")
    else:
        print(format_text(table))
    return 0 if table.passed else EXIT_MISMATCH


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.15g}"


def _difference(value: float | None) -> str:
    if value is None:
        return "-"
    return "0" if value == 0 else f"{value:+.1e}"


def _tolerance(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _summary(table: ReproTable) -> str:
    counts = table.counts()
    return (
        f"{counts['ok']} checked rows within tolerance, {counts['FAIL']} outside, "
        f"{counts['info']} informative, {counts['skipped']} skipped"
    )


def _versions(table: ReproTable) -> str:
    return ", ".join(f"{name} {version}" for name, version in table.versions.items())


def _by_group(rows: Sequence[ReproRow]) -> list[tuple[str, list[ReproRow]]]:
    groups: dict[str, list[ReproRow]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    return list(groups.items())


def format_text(table: ReproTable) -> str:
    """The table as plain text, one section per source, notes under their rows."""
    lines = [f"Published numbers recomputed live ({_versions(table)})", ""]
    headers = ("quantity", "published", "varprop", "difference", "tolerance", "status", "source")
    rows = [
        (row.quantity, row.published, _value(row.value), _difference(row.difference), _tolerance(row.tolerance))
        for row in table.rows
    ]
    widths = [max(len(headers[i]), *(display_width(cells[i]) for cells in rows)) for i in range(5)]
    for group, group_rows in _by_group(table.rows):
        lines += [f"{group}: {GROUPS[group]}"]
        header = "  " + "  ".join(f"{text:<{width}}" for text, width in zip(headers, widths, strict=False))
        lines += [header + "  status   source"]
        for row in group_rows:
            cells = (row.quantity, row.published, _value(row.value), _difference(row.difference))
            text = "  ".join(_pad(cell, width) for cell, width in zip(cells, widths, strict=False))
            lines.append(f"  {text}  {_tolerance(row.tolerance):<{widths[4]}}  {row.status:<7}  {row.source}")
            if row.note:
                lines.append(f"  {'':<{widths[0]}}  ↳ {row.note}")
        lines.append("")
    lines += [f"note: {note}" for note in table.notes]
    lines += [_POLICY, "", _summary(table)]
    return "\n".join(lines)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - display_width(text), 0)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown(table: ReproTable) -> str:
    """The Markdown page ``docs/reproduce.md``: the command that made it, the policy, one table per source."""
    lines = [
        "# The literature, reproduced",
        "",
        f"Generated by `{MARKDOWN_COMMAND}` ({_versions(table)}). Do not edit by hand: rerun the command.",
        "",
        "Each varprop value is computed live by the call in the last column (public names of "
        "`import varprop`); the published values are data, with their sources. " + _POLICY,
        "",
        f"**{_summary(table)}.**",
        "",
    ]
    for group, group_rows in _by_group(table.rows):
        lines += [f"## {group}", "", GROUPS[group], ""]
        lines += [
            "| quantity | published | source | varprop | difference | tolerance | status | computed by |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in group_rows:
            cells = (
                row.quantity,
                row.published,
                row.source,
                _value(row.value),
                _difference(row.difference),
                _tolerance(row.tolerance),
                row.status,
                f"`{row.call}`",
            )
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        notes = [row for row in group_rows if row.note]
        if notes:
            lines.append("")
            lines += [f"- {_cell(row.quantity)}: {row.note}" for row in notes]
        lines.append("")
    if table.notes:
        lines += [f"Note: {note}" for note in table.notes] + [""]
    return "\n".join(lines).rstrip() + "\n"
