"""The delivery loop against a local webhook server: retries honour Retry-After, a 5xx batch is retried,
a refused batch is split until the bad row stands alone, the rest is delivered once."""

from __future__ import annotations

import time

import pytest

from pulse.activation.delivery import RetryPolicy, deliver
from pulse.activation.destinations import Record, create
from pulse.activation.destinations.base import parse_retry_after
from tests.activation_fakes import FakeVendor

FAST = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=5)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "s3cret")
    vendor = FakeVendor("webhook", webhook_secret="s3cret").start()
    yield vendor
    vendor.stop()


def _records(n: int) -> list[Record]:
    return [Record(f"k{i}", f"c{i}", "add", {"score": i}) for i in range(n)]


def _run(fake, records, batch=10, concurrency=2):
    dest = create(
        "webhook",
        {"url": fake.url + "/hook", "signing_secret": {"env": "TEST_WEBHOOK_SECRET"}},
        concurrency=concurrency,
    )
    outcomes = {}
    batches = [(f"b{i}", records[i : i + batch]) for i in range(0, len(records), batch)]
    try:
        stats = deliver(dest, batches, "mirror", lambda b, o: outcomes.update({x.key: x for x in o}), FAST)
    finally:
        dest.close()
    return outcomes, stats


def test_429_storm_waits_for_retry_after_and_delivers_everything_once(fake):
    fake.throttle(3, retry_after="1")
    started = time.monotonic()
    outcomes, stats = _run(fake, _records(30), concurrency=1)
    assert time.monotonic() - started >= 3 * 1.0  # each 429 waited out its Retry-After (backoff is 0.01)
    assert all(o.accepted for o in outcomes.values()) and len(outcomes) == 30
    assert stats.retried == 3 and fake.members == {f"c{i}" for i in range(30)}
    assert fake.duplicates == 0


def test_a_500_on_one_batch_is_retried_and_a_bad_row_is_isolated_with_the_reason(fake):
    fake.batch_refusal = True  # the whole batch is refused (422) while it holds the bad row
    fake.fail_once("c3", 500)
    fake.bad("c17", "email_sha256 is not a SHA-256 hash")
    outcomes, stats = _run(fake, _records(40))
    rejected = {k: o for k, o in outcomes.items() if not o.accepted}
    assert list(rejected) == ["k17"]
    assert rejected["k17"].http_status == 422 and "not a SHA-256 hash" in rejected["k17"].error
    assert fake.members == {f"c{i}" for i in range(40)} - {"c17"}
    assert stats.retried == 1 and fake.duplicates == 0


def test_per_row_rejections_in_a_2xx_answer_are_recorded(fake):
    fake.bad("c5", "unknown customer")
    outcomes, _ = _run(fake, _records(10))
    assert [k for k, o in outcomes.items() if not o.accepted] == ["k5"]
    assert outcomes["k5"].error == "unknown customer" and outcomes["k5"].http_status == 200


def test_exhausted_retries_reject_rows_with_the_last_error(fake):
    fake.throttle(100, retry_after="0")
    outcomes, stats = _run(fake, _records(5), batch=5)
    assert not any(o.accepted for o in outcomes.values())
    assert {o.http_status for o in outcomes.values()} == {429} and stats.retried == FAST.max_attempts - 1


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
