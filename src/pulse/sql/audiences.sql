-- Audience tables Pulse writes from Python. Idempotent (run by `pulse up`). audiences.audience_members
-- itself is a dbt model (dbt_project/models/audiences/audience_members.sql).

-- The YAML definitions in campaigns/audiences/, as last synced by `pulse audiences`.
create table if not exists audiences.audience_definitions (
    audience_name text primary key,
    description   text not null,
    rule          text not null,            -- SQL condition over audiences.audience_inputs columns
    rank_by       text not null,            -- column ranking members (and capping the size)
    holdout_pct   integer not null check (holdout_pct between 0 and 100),
    max_size      integer check (max_size > 0),
    outcome_days  integer not null check (outcome_days > 0),  -- lift is read this long after entry
    synced_at     timestamptz not null
);

-- Who entered and left each audience, and when (the scores' snapshot of the run that saw it).
create table if not exists audiences.audience_membership_history (
    audience_name text not null,
    customer_id   text not null,
    "group"       text not null check ("group" in ('treatment', 'holdout')),
    entered_at    timestamptz not null,
    exited_at     timestamptz,
    primary key (audience_name, customer_id, entered_at)
);

-- Lift readout: once an audience cohort's outcome window has passed, treatment versus holdout.
-- One row per audience and cohort date (`as_of`: the scores' snapshot when members were chosen).
create table if not exists audiences.audience_lift (
    audience_name              text not null,
    as_of                      timestamptz not null,
    outcome_days               integer not null,
    measured_at                timestamptz not null,
    treatment_customers        integer not null,
    holdout_customers          integer not null,
    treatment_conversion       double precision not null,  -- share with an order in the window
    holdout_conversion         double precision not null,
    absolute_lift              double precision not null,  -- treatment - holdout conversion
    absolute_lift_ci_low       double precision not null,  -- 95 percent normal-approximation interval
    absolute_lift_ci_high      double precision not null,
    relative_lift              double precision,           -- absolute / holdout (null when holdout is 0)
    treatment_revenue          double precision not null,  -- revenue per customer in the window
    holdout_revenue            double precision not null,
    revenue_lift               double precision not null,
    revenue_lift_ci_low        double precision not null,
    revenue_lift_ci_high       double precision not null,
    primary key (audience_name, as_of)
);

-- 95 percent interval of relative_lift (Fieller's); null when the holdout rate is not clearly above 0.
alter table audiences.audience_lift add column if not exists relative_lift_ci_low double precision;
alter table audiences.audience_lift add column if not exists relative_lift_ci_high double precision;

-- Campaign of `pulse train-uplift` whose uplift scores the audience's rule and rank_by may use.
alter table audiences.audience_definitions add column if not exists uplift_campaign text;
