"""pulse_activate: scheduled by the audiences Asset, one mapped task per sync, `sync` / `dry_run` params;
run for real with dag.test() against the warehouse and a local webhook server."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import yaml

from pulse.config import PROJECT_ROOT
from pulse.db import engine
from tests.activation_fakes import FakeVendor, set_audience

pytestmark = pytest.mark.xdist_group("airflow")


@pytest.fixture(scope="module")
def dagbag():
    """This DAG file only (the whole folder parses dbt's project for pulse_transform)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "pulse_activate.py"))


def test_activate_is_scheduled_by_audiences_and_takes_sync_and_dry_run(dagbag):
    dag = dagbag.dags["pulse_activate"]
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["pulse_audiences"]
    assert {"sync", "dry_run"} <= set(dag.params.keys())
    assert type(dag.get_task("run")).__name__.endswith("MappedOperator")


def test_activate_runs_one_mapped_task_per_sync(settings, airflow_db, dagbag, tmp_path, monkeypatch):
    fake = FakeVendor("webhook").start()
    try:
        folder = tmp_path / "project" / "campaigns" / "syncs"
        folder.mkdir(parents=True)
        for name in ("vip_a", "vip_b"):
            (folder / f"{name}.yml").write_text(
                yaml.safe_dump(
                    {
                        "name": name,
                        "audience": "vip",
                        "mode": "mirror",
                        "destination": {"kind": "webhook", "url": f"{fake.url}/{name}"},
                    }
                )
            )
        monkeypatch.setenv("PULSE_PROJECT_DIR", str(tmp_path / "project"))
        set_audience(settings, "vip", ["a", "b"], ["h"])

        dry = dagbag.dags["pulse_activate"].test(run_conf={"sync": "vip_a", "dry_run": True})
        assert dry.state == "success" and not fake.requests
        run = dagbag.dags["pulse_activate"].test(run_conf={"sync": "", "dry_run": False})
        states = [(ti.task_id, ti.map_index, ti.state) for ti in run.get_task_instances()]
        assert run.state == "success", states
        assert sorted(s for s in states if s[0] == "run") == [("run", 0, "success"), ("run", 1, "success")]
        with engine(settings).connect() as conn:
            runs = conn.execute(
                sa.text("select sync_name, status, accepted from activation.sync_runs order by 1, 2")
            ).all()
        assert runs == [("vip_a", "dry_run", 0), ("vip_a", "success", 2), ("vip_b", "success", 2)]
        assert {r.path for r in fake.requests} == {"/vip_a", "/vip_b"}
    finally:
        fake.stop()
