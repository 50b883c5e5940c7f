"""A mirror sync to the local webhook server, end to end through the warehouse: first run, diff, removals,
holdout never sent, a bad row carried then dead-lettered, the run log adding up."""

from __future__ import annotations

import pytest

from pulse.activation.delivery import RetryPolicy
from pulse.activation.engine import run_sync
from pulse.activation.syncs import SyncDefinition
from tests.activation_fakes import FakeVendor, run_log, set_audience

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=2)


@pytest.fixture
def fake():
    vendor = FakeVendor("webhook").start()
    yield vendor
    vendor.stop()


def _sync(fake, **extra) -> SyncDefinition:
    return SyncDefinition.model_validate(
        {
            "name": "vip_hook",
            "audience": "vip",
            "mode": "mirror",
            "destination": {"kind": "webhook", "url": fake.url + "/hook"},
            "fields": {"email_sha256": "email_sha256", "score": "score"},
            "batch_size": 7,
            "concurrency": 2,
            **extra,
        }
    )


def test_mirror_sync_sends_the_diff_and_logs_every_row(settings, fake):
    treatment = [f"t{i:02d}" for i in range(30)]
    holdout = [f"h{i:02d}" for i in range(5)]
    set_audience(settings, "vip", treatment, holdout)
    sync = _sync(fake)

    first = run_sync(sync, settings, policy=FAST)
    assert first.status == "success" and first.counts.adds == 30 and first.counts.accepted == 30
    assert fake.members == set(treatment)

    again = run_sync(sync, settings, policy=FAST)
    assert again.counts.planned == 0 and again.status == "success"
    sent_before = len(fake.requests)

    # Two leave, three enter, one row the destination refuses.
    set_audience(settings, "vip", treatment[2:] + ["n1", "n2", "n3"], holdout)
    fake.bad("n2", "customer n2 is blocked")
    third = run_sync(sync, settings, policy=FAST)
    assert (third.counts.adds, third.counts.removes) == (3, 2)
    assert third.status == "partial" and third.counts.rejected == 1
    sent = [op["customer_id"] for r in fake.requests[sent_before:] for op in r.json["operations"]]
    assert sorted(sent) == sorted(["t00", "t01", "n1", "n2", "n3"])
    assert fake.members == set(treatment[2:]) | {"n1", "n3"}
    log = run_log(settings, third.run_id)
    assert log["records"] == {"accepted": 4, "rejected": 1} and log["status"] == "partial"
    assert log["planned"] == log["accepted"] + log["rejected"] + log["skipped_consent"] + log["skipped_other"]

    # The refused row is carried into the next runs, then dead-lettered (PULSE_ACTIVATION_MAX_ROW_FAILURES=3).
    fourth = run_sync(sync, settings, policy=FAST)
    assert fourth.counts.planned == 1 and fourth.counts.rejected == 1 and fourth.counts.dead_lettered == 0
    fifth = run_sync(sync, settings, policy=FAST)
    assert fifth.counts.dead_lettered == 1 and run_log(settings, fifth.run_id)["records"] == {
        "dead_letter": 1
    }
    assert run_sync(sync, settings, policy=FAST).counts.planned == 0

    assert not any(h in fake.request_text() for h in holdout)
    assert fake.duplicates == 0


def test_dry_run_plans_and_sends_nothing(settings, fake):
    set_audience(settings, "vip", ["a", "b", "c", "d"], ["z"])
    result = run_sync(_sync(fake), settings, dry_run=True)
    assert result.status == "dry_run" and result.counts.adds == 4 and not fake.requests
    body = result.previews[0]["body"]
    assert body["operations"][0]["customer_id"].startswith("sha256:")
    assert run_sync(_sync(fake), settings, policy=FAST).counts.adds == 4  # the dry run changed no state
