"""Every CSV Pulse writes for people escapes cells a spreadsheet would run as a formula."""

from __future__ import annotations

import csv

import sqlalchemy as sa

from pulse.activation.destinations.base import Record
from pulse.activation.destinations.file_drop import FileDropDestination
from pulse.audiences import export_audiences
from pulse.csv_export import unescape_cell
from pulse.db import engine

HOSTILE = ['=HYPERLINK("http://evil","x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def _cells(path) -> list[str]:
    with path.open(newline="") as handle:
        return [cell for row in list(csv.reader(handle))[1:] for cell in row]


def _assert_escaped(cells: list[str]) -> None:
    for value in HOSTILE:
        assert value not in cells
        assert "'" + value in cells
        assert unescape_cell("'" + value) == value  # what forget matches stored ids against


def test_audience_export_escapes_formula_cells(settings, tmp_path):
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text(
                'create table audiences.audience_members (audience_name text, customer_id text, "group" text, '
                "member_rank int, recommended_category text)"
            )
        )
        conn.execute(sa.text("create table audiences.audience_inputs (customer_id text, email_sha256 text)"))
        conn.execute(
            sa.text(
                "insert into audiences.audience_definitions values ('vip', 'd', 'true', 'revenue', 0, null, 7, now())"
            )
        )
        conn.execute(
            sa.text("insert into audiences.audience_members values ('vip', :c, 'treatment', :r, :v)"),
            [{"c": f"c{i}", "r": i, "v": value} for i, value in enumerate(HOSTILE)],
        )
    [path] = export_audiences(tmp_path / "exports", settings)
    cells = _cells(path)
    _assert_escaped(cells)
    assert "0" in cells  # numbers are written as they are


def test_file_drop_escapes_formula_cells(settings, tmp_path):  # settings: it records where it writes
    drop = FileDropDestination({"folder": str(tmp_path), "format": "csv"})
    drop.start("run1")
    batch = [Record(f"k{i}", f"c{i}", "add", {"note": value}) for i, value in enumerate(HOSTILE)]
    drop.send(batch, "b1", "mirror")
    drop.finish(True)
    [path] = tmp_path.glob("*.csv")
    _assert_escaped(_cells(path))
