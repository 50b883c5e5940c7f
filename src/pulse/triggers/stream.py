"""The trigger worker's read of raw.events: each committed collector event once, from a durable position.

Every row written to raw.events carries the id of the transaction that wrote it (`xact_id`, default
`pg_current_xact_id()`; indexed for the collector's rows). A position is a PostgreSQL snapshot
(`pg_snapshot`, `xmin:xmax:in-progress ids`): what had committed when the worker last read. The next read
takes a new snapshot, in a REPEATABLE READ transaction, and reads the rows of transactions the old one did
not show: ids at or above its `xmax`, or in its in-progress list. Rows of transactions still running are
not visible yet and come with a later read; so no committed row is skipped whatever the order in which
transactions commit, none is read twice in normal running, and a long transaction elsewhere (a dbt
build) delays nothing. Unlike a serial id, which is taken before commit and so can commit out of order,
this needs no lag or re-read window.

The position is saved by the engine in the transaction that writes the decisions of the read's last
chunk (a read that decides nothing saves it at most every few seconds: each save is a commit), so a crash
before that re-reads the events (the engine's writes are idempotent). The stream of the
default consumer begins at the first `pulse triggers sync` (`start_stream`), so events the collector
accepts before the worker first runs are not missed; a consumer with no position at all begins at its
first read. One worker evaluates at a time per consumer name
(a session advisory lock); others only fire timers until it goes away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import IsolationLevel
from psycopg.rows import dict_row

log = logging.getLogger(__name__)

FIRST_START_MARGIN = timedelta(seconds=60)  # look-back for a position saved by time (before the worker)
# properties and context as text: decoded (msgspec) only for events a trigger looks into.
COLUMNS = (
    "event_id, event_type, event_name, user_id, event_at, received_at, properties::text as properties, "
    "context::text as context"
)
_NEW_SINCE_POSITION = (
    "(xact_id >= pg_snapshot_xmax(%(position)s::pg_snapshot) "
    "or xact_id = any(array(select pg_snapshot_xip(%(position)s::pg_snapshot))))"
)


class StreamNotReady(RuntimeError):
    """raw.events has no xact_id column: the warehouse predates the trigger worker."""


Handler = Callable[[list[dict[str, Any]], str | None], Any]


class EventStream:
    def __init__(self, url: str, consumer: str = "worker", chunk: int = 5_000):
        self.url = url
        self.consumer = consumer
        self.chunk = chunk
        self._conn: psycopg.Connection | None = None
        self._position: str | None = None
        self._locked = False

    def connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.url, connect_timeout=5)
            self._conn.isolation_level = IsolationLevel.REPEATABLE_READ
            self._locked = False
            self._position = None  # re-read from the table: another worker may have moved it
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._locked = False

    def acquire(self) -> bool:
        """Whether this process is the consumer's evaluator (a session advisory lock, held until close)."""
        if not self._locked:
            conn = self.connection()
            row = conn.execute(
                "select pg_try_advisory_lock(hashtextextended(%s, 0))", ("pulse.triggers:" + self.consumer,)
            ).fetchone()
            conn.commit()
            self._locked = bool(row and row[0])
        return self._locked

    def read(self, names: Collection[str] | None, handle: Handler) -> int:
        """Hand the events committed since the position (those named `names`, or all with a user id when
        None) to `handle(rows, position)` in chunks; the last call carries the new position, to be saved
        with its work. Returns the number of events read."""
        conn = self.connection()
        try:
            with conn.transaction():
                snapshot = conn.execute("select pg_current_snapshot()::text").fetchone()[0]  # type: ignore[index] # the snapshot
                where, params = self._since(conn)
                if names is not None:
                    where += " and event_name = any(%(names)s)"
                    params["names"] = sorted(names)
                with conn.cursor(name="pulse_trigger_stream", row_factory=dict_row) as cur:
                    cur.itersize = self.chunk
                    cur.execute(
                        f"select {COLUMNS} from raw.events where source = 'collector' and user_id is not null "
                        f"and {where} order by xact_id",
                        params,
                    )
                    read, rows = 0, cur.fetchmany(self.chunk)
                    while True:
                        following = cur.fetchmany(self.chunk) if len(rows) == self.chunk else []
                        handle(rows, None if following else snapshot)
                        read += len(rows)
                        if not following:
                            break
                        rows = following
        except psycopg.errors.UndefinedColumn as error:
            raise StreamNotReady(
                "raw.events has no xact_id column: run `pulse up` (as the warehouse owner) to upgrade it"
            ) from error
        self._position = snapshot
        return read

    def _since(self, conn: psycopg.Connection) -> tuple[str, dict[str, Any]]:
        if self._position is None:
            row = conn.execute(
                "select position::text, processed_at from activation.trigger_stream where consumer = %s",
                (self.consumer,),
            ).fetchone()
            if row is None:  # never started, nor synced (`start_stream`): the stream begins now
                log.info("triggers: consumer %s starts reading now", self.consumer)
                return "false", {}
            if row[0] is None:  # saved before the worker (by time): a look back from there
                return (
                    "loaded_at >= %(processed_at)s - %(margin)s and xact_id is not null",
                    {"processed_at": row[1], "margin": FIRST_START_MARGIN},
                )
            self._position = row[0]
        return _NEW_SINCE_POSITION, {"position": self._position}


def start_stream(conn: psycopg.Connection, consumer: str = "worker") -> None:
    """Make the consumer's stream begin now if it has no position yet (`pulse triggers sync` does, so the
    worker evaluates everything committed after the first sync, even if the collector started first)."""
    conn.execute(
        "insert into activation.trigger_stream (consumer, processed_at, position) "
        "values (%s, clock_timestamp(), pg_current_snapshot()) on conflict (consumer) do nothing",
        (consumer,),
    )
