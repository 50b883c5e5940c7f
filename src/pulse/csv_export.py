"""CSV that spreadsheets open safely: a text cell starting with =, +, -, @, tab or carriage return is
written with a leading apostrophe, so Excel, LibreOffice and Google Sheets show it instead of running it
as a formula (`=HYPERLINK(...)`, DDE). Every CSV Pulse writes for people goes through here."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    """The value `escape_cell` was given (to match a written cell against stored ids)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value


class SafeCsvWriter:
    """csv.writer whose text cells are escaped (numbers are written as they are)."""

    def __init__(self, handle: Any, **options: Any):
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([escape_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
