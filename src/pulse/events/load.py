"""Writing accepted events and rejects into `raw`: the one write path the collector and files share.

`write_events` streams rows with COPY straight into `raw.events` inside a savepoint, the fastest way
PostgreSQL takes rows. If any row's `event_id` is already there (a replay, a re-import, a duplicate within
the batch), PostgreSQL refuses the whole COPY; the chunk is then rolled back to its savepoint and loaded
again through a temporary table with `INSERT ... ON CONFLICT (event_id) DO NOTHING`, so replays add
nothing. The caller owns the transaction: nothing is visible until it commits.

Every write holds the raw-events lock shared for its transaction (`pulse forget` holds it exclusively
while it deletes a person and puts them on the suppression list), and turns the rows of forgotten people
it just loaded into rejects (`forgotten_subject`) before commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import psycopg
from psycopg import errors, sql

from pulse.ddl import ensure_tables
from pulse.events.contract import EVENT_COLUMNS
from pulse.events.fast import copy_text
from pulse.events.pii import redact_text
from pulse.locks import RAW_EVENTS_LOCK_KEY

MAX_REJECTED_PAYLOAD = 256 * 1024  # characters kept of one rejected payload (the rest is summarised)


def ensure_raw_tables(url: str) -> None:
    """Create the `raw` schema and its tables (idempotent): all the collector and loaders need."""
    ensure_tables(url, "schema.sql", ("raw.events", "raw.events_rejected", "raw.events_shape"))


@dataclass(frozen=True)
class Rejection:
    """Something that failed validation, kept with the reason and where it came from."""

    payload: str
    reason: str
    source: str
    line_number: int | None

    @classmethod
    def of(cls, payload: bytes | str, reason: str, source: str, line_number: int | None) -> Rejection:
        """Make the payload storable: text (undecodable bytes escaped), no NUL, PII hashed, bounded."""
        if isinstance(payload, bytes):
            text = payload.decode("utf-8", "backslashreplace")
        else:
            try:  # undecodable bytes read with surrogateescape come back as those bytes
                data = payload.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:  # other lone surrogates
                data = payload.encode("utf-8", "surrogatepass")
            text = data.decode("utf-8", "backslashreplace")
        text = text.rstrip("\r\n").replace("\x00", "\\x00")
        if len(text) > MAX_REJECTED_PAYLOAD:
            reason = f"{reason} (payload truncated to {MAX_REJECTED_PAYLOAD} of {len(text)} characters)"
            text = text[:MAX_REJECTED_PAYLOAD]
        return cls(payload=redact_text(text), reason=reason, source=source, line_number=line_number)

    @property
    def rejected_id(self) -> str:
        key = f"{self.source}\x1f{self.line_number}\x1f{self.payload}"
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class CopyBlock:
    """Rows already in COPY text format (`EVENT_COLUMNS` order, one line each) and how many."""

    data: bytes
    rows: int


@dataclass
class WriteResult:
    valid: int = 0
    inserted: int = 0
    inserted_ids: list[str] | None = None  # filled when asked for (collector hooks)
    forgotten: int = 0  # rows of forgotten people, turned into rejects (not counted as inserted)


_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS))
# The statements as plain text, composed once (the column names are plain identifiers).
_COLUMN_LIST = ", ".join(EVENT_COLUMNS)
COPY_EVENTS = f"copy raw.events ({_COLUMN_LIST}) from stdin"
COPY_INCOMING = f"copy _incoming_events ({_COLUMN_LIST}) from stdin"
ROWS_PER_WRITE = 1_000  # rows formatted per write to the COPY stream


def _enter(cur: psycopg.Cursor) -> None:
    """Take the raw-events lock shared for the transaction (`pulse forget` takes it exclusively)."""
    cur.execute("select pg_advisory_xact_lock_shared(%s)", (RAW_EVENTS_LOCK_KEY,))


def _reject_forgotten(cur: psycopg.Cursor, result: WriteResult) -> None:
    """Turn this transaction's rows of forgotten people into rejects (`raw.reject_forgotten`, a function
    the collector's role may call without reading any row)."""
    row = cur.execute("select raw.reject_forgotten()").fetchone()
    result.forgotten = row[0] if row else 0
    result.inserted -= result.forgotten


def _utf8(cur: psycopg.Cursor) -> None:
    """COPY data is written as UTF-8 bytes: make sure the session reads it as such."""
    if cur.connection.info.encoding != "utf-8":
        cur.execute("set client_encoding to 'UTF8'")


def _copy_rows(copy: psycopg.Copy, rows: Iterable[Sequence[Any]], kept: list | None) -> int:
    """Write `Event.copy_row` tuples as COPY text lines (`fast.copy_text`), a thousand per write."""
    n, lines = 0, []
    for row in rows:
        if kept is not None:
            kept.append(row)  # before writing: a row the server refused mid-stream is retried
        lines.append(copy_text(row))
        n += 1
        if len(lines) >= ROWS_PER_WRITE:
            copy.write("".join(lines).encode("utf-8"))
            lines.clear()
    if lines:
        copy.write("".join(lines).encode("utf-8"))
    return n


def _copy_direct(cur: psycopg.Cursor, chunk: Iterable[Sequence[Any]], kept: list | None) -> int:
    _utf8(cur)
    with cur.copy(COPY_EVENTS) as copy:
        return _copy_rows(copy, chunk, kept)


def _insert_deduplicated(
    cur: psycopg.Cursor, chunk: Sequence[Sequence[Any]], want_ids: bool
) -> list[str] | int:
    cur.execute(
        "create temporary table if not exists _incoming_events (like raw.events_shape) on commit delete rows"
    )
    cur.execute("truncate _incoming_events")
    _utf8(cur)
    with cur.copy(COPY_INCOMING) as copy:
        _copy_rows(copy, chunk, None)
    query = sql.SQL(
        "insert into raw.events ({cols}) select distinct on (event_id) {cols} from _incoming_events "
        "order by event_id on conflict (event_id) do nothing"
    ).format(cols=_COLUMNS)
    if want_ids:
        cur.execute(query + sql.SQL(" returning event_id"))
        return [r[0] for r in cur.fetchall()]
    cur.execute(query)
    return cur.rowcount


def write_events(
    conn: psycopg.Connection,
    rows: Iterable[Sequence[Any]],
    chunk_size: int = 20_000,
    want_ids: bool = False,
) -> WriteResult:
    """COPY rows (tuples in `EVENT_COLUMNS` order) into raw.events in the caller's transaction.

    Rows are consumed lazily, so parsing in the caller overlaps with the server's work on the rows
    already sent. Returns how many rows were valid and how many were new.
    """
    result = WriteResult(inserted_ids=[] if want_ids else None)
    conflicts_in_a_row = 0
    with conn.cursor() as cur:
        _enter(cur)
        it = iter(rows)
        while True:
            if conflicts_in_a_row >= 2:
                # Mostly replays (a re-import): skip the optimistic COPY that would fail again.
                chunk = list(islice(it, chunk_size))
                if not chunk:
                    break
                _dedup_into(cur, chunk, want_ids, result)
                continue
            kept: list[Sequence[Any]] = []
            try:
                with conn.transaction():  # a savepoint
                    n = _copy_direct(cur, islice(it, chunk_size), kept)
            except errors.UniqueViolation:
                conflicts_in_a_row += 1
                _dedup_into(cur, kept, want_ids, result)
                continue
            if n == 0:
                break
            conflicts_in_a_row = 0
            result.valid += n
            result.inserted += n
            if result.inserted_ids is not None:
                result.inserted_ids.extend(row[0] for row in kept)
            if n < chunk_size:
                break
        _reject_forgotten(cur, result)
        if want_ids and result.forgotten:
            cur.execute("select event_id from raw.events where event_id = any(%s)", (result.inserted_ids,))
            result.inserted_ids = [r[0] for r in cur.fetchall()]
    return result


def write_copy(
    conn: psycopg.Connection, blocks: Iterable[CopyBlock], chunk_rows: int = 50_000
) -> WriteResult:
    """`write_events` for rows already formatted as COPY text: the same savepoints, the same fallback
    to `INSERT ... ON CONFLICT DO NOTHING` for chunks holding known event_ids, in the caller's
    transaction. Blocks are consumed lazily, so whoever produces them keeps working meanwhile."""
    result = WriteResult()
    conflicts_in_a_row = 0
    it = iter(blocks)
    exhausted = False
    with conn.cursor() as cur:
        _enter(cur)
        _utf8(cur)
        while not exhausted:
            kept: list[CopyBlock] = []
            if conflicts_in_a_row >= 2:
                # Mostly replays (a re-import): skip the optimistic COPY that would fail again.
                n = 0
                for block in it:
                    kept.append(block)
                    n += block.rows
                    if n >= chunk_rows:
                        break
                else:
                    exhausted = True
                _dedup_blocks_into(cur, kept, result)
                continue
            try:
                with conn.transaction():  # a savepoint
                    n = 0
                    with cur.copy(COPY_EVENTS) as copy:
                        for block in it:
                            kept.append(block)  # before writing: a refused chunk is retried
                            if block.rows:
                                copy.write(block.data)
                            n += block.rows
                            if n >= chunk_rows:
                                break
                        else:
                            exhausted = True
            except errors.UniqueViolation:
                conflicts_in_a_row += 1
                _dedup_blocks_into(cur, kept, result)
                continue
            conflicts_in_a_row = 0
            result.valid += n
            result.inserted += n
        _reject_forgotten(cur, result)
    return result


def _dedup_blocks_into(cur: psycopg.Cursor, blocks: list[CopyBlock], result: WriteResult) -> None:
    n = sum(block.rows for block in blocks)
    if not n:
        return
    cur.execute(
        "create temporary table if not exists _incoming_events (like raw.events_shape) on commit delete rows"
    )
    cur.execute("truncate _incoming_events")
    with cur.copy(COPY_INCOMING) as copy:
        for block in blocks:
            if block.rows:
                copy.write(block.data)
    cur.execute(
        sql.SQL(
            "insert into raw.events ({cols}) select distinct on (event_id) {cols} from _incoming_events "
            "order by event_id on conflict (event_id) do nothing"
        ).format(cols=_COLUMNS)
    )
    result.valid += n
    result.inserted += cur.rowcount


def _dedup_into(cur: psycopg.Cursor, chunk: list[Sequence[Any]], want_ids: bool, result: WriteResult) -> None:
    inserted = _insert_deduplicated(cur, chunk, want_ids)
    result.valid += len(chunk)
    if isinstance(inserted, list):
        result.inserted += len(inserted)
        if result.inserted_ids is not None:
            result.inserted_ids.extend(inserted)
    else:
        result.inserted += inserted


def write_rejections(conn: psycopg.Connection, rejections: Iterable[Rejection]) -> int:
    """Insert rejects (idempotent on payload + source + position) in the caller's transaction."""
    rows = [(r.rejected_id, r.payload, r.reason, r.source, r.line_number) for r in rejections]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into raw.events_rejected (rejected_id, payload, reason, source, line_number) "
                "values (%s, %s, %s, %s, %s) on conflict (rejected_id) do nothing",
                rows,
            )
    return len(rows)
