"""Printing command results: JSON for scripts, rich tables for people."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


# Terminal control characters from patient text (ESC sequences, bells) would drive the admin's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _cell(value: Any) -> Text:
    # Text(...) so that patient-supplied text is never read as rich markup.
    return Text("" if value is None else _CONTROL.sub("\N{REPLACEMENT CHARACTER}", str(value)))


def print_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        # fold, never "…": a page code, a phone or an id cut short on a narrow terminal is a wrong one.
        table.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
        count += 1
    console = Console()
    if count:
        console.print(table)
    else:
        console.print(Text(f"{title or 'list'}: nothing yet"))


def print_fields(data: dict[str, Any], *, title: str | None = None) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        table.add_row(key, _cell(value))
    Console().print(table)


def emit(data: Any, *, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    if as_json:
        print_json(data)
    elif isinstance(data, list):
        print_table(data, columns or (list(data[0]) if data else []), title=title)
    else:
        print_fields(data, title=title)
