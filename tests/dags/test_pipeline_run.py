"""The pipeline DAG, run for real with `dag.test()`: landed events in, an audience table out."""

import psycopg
import pytest

from pulse.events.simulator import simulate

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("airflow")]


def test_pipeline_dag_runs_from_landed_events_to_audience(settings, airflow_db, dagbag, tmp_path):
    sim = simulate(tmp_path / "sim", customers=500, days=50, seed=5, end=None)
    sim.events_path.rename(settings.landing_dir / "events.jsonl")

    run = dagbag.dags["pulse_pipeline"].test()
    assert run.state == "success", [(ti.task_id, ti.state) for ti in run.get_task_instances()]

    with psycopg.connect(settings.database_url) as conn:
        count = lambda table: conn.execute(f"select count(*) from {table}").fetchone()[0]  # noqa: E731
        assert count("raw.events") == sim.n_events
        assert count("marts.customer_features") > 0
        assert count("ml.model_runs") == 1
        assert count("ml.scores") > 0
        assert count("audiences.audience_members") > 0
        auc = conn.execute("select value from ml.model_metrics where metric = 'auc'").fetchone()[0]
    assert auc > 0.6
    # The landed file was loaded and moved aside.
    assert not (settings.landing_dir / "events.jsonl").exists()
    assert (settings.landing_dir / "loaded" / "events.jsonl").exists()
