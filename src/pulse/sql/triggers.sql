-- Real-time triggered campaigns (pulse.triggers). Idempotent (run by `pulse up` and the collector).
create schema if not exists activation;

-- The YAML definitions in campaigns/triggers/, as last synced, and each trigger's state: `paused`
-- triggers take no new entries and send nothing (their due timers are recorded as suppressed).
create table if not exists activation.trigger_definitions (
    trigger_name text primary key,
    description  text not null,
    definition   jsonb not null,            -- the validated YAML (durations in seconds)
    status       text not null default 'active' check (status in ('active', 'paused')),
    synced_at    timestamptz not null,
    status_at    timestamptz not null default now()
);

-- Durable timers: one row per (trigger, customer, entry event), whatever the outcome. `fire_at` is the
-- end of the wait plus the grace period; the dispatcher claims due rows with FOR UPDATE SKIP LOCKED.
create table if not exists activation.trigger_timers (
    timer_key      text primary key,        -- trigger:customer:entry event id (the idempotency key)
    trigger_name   text not null,
    customer_id    text not null,
    entry_event_id text not null,
    entry_at       timestamptz not null,    -- the entry event's time
    wait_until     timestamptz not null,    -- entry_at + wait: cancelling events timed before it cancel
    fire_at        timestamptz not null,    -- wait_until + grace: when the timer is due
    "group"        text not null check ("group" in ('treatment', 'holdout')),
    status         text not null check (status in ('pending', 'cancelled', 'fired', 'held_out', 'suppressed', 'failed')),
    payload        jsonb not null,
    attempts       integer not null default 0,
    created_at     timestamptz not null default clock_timestamp(),
    done_at        timestamptz,             -- when it fired, was cancelled, held out or failed
    cancel_event_id text,
    http_status    integer,
    error          text
);
create index if not exists trigger_timers_due_idx on activation.trigger_timers (fire_at) where status = 'pending';
create index if not exists trigger_timers_customer_idx on activation.trigger_timers (customer_id, trigger_name, entry_at);

-- The log: every entry, firing, suppression (cap, consent, holdout, condition, paused) and cancellation.
-- (timer_key, action) is unique, so replaying the stream after a crash logs nothing twice.
create table if not exists activation.trigger_events (
    trigger_event_id bigserial primary key,
    timer_key      text not null,
    trigger_name   text not null,
    customer_id    text not null,
    entry_event_id text not null,
    action         text not null check (action in (
        'entered', 'fired', 'held_out', 'cancelled', 'late_cancel_ignored', 'failed',
        'suppressed_cap', 'suppressed_consent', 'suppressed_condition', 'suppressed_paused')),
    reason         text,
    event_id       text,                    -- the event behind the action (entry, cancel)
    http_status    integer,
    logged_at      timestamptz not null default clock_timestamp(),
    unique (timer_key, action)
);
create index if not exists trigger_events_trigger_idx on activation.trigger_events (trigger_name, logged_at);

-- Cancelling events seen on the stream (only the event names some trigger cancels on), so an entry
-- processed after its cancelling event (out of order, or replayed) is cancelled at once. Kept for the
-- longest wait plus grace, then deleted by the engine.
create table if not exists activation.trigger_signals (
    event_id    text primary key,
    customer_id text not null,
    event_name  text not null,
    event_at    timestamptz not null,
    seen_at     timestamptz not null default clock_timestamp()
);
create index if not exists trigger_signals_customer_idx on activation.trigger_signals (customer_id, event_at);

-- Where the trigger worker's evaluation got to (pulse.triggers.stream): `position` is the snapshot of
-- its last read, saved with the decisions of that read, so a kill -9 loses no entry or cancellation and
-- a restart reads on from there; `processed_at` is when that read was saved.
create table if not exists activation.trigger_stream (
    consumer     text primary key,
    processed_at timestamptz not null
);
alter table activation.trigger_stream add column if not exists position pg_snapshot;

-- Lift per trigger: treatment (fired) versus holdout (held out at the same moment), conversion within
-- the trigger's outcome window after the due time, for cohorts whose window has passed.
create table if not exists activation.trigger_lift (
    trigger_name          text primary key,
    measured_at           timestamptz not null,
    outcome_event         text not null,
    outcome_seconds       integer not null,
    treatment_customers   integer not null,
    holdout_customers     integer not null,
    treatment_conversion  double precision not null,
    holdout_conversion    double precision not null,
    absolute_lift         double precision not null,
    absolute_lift_ci_low  double precision not null,
    absolute_lift_ci_high double precision not null,
    relative_lift         double precision,
    relative_lift_ci_low  double precision,
    relative_lift_ci_high double precision,
    treatment_revenue     double precision not null,
    holdout_revenue       double precision not null,
    revenue_lift          double precision not null,
    revenue_lift_ci_low   double precision not null,
    revenue_lift_ci_high  double precision not null
);
-- Fieller's interval of the relative lift, as the audiences' readout has it (added after the first release).
alter table activation.trigger_lift add column if not exists relative_lift_ci_low double precision;
alter table activation.trigger_lift add column if not exists relative_lift_ci_high double precision;

-- Scores by customer: trigger conditions read each task's latest score of a few customers at a time.
do $$
begin
    if to_regclass('ml.scores') is not null then
        create index if not exists scores_customer_idx on ml.scores (customer_id, model_name, as_of desc);
    end if;
end
$$;
