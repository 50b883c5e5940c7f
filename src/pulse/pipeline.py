"""The steps of Pulse's flow, each one call over a data window: what the Airflow tasks run.

dbt itself (and the manifest the transform DAG renders from) lives in `pulse.transform`; running Airflow
on this machine in `pulse.local_airflow`; the DAGs' shared Airflow parts in `pulse.dag_support`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine, warehouse_url
from pulse.ddl import ensure_tables
from pulse.events.ingest import expand_paths, ingest_file
from pulse.events.retention import WINDOW_KEY_FORMAT, purge_loaded

if TYPE_CHECKING:
    from pulse.modeling.train import TaskOutcome

# The schemas whose every table Pulse writes from Python or from the dbt models it builds after scoring.
RESET_SCHEMAS = ("ml", "audiences")


def reset_pulse_tables(settings: Settings | None = None) -> None:
    """Empty the tables Pulse owns (used by `pulse demo` so each demo starts clean): the events, their
    rejects and every table of `RESET_SCHEMAS`. dbt's incremental models empty themselves on their next
    build, when they see raw.events replaced."""
    settings = settings or get_settings()
    with engine(settings).begin() as conn:
        tables = (
            conn.execute(
                sa.text(
                    "select format('%I.%I', schemaname, tablename) from pg_tables "
                    "where schemaname = any(:schemas) order by 1"
                ),
                {"schemas": list(RESET_SCHEMAS)},
            )
            .scalars()
            .all()
        )
        conn.execute(sa.text(f"truncate {', '.join(['raw.events', 'raw.events_rejected', *tables])}"))


# --------------------------------------------------------------------------------------------------
# Interval steps: what the Airflow tasks call. Each takes the run's data window [start, end) and is
# idempotent over it: running the same window again leaves every output table as it was.
# --------------------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """A plain `datetime` in UTC (Airflow hands out pendulum DateTimes, which lose their timezone in
    arithmetic when it is `datetime.UTC`)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(*value.timetuple()[:6], value.microsecond, tzinfo=UTC)


def window_key(end: datetime) -> str:
    """A folder-safe name for the window ending at `end` (e.g. `20260301T010000Z`)."""
    return _utc(end).strftime(WINDOW_KEY_FORMAT)


@dataclass
class WindowIngest:
    window_start: str
    window_end: str
    files: list[str] = field(default_factory=list)
    lines: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    purged: list[str] = field(default_factory=list)  # loaded folders past their retention, deleted


def ingest_window(start: datetime, end: datetime, settings: Settings | None = None) -> WindowIngest:
    """Load the files landed in `PULSE_HOME/landing/` before `end` into `raw.events`.

    A file belongs to the first window whose end is after its modification time (files missed by an
    earlier window are picked up by the next one). It is first claimed, by moving it to
    `landing/loaded/<window end>/`, then loaded from there in one transaction; loading keys on
    messageId and rejects key on (file, line, payload), so re-running the window reloads exactly its
    claimed files and changes nothing. Files landed at or after `end` wait for their own window.
    Claimed folders older than `PULSE_LANDED_RETENTION_DAYS` are deleted (`pulse.events.retention`).
    """
    settings = settings or get_settings()
    start, end = _utc(start), _utc(end)
    landing = settings.landing_dir
    claimed_dir = landing / "loaded" / window_key(end)
    pending = [
        path for path in expand_paths(landing) if datetime.fromtimestamp(path.stat().st_mtime, UTC) < end
    ]
    if pending:
        claimed_dir.mkdir(parents=True, exist_ok=True)
    for path in pending:
        target = claimed_dir / path.name
        n = 1
        while target.exists():  # the same name landed twice in one window: keep both
            target = claimed_dir / f"{path.stem}.{n}{path.suffix}"
            n += 1
        shutil.move(str(path), target)
    files = expand_paths(claimed_dir) if claimed_dir.is_dir() else []
    report = WindowIngest(window_start=start.isoformat(), window_end=end.isoformat())
    for file in files:
        result = ingest_file(file, settings)
        report.files.append(file.name)
        report.lines += result.lines
        report.inserted += result.inserted
        report.duplicates += result.duplicates
        report.rejected += result.rejected
    report.purged = purge_loaded(end, settings)
    return report


def check_marts(settings: Settings | None = None) -> dict[str, int]:
    """After dbt: the marts the next steps read exist and are not empty (a clear error otherwise)."""
    settings = settings or get_settings()
    counts: dict[str, int] = {}
    with engine(settings).connect() as conn:
        for table in ("marts.customer_features", "marts.orders"):
            exists = conn.execute(sa.text("select to_regclass(:t)"), {"t": table}).scalar()
            if exists is None:
                raise RuntimeError(f"{table} does not exist after the dbt run: check the dbt task logs")
            counts[table] = conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()
    if counts["marts.customer_features"] == 0:
        raise RuntimeError(
            "marts.customer_features is empty after the dbt run: raw.events has no customer activity yet"
        )
    return counts


def materialize_features(start: datetime, end: datetime, settings: Settings | None = None) -> dict:
    """Apply the Feast repo and bring the online store to its state as of the window's end."""
    from pulse.features.store import materialize_window

    result = materialize_window(_utc(start), _utc(end), settings or get_settings())
    return {
        "objects": len(result.objects),
        "materialized_from": result.start.isoformat(),
        "materialized_to": result.end.isoformat(),
    }


def _champions(outcomes: list[TaskOutcome]) -> list[tuple[str, str, dict]]:
    """(model name, champion run id, holdout metrics) of every task `train` gave a champion."""
    return [
        (o.champion.model_name, o.champion.run_id, dict(o.holdout))
        for o in outcomes
        if o.champion is not None
    ]


def train_window(start: datetime, end: datetime, settings: Settings | None = None) -> dict:
    """Train once per window: a re-run of a window that already has its models returns them.

    The champions a window's training produced are recorded in `ml.training_windows`; re-running the
    window (a retry, a cleared task) finds them and trains nothing, so `ml.model_runs`, the metrics and
    the champions stay as they were. A manual trigger is a new window, so it always trains.
    """
    from pulse.features.store import apply
    from pulse.modeling.train import train

    settings = settings or get_settings()
    end = _utc(end)
    ensure_tables(
        warehouse_url(settings), "ml.sql", ("ml.training_windows",)
    )  # ml.training_windows is created on first use
    with engine(settings).connect() as conn:
        done = conn.execute(
            sa.text(
                "select w.model_name, w.run_id, r.run_id is not null as present from ml.training_windows w "
                "left join ml.model_runs r using (run_id) where w.window_end = :e order by 1"
            ),
            {"e": end},
        ).all()
    if done and all(row.present for row in done):
        return {"trained": False, "champions": {row.model_name: row.run_id for row in done}}
    apply(settings)  # training reads its feature services from the registry
    champions = _champions(train(settings))
    if not champions:
        raise RuntimeError("training produced no model: see the task log for each model's reason")
    with engine(settings).begin() as conn:
        conn.execute(sa.text("delete from ml.training_windows where window_end = :e"), {"e": end})
        conn.execute(
            sa.text("insert into ml.training_windows (window_end, model_name, run_id) values (:e, :m, :r)"),
            [{"e": end, "m": name, "r": run_id} for name, run_id, _ in champions],
        )
    return {
        "trained": True,
        "champions": {name: run_id for name, run_id, _ in champions},
        "metrics": {name: metrics for name, _, metrics in champions},
    }


def score_customers(settings: Settings | None = None) -> dict | None:
    """Score the latest snapshot with every champion model; None when no model has been trained yet."""
    from pulse.modeling.registry import NoChampionError
    from pulse.scoring.batch import score

    try:
        results = score(settings or get_settings())
    except NoChampionError:
        return None
    return {
        "as_of": max(r.as_of for r in results).isoformat(),
        "scored": {r.model_name: r.n_scored for r in results},
    }


def build_audiences(settings: Settings | None = None) -> dict:
    """Rebuild every audience from the latest scores (members, holdouts, membership history, lift) and
    write their exports to `PULSE_HOME/exports/` (one CSV per audience, treatment only, hashed emails)."""
    from pulse.audiences import build_audiences as build
    from pulse.audiences import export_audiences

    settings = settings or get_settings()
    result = build(settings)
    exports = export_audiences(settings.home_dir / "exports", settings)
    return {
        "members": sum(c.members for c in result.changes),
        "audiences": {c.audience: {"members": c.members, "holdout": c.holdout} for c in result.changes},
        "exports": [str(path) for path in exports],
    }


def write_report(settings: Settings | None = None) -> dict:
    """The HTML report of the latest models, scores and audiences (`PULSE_HOME/reports/`)."""
    from pulse.reporting import write_report as write

    return {"report": str(write(settings or get_settings()))}
