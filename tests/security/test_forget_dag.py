"""The forget DAG passes only a request id between its tasks and logs no identifier (issue 13, item 9):
after a run, neither its XComs nor its task logs hold the customer id, their device id or email hash."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import psycopg

from pulse.events.ingest import ingest_file
from pulse.events.pii import sha256
from tests.conftest import tables_naming
from tests.dags.conftest import airflow_db, dagbag  # noqa: F401 - fixtures

TARGET = "c-dag-target"
DEVICE = "dev-dag-target"
EMAIL = "dag.target@example.com"


def test_the_forget_dag_keeps_identifiers_out_of_xcom_and_logs(
    settings,
    airflow_db,  # noqa: F811 - the fixture imported above
    dagbag,  # noqa: F811
    tmp_path,
    capfd,
    caplog,
):
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(e) + "\n"
            for e in [
                {
                    "type": "identify",
                    "messageId": "d1",
                    "timestamp": "2026-05-01T10:00:00Z",
                    "userId": TARGET,
                    "anonymousId": DEVICE,
                    "traits": {"email": EMAIL},
                },
                {
                    "type": "track",
                    "event": "Product Viewed",
                    "messageId": "d2",
                    "timestamp": "2026-05-01T10:01:00Z",
                    "userId": "c-someone-else",
                },
            ]
        )
    )
    ingest_file(events, settings)
    caplog.set_level(logging.DEBUG)

    run = dagbag.dags["pulse_forget_customer"].test(run_conf={"customer_id": TARGET})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert tables_naming(settings.database_url, TARGET) == {}
    with psycopg.connect(settings.database_url) as conn:
        assert (
            conn.execute("select count(*) from audit.forget_pending").fetchone()[0] == 0
        )  # dropped once verified

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = [
            (x.task_id, x.value)
            for x in session.query(XComModel).filter_by(dag_id="pulse_forget_customer", run_id=run.run_id)
        ]
    assert xcoms and all(isinstance(v, (str, int, dict, type(None))) for _, v in xcoms)
    logs_dir = (
        Path(os.environ["AIRFLOW_HOME"]) / "logs" / "dag_id=pulse_forget_customer" / f"run_id={run.run_id}"
    )
    files = (
        "".join(p.read_text(errors="replace") for p in logs_dir.rglob("*") if p.is_file())
        if logs_dir.is_dir()
        else ""
    )
    captured = capfd.readouterr()
    seen = {
        "xcom": json.dumps(xcoms, default=str),
        "task log files": files,
        "output": captured.out + captured.err + caplog.text,
    }
    for where, text in seen.items():
        for value in (TARGET, DEVICE, sha256(EMAIL), EMAIL):
            assert value not in text, (where, value)
