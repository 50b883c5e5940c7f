"""The activation run log: `activation.sync_runs` (one row per run) and `activation.sync_records` (one row
per planned change and what became of it). Shared by batch syncs and real-time triggers.

A run's status: `success` only when every sent row was accepted; `partial` when any row was rejected
(never reported as success); `failed` when the run stopped on an error; `interrupted` for a run found
still `running` by the next run of the same sync (its process died); `dry_run` for a plan that sent nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

import sqlalchemy as sa

from pulse.activation.destinations.base import Outcome, Record


@dataclass
class RunCounts:
    planned: int = 0
    adds: int = 0
    removes: int = 0
    updates: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    retried: int = 0
    skipped_consent: int = 0
    skipped_other: int = 0
    dead_lettered: int = 0


def new_run_id() -> str:
    return uuid.uuid4().hex


def start_run(
    conn,
    sync_name: str,
    destination: str,
    mode: str,
    *,
    kind: str = "sync",
    dry_run: bool = False,
    run_id: str | None = None,
    resumed_from: str | None = None,
) -> str:
    run_id = run_id or new_run_id()
    conn.execute(
        sa.text(
            "insert into activation.sync_runs (run_id, sync_name, kind, destination, mode, dry_run, started_at, "
            "status, resumed_from) values (:run_id, :sync, :kind, :dest, :mode, :dry, :now, 'running', :resumed)"
        ),
        {
            "run_id": run_id,
            "sync": sync_name,
            "kind": kind,
            "dest": destination,
            "mode": mode,
            "dry": dry_run,
            "now": datetime.now(UTC),
            "resumed": resumed_from,
        },
    )
    return run_id


def mark_interrupted(conn, sync_name: str) -> str | None:
    """Runs of `sync_name` still `running` died with their process: mark them `interrupted` (their counts
    are what their checkpoints recorded). Returns the latest such run's id. Callers hold the sync's lock."""
    rows = conn.execute(
        sa.text(
            "update activation.sync_runs r set status = 'interrupted', finished_at = now(), "
            "error = 'the process running this sync stopped before it finished', "
            "accepted = c.accepted, rejected = c.rejected, sent = c.accepted + c.rejected "
            "from activation.sync_runs r2 cross join lateral ("
            "    select count(*) filter (where s.status = 'accepted') as accepted, "
            "           count(*) filter (where s.status in ('rejected', 'dead_letter')) as rejected "
            "    from activation.sync_records s where s.run_id = r2.run_id) c "
            "where r2.run_id = r.run_id and r.sync_name = :s and r.status = 'running' "
            "returning r.run_id, r.started_at"
        ),
        {"s": sync_name},
    ).all()
    return max(rows, key=lambda r: r[1])[0] if rows else None


def record_outcomes(conn, run_id: str, records: Sequence[Record], outcomes: Iterable[Outcome]) -> None:
    """Insert one sync_records row per outcome (upsert: a resent key keeps its latest outcome)."""
    by_key = {r.key: r for r in records}
    rows = []
    for o in outcomes:
        record = by_key[o.key]
        rows.append(
            {
                "run_id": run_id,
                "key": o.key,
                "customer": record.customer_id,
                "op": record.operation,
                "status": "accepted" if o.accepted else "rejected",
                "http": o.http_status,
                "error": (o.error or None) and o.error[:2000],
                "attempts": o.attempts,
                "at": o.last_attempt_at,
            }
        )
    if rows:
        conn.execute(_INSERT_RECORDS, _columns(rows))


def record_skipped(conn, run_id: str, skipped: Sequence[tuple[str, str, str, str]]) -> None:
    """(key, customer_id, operation, reason) of rows planned but not sent."""
    rows = [
        {
            "run_id": run_id,
            "key": k,
            "customer": c,
            "op": op,
            "status": "skipped",
            "http": None,
            "error": reason,
            "attempts": 0,
            "at": None,
        }
        for k, c, op, reason in skipped
    ]
    if rows:
        conn.execute(_INSERT_RECORDS, _columns(rows))


_INSERT_RECORDS = sa.text(
    "insert into activation.sync_records (run_id, record_key, customer_id, operation, status, http_status, "
    "error, attempts, last_attempt_at) "
    "select * from unnest(cast(:run_id as text[]), cast(:key as text[]), cast(:customer as text[]), "
    "cast(:op as text[]), cast(:status as text[]), cast(:http as integer[]), cast(:error as text[]), "
    "cast(:attempts as integer[]), cast(:at as timestamptz[])) "
    "on conflict (run_id, record_key) do update set status = excluded.status, "
    "http_status = excluded.http_status, error = excluded.error, attempts = excluded.attempts, "
    "last_attempt_at = excluded.last_attempt_at"
)


def _columns(rows: list[dict]) -> dict[str, list]:
    """Rows as column arrays: one round trip through unnest however many rows."""
    return {name: [r[name] for r in rows] for name in rows[0]}


def finish_run(
    conn,
    run_id: str,
    counts: RunCounts,
    started: float,
    now: float,
    error: str | None = None,
    dry_run: bool = False,
) -> str:
    if dry_run:
        status = "dry_run"
    elif error:
        status = "failed"
    elif counts.rejected or counts.dead_lettered:
        status = "partial"
    else:
        status = "success"
    conn.execute(
        sa.text(
            "update activation.sync_runs set status = :status, finished_at = :at, duration_seconds = :duration, "
            "error = :error, destination_size = case when kind = 'sync' then (select count(*) "
            "from activation.sync_state s where s.sync_name = sync_runs.sync_name and s.is_present) end, "
            + ", ".join(f"{f.name} = :{f.name}" for f in fields(RunCounts))
            + " where run_id = :run_id"
        ),
        {
            **asdict(counts),
            "status": status,
            "at": datetime.now(UTC),
            "duration": now - started,
            "error": error,
            "run_id": run_id,
        },
    )
    return status
