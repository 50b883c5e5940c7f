"""Fault test: `pulse sync` killed with SIGKILL midway, then run again. Every add and remove reaches the
destination exactly once by idempotency key (the batch in flight at the kill is resent under the same
keys and deduplicated), and the run log adds up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import sqlalchemy as sa
import yaml

from pulse.activation.engine import run_syncs
from pulse.config import PROJECT_ROOT, Settings
from pulse.db import engine
from tests.activation_fakes import FakeVendor, run_log, set_audience


def test_killed_sync_resumes_without_resending_acknowledged_rows(settings, tmp_path, monkeypatch):
    fake = FakeVendor("webhook").start()
    try:
        project = tmp_path / "project"
        (project / "campaigns" / "syncs").mkdir(parents=True)
        (project / "campaigns" / "syncs" / "vip_hook.yml").write_text(
            yaml.safe_dump(
                {
                    "name": "vip_hook",
                    "audience": "vip",
                    "mode": "mirror",
                    "destination": {"kind": "webhook", "url": fake.url + "/hook"},
                    "fields": {"score": "score"},
                    "batch_size": 10,
                    "concurrency": 2,
                }
            )
        )
        monkeypatch.setenv("PULSE_PROJECT_DIR", str(project))
        local = Settings()
        first = [f"c{i:03d}" for i in range(40)]
        set_audience(settings, "vip", first, ["h1"])
        assert run_syncs("vip_hook", settings=local)[0].counts.accepted == 40

        # 15 leave, 60 enter; the sync is killed after the destination applied 30 of the 75 changes.
        second = first[15:] + [f"n{i:03d}" for i in range(60)]
        set_audience(settings, "vip", second, ["h1"])
        fake.hold_after(40 + 30)
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src"), "PULSE_PROJECT_DIR": str(project)}
        child = subprocess.Popen(
            [sys.executable, "-m", "pulse.cli", "sync", "vip_hook"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert fake.held.wait(120), "the sync never reached the destination"
            # Checkpoints are written beside the sending (checkpoint.InBackground): kill once the first
            # answered batch is in the log, as a kill later in a long sync would find it.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _checkpointed(settings) < 10:
                time.sleep(0.05)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
        fake.hold_at = None
        fake.held.clear()

        rerun = run_syncs("vip_hook", settings=local)[0]
        assert rerun.status == "success"
        # Every change reached the destination once: 40 first adds, 15 removes, 60 adds, all distinct keys.
        assert len(fake.applied) == 40 + 15 + 60 and set(fake.applied.values()) == {1}
        assert fake.members == set(second)
        # Resent at most: the 2 batches in flight and those answered but not yet checkpointed (one
        # waiting, two being written: checkpoint.InBackground).
        assert fake.duplicates <= (2 + 3) * 10

        with engine(settings).connect() as conn:
            runs = conn.execute(
                sa.text("select run_id, status from activation.sync_runs order by started_at")
            ).all()
            delivered = conn.execute(
                sa.text(
                    "select count(distinct record_key) from activation.sync_records where status = 'accepted'"
                )
            ).scalar()
        assert [s for _, s in runs] == ["success", "interrupted", "success"]
        killed = run_log(settings, runs[1][0])
        assert killed["accepted"] >= 10 and rerun.counts.planned == 75 - killed["accepted"]
        log = run_log(settings, rerun.run_id)
        assert (
            log["planned"]
            == log["accepted"] + log["rejected"] + log["skipped_consent"] + log["skipped_other"]
        )
        assert log["resumed_from"] == runs[1][0]
        assert delivered == 40 + 75
    finally:
        fake.stop()


def _checkpointed(settings) -> int:
    """Accepted rows logged by the run still marked running (the child being killed)."""
    with engine(settings).connect() as conn:
        return conn.execute(
            sa.text(
                "select count(*) from activation.sync_records s join activation.sync_runs r using (run_id) "
                "where r.status = 'running' and s.status = 'accepted'"
            )
        ).scalar()
