"""Triggers in a real collector process: kill -9 with pending timers, restart, each fires exactly once."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

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
