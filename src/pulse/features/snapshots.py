"""What the dbt snapshot mart (`marts.customer_features`) holds: its time range and latest customers."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from pulse.config import Settings
from pulse.db import engine

SNAPSHOT_TABLE = "marts.customer_features"


class NoSnapshotsError(LookupError):
    """The snapshot mart is empty or missing."""


def snapshot_bounds(settings: Settings) -> tuple[datetime, datetime]:
    """First and last `event_timestamp` in the snapshot mart."""
    with engine(settings).connect() as conn:
        first, last = conn.execute(
            sa.text(f"select min(event_timestamp), max(event_timestamp) from {SNAPSHOT_TABLE}")
        ).one()
    if first is None:
        raise NoSnapshotsError(f"{SNAPSHOT_TABLE} is empty: ingest events and run `pulse build` first")
    return first, last


def latest_snapshot(settings: Settings) -> tuple[datetime, list[str]]:
    """The newest snapshot time and the customers it covers."""
    _, as_of = snapshot_bounds(settings)
    with engine(settings).connect() as conn:
        customers = (
            conn.execute(
                sa.text(f"select customer_id from {SNAPSHOT_TABLE} where event_timestamp = :t order by 1"),
                {"t": as_of},
            )
            .scalars()
            .all()
        )
    return as_of, list(customers)
