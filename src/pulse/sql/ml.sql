-- The model registry, metrics, scores and what scoring derives. Idempotent (run by `pulse up`).

-- One row per fitted candidate. A `pulse train` run (training_id) fits every algorithm for each
-- prediction task (model_name); at most one run per task is the champion, the one scoring uses.
create table if not exists ml.model_runs (
    run_id          text primary key,
    training_id     text not null,
    model_name      text not null,            -- prediction task: purchase_propensity, purchase_7d, churn_90d, ...
    algorithm       text not null,            -- logistic_regression, gradient_boosting, mlp, bg_nbd, ...
    kind            text not null check (kind in ('classification', 'regression')),
    feature_service text not null,
    trained_at      timestamptz not null,
    data_end        timestamptz not null,     -- newest feature snapshot the run could see
    holdout_at      timestamptz not null,     -- snapshot the holdout metrics are computed on
    horizon_days    integer not null,         -- label window after each snapshot
    n_train         integer not null,
    n_holdout       integer not null,
    features        jsonb not null,
    selection_metric text not null,           -- auc (classification) or r2 (regression)
    backtest_score  double precision,         -- mean of selection_metric over the backtest folds
    holdout_score   double precision,
    status          text not null check (status in ('champion', 'challenger', 'retired', 'baseline', 'ineligible')),
    is_champion     boolean not null default false,
    reason          text,                     -- promotion decision or why the task was not trained
    reference       jsonb,                    -- training-time distributions, for drift (PSI)
    artifact        bytea                     -- the fitted model (joblib); null when ineligible
);
-- HMAC-SHA256 of the artefact with its run and task (pulse.modeling.signing); checked before unpickling.
alter table ml.model_runs add column if not exists artifact_signature text;
create unique index if not exists model_runs_one_champion on ml.model_runs (model_name) where is_champion;

-- Every metric of every run on every fold: fold is 'holdout' or 'backtest_<n>'; bucket is the decile
-- (lift, gain) or calibration bin, 0 for scalar metrics.
create table if not exists ml.model_metrics (
    run_id text not null references ml.model_runs (run_id) on delete cascade,
    fold   text not null,
    metric text not null,
    bucket integer not null default 0,
    value  double precision not null,
    primary key (run_id, fold, metric, bucket)
);

create table if not exists ml.scores (
    customer_id text not null,
    model_name  text not null,
    run_id      text not null references ml.model_runs (run_id) on delete cascade,
    as_of       timestamptz not null,         -- feature snapshot time the score is for
    score       double precision not null,    -- probability, or expected revenue for value models
    percentile  integer not null check (percentile between 1 and 100),
    scored_at   timestamptz not null,
    primary key (model_name, as_of, customer_id)
);

-- Population stability of each scoring run against the model's training distribution.
create table if not exists ml.score_drift (
    run_id     text not null references ml.model_runs (run_id) on delete cascade,
    as_of      timestamptz not null,
    variable   text not null,                 -- 'score' or a feature name
    psi        double precision not null,
    is_drifted boolean not null,              -- psi > 0.2
    primary key (run_id, as_of, variable)
);

create table if not exists ml.recommendations (
    customer_id text not null,
    as_of       timestamptz not null,
    rank        integer not null check (rank between 1 and 3),
    category    text not null,
    score       double precision not null,
    primary key (as_of, customer_id, rank)
);

create table if not exists ml.segments (
    customer_id   text not null,
    as_of         timestamptz not null,
    rfm_segment   text not null,
    cluster       integer not null,
    cluster_label text not null,
    primary key (as_of, customer_id)
);

create table if not exists ml.segment_profiles (
    as_of         timestamptz not null,
    cluster       integer not null,
    cluster_label text not null,
    customers     integer not null,
    profile       jsonb not null,             -- feature means of the cluster
    primary key (as_of, cluster)
);

-- Which champion each Airflow training interval produced, so a re-run of the interval changes nothing.
create table if not exists ml.training_windows (
    window_end  timestamptz not null,  -- the end of the Airflow data interval the training ran for
    model_name  text not null,
    run_id      text not null,         -- the champion that training produced
    primary key (window_end, model_name)
);
