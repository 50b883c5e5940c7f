-- Uplift modelling: campaign outcomes with a random control group, the models' metrics and scores.
-- Idempotent (run by `pulse up`).

-- One row per campaign: a file imported by `pulse import-campaign`, or an audience Pulse ran itself.
create table if not exists ml.campaigns (
    campaign          text primary key,
    source            text not null,            -- 'file:<name>' or 'audience:<audience_name>'
    imported_at       timestamptz not null,
    customers         integer not null,         -- rows kept (treatment + control)
    without_outcome   integer not null,         -- kept rows with an empty outcome: scored, not trained on
    other_groups      integer not null,         -- rows of neither group: ignored
    outcome_is_binary boolean not null          -- 0/1 outcome (probabilities) or a number (expected value)
);

-- One row per customer of a campaign: group, outcome (null = unknown), features as of entry.
create table if not exists ml.campaign_outcomes (
    campaign    text not null references ml.campaigns (campaign) on delete cascade,
    customer_id text not null,
    is_treated  boolean not null,
    outcome     double precision,
    features    jsonb not null,
    primary key (campaign, customer_id)
);

-- Held-out metrics of every learner of the campaign's last `pulse train-uplift` (replaced per run):
-- qini, auuc, uplift_at_10/20/30 with _low/_high bootstrap bounds (bucket 0), Qini curve points
-- (qini_x / qini_y, bucket = point), uplift by decile (uplift_decile, bucket = decile).
create table if not exists ml.uplift_metrics (
    campaign    text not null references ml.campaigns (campaign) on delete cascade,
    training_id text not null,
    algorithm   text not null,                  -- t_learner, class_transformation, x_learner, true_effect
    is_champion boolean not null,
    metric      text not null,
    bucket      integer not null default 0,
    value       double precision not null,
    trained_at  timestamptz not null,
    primary key (campaign, algorithm, metric, bucket)
);

-- The champion learner's prediction for every customer of the campaign, outcome known or not.
create table if not exists ml.uplift_scores (
    campaign            text not null references ml.campaigns (campaign) on delete cascade,
    customer_id         text not null,
    uplift              double precision not null,  -- if treated minus if not
    probability_treated double precision not null,  -- probability (or expected value) if treated
    probability_control double precision not null,  -- ... if not treated
    algorithm           text not null,
    training_id         text not null,
    scored_at           timestamptz not null,
    primary key (campaign, customer_id)
);
