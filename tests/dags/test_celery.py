"""Pulse on Airflow's Celery executor for real: scheduler, api-server, dag-processor, triggerer and two
Celery workers as local processes, Redis as broker (its own database number), PostgreSQL as result
backend and metadata database. The whole chain runs on small simulated data, tasks land on both workers,
one worker is killed mid-run and the run still completes on the other; the outputs equal a run of the
same interval with `dag.test()` (in this process, as tests/dags/test_dag_runs.py runs them).

The same settings are what docker-compose's `celery` profile runs with (see test_compose_celery_settings).
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import redis
import yaml
from sqlalchemy.engine import make_url

from pulse.config import PROJECT_ROOT, Settings
from pulse.events.simulator import simulate
from pulse.local_airflow import (
    CELERY_SETTINGS,
    cluster_environment,
    free_port,
    manual_interval,
    run_chain,
    start_cluster,
)
from tests.conftest import BOOKKEEPING_COLUMNS, _admin, table_checksums
from tests.dags.test_dag_runs import FLOW, RUN_AT, SIM_END, _land, _run, output_tables

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("airflow")]

BROKER_DB = 14  # a Redis database no other test uses (they use 15)
# No scheduled runs: every run below is triggered (or follows by Assets), for the same intervals as the
# reference. A yearly cron starting 2026-01-01 has no complete interval before 2027.
NO_SCHEDULE = {"PULSE_INGEST_SCHEDULE": "0 0 1 1 *", "PULSE_TRAIN_SCHEDULE": "0 0 1 1 *"}
WORKERS = ("worker-a", "worker-b")
# Columns that record when, how or under which generated id a row was written, not what it says: the two
# runs happen minutes apart. Every other column of every output table must be equal.
RUN_COLUMNS = BOOKKEEPING_COLUMNS | {
    "loaded_at",  # raw.events and what dbt carries of it: when the row was loaded
    "rejected_at",
    "_loaded_at",
    "scored_at",
    "trained_at",
    "created_ts",  # Feast's online store: when the value was written
    "run_id",  # model runs are named by their training time and a random suffix
    "training_id",
    "artifact",  # the pickled model carries its run id
    "artifact_signature",  # ... and so does its signature
    "synced_at",  # when a definition (audience, sync, trigger) was synced to its table
    "received_at",  # for a loaded file: when it was loaded
    "xact_id",  # the transaction that wrote an event row (the trigger worker's read position)
}
# ... and in the raw tables only (elsewhere `source` is what it says: a session's traffic source).
RAW_RUN_COLUMNS = RUN_COLUMNS | {"source"}  # the landed file's path: each run lands under its own home


def _database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin(server_url) as conn:
        conn.execute(f'create database "{name}"')
    return name


def _drop(server_url: str, name: str) -> None:
    with _admin(server_url) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def outputs(url: str, project: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of each output table, without its run columns."""
    with psycopg.connect(url) as conn:
        tables = output_tables(conn, project)
    return table_checksums(
        url, tables, lambda table: RAW_RUN_COLUMNS if table.startswith("raw.") else RUN_COLUMNS
    )


def _land_events(events: str, landing_dir: Path, scratch: Path) -> None:
    """The simulated events, landed two minutes before the end of the run's interval."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "events.jsonl").write_text(events)
    _land(scratch / "events.jsonl", landing_dir, RUN_AT - timedelta(minutes=2))


def _default_interval(schedule: str) -> tuple:
    """The data interval `dag.test(logical_date=RUN_AT)` gives a DAG on its default schedule."""
    return manual_interval(Settings.model_fields[schedule].default, RUN_AT)


def _runs_of_chain(api) -> dict[str, list[dict]]:
    return {dag_id: api.runs(dag_id) for dag_id in FLOW}


def _task_instances(api, runs: dict[str, list[dict]]) -> list[dict]:
    return [
        ti for dag_id, rs in runs.items() for r in rs for ti in api.task_instances(dag_id, r["dag_run_id"])
    ]


def test_chain_on_two_celery_workers_survives_a_killed_worker(
    server_url, settings, airflow_db, dagbag, tmp_path, monkeypatch
):
    sim = simulate(tmp_path / "sim", customers=500, days=50, seed=5, end=SIM_END)
    events = sim.events_path.read_text()

    # The Celery run: its own warehouse, Pulse home, Airflow metadata database and Redis database.
    warehouse = _database(server_url, "pulse_test_celery")
    metadata = _database(server_url, "pulse_test_celery_meta")
    broker = redis.Redis.from_url(f"redis://127.0.0.1:6379/{BROKER_DB}")
    broker.flushdb()
    pg = make_url(server_url)
    metadata_url = pg.set(drivername="postgresql+psycopg2", database=metadata).render_as_string(False)
    celery_settings = Settings(
        database_url=pg.set(database=warehouse).render_as_string(False),
        home=tmp_path / "celery-home",
        feast_project=settings.feast_project,
    )
    env = cluster_environment(
        celery_settings,
        metadata_url=metadata_url,
        port=free_port(),
        executor="CeleryExecutor",
        broker_url=f"redis://127.0.0.1:6379/{BROKER_DB}",
        result_backend=pg.set(drivername="db+postgresql", database=metadata).render_as_string(False),
    )
    env.update(NO_SCHEDULE)
    _land_events(events, celery_settings.landing_dir, tmp_path / "celery")
    cluster = start_cluster(env)
    try:
        for worker in WORKERS:
            cluster.start_celery_worker(worker)
        api = cluster.api()
        api.wait_for_dags(FLOW)
        # ingest -> transform -> features (-> score_audiences, skipped: no model yet), by Assets.
        run_chain(api, RUN_AT, ingest_interval=_default_interval("ingest_schedule"), train=False)
        before_kill = {ti["hostname"] for ti in _task_instances(api, _runs_of_chain(api))}
        assert before_kill >= set(WORKERS), before_kill

        # Training (-> score_audiences again, by the model Asset); its worker is killed mid-task.
        train_run = api.trigger("pulse_train", RUN_AT, interval=_default_interval("train_schedule"))
        deadline = time.monotonic() + 300
        while True:
            [ti] = api.task_instances("pulse_train", train_run)
            if ti["state"] == "running" and ti["hostname"] in WORKERS:
                break
            assert time.monotonic() < deadline, (ti, cluster.logs())
            time.sleep(1)
        killed = ti["hostname"]
        time.sleep(3)  # well inside the task
        cluster.kill(killed)
        [train] = api.wait_for_runs("pulse_train", 1)
        assert train["state"] == "success", (train, cluster.logs())
        [ti] = api.task_instances("pulse_train", train_run)
        survivor = next(w for w in WORKERS if w != killed)
        assert ti["try_number"] == 2 and ti["hostname"] == survivor, ti
        runs = api.wait_for_runs("pulse_score_audiences", 2)
        assert [r["state"] for r in runs] == ["success", "success"], (runs, cluster.logs())
    finally:
        cluster.stop()
        broker.flushdb()
        _drop(server_url, metadata)
    try:
        celery_outputs = outputs(celery_settings.database_url, settings.feast_project)
    finally:
        _drop(server_url, warehouse)

    # The reference: the same interval with dag.test(), in this process, on the `settings` warehouse.
    _land_events(events, settings.landing_dir, tmp_path / "reference")
    for dag_id in FLOW:
        _run(dagbag, dag_id, RUN_AT)
    reference = outputs(settings.database_url, settings.feast_project)

    assert reference["ml.scores"][0] > 0 and reference["audiences.audience_members"][0] > 0
    differ = {t: (celery_outputs.get(t), reference.get(t)) for t in celery_outputs.keys() | reference.keys()}
    differ = {t: pair for t, pair in differ.items() if pair[0] != pair[1]}
    assert not differ, (sorted(differ), differ)


def test_compose_celery_settings_are_the_tests():
    """docker-compose's services set every Celery setting the test above runs with."""
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    env = compose["x-airflow-env"]
    assert set(CELERY_SETTINGS) <= set(env), set(CELERY_SETTINGS) - set(env)
