"""Backfill through the scheduler: seven daily ingest intervals backfilled with Airflow 3's backfill (the
REST API's `POST /backfills`) load, build and materialise exactly what the same seven days give when
they are run one by one, each day's ingest finished before the next day's starts.

Both go through the same local Airflow (scheduler, api-server, dag-processor, triggerer; LocalExecutor;
pulse.local_airflow), ingest scheduled daily: first day by day, then, on an emptied warehouse and with
those runs deleted, the backfill. Downstream DAGs follow by Assets either way.

The scheduled run unpausing made stays: deleting it would make the scheduler create it again (with
`catchup=False` the next scheduled run is the latest complete interval counted from the latest scheduled
or backfill run left), and that run, whose interval ends January 31st, would claim every landed file
beside the backfill (backfill runs count against the backfill's `max_active_runs`, not the DAG's).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from pulse import db
from pulse.config import Settings
from pulse.events.simulator import simulate
from pulse.local_airflow import cluster_environment, free_port, start_cluster
from tests.conftest import _admin
from tests.dags.test_celery import RUN_COLUMNS, _database, _drop, outputs

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("airflow")]

FIRST_DAY = datetime(2026, 1, 1, tzinfo=UTC)  # the DAGs' start date
DAYS = [FIRST_DAY + timedelta(days=n) for n in range(7)]
# Daily, but only in January: unpausing creates one scheduled run (the last complete interval, January
# 30th, before anything is landed) and no other until next January, so only the runs below load files.
INGEST_SCHEDULE = "0 0 * 1 *"
# What a backfill of ingest sets off by Assets (training is weekly and not part of it; scoring waits
# for a model, so it stays paused).
CHAIN = ["pulse_ingest", "pulse_transform", "pulse_features"]
# Each phase runs the transform (a dbt task per model) and features twice or more: over 20 minutes when two
# cores are shared with other test workers.
IDLE_TIMEOUT = 3600


def _land_days(events_path: Path, landing: Path) -> None:
    """One file per simulated day, landed at noon of that day (so the day's interval claims it)."""
    by_day: dict[str, list[str]] = {}
    for line in events_path.read_text().splitlines(keepends=True):
        by_day.setdefault(json.loads(line)["timestamp"][:10], []).append(line)
    for day in DAYS:
        path = landing / f"events-{day:%Y%m%d}.jsonl"
        path.write_text("".join(by_day.get(f"{day:%Y-%m-%d}", [])))
        noon = (day + timedelta(hours=12)).timestamp()
        os.utime(path, (noon, noon))


def _ingested(api) -> dict[str, dict]:
    """Per ingest interval (by its end): the files it claimed and what it loaded."""
    found = {}
    for run in api.runs("pulse_ingest"):
        assert run["state"] == "success", run
        if run["run_type"] == "scheduled":  # the one run unpausing made, before anything was landed
            continue
        report = api.return_value("pulse_ingest", run["dag_run_id"], "load_landed_files")
        found[report["window_end"]] = report
    return found


def _reset_warehouse(server_url: str, name: str, settings: Settings, events_path: Path) -> None:
    """An empty warehouse (Feast's registry and online store live in it too) and the files landed again."""
    db._engine_for(settings.database_url).dispose()
    with _admin(server_url) as conn:
        conn.execute(f'drop database "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    db.create_schemas(settings)
    shutil.rmtree(settings.landing_dir)
    _land_days(events_path, settings.landing_dir)


def test_backfill_of_seven_days_equals_the_days_run_one_by_one(server_url, tmp_path):
    sim = simulate(tmp_path / "sim", customers=150, days=7, seed=11, end=DAYS[-1] + timedelta(days=1))
    warehouse = _database(server_url, "pulse_test_backfill")
    metadata = _database(server_url, "pulse_test_backfill_meta")
    pg = make_url(server_url)
    settings = Settings(
        database_url=pg.set(database=warehouse).render_as_string(False),
        home=tmp_path / "home",
        feast_project="pulse_backfill",
    )
    env = cluster_environment(
        settings,
        metadata_url=pg.set(drivername="postgresql+psycopg2", database=metadata).render_as_string(False),
        port=free_port(),
    )
    env.update({"PULSE_INGEST_SCHEDULE": INGEST_SCHEDULE, "PULSE_TRAIN_SCHEDULE": "0 0 1 1 *"})
    cluster = start_cluster(env)
    try:
        api = cluster.api()
        api.wait_for_dags(CHAIN)
        api.wait_for_runs("pulse_ingest", 1)  # the scheduled run unpausing makes (nothing to load)
        _land_days(sim.events_path, settings.landing_dir)

        for n, day in enumerate(DAYS, start=2):  # one by one: each day's ingest ends before the next
            api.trigger("pulse_ingest", day, interval=(day, day + timedelta(days=1)))
            api.wait_for_runs("pulse_ingest", n)
        api.wait_until_idle(CHAIN, timeout=IDLE_TIMEOUT)
        one_by_one = outputs(settings.database_url, settings.feast_project)
        one_by_one_ingested = _ingested(api)

        scheduled = [r["dag_run_id"] for r in api.runs("pulse_ingest") if r["run_type"] == "scheduled"]
        api.delete_runs("pulse_ingest", run_types={"manual"})  # not the scheduled run: see the docstring
        for dag_id in CHAIN[1:]:
            api.delete_runs(dag_id)
        _reset_warehouse(server_url, warehouse, settings, sim.events_path)
        assert outputs(settings.database_url, settings.feast_project)["raw.events"][0] == 0

        api.backfill("pulse_ingest", DAYS[0], DAYS[-1])
        api.wait_until_idle(CHAIN, timeout=IDLE_TIMEOUT)
        runs = [
            (
                r["run_type"],
                r["logical_date"],
                r["data_interval_start"],
                r["data_interval_end"],
                r["dag_run_id"],
            )
            for r in api.runs("pulse_ingest")
        ]
        # One backfill run per day, and no other run made meanwhile (the scheduled one is from before).
        intervals = sorted(
            (datetime.fromisoformat(start), datetime.fromisoformat(end))
            for run_type, _, start, end, _ in runs
            if run_type == "backfill"
        )
        assert intervals == [(d, d + timedelta(days=1)) for d in DAYS], runs
        assert [run_id for run_type, *_, run_id in runs if run_type != "backfill"] == scheduled, runs
        backfilled = outputs(settings.database_url, settings.feast_project)
        backfilled_ingested = _ingested(api)
    finally:
        logs = cluster.logs()
        cluster.stop()
        _drop(server_url, metadata)
        _drop(server_url, warehouse)

    # Each interval claimed its own day's file and loaded the same events either way.
    assert sorted(one_by_one_ingested) == [(d + timedelta(days=1)).isoformat() for d in DAYS]
    assert backfilled_ingested == one_by_one_ingested
    assert all(r["inserted"] > 0 and len(r["files"]) == 1 for r in backfilled_ingested.values())
    assert one_by_one["marts.customer_features"][0] > 0, one_by_one
    differ = {t: (one_by_one.get(t), backfilled.get(t)) for t in one_by_one.keys() | backfilled.keys()}
    differ = {t: pair for t, pair in differ.items() if pair[0] != pair[1]}
    assert not differ, (differ, RUN_COLUMNS, logs[-3000:])
