-- Audience tables. Idempotent (run by `pulse up`).
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
