"""Running Pulse's idempotent DDL files (src/pulse/sql/) from a process that needs their tables."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import psycopg
from psycopg import errors


def ensure_tables(url: str, sql_file: str, tables: Sequence[str]) -> None:
    """Run `sql/<sql_file>` so `tables` exist. A login without DDL rights (a least-privilege role such as
    the collector's) goes on when they exist already: the owner's `pulse up` made them."""
    ddl = resources.files("pulse").joinpath("sql", sql_file).read_text()
    for attempt in range(3):  # `create ... if not exists` can race with another process doing the same
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(ddl)
            return
        except (errors.UniqueViolation, errors.DuplicateObject, errors.DuplicateTable):
            if attempt == 2:
                raise
        except errors.InsufficientPrivilege:
            with psycopg.connect(url, autocommit=True) as conn:
                missing = [
                    t
                    for t in tables
                    if conn.execute("select to_regclass(%s) is null", (t,)).fetchone() != (False,)
                ]
            if missing:
                raise RuntimeError(
                    f"{', '.join(missing)} missing, and this database login may not create them: "
                    "run `pulse up --roles` as the warehouse owner first"
                ) from None
            return
