"""The per-batch checkpoint of a sync run (`pulse.activation.engine`): each answered batch's
`sync_records` rows, the accepted rows into `sync_state` and the rejected ones into `sync_failures`, in
one transaction, on writer threads beside the sending.

A batch is a range of the run's plan rows by seq (`activation.sync_plan`), its records in seq order, so
a fully accepted batch is copied from the plan in SQL by range, and any record's plan row is its seq.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

import sqlalchemy as sa

from pulse.activation import runlog
from pulse.activation.destinations import Outcome, Record
from pulse.activation.syncs import SyncDefinition
from pulse.config import Settings
from pulse.db import engine


class Checkpoint:
    """Called per completed batch: its records, state and failures in one transaction."""

    def __init__(self, settings: Settings, sync: SyncDefinition, run_id: str, counts: runlog.RunCounts):
        self.engine, self.sync, self.run_id, self.counts = engine(settings), sync, run_id, counts
        self.max_failures = settings.activation_max_row_failures
        with self.engine.connect() as conn:
            self.has_failures = bool(
                conn.execute(
                    sa.text("select exists (select 1 from activation.sync_failures where sync_name = :s)"),
                    {"s": sync.name},
                ).scalar()
            )
        self.ranges: dict[str, tuple[int, int]] = {}  # filled by _batches
        self.lock = threading.Lock()

    def __call__(self, batch: list[Record], outcomes: list[Outcome]) -> None:
        accepted = [o for o in outcomes if o.accepted]
        rejected = [o for o in outcomes if not o.accepted]
        params = {"sync": self.sync.name, "run": self.run_id}
        # The batch's rows are plan rows first..last by seq, in order: a record's plan row is its seq.
        first, last = self.ranges.pop(batch[0].key)
        seq_of = {r.key: first + i for i, r in enumerate(batch)} if len(outcomes) != len(accepted) else {}
        with self.engine.begin() as conn:
            by_answer: dict[tuple, list[Outcome]] = {}
            for o in accepted:
                by_answer.setdefault((o.http_status, o.attempts, o.last_attempt_at), []).append(o)
            for (http, attempts, at), rows in by_answer.items():
                answer = {**params, "http": http, "attempts": attempts, "at": at}
                if len(by_answer) == 1 and len(rows) == len(batch):
                    # The whole batch accepted in one answer (the usual case): its plan rows by seq range.
                    conn.execute(_ACCEPT_RANGE_SQL[self.has_failures], {**answer, "lo": first, "hi": last})
                else:
                    if not seq_of:
                        seq_of = {r.key: first + i for i, r in enumerate(batch)}
                    seqs = ",".join(str(seq_of[o.key]) for o in rows)
                    conn.execute(_ACCEPT_SEQS_SQL[self.has_failures], {**answer, "seqs": seqs})
            dead: list[str] = []
            if rejected:
                self.has_failures = True
                runlog.record_outcomes(conn, self.run_id, batch, rejected)
                failed = conn.execute(
                    _FAIL_SQL,
                    {
                        **params,
                        "seqs": [seq_of[o.key] for o in rejected],
                        "errors": [o.error for o in rejected],
                        "max": self.max_failures,
                    },
                ).all()
                dead_customers = {c for c, is_dead in failed if is_dead}
                dead = [r.key for r in batch if r.customer_id in dead_customers]
                if dead:
                    conn.execute(
                        sa.text(
                            "update activation.sync_records set status = 'dead_letter' "
                            "where run_id = :run and record_key = any(:keys)"
                        ),
                        {"run": self.run_id, "keys": dead},
                    )
            conn.execute(
                sa.text(
                    "update activation.sync_runs set sent = sent + :n, accepted = accepted + :a, "
                    "rejected = rejected + :r, dead_lettered = dead_lettered + :d where run_id = :run"
                ),
                {
                    "run": self.run_id,
                    "n": len(outcomes),
                    "a": len(accepted),
                    "r": len(rejected),
                    "d": len(dead),
                },
            )
        with self.lock:  # several writers
            self.counts.sent += len(outcomes)
            self.counts.accepted += len(accepted)
            self.counts.rejected += len(rejected)
            self.counts.dead_lettered += len(dead)


class InBackground:
    """Runs the checkpoint on `writers` threads, each with its own connection, so writing answered batches'
    log overlaps sending the next ones (the warehouse works on other cores; batches hold disjoint
    customers, so their transactions do not conflict). At most `depth` answered batches wait beside the
    ones being written; `close` writes every batch answered so far, then re-raises a writer's error."""

    def __init__(self, checkpoint: Checkpoint, depth: int = 1, writers: int = 2):
        self.checkpoint = checkpoint
        self.error: BaseException | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.threads = [
            threading.Thread(target=self._write, name=f"pulse-checkpoint-{n}", daemon=True)
            for n in range(writers)
        ]
        for thread in self.threads:
            thread.start()

    def _write(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.checkpoint(*item)
                except BaseException as error:  # re-raised by the delivering thread
                    self.error = error

    def __call__(self, batch: Sequence[Record], outcomes: list[Outcome]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((batch, outcomes))

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise self.error


# Accepted rows are copied from the plan in SQL: binding 10,000-element arrays per column cost more than
# the rest of a batch's delivery. {done} selects the batch's accepted plan rows.
_ACCEPT_SQL = """
with done as ({done}),
logged as (
    insert into activation.sync_records
        (run_id, record_key, customer_id, operation, status, http_status, error, attempts, last_attempt_at)
    select :run, record_key, customer_id, operation, 'accepted', :http, null, :attempts, :at from done
    on conflict (run_id, record_key) do update set status = excluded.status,
        http_status = excluded.http_status, error = null, attempts = excluded.attempts,
        last_attempt_at = excluded.last_attempt_at
){cleared}
insert into activation.sync_state (sync_name, customer_id, is_present, fingerprint, fields, version, updated_at)
select :sync, customer_id, operation <> 'remove', fingerprint, fields, 1, now() from done
on conflict (sync_name, customer_id) do update set is_present = excluded.is_present,
    fingerprint = excluded.fingerprint, fields = excluded.fields, version = sync_state.version + 1,
    updated_at = excluded.updated_at
"""
# An accepted row is no longer failing; skipped while the sync has no failures (10,000 index probes into an
# empty table were a tenth of a checkpoint).
_CLEARED = """,
cleared as (
    delete from activation.sync_failures f using done
    where f.sync_name = :sync and f.customer_id = done.customer_id
)"""


def _accept_sql(done: str) -> dict[bool, sa.TextClause]:
    """The accept statement over `done`, by whether the sync's failures must be cleared."""
    return {
        clear: sa.text(_ACCEPT_SQL.format(done=done, cleared=_CLEARED if clear else ""))
        for clear in (True, False)
    }


_ACCEPT_RANGE_SQL = _accept_sql(
    "select * from activation.sync_plan p where p.run_id = :run and p.seq between :lo and :hi "
    "and p.skip_reason is null"
)
# Some rows of the batch: one primary key lookup each (a LIMIT keeps the planner from hashing the whole
# plan for each batch: sync_plan is rewritten every run and its statistics are rarely current).
_ACCEPT_SEQS_SQL = _accept_sql(
    "select p.* from unnest(cast(string_to_array(:seqs, ',') as bigint[])) as k(seq) cross join lateral "
    "(select * from activation.sync_plan p where p.run_id = :run and p.seq = k.seq limit 1) p"
)

_FAIL_SQL = sa.text("""
insert into activation.sync_failures as f
    (sync_name, customer_id, operation, fingerprint, failures, last_error, last_run_id, is_dead)
select :sync, p.customer_id, p.operation, p.fingerprint, 1, k.error, :run, 1 >= :max
from unnest(cast(:seqs as bigint[]), cast(:errors as text[])) as k(seq, error)
cross join lateral (
    select * from activation.sync_plan p where p.run_id = :run and p.seq = k.seq limit 1
) p
on conflict (sync_name, customer_id) do update set
    failures = case when (f.operation, f.fingerprint) = (excluded.operation, excluded.fingerprint)
                    then f.failures + 1 else 1 end,
    is_dead = case when (f.operation, f.fingerprint) = (excluded.operation, excluded.fingerprint)
                   then f.failures + 1 else 1 end >= :max,
    operation = excluded.operation, fingerprint = excluded.fingerprint, last_error = excluded.last_error,
    last_run_id = excluded.last_run_id
returning f.customer_id, f.is_dead
""")
