"""Every destination against a local server speaking its vendor's contract (tests/activation_fakes.py):
first run, a second run sending only the diff, removals, a 429 storm with Retry-After, a 500 on one
batch, one bad row isolated with the vendor's reason while the rest is delivered, and the holdout never
in any request."""

from __future__ import annotations

import time

import pytest

from pulse.activation.delivery import RetryPolicy
from pulse.activation.engine import run_sync
from pulse.activation.syncs import SyncDefinition
from tests.activation_fakes import TOKEN, FakeVendor, run_log, set_audience, sha

FAST = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=3)

CASES = {
    # kind: (destination options, mode, batch size, how the vendor names a customer)
    "webhook": ({}, "mirror", 10, lambda c: c),
    "meta": (
        {"audience_id": "6123", "access_token": {"env": "TEST_VENDOR_TOKEN"}},
        "mirror",
        10,
        lambda c: sha(f"{c}@example.com"),
    ),
    "klaviyo": ({"list_id": "Xy12", "api_key": {"env": "TEST_VENDOR_TOKEN"}}, "mirror", 10, lambda c: c),
    "braze": ({"api_key": {"env": "TEST_VENDOR_TOKEN"}}, "mirror", 10, lambda c: c),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_destination_contract(kind, settings, monkeypatch):
    monkeypatch.setenv("TEST_VENDOR_TOKEN", TOKEN)
    options, mode, batch, vendor_id = CASES[kind]
    fake = FakeVendor(kind).start()
    try:
        url_key = "url" if kind == "webhook" else "base_url"
        url = fake.url + ("/hook" if kind == "webhook" else "")
        sync = SyncDefinition.model_validate(
            {
                "name": f"vip_{kind}",
                "audience": "vip",
                "mode": mode,
                "destination": {"kind": kind, url_key: url, **options},
                "fields": {"email_sha256": "email_sha256", "score": "score"},
                "batch_size": batch,
                "concurrency": 2,
            }
        )
        treatment = [f"t{i:02d}" for i in range(35)]
        holdout = [f"h{i:02d}" for i in range(6)]
        set_audience(settings, "vip", treatment, holdout)

        # First run under a 429 storm (Retry-After: 2, twice) and a 500 on the batch holding t05.
        fake.throttle(2, retry_after="2")
        fake.fail_once(vendor_id("t05"), 500)
        started = time.monotonic()
        first = run_sync(sync, settings, policy=FAST)
        assert time.monotonic() - started >= 2.0, "Retry-After was not waited out"
        assert first.status == "success" and first.counts.accepted == 35 and first.counts.retried >= 3
        assert fake.members == {vendor_id(c) for c in treatment}

        # Nothing changed: nothing sent.
        before = len(fake.requests)
        assert run_sync(sync, settings, policy=FAST).counts.planned == 0 and len(fake.requests) == before

        # Three leave, two enter, one of them refused by the vendor with its reason.
        set_audience(settings, "vip", treatment[3:] + ["n1", "n2"], holdout)
        fake.bad(vendor_id("n2"), "blocked by the vendor")
        third = run_sync(sync, settings, policy=FAST)
        assert (third.counts.adds, third.counts.removes, third.counts.rejected) == (2, 3, 1)
        assert third.status == "partial"
        assert fake.members == {vendor_id(c) for c in treatment[3:] + ["n1"]}
        log = run_log(settings, third.run_id)
        assert log["planned"] == log["accepted"] + log["rejected"] and log["records"]["rejected"] == 1
        sent_later = "".join(f"{s.path}\n{s.body.decode()}" for s in fake.requests[before:])
        assert vendor_id("t10") not in sent_later  # only the diff went out

        import sqlalchemy as sa

        from pulse.db import engine

        with engine(settings).connect() as conn:
            reason = conn.execute(
                sa.text(
                    "select error from activation.sync_records where run_id = :r and status = 'rejected'"
                ),
                {"r": third.run_id},
            ).scalar()
        assert "blocked by the vendor" in reason

        text = fake.request_text()
        assert not any(c in text or sha(f"{c}@example.com") in text for c in holdout)
    finally:
        fake.stop()


def test_file_drop_writes_one_file_per_run_without_the_holdout(settings, tmp_path):
    set_audience(settings, "vip", ["a", "b", "c"], ["h"])
    sync = SyncDefinition.model_validate(
        {
            "name": "vip_file",
            "audience": "vip",
            "mode": "mirror",
            "destination": {"kind": "file_drop", "folder": str(tmp_path / "drop"), "format": "csv"},
            "fields": {"email_sha256": "email_sha256"},
        }
    )
    assert run_sync(sync, settings).counts.accepted == 3
    set_audience(settings, "vip", ["b", "c", "d"], ["h"])
    assert run_sync(sync, settings).counts.accepted == 2
    files = sorted((tmp_path / "drop").glob("*.csv"))
    assert len(files) == 2
    first, second = (f.read_text().splitlines() for f in files)
    assert first[0] == "operation,customer_id,idempotency_key,email_sha256" and len(first) == 4
    assert sorted(line.split(",")[:2] for line in second[1:]) == [["add", "d"], ["remove", "a"]]
    assert not any(",h," in line for line in first + second)
