-- Tables Pulse writes outside dbt. Idempotent: `pulse up` runs this every time.
create schema if not exists raw;
create schema if not exists ml;
create schema if not exists audiences;

-- One row per accepted event; message_id (Segment's messageId) is the idempotency key.
create table if not exists raw.events (
    event_id     text primary key,
    event_type   text not null,            -- track / identify / page / screen / alias / group
    event_name   text not null,            -- normalised: 'order_completed', 'page', 'identify', ...
    user_id      text,
    anonymous_id text,
    event_at     timestamptz not null,     -- when it happened (UTC)
    sent_at      timestamptz,
    received_at  timestamptz not null,
    properties   jsonb not null default '{}'::jsonb,
    traits       jsonb not null default '{}'::jsonb,
    context      jsonb not null default '{}'::jsonb,
    source       text not null,            -- file path or 'collector'
    loaded_at    timestamptz not null default now()
);
create index if not exists events_event_at_idx on raw.events (event_at);
create index if not exists events_loaded_at_idx on raw.events (loaded_at);

-- Everything that failed validation, with why and where from. rejected_id hashes source + payload so a
-- replayed file adds no duplicate rejects.
create table if not exists raw.events_rejected (
    rejected_id text primary key,
    payload     text not null,
    reason      text not null,
    source      text not null,
    line_number integer,
    rejected_at timestamptz not null default now()
);

create table if not exists ml.model_runs (
    run_id          text primary key,
    model_name      text not null,         -- e.g. 'purchase_propensity'
    algorithm       text not null,
    feature_service text not null,
    trained_at      timestamptz not null,
    train_cutoff    timestamptz not null,  -- training snapshots end before this
    holdout_at      timestamptz not null,  -- snapshot the holdout metrics are computed on
    label_days      integer not null,
    n_train         integer not null,
    n_holdout       integer not null,
    features        jsonb not null,
    is_champion     boolean not null default false,
    artifact        bytea not null         -- the fitted scikit-learn pipeline (joblib)
);

create table if not exists ml.model_metrics (
    run_id      text not null references ml.model_runs (run_id) on delete cascade,
    split       text not null,             -- 'holdout'
    metric      text not null,             -- 'auc', 'true_probability_auc', 'pr_auc', ...
    value       double precision not null,
    primary key (run_id, split, metric)
);

create table if not exists ml.scores (
    customer_id  text not null,
    model_name   text not null,
    run_id       text not null references ml.model_runs (run_id) on delete cascade,
    as_of        timestamptz not null,     -- feature snapshot time the score is for
    score        double precision not null,
    percentile   integer not null check (percentile between 1 and 100),
    scored_at    timestamptz not null,
    primary key (model_name, as_of, customer_id)
);

create table if not exists audiences.audience_definitions (
    audience_name text primary key,
    description   text not null,
    model_name    text not null,
    rule          text not null,
    holdout_pct   integer not null check (holdout_pct between 0 and 100)
);

create table if not exists audiences.audience_members (
    audience_name text not null references audiences.audience_definitions (audience_name),
    customer_id   text not null,
    "group"       text not null check ("group" in ('treatment', 'holdout')),
    score         double precision not null,
    percentile    integer not null,
    as_of         timestamptz not null,
    primary key (audience_name, customer_id)
);
