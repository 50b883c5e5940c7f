"""Group commit: many requests' events written by one COPY, acknowledged only after COMMIT.

Request handlers validate their events and `submit` the rows; a writer thread takes everything queued
since it last looked (up to `max_rows`), writes it with `pulse.events.load.write_events` (COPY,
idempotent on messageId) plus the rejects, commits, and only then resolves each request's future. So a
request is answered 200 only once its events are durable in PostgreSQL, and throughput depends on how
many events are waiting, not on how they were split into requests: while one transaction commits, the
next group gathers. `writers` threads (two by default, each with its own connection) overlap one
group's COPY with another's COMMIT (its fsync), so a slow disk does not serialise everything.

If PostgreSQL cannot be reached (or the outcome of a COMMIT is unknown) every waiting request fails
with `Unavailable` and the collector answers 503; clients retry, and messageId makes the retry harmless.

After each commit the *newly inserted* rows are handed to the `hooks` (callables taking a list of row
dicts keyed by `EVENT_COLUMNS`) on a separate thread, so a slow hook (the next step pushes real-time
features to Feast) never delays an acknowledgement. Hook batches beyond `hook_queue_size` are dropped
with a warning: the warehouse, not the hook, is the system of record.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pulse.events.contract import EVENT_COLUMNS
from pulse.events.load import Rejection, write_events, write_rejections

log = logging.getLogger(__name__)

Hook = Callable[[list[dict[str, Any]]], None]


class Unavailable(Exception):
    """The events could not be made durable now (database unreachable, overloaded, shutting down)."""


@dataclass
class _Job:
    rows: list[tuple]
    rejections: list[Rejection]
    future: Future = field(default_factory=Future)


@dataclass
class WriterStats:
    commits: int = 0
    rows: int = 0
    inserted: int = 0
    rejected: int = 0
    failures: int = 0
    hook_batches_dropped: int = 0
    last_error: str | None = None
    database_up: bool = True


class GroupCommitWriter:
    def __init__(
        self,
        url: str,
        hooks: Sequence[Hook] = (),
        max_rows: int = 20_000,
        max_queued_rows: int = 500_000,
        connect_timeout: float = 3.0,
        hook_queue_size: int = 1_000,
        writers: int = 2,
    ):
        self.url = url
        self.hooks: list[Hook] = list(hooks)
        self.max_rows = max_rows
        self.max_queued_rows = max_queued_rows
        self.connect_timeout = connect_timeout
        self.stats = WriterStats()
        self._jobs: deque[_Job] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closing = False
        self._local = threading.local()  # each writer thread has its own connection
        self._threads = [
            threading.Thread(target=self._run, name=f"pulse-writer-{n}", daemon=True) for n in range(writers)
        ]
        self._hook_queue: queue.Queue[list[tuple] | None] = queue.Queue(maxsize=hook_queue_size)
        self._hook_thread = threading.Thread(target=self._run_hooks, name="pulse-hooks", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> GroupCommitWriter:
        for thread in self._threads:
            thread.start()
        self._hook_thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking work, write what is queued, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._hook_queue.put(None)
        self._hook_thread.join(timeout)

    # -- producers (request handlers) -------------------------------------------------------------
    def submit(self, rows: list[tuple], rejections: list[Rejection]) -> Future:
        job = _Job(rows, rejections)
        with self._cond:
            if self._closing:
                raise Unavailable("the collector is shutting down")
            if self._queued_rows + len(rows) > self.max_queued_rows:
                raise Unavailable(f"{self._queued_rows:,} events are waiting to be written; try again")
            self._jobs.append(job)
            self._queued_rows += len(rows)
            self._cond.notify()
        return job.future

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    # -- the writer thread --------------------------------------------------------------------------
    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs:
                if self._closing:
                    return None
                self._cond.wait()
            jobs, n = [], 0
            while self._jobs and (not jobs or n + len(self._jobs[0].rows) <= self.max_rows):
                job = self._jobs.popleft()
                jobs.append(job)
                n += len(job.rows)
            self._queued_rows -= n
            return jobs

    def _connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._local.conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=self.connect_timeout
            )
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._local.conn = None

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._drop_connection()

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            try:
                inserted = self._write(jobs)
            except psycopg.OperationalError as error:
                self._fail(jobs, error)
                continue
            except psycopg.Error as error:
                # Not the connection: some row the contract let through and PostgreSQL refused. Write
                # each request on its own so one bad request cannot block everyone else's.
                log.warning("group write failed (%s); writing requests one by one", error)
                inserted = self._write_one_by_one(jobs)
                if inserted is None:
                    continue
            self.stats.database_up, self.stats.last_error = True, None
            for job in jobs:
                if not job.future.done():
                    job.future.set_result(len(job.rows))
            if self.hooks and inserted:
                try:
                    self._hook_queue.put_nowait(inserted)
                except queue.Full:
                    self.stats.hook_batches_dropped += 1
                    log.warning("hooks are behind; dropped a batch of %d rows for them", len(inserted))

    def _write(self, jobs: list[_Job]) -> list[tuple]:
        rows = [row for job in jobs for row in job.rows]
        rejections = [r for job in jobs for r in job.rejections]
        conn = self._connection()
        with conn.transaction():
            result = write_events(conn, rows, chunk_size=max(len(rows), 1), want_ids=bool(self.hooks))
            write_rejections(conn, rejections)
        self.stats.commits += 1
        self.stats.rows += len(rows)
        self.stats.inserted += result.inserted
        self.stats.rejected += len(rejections)
        if not self.hooks:
            return []
        new = set(result.inserted_ids or ())
        return [row for row in rows if row[0] in new]

    def _write_one_by_one(self, jobs: list[_Job]) -> list[tuple] | None:
        inserted: list[tuple] = []
        for job in jobs:
            try:
                inserted += self._write([job])
            except psycopg.OperationalError as error:
                self._fail([j for j in jobs if not j.future.done()], error)
                return None
            except psycopg.Error:
                try:
                    inserted += self._write_rows_individually(job)
                except psycopg.OperationalError as error:
                    self._fail([j for j in jobs if not j.future.done()], error)
                    return None
            job.future.set_result(len(job.rows))
        return inserted

    def _write_rows_individually(self, job: _Job) -> list[tuple]:
        """Last resort: each row in its own transaction; rows PostgreSQL refuses become rejects with its
        reason, so nothing is lost and the request can still be answered."""
        conn = self._connection()
        good, rejections = [], list(job.rejections)
        for row in job.rows:
            try:
                with conn.transaction():
                    write_events(conn, [row], chunk_size=1)
                good.append(row)
            except psycopg.OperationalError:
                raise
            except psycopg.Error as error:
                payload = dict(zip(EVENT_COLUMNS, map(str, row), strict=True))
                reason = f"database refused the row: {str(error).strip()}"
                rejections.append(Rejection.of(repr(payload), reason, row[-1], None))
        with conn.transaction():
            write_rejections(conn, rejections)
        return good

    def _fail(self, jobs: list[_Job], error: Exception) -> None:
        self._drop_connection()
        self.stats.failures += 1
        self.stats.database_up = False
        self.stats.last_error = f"{type(error).__name__}: {error}".strip()
        log.warning("could not write %d request(s): %s", len(jobs), self.stats.last_error)
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(Unavailable("the warehouse is unavailable; retry"))
        time.sleep(0.05)  # do not spin on a database that refuses connections

    # -- hooks ----------------------------------------------------------------------------------------
    def _run_hooks(self) -> None:
        while (rows := self._hook_queue.get()) is not None:
            records = [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows]
            for hook in self.hooks:
                try:
                    hook(records)
                except Exception:  # noqa: BLE001 - a hook must never take the collector down
                    log.exception("collector hook %r failed", hook)
