"""Read what the report shows from the warehouse, one DataFrame per table behind a plot.

Every reader tolerates a missing table (other parts of Pulse create theirs later) and returns an empty
frame, so the report renders whatever exists. Nothing here writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

# The holdout ROC points the trainer stores (`modeling.evaluate`) in ml.model_metrics (fold 'holdout',
# bucket 1..N in threshold order, one row per point). Runs without them are drawn from the ten operating
# points the cumulative gain by decile gives.
ROC_FPR_METRIC = "roc_fpr"
ROC_TPR_METRIC = "roc_tpr"


def table_exists(conn: Connection, table: str) -> bool:
    return bool(conn.execute(sa.text("select to_regclass(:t) is not null"), {"t": table}).scalar())


def table_columns(conn: Connection, table: str) -> list[str]:
    schema, name = table.split(".", 1)
    return list(
        conn.execute(
            sa.text(
                "select column_name from information_schema.columns "
                "where table_schema = :s and table_name = :n order by ordinal_position"
            ),
            {"s": schema, "n": name},
        ).scalars()
    )


def _frame(conn: Connection, sql: str, params: dict | None = None) -> pd.DataFrame:
    result = conn.execute(sa.text(sql), params or {})
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


@dataclass
class ReportData:
    """Everything the report plots; an empty frame means 'no rows' and `missing` names absent tables."""

    runs: pd.DataFrame  # the runs compared per task: latest training's candidates plus the champion
    scalars: pd.DataFrame  # holdout scalar metrics of those runs: run_id, metric, value
    deciles: pd.DataFrame  # champions' holdout lift and cumulative gain: model_name, metric, bucket, value
    calibration: (
        pd.DataFrame
    )  # champions' holdout calibration bins: model_name, bucket, predicted, observed, count
    roc: pd.DataFrame  # champions' stored ROC points (the hook above); usually empty
    importance: pd.DataFrame  # model_name, algorithm, feature, importance
    segment_profiles: pd.DataFrame  # latest as_of: cluster, cluster_label, customers, feature columns
    rfm_segments: pd.DataFrame  # latest as_of: rfm_segment, customers
    audience_definitions: pd.DataFrame
    audience_sizes: pd.DataFrame  # current members: audience_name, group, customers, avg_score
    audience_history: pd.DataFrame  # audience_name, day, customers (from the membership history)
    audience_lift: pd.DataFrame
    drift: pd.DataFrame  # model_name, run_id, as_of, variable, psi, is_drifted
    missing: set[str] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)
    triggers: pd.DataFrame = field(default_factory=pd.DataFrame)  # state and timers by status per trigger
    trigger_actions: pd.DataFrame = field(default_factory=pd.DataFrame)  # trigger, day, action, count
    trigger_lift: pd.DataFrame = field(default_factory=pd.DataFrame)
    sync_runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # the latest runs of syncs and triggers
    sync_delivery: pd.DataFrame = field(default_factory=pd.DataFrame)  # per sync: sent, accepted, rate
    sync_rejects: pd.DataFrame = field(default_factory=pd.DataFrame)  # per sync and reason: rows
    sync_sizes: pd.DataFrame = field(default_factory=pd.DataFrame)  # sync_name, finished_at, destination_size
    uplift: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # campaign, algorithm, is_champion, metric, bucket, value


RUNS_SQL = """
with latest as (
    select distinct on (model_name) model_name, training_id
    from ml.model_runs
    order by model_name, trained_at desc
)
select r.run_id, r.training_id, r.model_name, r.algorithm, r.kind, r.status, r.is_champion,
       r.selection_metric, r.backtest_score, r.holdout_score, r.n_train, r.n_holdout, r.trained_at,
       r.reason
from ml.model_runs r
left join latest l on l.model_name = r.model_name and l.training_id = r.training_id
where r.is_champion or l.training_id is not null
order by r.model_name, r.is_champion desc, r.holdout_score desc nulls last, r.algorithm
"""

SCALARS_SQL = """
select m.run_id, m.metric, m.value
from ml.model_metrics m
where m.fold = 'holdout' and m.bucket = 0 and m.run_id = any(:runs)
"""

CHAMPION_BUCKETS_SQL = """
select r.model_name, r.algorithm, r.kind, m.metric, m.bucket, m.value
from ml.model_runs r
join ml.model_metrics m using (run_id)
where r.is_champion and m.fold = 'holdout' and m.metric = any(:metrics)
order by r.model_name, m.metric, m.bucket
"""

IMPORTANCE_SQL = """
select r.model_name, r.algorithm, i.key as feature, i.value::text::double precision as importance
from ml.model_runs r
cross join lateral jsonb_each(r.reference -> 'importance') i
where r.is_champion and jsonb_typeof(r.reference -> 'importance') = 'object'
order by r.model_name, importance desc
"""

DRIFT_SQL = """
select r.model_name, d.run_id, d.as_of, d.variable, d.psi, d.is_drifted
from ml.score_drift d
join ml.model_runs r using (run_id)
order by r.model_name, d.as_of, d.variable
"""


def _champion_buckets(conn: Connection, metrics: list[str]) -> pd.DataFrame:
    return _frame(conn, CHAMPION_BUCKETS_SQL, {"metrics": metrics})


def _calibration(conn: Connection) -> pd.DataFrame:
    long = _champion_buckets(conn, ["calibration_predicted", "calibration_observed", "calibration_count"])
    if long.empty:
        return pd.DataFrame(columns=["model_name", "bucket", "predicted", "observed", "count"])
    wide = long.pivot_table(index=["model_name", "bucket"], columns="metric", values="value").reset_index()
    wide = wide.rename(
        columns={
            "calibration_predicted": "predicted",
            "calibration_observed": "observed",
            "calibration_count": "count",
        }
    )
    return wide[["model_name", "bucket", "predicted", "observed", "count"]]


def _segments(conn: Connection, data_missing: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    profiles = pd.DataFrame()
    rfm = pd.DataFrame()
    if table_exists(conn, "ml.segment_profiles"):
        raw = _frame(
            conn,
            "select as_of, cluster, cluster_label, customers, profile from ml.segment_profiles "
            "where as_of = (select max(as_of) from ml.segment_profiles) order by cluster",
        )
        if not raw.empty:
            features = pd.DataFrame(
                [p if isinstance(p, dict) else json.loads(p) for p in raw["profile"]], index=raw.index
            )
            profiles = pd.concat([raw.drop(columns=["profile"]), features], axis=1)
    else:
        data_missing.add("ml.segment_profiles")
    if table_exists(conn, "ml.segments"):
        rfm = _frame(
            conn,
            "select as_of, rfm_segment, count(*) as customers from ml.segments "
            "where as_of = (select max(as_of) from ml.segments) group by as_of, rfm_segment "
            "order by customers desc",
        )
    else:
        data_missing.add("ml.segments")
    return profiles, rfm


def _membership_history(conn: Connection, notes: dict[str, str]) -> pd.DataFrame:
    """Daily audience size from audiences.audience_membership_history (enter/exit timestamps).

    The table is being added; its columns are found by name: an audience column, an entry timestamp
    (`entered_at`, or any `*enter*` column) and an optional exit timestamp (`exited_at`/`left_at`).
    """
    columns = table_columns(conn, "audiences.audience_membership_history")
    enter = next((c for c in columns if c == "entered_at"), None) or next(
        (c for c in columns if "enter" in c), None
    )
    leave = next((c for c in columns if c in ("exited_at", "left_at")), None) or next(
        (c for c in columns if "exit" in c or "left" in c), None
    )
    if "audience_name" not in columns or enter is None:
        notes["audience_history"] = (
            "audiences.audience_membership_history exists but has no audience_name and entry timestamp "
            f"columns the report recognises (columns: {', '.join(columns) or 'none'})."
        )
        return pd.DataFrame(columns=["audience_name", "day", "customers"])
    exit_expr = f'"{leave}"' if leave else "null::timestamptz"
    sql = f"""
        with h as (
            select audience_name, "{enter}" as entered_at, {exit_expr} as exited_at
            from audiences.audience_membership_history
        ),
        days as (
            select generate_series(date_trunc('day', min(entered_at)),
                                   date_trunc('day', greatest(max(entered_at), max(exited_at))),
                                   interval '1 day') as day
            from h
        )
        select h.audience_name, d.day, count(*) as customers
        from days d
        join h on h.entered_at < d.day + interval '1 day'
              and (h.exited_at is null or h.exited_at >= d.day + interval '1 day')
        group by h.audience_name, d.day
        order by h.audience_name, d.day
    """
    return _frame(conn, sql)


def load(conn: Connection) -> ReportData:
    """Read every table the report uses; absent tables are listed in `missing`."""
    missing: set[str] = set()
    notes: dict[str, str] = {}
    empty = pd.DataFrame

    has_runs = table_exists(conn, "ml.model_runs")
    has_metrics = has_runs and table_exists(conn, "ml.model_metrics")
    for table, present in (("ml.model_runs", has_runs), ("ml.model_metrics", has_metrics)):
        if not present:
            missing.add(table)
    runs = _frame(conn, RUNS_SQL) if has_runs else empty()
    scalars = deciles = roc = empty()
    calibration = empty()
    if has_metrics and not runs.empty:
        scalars = _frame(conn, SCALARS_SQL, {"runs": list(runs["run_id"])})
        deciles = _champion_buckets(conn, ["lift", "cumulative_gain"])
        calibration = _calibration(conn)
        roc = _champion_buckets(conn, [ROC_FPR_METRIC, ROC_TPR_METRIC])
    importance = _frame(conn, IMPORTANCE_SQL) if has_runs else empty()

    segment_profiles, rfm_segments = _segments(conn, missing)

    definitions = sizes = history = lift = empty()
    if table_exists(conn, "audiences.audience_definitions"):
        definitions = _frame(conn, "select * from audiences.audience_definitions order by audience_name")
    else:
        missing.add("audiences.audience_definitions")
    if table_exists(conn, "audiences.audience_members"):
        sizes = _frame(
            conn,
            'select audience_name, "group", count(*) as customers, avg(score) as avg_score, '
            "max(as_of) as as_of from audiences.audience_members "
            'group by audience_name, "group" order by audience_name, "group" desc',
        )
    else:
        missing.add("audiences.audience_members")
    if table_exists(conn, "audiences.audience_membership_history"):
        history = _membership_history(conn, notes)
    else:
        missing.add("audiences.audience_membership_history")
    if table_exists(conn, "audiences.audience_lift"):
        lift = _frame(conn, "select * from audiences.audience_lift order by audience_name, as_of")
    else:
        missing.add("audiences.audience_lift")

    drift = empty()
    if has_runs and table_exists(conn, "ml.score_drift"):
        drift = _frame(conn, DRIFT_SQL)
    elif not table_exists(conn, "ml.score_drift"):
        missing.add("ml.score_drift")

    triggers, trigger_actions, trigger_lift = _triggers(conn, missing)
    sync_runs, sync_delivery, sync_rejects, sync_sizes = _activation(conn, missing)
    return ReportData(
        sync_runs=sync_runs,
        sync_delivery=sync_delivery,
        sync_rejects=sync_rejects,
        sync_sizes=sync_sizes,
        triggers=triggers,
        trigger_actions=trigger_actions,
        trigger_lift=trigger_lift,
        runs=runs,
        scalars=scalars,
        deciles=deciles,
        calibration=calibration,
        roc=roc,
        importance=importance,
        segment_profiles=segment_profiles,
        rfm_segments=rfm_segments,
        audience_definitions=definitions,
        audience_sizes=sizes,
        audience_history=history,
        audience_lift=lift,
        drift=drift,
        missing=missing,
        notes=notes,
        uplift=_uplift(conn, missing),
    )


UPLIFT_SQL = """
select campaign, algorithm, is_champion, metric, bucket, value from ml.uplift_metrics
where metric in ('qini_x', 'qini_y', 'uplift_decile', 'qini', 'auuc', 'uplift_at_10', 'uplift_at_30')
order by campaign, algorithm, metric, bucket
"""


def _uplift(conn: Connection, missing: set[str]) -> pd.DataFrame:
    if not table_exists(conn, "ml.uplift_metrics"):
        missing.add("ml.uplift_metrics")
        return pd.DataFrame()
    return _frame(conn, UPLIFT_SQL)


TRIGGERS_SQL = """
select d.trigger_name, d.status, d.definition -> 'entry' ->> 'event' as entry_event,
       (d.definition -> 'wait' ->> 'duration')::integer as wait_seconds,
       (d.definition ->> 'holdout_pct')::integer as holdout_pct,
       count(*) filter (where t.status = 'pending') as pending,
       count(*) filter (where t.status = 'fired') as fired,
       count(*) filter (where t.status = 'held_out') as held_out,
       count(*) filter (where t.status = 'cancelled') as cancelled,
       count(*) filter (where t.status = 'suppressed') as suppressed,
       count(*) filter (where t.status = 'failed') as failed
from activation.trigger_definitions d
left join activation.trigger_timers t using (trigger_name)
group by 1, 2, 3, 4, 5 order by 1
"""
TRIGGER_ACTIONS_SQL = """
select trigger_name, date_trunc('day', logged_at) as day, action, count(*) as events
from activation.trigger_events
where logged_at >= now() - interval '30 days'
group by 1, 2, 3 order by 1, 2, 3
"""


def _triggers(conn: Connection, missing: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Real-time triggers: state per trigger, the last 30 days of the log, and the lift readout."""
    frames = []
    for table, sql in (
        ("activation.trigger_definitions", TRIGGERS_SQL),
        ("activation.trigger_events", TRIGGER_ACTIONS_SQL),
        ("activation.trigger_lift", "select * from activation.trigger_lift order by trigger_name"),
    ):
        if table_exists(conn, table) and table_exists(conn, "activation.trigger_timers"):
            frames.append(_frame(conn, sql))
        else:
            missing.add(table)
            frames.append(pd.DataFrame())
    return frames[0], frames[1], frames[2]


SYNC_RUNS_SQL = """
select run_id, sync_name, kind, destination, mode, status, started_at, duration_seconds, planned, adds,
       removes, updates, accepted, rejected, retried, skipped_consent, dead_lettered, destination_size, error
from activation.sync_runs where not dry_run order by started_at desc limit 20
"""
SYNC_DELIVERY_SQL = """
select sync_name, kind, destination, count(*) as runs, sum(sent) as sent, sum(accepted) as accepted,
       sum(rejected) as rejected, sum(retried) as retried, sum(skipped_consent) as skipped_consent,
       sum(accepted)::float / nullif(sum(sent), 0) as delivery_rate,
       (array_agg(status order by started_at desc))[1] as last_status,
       (array_agg(destination_size order by started_at desc))[1] as destination_size
from activation.sync_runs
where not dry_run and started_at >= now() - interval '30 days'
group by 1, 2, 3 order by 1
"""
# Reasons as the destinations gave them; a reason naming a row would make a group per row, so only the
# first 200 characters are grouped (destinations' messages put the rule first).
SYNC_REJECTS_SQL = """
select r.sync_name, left(coalesce(s.error, 'no reason given'), 200) as reason, s.http_status,
       count(*) as rows, count(*) filter (where s.status = 'dead_letter') as dead_lettered,
       max(s.last_attempt_at) as last_seen
from activation.sync_records s join activation.sync_runs r using (run_id)
where s.status in ('rejected', 'dead_letter') and r.started_at >= now() - interval '30 days'
group by 1, 2, 3 order by rows desc, 1 limit 50
"""
SYNC_SIZES_SQL = """
select sync_name, finished_at, destination_size from activation.sync_runs
where kind = 'sync' and not dry_run and destination_size is not null order by sync_name, finished_at
"""


def _activation(conn: Connection, missing: set[str]) -> tuple[pd.DataFrame, ...]:
    """Syncs (and triggers' deliveries): the latest runs, delivery per sync, rejects by reason, and each
    sync's size at its destination after every run."""
    if not table_exists(conn, "activation.sync_runs"):
        missing.add("activation.sync_runs")
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    return (
        _frame(conn, SYNC_RUNS_SQL),
        _frame(conn, SYNC_DELIVERY_SQL),
        _frame(conn, SYNC_REJECTS_SQL),
        _frame(conn, SYNC_SIZES_SQL),
    )


def roc_points(data: ReportData) -> pd.DataFrame:
    """Each classification champion's holdout ROC points: model_name, fpr, tpr, source.

    Stored points win. Otherwise ten exact operating points follow from what is stored:
    deciles are equal-sized score ranks (`evaluate._deciles`), so targeting deciles 1..d selects
    q = ceil(d*n/10)/n of the n holdout customers; the cumulative gain is the share of positives caught
    there, i.e. the true-positive rate, and with positive rate p the false-positive rate is
    (q - p*TPR) / (1 - p). Between those points the curve is unknown and drawn as straight lines.
    """
    rows: list[dict] = []
    if not data.roc.empty:
        for model_name, group in data.roc.groupby("model_name"):
            wide = group.pivot_table(index="bucket", columns="metric", values="value").sort_index()
            if {ROC_FPR_METRIC, ROC_TPR_METRIC} <= set(wide.columns):
                rows.append({"model_name": model_name, "fpr": 0.0, "tpr": 0.0, "source": "stored"})
                rows += [
                    {"model_name": model_name, "fpr": f, "tpr": t, "source": "stored"}
                    for f, t in zip(wide[ROC_FPR_METRIC], wide[ROC_TPR_METRIC], strict=True)
                ]
    stored = {r["model_name"] for r in rows}
    if data.deciles.empty or data.runs.empty or data.scalars.empty:
        return pd.DataFrame(rows, columns=["model_name", "fpr", "tpr", "source"])
    champions = data.runs[data.runs["is_champion"] & (data.runs["kind"] == "classification")]
    for run in champions.itertuples():
        if run.model_name in stored:
            continue
        values = data.scalars[data.scalars["run_id"] == run.run_id].set_index("metric")["value"]
        p = values.get("positive_rate")
        n = values.get("n")
        gain = data.deciles[
            (data.deciles["model_name"] == run.model_name) & (data.deciles["metric"] == "cumulative_gain")
        ].sort_values("bucket")
        if p is None or not 0 < p < 1 or len(gain) != 10:
            continue
        rows.append({"model_name": run.model_name, "fpr": 0.0, "tpr": 0.0, "source": "deciles"})
        for d, tpr in zip(gain["bucket"], gain["value"], strict=True):
            q = (-(-int(d) * int(n) // 10) / int(n)) if n else int(d) / 10
            fpr = min(max((q - p * tpr) / (1 - p), 0.0), 1.0)
            rows.append({"model_name": run.model_name, "fpr": fpr, "tpr": float(tpr), "source": "deciles"})
    return pd.DataFrame(rows, columns=["model_name", "fpr", "tpr", "source"])
