"""How a benchmark prints its result as a RESULTS.md section: the lines `report.parse_section`
reads (title, what was measured, `- Command:`, `- Date:`, `- Machine:`), then its tables and
summary."""

from __future__ import annotations

import argparse
import datetime
import os

from machine import cpu_model


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The command line: `parser`'s options, then `--markdown` (run_all.py gives it to every
    benchmark)."""
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    return parser.parse_args()


def head(
    title: str,
    intro: str,
    command: str,
    *details: str,
    command_note: str = "",
    date_note: str = "",
    machine: str = "",
) -> list[str]:
    """The lines a section starts with, to print one per line: `## title`, the `intro`
    paragraph, the command in backticks (then `command_note`), today's date (then `date_note`),
    the CPU and nproc (then `machine`: versions, settings), the further `- ` lines `details`,
    and a blank line."""
    return [
        f"## {title}\n",
        f"{intro}\n",
        f"- Command: `{command}`{command_note}",
        f"- Date: {datetime.date.today().isoformat()}{date_note}",
        f"- Machine: {cpu_model()}, nproc {os.cpu_count()}{machine}",
        *details,
        "",
    ]


def print_result(table: list[str], summary: str, lines: list[str] | None = None) -> None:
    """A result's table, then its summary: plain, or with `lines` (`head`'s) as a RESULTS.md
    section, the summary a paragraph of its own."""
    if lines is None:
        print("\n".join([*table, summary]))
    else:
        print("\n".join([*lines, *table, "", summary]))
