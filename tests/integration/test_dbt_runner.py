"""`pulse.transform.run_dbt` runs dbt in this process: results, progress, and failures as DbtError.

Real dbt against a real (empty or nearly empty) warehouse; each call is a full dbt invocation, so a
second one in the same process also checks that a failed invocation leaves nothing behind.
"""

import json

import psycopg
import pytest
from sqlalchemy.engine import make_url

from pulse.config import Settings
from pulse.transform import DbtError, DbtProgress, run_dbt

STAGING_EVENTS = ["build", "--select", "stg_pulse__events", "--exclude-resource-type", "unit_test"]


def test_a_failing_data_test_raises_naming_it_and_the_next_run_succeeds(settings):
    # An event type outside the contract, written past the ingest validation, as a bad backfill would.
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "insert into raw.events (event_id, event_type, event_name, event_at, received_at, source) "
            "values ('bad-1', 'bogus', 'bogus', now(), now(), 'test')"
        )
    steps: list[DbtProgress] = []
    with pytest.raises(DbtError) as failure:
        run_dbt(STAGING_EVENTS, settings, on_progress=steps.append)
    assert "accepted_values_stg_pulse__events_event_type" in str(failure.value)
    assert ": fail: " in str(failure.value)
    # Every selected node reported once, the last one as the total.
    assert steps and steps[-1].done == steps[-1].total == len(steps)
    assert "stg_pulse__events" in {s.node for s in steps}
    results = json.loads((settings.home_dir / "dbt" / "target" / "run_results.json").read_text())
    assert {r["status"] for r in results["results"]} >= {"success", "fail", "pass"}

    with psycopg.connect(settings.database_url) as conn:
        conn.execute("delete from raw.events where event_id = 'bad-1'")
    results = run_dbt(STAGING_EVENTS, settings)
    assert {r.status for r in results} <= {"success", "pass"}
    assert "model.pulse.stg_pulse__events" in {r.unique_id for r in results}


def test_an_unreachable_warehouse_raises_with_the_servers_reason(settings, tmp_path):
    missing = make_url(settings.database_url).set(database="pulse_no_such_database")
    elsewhere = Settings(
        database_url=missing.render_as_string(hide_password=False), home=tmp_path / "elsewhere"
    )
    with pytest.raises(DbtError, match="pulse_no_such_database"):
        run_dbt(STAGING_EVENTS, elsewhere)
