"""The sync engine: plan a sync as a diff against what it last delivered, send the plan in checkpointed
batches, log every row.

1. Plan (one SQL statement, into `activation.sync_plan`): the audience's treatment members (never the
   holdout), merge-joined on customer_id with `activation.sync_state` (what the destination holds after
   the last accepted change). Adds, removes, updates (upsert mode: changed fields), and rows skipped for
   consent or for lacking the identifier the destination matches on. A customer who no longer has the
   required consent but is at the destination is removed. Dead-lettered rows (rejected
   PULSE_ACTIVATION_MAX_ROW_FAILURES times with the same fields) are left out until their fields change;
   rows rejected fewer times are planned again: carried into the next run by the diff itself.
2. Send (`pulse.activation.delivery`): batches of `batch_size` under the destination's rate limit and
   concurrency.
3. Checkpoint each batch in one transaction (`pulse.activation.checkpoint`): its `sync_records` rows,
   the accepted rows into `sync_state`, the rejected ones into `sync_failures`, on two writer threads
   beside the sending (the warehouse's work overlaps the next requests; one answered batch waits at
   most). A sync killed midway resends at most the batches in flight or answered but not yet
   checkpointed (concurrency + 3); the next run's diff plans exactly those again, under the same
   idempotency keys (sync, customer, operation, version, fields), so a resent row is harmless.

One run of a sync at a time (a PostgreSQL advisory lock held by the run's session; a killed run's lock
goes with its connection).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa

from pulse.activation import runlog
from pulse.activation.checkpoint import Checkpoint, InBackground
from pulse.activation.delivery import DeliveryStats, RetryPolicy, deliver
from pulse.activation.destinations import Record, create, destination_class
from pulse.activation.syncs import SyncDefinition, load_syncs, store_syncs, syncs_dir
from pulse.config import Settings, get_settings
from pulse.db import engine

# The plan's fields are read as text and decoded here: psycopg2's json typecaster costs several times more.
_decode = msgspec.json.Decoder(dict).decode
PREVIEW_REQUESTS = 3
PREVIEW_ROWS = 3


class SyncError(RuntimeError):
    """A sync cannot run (its audience's columns, another run holding it); the message says why."""


@dataclass
class SyncResult:
    sync: str
    run_id: str
    status: str
    counts: runlog.RunCounts
    plan_seconds: float
    duration_seconds: float
    previews: list[dict] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"sync": self.sync, "run_id": self.run_id, "status": self.status, **asdict(self.counts)}


def _columns(conn, table: str) -> set[str]:
    schema, name = table.split(".")
    return set(
        conn.execute(
            sa.text(
                "select column_name from information_schema.columns where table_schema = :s and table_name = :t"
            ),
            {"s": schema, "t": name},
        ).scalars()
    )


def _field_sql(conn, sync: SyncDefinition) -> tuple[str, bool, dict[str, str]]:
    """`jsonb_build_object(...)` of the mapped fields (over `m.` members and `i.` inputs columns), whether
    audience_inputs must be joined, and each field's source column."""
    members = _columns(conn, "audiences.audience_members")
    if not members:
        raise SyncError("audiences.audience_members does not exist yet: run `pulse audiences` first")
    inputs = _columns(conn, "audiences.audience_inputs")
    parts, join, sources = [], False, {}
    for target, column in sync.fields.items():
        if column in members:
            source = f'm."{column}"'
        elif column in inputs:
            source, join = f'i."{column}"', True
        else:
            raise SyncError(
                f"sync {sync.name}: field {target!r} maps {column!r}, a column of neither "
                "audiences.audience_members nor audiences.audience_inputs"
            )
        parts.append(f"'{target}', {source}")
        sources[target] = source
    return (f"jsonb_build_object({', '.join(parts)})" if parts else "'{}'::jsonb"), join, sources


# The diff decides on keys and flags, carrying the mapped columns raw; the fields (and their
# fingerprint) are built for the changed rows only: at a million members, building and hashing them for
# everyone was most of the plan. Upsert mode compares fingerprints, so {upsert_desired} / {upsert_state}
# add them for everyone there. A removal sends the fields the destination holds (one index lookup each).
_PLAN_SQL = """
insert into activation.sync_plan (run_id, seq, record_key, customer_id, operation, fields, fingerprint, skip_reason)
with desired as (
    select m.customer_id, {identified} as is_identified {raw} {upsert_desired}
    from audiences.audience_members m {join}
    where m.audience_name = :audience and m."group" = 'treatment'
),
candidates as ({candidates}),
state as (
    select customer_id, is_present, version {upsert_state}
    from activation.sync_state where sync_name = :sync
),
diff as materialized (
    select * from (
        select coalesce(d.customer_id, s.customer_id) as customer_id,
            case
                when d.is_consented and d.is_identified then
                    case when s.is_present is not true then 'add' {update_when} end
                when s.is_present then 'remove'
                when d.customer_id is not null then 'add'
            end as operation,
            case
                when d.is_consented and d.is_identified then null
                when s.is_present then null
                when d.customer_id is not null and not d.is_consented then 'consent'
                when d.customer_id is not null then 'no identifier'
            end as skip_reason,
            coalesce(d.is_consented and d.is_identified, false) or s.customer_id is null as is_desired,
            coalesce(s.version, 0) as version {carry}
        from candidates d full join state s using (customer_id)
    ) k
    where operation is not null
),
fingerprinted as materialized (
    select customer_id, operation, skip_reason, version, fields, md5(fields::text) as fingerprint
    from (
        select c.*, case when is_desired then {fields} else coalesce((
            select s.fields from activation.sync_state s where s.sync_name = :sync and s.customer_id = c.customer_id
        ), {fields}) end as fields
        from diff c
    ) c
)
select :run_id, row_number() over (order by skip_reason nulls first, operation, customer_id),
    md5(:sync || '|' || customer_id || '|' || operation || '|' || (version + 1) || '|' || fingerprint),
    customer_id, operation, fields, fingerprint, skip_reason
from fingerprinted x
where not exists (
    select 1 from activation.sync_failures f
    where f.sync_name = :sync and f.customer_id = x.customer_id and f.is_dead
      and f.fingerprint = x.fingerprint and f.operation = x.operation)
"""

_ANALYZE_STALE_STATE = sa.text("""
do $$ begin
    if (select n_mod_since_analyze > 1000 + 0.1 * greatest(n_live_tup - n_mod_since_analyze, 0)
        from pg_stat_user_tables where relid = 'activation.sync_state'::regclass) then
        analyze activation.sync_state;
    end if;
end $$
""")
# Without consent signals to read, every member's consent is the same constant (no join per member).
_CONSENT_SQL = """
select d.*,
    coalesce(c.denied = 0 and (c.granted = :required or :allow_unknown), :allow_unknown or :required = 0)
        as is_consented
from desired d left join (
    select customer_id, count(*) filter (where is_granted) as granted,
        count(*) filter (where not is_granted) as denied
    from marts.customer_consent where category = any(:categories) group by customer_id
) c using (customer_id)
"""
_NO_CONSENT_SQL = "select d.*, :allow_unknown or :required = 0 as is_consented from desired d"


def plan(conn, sync: SyncDefinition, run_id: str, settings: Settings) -> runlog.RunCounts:
    """Write the run's plan into activation.sync_plan; its counts."""
    fields, join, sources = _field_sql(conn, sync)
    identifiers = [f for f in destination_class(sync.kind).identifiers if f in sync.fields]
    if destination_class(sync.kind).identifiers and not identifiers:
        raise SyncError(
            f"sync {sync.name}: {sync.kind} matches on one of "
            f"{list(destination_class(sync.kind).identifiers)}; map at least one in `fields`"
        )
    identified = " or ".join(f"({sources[f]}) is not null" for f in identifiers) or "true"
    has_consent = bool(
        conn.execute(sa.text("select to_regclass('marts.customer_consent') is not null")).scalar()
    )
    # The state's statistics, when the last runs changed much of it since autovacuum last looked (a first
    # run of 1M rows left them at "empty": the diff then read the state by bitmap and took 14 s, not 11).
    conn.execute(_ANALYZE_STALE_STATE)
    # A million-row diff sorts both sides: in memory, not spilled in 4 MB runs; no JIT (seconds of
    # compiling for one statement).
    conn.execute(sa.text("set local work_mem = '256MB'"))
    conn.execute(sa.text("set local jit = off"))
    # Merge joins over sorted keys beat hash joins here (at 1M members, 4.5 s against 8.2 s for the same
    # joins at load 9): a million-entry hash table misses the CPU caches on every probe.
    conn.execute(sa.text("set local enable_hashjoin = off"))
    upsert = sync.mode == "upsert"
    raw = {target: f'"f_{n}"' for n, target in enumerate(sources)}  # each field's column, carried raw
    sql = _PLAN_SQL.format(
        fields="jsonb_build_object(" + ", ".join(f"'{t}', c.{c}" for t, c in raw.items()) + ")"
        if raw
        else "'{}'::jsonb",
        raw="".join(f", {sources[t]} as {c}" for t, c in raw.items()),
        carry="".join(f", d.{c}" for c in raw.values()),
        join="left join audiences.audience_inputs i using (customer_id)" if join else "",
        candidates=_CONSENT_SQL if sync.consent and has_consent else _NO_CONSENT_SQL,
        identified=identified,
        upsert_desired=f", md5(({fields})::text) as fingerprint" if upsert else "",
        upsert_state=", fingerprint" if upsert else "",
        update_when="when s.fingerprint <> d.fingerprint then 'update'" if upsert else "",
    )
    conn.execute(
        sa.text(sql),
        {
            "run_id": run_id,
            "sync": sync.name,
            "audience": sync.audience,
            "mode": sync.mode,
            "categories": sync.consent,
            "required": len(sync.consent),
            "allow_unknown": settings.consent_default == "allow",
        },
    )
    row = conn.execute(
        sa.text(
            "select count(*), count(*) filter (where skip_reason is null and operation = 'add'), "
            "count(*) filter (where skip_reason is null and operation = 'remove'), "
            "count(*) filter (where skip_reason is null and operation = 'update'), "
            "count(*) filter (where skip_reason = 'consent'), count(*) filter (where skip_reason = 'no identifier') "
            "from activation.sync_plan where run_id = :r"
        ),
        {"r": run_id},
    ).one()
    return runlog.RunCounts(
        planned=row[0],
        adds=row[1],
        removes=row[2],
        updates=row[3],
        skipped_consent=row[4],
        skipped_other=row[5],
    )


def _batches(
    conn, run_id: str, size: int, limit: int | None = None, ranges: dict[str, tuple[int, int]] | None = None
) -> Iterator[tuple[str, list[Record]]]:
    """The plan's rows to send, in order, as (batch key, records); the key hashes the rows' keys, so the
    same rows make the same batch key. `ranges` receives each batch's plan rows (first record key ->
    first and last seq) for the checkpoint."""
    result = conn.execution_options(stream_results=True, yield_per=size).execute(
        sa.text(
            "select record_key, customer_id, operation, fields::text, seq from activation.sync_plan "
            "where run_id = :r and skip_reason is null order by seq"
            + (f" limit {int(limit)}" if limit else "")
        ),
        {"r": run_id},
    )
    for part in result.partitions(size):
        records = [Record(k, c, op, _decode(f)) for k, c, op, f, _ in part]
        if ranges is not None:
            ranges[records[0].key] = (part[0][4], part[-1][4])
        yield hashlib.sha256("\n".join(r.key for r in records).encode()).hexdigest()[:32], records


def run_sync(
    sync: SyncDefinition,
    settings: Settings | None = None,
    dry_run: bool = False,
    policy: RetryPolicy | None = None,
) -> SyncResult:
    """Plan and (unless dry_run) deliver one sync; the run is logged either way."""
    settings = settings or get_settings()
    policy = policy or RetryPolicy(settings.activation_max_attempts, max_delay=settings.activation_max_delay)
    eng = engine(settings)
    started = time.monotonic()
    with eng.connect() as session:
        locked = session.execute(
            sa.text("select pg_try_advisory_lock(hashtext('pulse.sync'), hashtext(:s))"), {"s": sync.name}
        ).scalar()
        session.commit()
        if not locked:
            raise SyncError(f"sync {sync.name} is already running")
        try:
            return _run_locked(sync, settings, dry_run, policy, started)
        finally:
            session.execute(
                sa.text("select pg_advisory_unlock(hashtext('pulse.sync'), hashtext(:s))"), {"s": sync.name}
            )
            session.commit()


def _run_locked(sync, settings, dry_run, policy, started) -> SyncResult:
    eng = engine(settings)
    destination = create(
        sync.kind,
        {"audience": sync.audience, **sync.options},
        rate=sync.rate_per_second,
        concurrency=sync.concurrency,
    )
    with eng.begin() as conn:
        resumed = runlog.mark_interrupted(conn, sync.name)
        conn.execute(
            sa.text(
                "delete from activation.sync_plan p where not exists (select 1 from activation.sync_runs r "
                "where r.run_id = p.run_id and r.status = 'running')"
            )
        )
        run_id = runlog.start_run(
            conn, sync.name, sync.kind, sync.mode, dry_run=dry_run, resumed_from=resumed
        )
    error, previews = None, []
    try:
        with eng.begin() as conn:
            counts = plan(conn, sync, run_id, settings)
            conn.execute(
                sa.text(
                    "insert into activation.sync_records (run_id, record_key, customer_id, operation, status, error) "
                    "select run_id, record_key, customer_id, operation, 'skipped', skip_reason "
                    "from activation.sync_plan where run_id = :r and skip_reason is not null"
                ),
                {"r": run_id},
            )
        plan_seconds = time.monotonic() - started
        size = min(sync.batch_size or destination.max_batch, destination.max_batch)
        if dry_run:
            with eng.connect() as conn:
                for key, batch in _batches(conn, run_id, PREVIEW_ROWS, PREVIEW_ROWS * PREVIEW_REQUESTS):
                    hidden = [Record(r.key, _hash_id(r.customer_id), r.operation, r.fields) for r in batch]
                    previews.append(destination.preview(hidden, key, sync.mode))
        else:
            writer = Checkpoint(settings, sync, run_id, counts)
            checkpoint = InBackground(writer)
            stats = DeliveryStats()
            destination.start(run_id)
            ok = False
            try:
                try:
                    with eng.connect() as reader:
                        deliver(
                            destination,
                            _batches(reader, run_id, size, ranges=writer.ranges),
                            sync.mode,
                            checkpoint,
                            policy,
                            stats,
                        )
                finally:
                    checkpoint.close()  # what was answered is logged, even when the run stops on an error
                ok = True
            finally:
                counts.retried = stats.retried
                destination.finish(ok)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        plan_seconds = locals().get("plan_seconds", time.monotonic() - started)
        counts = locals().get("counts") or runlog.RunCounts()
        raise
    finally:
        destination.close()
        with eng.begin() as conn:
            status = runlog.finish_run(
                conn, run_id, counts, started, time.monotonic(), error, dry_run=dry_run
            )
            conn.execute(sa.text("delete from activation.sync_plan where run_id = :r"), {"r": run_id})
    return SyncResult(sync.name, run_id, status, counts, plan_seconds, time.monotonic() - started, previews)


def _hash_id(customer_id: str) -> str:
    return "sha256:" + hashlib.sha256(customer_id.encode()).hexdigest()[:16]


def run_syncs(
    name: str | None = None,
    dry_run: bool = False,
    settings: Settings | None = None,
    kinds: frozenset[str] | None = None,
    fresh: bool = False,
) -> list[SyncResult]:
    """Validate and store every sync in campaigns/syncs/, then run `name` (or every enabled one; only
    those with a destination of `kinds` when given). `fresh`: forget what the chosen syncs delivered
    before, so their first run sends every member again (`pulse demo`, whose audiences start over)."""
    settings = settings or get_settings()
    syncs = load_syncs(syncs_dir(settings))
    store_syncs(syncs, settings)
    if name is not None:
        chosen = [s for s in syncs if s.name == name]
        if not chosen:
            raise SyncError(f"no sync named {name!r}; defined: {', '.join(s.name for s in syncs) or 'none'}")
    else:
        chosen = [s for s in syncs if s.enabled and (kinds is None or s.kind in kinds)]
    if fresh and chosen:
        with engine(settings).begin() as conn:
            for table in ("activation.sync_state", "activation.sync_failures"):
                conn.execute(
                    sa.text(f"delete from {table} where sync_name = any(:names)"),
                    {"names": [s.name for s in chosen]},
                )
    return [run_sync(s, settings, dry_run=dry_run) for s in chosen]


def sync_names(settings: Settings | None = None) -> list[str]:
    """Enabled syncs (what the DAG maps a task over)."""
    settings = settings or get_settings()
    return [s.name for s in load_syncs(syncs_dir(settings)) if s.enabled]
