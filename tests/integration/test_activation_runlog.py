"""The activation run log on a real warehouse: a run with a rejected row is partial, never success; a run
left `running` by a dead process is marked interrupted with what its checkpoints recorded."""

import time

import sqlalchemy as sa

from pulse.activation import runlog
from pulse.activation.destinations import Outcome, Record
from pulse.db import engine


def test_rejected_rows_make_a_run_partial_and_dead_runs_are_marked_interrupted(settings):
    records = [Record("k1", "c1", "add"), Record("k2", "c2", "remove")]
    started = time.monotonic()
    with engine(settings).begin() as conn:
        run = runlog.start_run(conn, "s", "webhook", "mirror")
        runlog.record_outcomes(
            conn, run, records, [Outcome("k1", True, 200), Outcome("k2", False, 400, "bad")]
        )
        status = runlog.finish_run(
            conn, run, runlog.RunCounts(planned=2, sent=2, accepted=1, rejected=1), started, time.monotonic()
        )
        assert status == "partial"
        dead = runlog.start_run(conn, "s", "webhook", "mirror")
        runlog.record_outcomes(conn, dead, records[:1], [Outcome("k1", True, 200)])
        assert runlog.mark_interrupted(conn, "s") == dead
        rows = conn.execute(
            sa.text("select run_id, status, accepted, rejected from activation.sync_runs order by started_at")
        ).all()
        kept = conn.execute(
            sa.text(
                "select status, http_status, error from activation.sync_records where run_id = :r order by 1"
            ),
            {"r": run},
        ).all()
    assert rows == [(run, "partial", 1, 1), (dead, "interrupted", 1, 0)]
    assert kept == [("accepted", 200, None), ("rejected", 400, "bad")]
