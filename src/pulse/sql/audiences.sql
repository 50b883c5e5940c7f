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
    absolute_lift_ci_low       double precision not null,  -- 95% normal-approximation interval
    absolute_lift_ci_high      double precision not null,
    relative_lift              double precision,           -- absolute / holdout (null when holdout is 0)
    treatment_revenue          double precision not null,  -- revenue per customer in the window
    holdout_revenue            double precision not null,
    revenue_lift               double precision not null,
    revenue_lift_ci_low        double precision not null,
    revenue_lift_ci_high       double precision not null,
    primary key (audience_name, as_of)
);
