"""Trigger definitions in the warehouse: sync from YAML, list, pause and resume (`pulse triggers`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import sqlalchemy as sa

from pulse.campaign_files import store_definitions
from pulse.config import Settings
from pulse.db import engine, warehouse_url
from pulse.triggers.definitions import TriggerDefinition, load_definitions, triggers_dir
from pulse.triggers.engine import ensure_trigger_tables
from pulse.triggers.stream import start_stream


def sync_triggers(settings: Settings, folder: Path | None = None) -> list[TriggerDefinition]:
    """Make activation.trigger_definitions the YAML definitions (a trigger's status is kept)."""
    definitions = load_definitions(folder or triggers_dir(settings.project_dir))
    ensure_trigger_tables(warehouse_url(settings))
    rows = [
        {"trigger_name": d.name, "description": d.description, "definition": d.to_document()}
        for d in definitions
    ]
    with engine(settings).begin() as conn:
        store_definitions(conn, "activation.trigger_definitions", "trigger_name", rows, jsonb={"definition"})
    with psycopg.connect(warehouse_url(settings), autocommit=True) as conn:
        start_stream(conn)  # the worker evaluates what is committed from now on, wherever it starts
    return definitions


@dataclass
class TriggerState:
    name: str
    status: str
    entry_event: str
    wait_seconds: int | None
    holdout_pct: int
    pending: int
    fired: int
    held_out: int
    cancelled: int
    suppressed: int
    failed: int
    last_fired_at: datetime | None


def list_triggers(settings: Settings) -> list[TriggerState]:
    ensure_trigger_tables(warehouse_url(settings))
    with engine(settings).connect() as conn:
        rows = conn.execute(
            sa.text(
                """select d.trigger_name, d.status, d.definition,
                          count(*) filter (where t.status = 'pending') as pending,
                          count(*) filter (where t.status = 'fired') as fired,
                          count(*) filter (where t.status = 'held_out') as held_out,
                          count(*) filter (where t.status = 'cancelled') as cancelled,
                          count(*) filter (where t.status = 'suppressed') as suppressed,
                          count(*) filter (where t.status = 'failed') as failed,
                          max(t.done_at) filter (where t.status = 'fired') as last_fired_at
                     from activation.trigger_definitions d
                     left join activation.trigger_timers t using (trigger_name)
                    group by 1, 2, 3 order by 1"""
            )
        ).mappings()
        return [
            TriggerState(
                r["trigger_name"],
                r["status"],
                r["definition"]["entry"]["event"],
                (r["definition"].get("wait") or {}).get("duration"),
                r["definition"]["holdout_pct"],
                r["pending"],
                r["fired"],
                r["held_out"],
                r["cancelled"],
                r["suppressed"],
                r["failed"],
                r["last_fired_at"],
            )
            for r in rows
        ]


class UnknownTrigger(LookupError):
    pass


def set_status(settings: Settings, name: str, status: str) -> None:
    """Pause or resume a trigger (the trigger worker sees it within seconds)."""
    ensure_trigger_tables(warehouse_url(settings))
    with engine(settings).begin() as conn:
        updated = conn.execute(
            sa.text(
                "update activation.trigger_definitions set status = :status, status_at = now() "
                "where trigger_name = :name"
            ),
            {"status": status, "name": name},
        ).rowcount
    if not updated:
        raise UnknownTrigger(f"no trigger named {name!r} (run `pulse triggers sync` after adding its YAML)")
