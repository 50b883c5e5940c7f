"""Consent end to end: events carry Segment's context.consent.categoryPreferences, dbt keeps the latest per
customer and category (marts.customer_consent), a sync requiring `marketing` skips customers without it
(deny by default) and removes a customer who withdraws it on the next mirror run."""

from __future__ import annotations

import pytest

from pulse.activation.engine import run_sync
from pulse.activation.syncs import SyncDefinition
from pulse.config import Settings
from pulse.transform import run_dbt
from tests.activation_fakes import FakeVendor, set_audience
from tests.integration.dbt_support import ingest_events


def _event(n: int, user: str, at: str, preferences) -> dict:
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m{n}",
        "userId": user,
        "timestamp": at,
        "properties": {"product_id": "p1"},
        "context": {"consent": {"categoryPreferences": preferences}},
    }


@pytest.fixture
def fake():
    vendor = FakeVendor("webhook").start()
    yield vendor
    vendor.stop()


def test_withdrawn_consent_removes_the_customer_on_the_next_mirror_run(settings, tmp_path, fake, monkeypatch):
    ingest_events(
        settings,
        tmp_path,
        "consent1",
        [
            _event(1, "a", "2026-04-01T10:00:00Z", {"marketing": True, "advertising": False}),
            _event(2, "b", "2026-04-01T10:00:00Z", {"marketing": True}),
            _event(3, "c", "2026-04-01T10:00:00Z", {"marketing": False}),
            _event(4, "b", "2026-04-02T10:00:00Z", {"marketing": "yes"}),  # not a boolean: no signal
        ],
    )  # d sends nothing
    run_dbt(["run", "--select", "+customer_consent"], settings)
    set_audience(settings, "vip", ["a", "b", "c", "d"])
    sync = SyncDefinition.model_validate(
        {
            "name": "vip_consent",
            "audience": "vip",
            "mode": "mirror",
            "destination": {"kind": "webhook", "url": fake.url + "/hook"},
            "consent": ["marketing"],
        }
    )
    first = run_sync(sync, settings)
    assert fake.members == {"a", "b"} and first.counts.skipped_consent == 2  # c said no, d said nothing

    # b withdraws marketing consent later; the next mirror run removes b.
    ingest_events(
        settings, tmp_path, "consent2", [_event(5, "b", "2026-04-03T10:00:00Z", {"marketing": False})]
    )
    run_dbt(["run", "--select", "+customer_consent"], settings)
    second = run_sync(sync, settings)
    assert second.counts.removes == 1 and fake.members == {"a"}

    # Teams that collect consent elsewhere: no signal counts as consent.
    monkeypatch.setenv("PULSE_CONSENT_DEFAULT", "allow")
    third = run_sync(sync, Settings())
    assert third.counts.adds == 1 and fake.members == {"a", "d"}
