"""Every Pulse DAG run for real with `dag.test()` against PostgreSQL, in the order the Assets chain them,
then every DAG run again for the same data interval: every output table must be identical.

One flow is shared by both checks to keep heavy runs few (dbt, Feast and training run twice in all).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from pulse.events.simulator import simulate
from pulse.pipeline import window_key
from tests.conftest import table_checksums, tables_naming

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("airflow")]

SIM_END = datetime(2026, 3, 1, tzinfo=UTC)  # the newest snapshot is at this midnight
RUN_AT = SIM_END + timedelta(hours=1)  # logical date of every run: a 5-minute ingest interval ending here
FLOW = ["pulse_ingest", "pulse_transform", "pulse_features", "pulse_train", "pulse_score_audiences"]
OUTPUT_SCHEMAS = ("raw", "staging", "marts", "ml", "audiences")
ONLINE_SCHEMA = "feast_online"  # feature_repo/feature_store.yaml: the Postgres online store's schema
# Columns that record when a row was written, not what it says (wall-clock time of the run).
WRITE_TIME_COLUMNS = {"scored_at"}


def _land(path, landing_dir, at: datetime):
    target = landing_dir / path.name
    path.rename(target)
    os.utime(target, (at.timestamp(), at.timestamp()))
    return target


def _run(dagbag, dag_id: str, logical_date: datetime | None, **conf):
    run = dagbag.dags[dag_id].test(logical_date=logical_date, run_conf=conf or None)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", (dag_id, states)
    assert set(states.values()) == {"success"}, (dag_id, states)
    return run


def output_tables(conn, project: str) -> list[str]:
    """Pulse's output tables and views, and the Feast online store's tables of this test's project."""
    rows = conn.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_schema = any(%s) or (table_schema = %s and table_name like %s) order by 1",
        (list(OUTPUT_SCHEMAS), ONLINE_SCHEMA, f"{project}\\_%"),
    ).fetchall()
    return [r[0] for r in rows]


def checksums(url: str, project: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every output table."""
    with psycopg.connect(url) as conn:
        tables = output_tables(conn, project)
    return table_checksums(url, tables, lambda table: WRITE_TIME_COLUMNS)


def test_every_dag_runs_end_to_end_and_a_rerun_changes_nothing(settings, airflow_db, dagbag, tmp_path):
    sim = simulate(tmp_path / "sim", customers=500, days=50, seed=5, end=SIM_END)
    landed = _land(sim.events_path, settings.landing_dir, RUN_AT - timedelta(minutes=2))
    project = settings.feast_project

    for dag_id in FLOW:
        _run(dagbag, dag_id, RUN_AT)
    first = checksums(settings.database_url, project)

    with psycopg.connect(settings.database_url) as conn:
        count = lambda table: conn.execute(f"select count(*) from {table}").fetchone()[0]  # noqa: E731
        assert count("raw.events") == sim.n_events
        assert count("marts.customer_features") > 0
        assert count("ml.scores") > 0
        assert count("audiences.audience_members") > 0
        # The training recorded the champions it produced for its window, and they are the champions.
        champions = conn.execute(
            "select w.model_name, r.is_champion from ml.training_windows w join ml.model_runs r using (run_id)"
        ).fetchall()
        auc = conn.execute(
            "select m.value from ml.model_metrics m join ml.model_runs r using (run_id) "
            "where r.is_champion and r.model_name = 'purchase_propensity' and m.fold = 'holdout' "
            "and m.metric = 'auc'"
        ).fetchone()[0]
        as_of = conn.execute("select max(as_of) from ml.scores").fetchone()[0]
    assert champions and all(is_champion for _, is_champion in champions), champions
    assert "purchase_propensity" in {name for name, _ in champions}
    assert auc > 0.6
    assert as_of == SIM_END
    # The batch features were materialised into the online store (and the rerun compares its tables too).
    assert first[f"{ONLINE_SCHEMA}.{project}_customer_activity"][0] > 0, first
    # The landed file was claimed by its interval and loaded from there.
    assert not landed.exists()
    assert (settings.landing_dir / "loaded" / window_key(RUN_AT) / landed.name).exists()

    for dag_id in FLOW:
        _run(dagbag, dag_id, RUN_AT)
    second = checksums(settings.database_url, project)
    changed = {
        t: (first.get(t), second.get(t))
        for t in first.keys() | second.keys()
        if first.get(t) != second.get(t)
    }
    assert not changed, changed

    # The right to erasure: forget a customer who is scored, online and in an audience's export.
    with psycopg.connect(settings.database_url) as conn:
        customer = conn.execute(
            "select customer_id from audiences.audience_members where \"group\" = 'treatment' "
            "order by customer_id limit 1"
        ).fetchone()[0]
        devices = [
            row[0]
            for row in conn.execute(
                "select distinct anonymous_id from raw.events where user_id = %s and anonymous_id is not null",
                (customer,),
            )
        ]
    exports = sorted((settings.home_dir / "exports").glob("*.csv"))
    assert exports and any(customer in path.read_text() for path in exports)
    assert _online_values(settings, customer), "the customer should be online before"
    assert set(tables_naming(settings.database_url, customer)) >= {
        "raw.events",
        "ml.scores",
        "marts.customers",
    }

    _run(dagbag, "pulse_forget_customer", None, customer_id=customer)
    for value in [customer, *devices]:
        assert tables_naming(settings.database_url, value) == {}, value
    assert _online_values(settings, customer) == {}
    assert not any(customer in path.read_text() for path in exports)
    with psycopg.connect(settings.database_url) as conn:
        status, deleted = conn.execute("select status, deleted_rows from audit.forget_requests").fetchone()
        # raw.events and the stitched events lost the same rows: the next dbt run stays incremental.
        raw_count, stitched = conn.execute(
            "select (select count(*) from raw.events), "
            "(select count(*) from intermediate.int_events_stitched_to_customers)"
        ).fetchone()
    assert status == "verified" and deleted["raw.events"] > 0, deleted
    assert raw_count == stitched


def _online_values(settings, customer: str) -> dict[str, object]:
    """feature -> value of every online feature view that holds a value for `customer`."""
    from pulse.features.store import feature_store

    store = feature_store(settings)
    refs = [
        f"{view.name}:{f.name}" for view in store.list_feature_views() if view.online for f in view.features
    ]
    values = store.get_online_features(features=refs, entity_rows=[{"customer_id": customer}]).to_dict()
    return {
        name: column[0] for name, column in values.items() if name != "customer_id" and column[0] is not None
    }


def test_ingest_loads_each_file_in_the_interval_it_landed_in(settings, airflow_db, dagbag, tmp_path):
    sim = simulate(tmp_path / "sim", customers=20, days=3, seed=3, end=SIM_END)
    early = sim.events_path.with_name("early.jsonl")
    late = sim.events_path.with_name("late.jsonl")
    lines = sim.events_path.read_text().splitlines(keepends=True)
    early.write_text("".join(lines[: len(lines) // 2]))
    late.write_text("".join(lines[len(lines) // 2 :]) + "not json\n")
    _land(early, settings.landing_dir, RUN_AT - timedelta(minutes=3))
    _land(late, settings.landing_dir, RUN_AT + timedelta(minutes=1))  # lands in the next interval

    def loaded() -> tuple[int, int]:
        with psycopg.connect(settings.database_url) as conn:
            events = conn.execute("select count(*) from raw.events").fetchone()[0]
            rejected = conn.execute("select count(*) from raw.events_rejected").fetchone()[0]
        return events, rejected

    _run(dagbag, "pulse_ingest", RUN_AT)
    assert loaded() == (len(lines) // 2, 0)
    assert (settings.landing_dir / "late.jsonl").exists()

    _run(dagbag, "pulse_ingest", RUN_AT + timedelta(minutes=5))
    assert loaded() == (len(lines), 1)
    assert (
        settings.landing_dir / "loaded" / window_key(RUN_AT + timedelta(minutes=5)) / "late.jsonl"
    ).exists()

    # Re-running the first interval reloads exactly its file: nothing changes.
    _run(dagbag, "pulse_ingest", RUN_AT)
    assert loaded() == (len(lines), 1)
