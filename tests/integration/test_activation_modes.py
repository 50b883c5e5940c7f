"""The sync modes besides mirror, against the local contract servers: `events` (an "Audience Entered" /
"Audience Exited" Segment track call per change, to the webhook and as Braze custom events) and `upsert`
(profile attributes: only customers whose mapped fields changed are sent again)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pulse.activation.delivery import RetryPolicy
from pulse.activation.engine import run_sync
from pulse.activation.syncs import SyncDefinition
from pulse.db import engine
from tests.activation_fakes import TOKEN, FakeVendor, set_audience

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=1)


@pytest.fixture
def vendors():
    started = {}

    def start(kind: str) -> FakeVendor:
        started[kind] = FakeVendor(kind).start()
        return started[kind]

    yield start
    for vendor in started.values():
        vendor.stop()


def _sync(kind: str, mode: str, url: str, **destination) -> SyncDefinition:
    return SyncDefinition.model_validate(
        {
            "name": f"vip_{kind}_{mode}",
            "audience": "vip",
            "mode": mode,
            "destination": {"kind": kind, **destination, ("url" if kind == "webhook" else "base_url"): url},
            "fields": {"score": "score"},
            "batch_size": 4,
        }
    )


@pytest.mark.parametrize("kind", ["webhook", "braze"])
def test_events_mode_sends_an_entered_or_exited_event_per_change(kind, settings, vendors, monkeypatch):
    monkeypatch.setenv("TEST_VENDOR_TOKEN", TOKEN)
    vendor = vendors(kind)
    extra = {"api_key": {"env": "TEST_VENDOR_TOKEN"}} if kind == "braze" else {}
    sync = _sync(kind, "events", vendor.url + ("/hook" if kind == "webhook" else ""), **extra)
    set_audience(settings, "vip", ["a", "b", "c"], ["h"])
    assert run_sync(sync, settings, policy=FAST).counts.accepted == 3
    set_audience(settings, "vip", ["b", "c", "d"], ["h"])
    assert run_sync(sync, settings, policy=FAST).status == "success"

    def who(event):
        return event.get("userId") or event.get("external_id")

    def props(event):
        return event["properties"]

    seen = sorted((e.get("event") or e.get("name"), who(e)) for e in vendor.events)
    assert seen == [
        ("Audience Entered", "a"),
        ("Audience Entered", "b"),
        ("Audience Entered", "c"),
        ("Audience Entered", "d"),
        ("Audience Exited", "a"),
    ]
    assert all(props(e)["audience"] == "vip" and "score" in props(e) for e in vendor.events)
    assert "h" not in {who(e) for e in vendor.events}


def test_upsert_mode_sends_only_changed_attributes(settings, vendors, monkeypatch):
    monkeypatch.setenv("TEST_VENDOR_TOKEN", TOKEN)
    vendor = vendors("braze")
    sync = _sync("braze", "upsert", vendor.url, api_key={"env": "TEST_VENDOR_TOKEN"})
    set_audience(settings, "vip", ["a", "b", "c"], ["h"])
    first = run_sync(sync, settings, policy=FAST)
    assert first.counts.adds == 3 and set(vendor.profiles) == {"a", "b", "c"}
    assert vendor.profiles["a"]["score"] == 1.0

    # b's score changes (set_audience scores by rank: b becomes first), c leaves.
    set_audience(settings, "vip", ["b", "a"], ["h"])
    second = run_sync(sync, settings, policy=FAST)
    assert (second.counts.adds, second.counts.updates, second.counts.removes) == (0, 2, 1)
    assert vendor.profiles["b"]["score"] == 1.0 and vendor.profiles["a"]["score"] == 0.5
    assert vendor.profiles["c"].get("score") is None  # a removal unsets the mapped attributes
    assert run_sync(sync, settings, policy=FAST).counts.planned == 0
    with engine(settings).connect() as conn:
        operations = conn.execute(
            sa.text("select operation, count(*) from activation.sync_records where run_id = :r group by 1"),
            {"r": second.run_id},
        ).all()
    assert dict(operations) == {"update": 2, "remove": 1}
    assert "h" not in vendor.profiles
