-- Activation: syncs of audiences to destinations and their run log. Idempotent (run by `pulse up`).
-- Shared by batch syncs (pulse.activation.engine) and real-time triggers: a run is one delivery session
-- of one sync or trigger to one destination; its records are the rows it planned and what became of them.
create schema if not exists activation;

-- The YAML syncs in campaigns/syncs/, as last synced by `pulse sync` (secrets are never stored here).
create table if not exists activation.sync_definitions (
    sync_name     text primary key,
    audience_name text not null,
    destination   text not null,             -- destination kind: webhook, file_drop, meta, klaviyo, braze
    mode          text not null check (mode in ('mirror', 'upsert', 'events')),
    definition    jsonb not null,            -- the validated YAML, as written
    synced_at     timestamptz not null
);

create table if not exists activation.sync_runs (
    run_id           text primary key,
    sync_name        text not null,
    kind             text not null default 'sync',  -- 'sync' (batch) or 'trigger' (real-time)
    destination      text not null,
    mode             text not null,
    dry_run          boolean not null default false,
    started_at       timestamptz not null,
    finished_at      timestamptz,
    status           text not null check (status in
                        ('running', 'success', 'partial', 'failed', 'interrupted', 'dry_run')),
    planned          bigint not null default 0,   -- adds + removes + updates + skipped
    adds             bigint not null default 0,
    removes          bigint not null default 0,
    updates          bigint not null default 0,
    sent             bigint not null default 0,   -- rows delivered in at least one request
    accepted         bigint not null default 0,
    rejected         bigint not null default 0,
    retried          bigint not null default 0,   -- requests repeated after a 429, 5xx or network error
    skipped_consent  bigint not null default 0,
    skipped_other    bigint not null default 0,   -- no identifier the destination needs
    dead_lettered    bigint not null default 0,   -- rejected too often: no longer planned
    resumed_from     text,                        -- an interrupted run this one picked up after
    duration_seconds double precision,
    error            text
);
-- Customers at the destination when the run ended (batch syncs: the sync's state; null for triggers):
-- the report's "audience size at the destination over time". Added after the first release.
alter table activation.sync_runs add column if not exists destination_size bigint;
create index if not exists sync_runs_sync_idx on activation.sync_runs (sync_name, started_at desc);

-- One row per planned change and what became of it.
create table if not exists activation.sync_records (
    run_id          text not null,
    record_key      text not null,            -- idempotency key: sync, customer, operation, version
    customer_id     text not null,
    operation       text not null check (operation in ('add', 'remove', 'update')),
    status          text not null check (status in ('accepted', 'rejected', 'skipped', 'dead_letter')),
    http_status     integer,
    error           text,                     -- the destination's reason (or why skipped)
    attempts        integer not null default 0,
    last_attempt_at timestamptz,
    primary key (run_id, record_key)
);
-- No index on customer_id: every accepted row is written here by the per-batch checkpoint, and a second
-- index made that write about a third slower (bench/activation); nothing in Pulse looks records up by
-- customer. An operator who does often can add one.
drop index if exists activation.sync_records_customer_idx;

-- What each sync last delivered: the diff's "before". A row changes only when the destination accepted
-- the change, in the same transaction as that batch's sync_records (the per-batch checkpoint).
create table if not exists activation.sync_state (
    sync_name   text not null,
    customer_id text not null,
    is_present  boolean not null,             -- at the destination now
    fingerprint text not null,                -- md5 of the mapped fields last delivered
    fields      jsonb not null,               -- those fields (a removal needs the identifiers it was added by)
    version     integer not null,             -- changes delivered so far (part of the idempotency key)
    updated_at  timestamptz not null,
    primary key (sync_name, customer_id)
);

-- Rows the destination keeps rejecting: carried into the next runs until `failures` reaches
-- PULSE_ACTIVATION_MAX_ROW_FAILURES, then dead-lettered (no longer planned until the row changes).
create table if not exists activation.sync_failures (
    sync_name     text not null,
    customer_id   text not null,
    operation     text not null,
    fingerprint   text not null,
    failures      integer not null,
    last_error    text,
    last_run_id   text not null,
    is_dead       boolean not null default false,
    primary key (sync_name, customer_id)
);

-- A run's plan (the diff), written once so a dry run can show it and a run can stream it in batches.
-- Scratch: unlogged, emptied when its run ends.
create unlogged table if not exists activation.sync_plan (
    run_id      text not null,
    seq         bigint not null,
    record_key  text not null,
    customer_id text not null,
    operation   text not null,
    fields      jsonb not null,
    fingerprint text not null,
    skip_reason text,                         -- 'consent' or 'no identifier': planned, not sent
    primary key (run_id, seq)
);
-- Rows are found by (run_id, seq) only: a batch is a seq range, a record's seq its place in it. (An index
-- on record_key made writing a million-row plan slower; dropped.)
drop index if exists activation.sync_plan_key_idx;
