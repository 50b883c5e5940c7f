"""Landed event files are deleted once their retention has passed; the loaded rows stay in raw.events."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from pulse.config import Settings
from pulse.db import engine
from pulse.pipeline import ingest_window, window_key

DAY1 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)


def _land(settings: Settings, name: str, at: datetime) -> None:
    event = {
        "type": "identify",
        "messageId": name,
        "userId": "c1",
        "traits": {"email": "Someone@Example.com"},
        "timestamp": at.isoformat(),
    }
    path = settings.landing_dir / f"{name}.jsonl"
    path.write_text(json.dumps(event) + "\n")
    os.utime(path, (at.timestamp(), at.timestamp()))


def test_loaded_files_are_deleted_after_the_retention(settings, monkeypatch):
    monkeypatch.setenv("PULSE_LANDED_RETENTION_DAYS", "7")
    settings = Settings()
    loaded = settings.landing_dir / "loaded"
    (loaded / "kept-by-hand").mkdir(parents=True)  # not a window's folder: left alone

    _land(settings, "first", DAY1 - timedelta(minutes=2))
    assert ingest_window(DAY1 - timedelta(minutes=5), DAY1, settings).files == ["first.jsonl"]
    assert (loaded / window_key(DAY1) / "first.jsonl").exists()

    # Six days later the first window's files are still there (it can be re-run) ...
    day7 = DAY1 + timedelta(days=6)
    _land(settings, "second", day7 - timedelta(minutes=2))
    assert ingest_window(day7 - timedelta(minutes=5), day7, settings).purged == []
    assert (loaded / window_key(DAY1)).exists()

    # ... a window ending more than 7 days after it deletes them, and only them.
    day9 = DAY1 + timedelta(days=8)
    report = ingest_window(day9 - timedelta(minutes=5), day9, settings)
    assert report.purged == [window_key(DAY1)]
    assert sorted(p.name for p in loaded.iterdir()) == sorted(["kept-by-hand", window_key(day7)])
    # Re-running the same window deletes nothing more.
    assert ingest_window(day9 - timedelta(minutes=5), day9, settings).purged == []
    with engine(settings).connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.events")).scalar() == 2
