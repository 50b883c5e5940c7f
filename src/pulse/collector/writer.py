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

A writer thread never dies of an error: whatever a group's write raises, that group's requests are
answered 503 and the thread takes the next group. Only data errors (SQLSTATE classes 22 and 23: a value
PostgreSQL refuses) send a group down the one-request-then-one-row path where refused rows become
rejects; errors of the environment (read-only failover, a missing table, a revoked privilege, a lost
connection) never turn rows into rejects. The queue is bounded in rows and in bytes; a request that gave
up waiting (its future cancelled) is dropped before it is written. `health()` says whether every writer
is alive and how long the oldest request has waited.

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
from concurrent.futures import Future, InvalidStateError
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
    size: int = 0  # bytes of the request's events, for the queue's bound
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class WriterStats:
    commits: int = 0
    rows: int = 0
    inserted: int = 0
    rejected: int = 0
    failures: int = 0
    dropped: int = 0  # requests that gave up waiting before they were written
    hook_batches_dropped: int = 0
    last_error: str | None = None  # for the log and authenticated callers, never /health's public answer
    database_up: bool = True
    last_failure_at: float | None = None  # time.monotonic() of the last failed group
    last_success_at: float | None = None


def is_data_error(error: Exception) -> bool:
    """A value PostgreSQL refuses (SQLSTATE class 22, data exception; 23, integrity constraint): the
    row is at fault, not the environment."""
    state = getattr(error, "sqlstate", None) or ""
    return state[:2] in ("22", "23")


def refusal_reason(error: Exception) -> str:
    """Why PostgreSQL refused a row, without the row: its DETAIL and CONTEXT quote the values."""
    diag = getattr(error, "diag", None)
    message = (getattr(diag, "message_primary", None) or type(error).__name__).strip()
    return f"database refused the row: SQLSTATE {getattr(error, 'sqlstate', None)}: {message}"


class GroupCommitWriter:
    def __init__(
        self,
        url: str,
        hooks: Sequence[Hook] = (),
        max_rows: int = 20_000,
        max_queued_rows: int = 500_000,
        max_queued_bytes: int = 256 * 1024 * 1024,
        connect_timeout: float = 3.0,
        hook_queue_size: int = 1_000,
        writers: int = 2,
    ):
        self.url = url
        self.hooks: list[Hook] = list(hooks)
        self.max_rows = max_rows
        self.max_queued_rows = max_queued_rows
        self.max_queued_bytes = max_queued_bytes
        self.connect_timeout = connect_timeout
        self.stats = WriterStats()
        self._jobs: deque[_Job] = deque()
        self._queued_rows = 0
        self._queued_bytes = 0
        self._busy_since: dict[str, float] = {}  # writer thread -> when it took its current group
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
    def submit(self, rows: list[tuple], rejections: list[Rejection], size: int = 0) -> Future:
        """Queue a request's rows; its future resolves after COMMIT. Cancel the future to withdraw it."""
        job = _Job(rows, rejections, size)
        with self._cond:
            if self._closing:
                raise Unavailable("the collector is shutting down")
            if (
                self._queued_rows + len(rows) > self.max_queued_rows
                or self._queued_bytes + size > self.max_queued_bytes
            ):
                raise Unavailable(f"{self._queued_rows:,} events are waiting to be written; try again")
            self._jobs.append(job)
            self._queued_rows += len(rows)
            self._queued_bytes += size
            self._cond.notify()
        return job.future

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    def health(self) -> dict[str, Any]:
        """Writers alive, and the longest a request now queued or being written has waited (seconds)."""
        now = time.monotonic()
        with self._cond:
            waits = [now - self._jobs[0].queued_at] if self._jobs else []
            waits += [now - since for since in self._busy_since.values()]
        return {
            "writers_alive": sum(t.is_alive() for t in self._threads),
            "writers": len(self._threads),
            "oldest_wait_seconds": round(max(waits, default=0.0), 3),
            "queued_events": self._queued_rows,
            "queued_bytes": self._queued_bytes,
        }

    # -- the writer thread --------------------------------------------------------------------------
    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._jobs:
                if self._closing:
                    return None
                self._cond.wait()
            jobs: list[_Job] = []
            n = 0
            while self._jobs and (not jobs or n + len(self._jobs[0].rows) <= self.max_rows):
                job = self._jobs.popleft()
                self._queued_rows -= len(job.rows)
                self._queued_bytes -= job.size
                # From here on the request can no longer be withdrawn; one that already was is dropped.
                if not job.future.set_running_or_notify_cancel():
                    self.stats.dropped += 1
                    continue
                jobs.append(job)
                n += len(job.rows)
            if jobs:
                self._busy_since[threading.current_thread().name] = time.monotonic()
            return jobs

    def _connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._local.conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout))
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
            while (jobs := self._take()) is not None:
                if jobs:
                    try:
                        self._write_group(jobs)
                    except Exception as error:  # noqa: BLE001 - a writer must outlive any one group
                        self._fail(jobs, error)
                    finally:
                        with self._cond:
                            self._busy_since.pop(threading.current_thread().name, None)
        finally:
            self._drop_connection()

    def _write_group(self, jobs: list[_Job]) -> None:
        try:
            inserted = self._write(jobs)
        except psycopg.Error as error:
            if not is_data_error(error):
                self._fail(jobs, error)
                return
            # Some row the contract let through and PostgreSQL refused. Write each request on its own
            # so one bad request cannot block everyone else's.
            log.warning("group write failed (%s); writing requests one by one", refusal_reason(error))
            one_by_one = self._write_one_by_one(jobs)
            if one_by_one is None:
                return
            inserted = one_by_one
        self.stats.database_up, self.stats.last_error = True, None
        self.stats.last_success_at = time.monotonic()
        for job in jobs:
            _resolve(job, len(job.rows))
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
        for n, job in enumerate(jobs):
            try:
                try:
                    inserted += self._write([job])
                except psycopg.Error as error:
                    if not is_data_error(error):
                        raise
                    inserted += self._write_rows_individually(job)
            except Exception as error:  # noqa: BLE001 - the environment, not a row: 503 for the rest
                self._fail(jobs[n:], error)
                return None
            _resolve(job, len(job.rows))
        return inserted

    def _write_rows_individually(self, job: _Job) -> list[tuple]:
        """Last resort: each row in its own transaction; rows PostgreSQL refuses as data (classes 22 and
        23) become rejects with the reason (not the values), so nothing is lost and the request can be
        answered. Any other error is the environment's and is raised."""
        conn = self._connection()
        good, rejections = [], list(job.rejections)
        for row in job.rows:
            try:
                with conn.transaction():
                    write_events(conn, [row], chunk_size=1)
                good.append(row)
            except psycopg.Error as error:
                if not is_data_error(error):
                    raise
                payload = dict(zip(EVENT_COLUMNS, map(str, row), strict=True))
                rejections.append(Rejection.of(repr(payload), refusal_reason(error), row[-1], None))
        with conn.transaction():
            write_rejections(conn, rejections)
        return good

    def _fail(self, jobs: list[_Job], error: Exception) -> None:
        self._drop_connection()
        self.stats.failures += 1
        self.stats.database_up = isinstance(error, psycopg.Error) and not isinstance(
            error, psycopg.OperationalError
        )
        self.stats.last_failure_at = time.monotonic()
        self.stats.last_error = f"{type(error).__name__}: {error}".strip()
        log.warning("could not write %d request(s): %s", len(jobs), self.stats.last_error)
        for job in jobs:
            _resolve(job, error=Unavailable("the warehouse could not store the events now; retry"))
        time.sleep(0.05)  # do not spin on a database that refuses connections

    def failing(self, within: float) -> bool:
        """Whether the last group written failed, less than `within` seconds ago."""
        failed, ok = self.stats.last_failure_at, self.stats.last_success_at
        return failed is not None and (ok is None or failed > ok) and time.monotonic() - failed < within

    # -- hooks ----------------------------------------------------------------------------------------
    def _run_hooks(self) -> None:
        while (rows := self._hook_queue.get()) is not None:
            records = [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows]
            for hook in self.hooks:
                try:
                    hook(records)
                except Exception:  # noqa: BLE001 - a hook must never take the collector down
                    log.exception("collector hook %r failed", hook)


def _resolve(job: _Job, result: int | None = None, error: Exception | None = None) -> None:
    """Answer a request's future, whatever state it is in (a resolved future raises on a second answer)."""
    try:
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
    except InvalidStateError:
        pass
