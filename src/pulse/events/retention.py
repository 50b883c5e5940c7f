"""Landed event files are raw personal data: once loaded they are kept `PULSE_LANDED_RETENTION_DAYS`
(so a window can be re-run) and then deleted. `raw.events` keeps the loaded, scrubbed rows.

Folders under `landing/loaded/` are named by the end of the window that claimed them
(`pulse.pipeline.window_key`); age is measured from that name against the running window's end, not the
clock or file times, so re-running a window deletes exactly what it deleted the first time."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

from pulse.config import Settings

WINDOW_KEY_FORMAT = "%Y%m%dT%H%M%SZ"


def purge_loaded(now: datetime, settings: Settings) -> list[str]:
    """Delete the claimed folders whose window ended more than the retention before `now`; their names."""
    loaded = settings.landing_dir / "loaded"
    if not loaded.is_dir():
        return []
    cutoff = now - timedelta(days=settings.landed_retention_days)
    purged = []
    for folder in sorted(loaded.iterdir()):
        try:
            ended = datetime.strptime(folder.name, WINDOW_KEY_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            continue  # not a window's folder: not ours to delete
        if folder.is_dir() and ended < cutoff:
            shutil.rmtree(folder)
            purged.append(folder.name)
    return purged
