"""The steps of Pulse's flow, each one call: what the CLI verbs and the Airflow tasks run."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.events.ingest import IngestResult, expand_paths, ingest_file

PULSE_OWNED_TABLES = (
    "audiences.audience_members",
    "audiences.audience_definitions",
    "ml.scores",
    "ml.model_metrics",
    "ml.model_runs",
    "raw.events_rejected",
    "raw.events",
)


def ingest_landed_files(settings: Settings | None = None) -> IngestResult:
    """Load every event file in `PULSE_HOME/landing/`, then move it to `landing/loaded/`.

    Each file commits on its own; a file moves only after its commit, and a crash in between means it is
    loaded again next time, which adds nothing (messageId is the key).
    """
    settings = settings or get_settings()
    landing = settings.landing_dir
    done = landing / "loaded"
    done.mkdir(exist_ok=True)
    total = IngestResult()
    for file in expand_paths(landing):
        total += ingest_file(file, settings)
        shutil.move(str(file), done / file.name)
    return total


def land_file(path: Path, settings: Settings | None = None) -> Path:
    """Copy a file into the landing folder for the next ingest run."""
    settings = settings or get_settings()
    target = settings.landing_dir / path.name
    shutil.copyfile(path, target)
    return target


def reset_pulse_tables(settings: Settings | None = None) -> None:
    """Empty the tables Pulse owns (used by `pulse demo` so each demo starts clean)."""
    with engine(settings).begin() as conn:
        conn.execute(sa.text(f"truncate {', '.join(PULSE_OWNED_TABLES)}"))
