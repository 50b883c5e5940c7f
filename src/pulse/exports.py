"""Where Pulse wrote personal data outside the warehouse, so `pulse forget` can find every copy.

Audience exports and file-drop syncs write customer ids and email hashes to files, in `PULSE_HOME/exports`
by default but anywhere a user points them. Each writer records the location (a file or a folder) in
`audit.export_locations`; `pulse forget` rewrites every file found there.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine

EXPORT_SUFFIXES = (".csv", ".jsonl")


def record_export(location: Path, written_by: str, settings: Settings | None = None) -> None:
    """Remember that personal data was written to `location` (a file, or a folder of export files)."""
    with engine(settings or get_settings()).begin() as conn:
        conn.execute(
            sa.text(
                "insert into audit.export_locations (location, written_by) values (:l, :w) "
                "on conflict (location) do update set written_by = excluded.written_by, written_at = now()"
            ),
            {"l": str(Path(location).resolve()), "w": written_by},
        )


def export_files(settings: Settings | None = None) -> list[Path]:
    """Every export file: under `PULSE_HOME/exports` and at every recorded location that still exists."""
    settings = settings or get_settings()
    with engine(settings).connect() as conn:
        exists = conn.execute(
            sa.text("select to_regclass('audit.export_locations') is not null")
        ).scalar_one()
        recorded = (
            conn.execute(sa.text("select location from audit.export_locations")).scalars().all()
            if exists
            else []
        )
    found: set[Path] = set()
    for root in [settings.home_dir / "exports", *map(Path, recorded)]:
        if root.is_file():
            found.add(root)
        elif root.is_dir():
            found |= {p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(EXPORT_SUFFIXES)}
    return sorted(found)
