"""Triggers beside a real collector process (`pulse serve` runs the trigger worker): kill -9 with pending
timers, restart, each fires exactly once; the worker restarted by serve, and stopping when serve is gone."""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from pulse.collector.process import CollectorProcess
from pulse.db import warehouse_url
from pulse.triggers.state import sync_triggers
from tests.activation_fakes import FakeVendor

KEY = "trigger-test-key"
URL_ENV = "PULSE_TEST_TRIGGER_URL"
WAIT_SECONDS = 4
CUSTOMERS = 30


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute("select status, count(*) from activation.trigger_timers group by 1").fetchall()
        )


@pytest.mark.e2e
def test_kill_9_with_pending_timers_fires_each_once_after_restart(settings, tmp_path):
    vendor = FakeVendor("webhook").start()
    folder = tmp_path / "triggers"
    folder.mkdir()
    (folder / "abandoned.yml").write_text(
        yaml.safe_dump(
            {
                "name": "abandoned",
                "description": "checkout without an order",
                "entry": {"event": "checkout_started", "where": ["value > 50"]},
                "wait": {"duration": WAIT_SECONDS, "cancel_on": ["order_completed"], "grace": 1},
                "holdout_pct": 0,
                "destination": {"type": "webhook", "url_env": URL_ENV},
            }
        )
    )
    sync_triggers(settings, folder)
    url = warehouse_url(settings)
    env = {"PULSE_WRITE_KEY": KEY, URL_ENV: vendor.url + "/hook"}
    collector = CollectorProcess(env, log_path=tmp_path / "collector.log").start()
    try:
        at = datetime.now(UTC)
        now, later = at.isoformat(), (at + timedelta(seconds=1)).isoformat()
        batch = [
            {
                "type": "track",
                "event": "Checkout Started",
                "userId": f"c{i}",
                "messageId": f"m-{uuid.uuid4().hex}",
                "timestamp": now,
                "properties": {"value": 80},
            }
            for i in range(CUSTOMERS)
        ]
        # Customer c0 orders inside the wait: cancelled, before or after the crash alike.
        batch.append(
            {
                "type": "track",
                "event": "Order Completed",
                "userId": "c0",
                "timestamp": later,
                "properties": {},
            }
        )
        answer = httpx.post(collector.url + "/v1/batch", json={"batch": batch}, auth=(KEY, ""), timeout=30)
        assert answer.status_code == 200, answer.text
        _wait_for(lambda: _statuses(url).get("pending") == CUSTOMERS - 1, 20, "pending timers")
        collector.kill()  # kill -9 while every timer waits
        assert vendor.requests == []
        time.sleep(WAIT_SECONDS + 1.5)  # the timers fall due while no collector runs
        collector = CollectorProcess(env, log_path=tmp_path / "collector.log").start()
        _wait_for(lambda: _statuses(url).get("fired") == CUSTOMERS - 1, 30, "timers firing after restart")
        time.sleep(1.0)  # anything fired twice would show now
    finally:
        collector.stop()
        vendor.stop()
    assert _statuses(url) == {"fired": CUSTOMERS - 1, "cancelled": 1}
    assert sorted(vendor.applied.values()) == [1] * (CUSTOMERS - 1)  # each timer key delivered once
    assert vendor.duplicates == 0
    assert "c0" not in vendor.members


def _trigger_workers(parent: int) -> list[int]:
    """Pids of `pulse triggers run` processes whose parent is `parent` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == parent and b"triggers" in command and b"run" in command:
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.e2e
def test_serve_restarts_its_trigger_worker_and_the_worker_stops_with_it(settings, tmp_path):
    collector = CollectorProcess({"PULSE_WRITE_KEY": KEY}, log_path=tmp_path / "collector.log").start()
    try:
        assert collector.process is not None
        parent = collector.process.pid
        first = _wait_for(lambda: _trigger_workers(parent), 20, "the trigger worker")[0]
        os.kill(first, signal.SIGKILL)
        second = _wait_for(lambda: [p for p in _trigger_workers(parent) if p != first], 20, "a new worker")[0]
        os.kill(parent, signal.SIGKILL)  # the collector alone: its worker notices and stops
        _wait_for(lambda: not _alive(second), 30, "the orphaned worker to stop")
    finally:
        collector.kill()
