"""The collector against a real PostgreSQL, through real HTTP: Segment's own client library, auth, gzip,
limits, clock skew, PII, and the group-commit writer's hooks."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from segment.analytics.client import Client

from pulse.collector.process import CollectorProcess, free_port
from pulse.collector.writer import GroupCommitWriter, Unavailable
from pulse.events.ingest import parse_payload

KEY = "test-write-key"


@pytest.fixture
def collector(settings, tmp_path):
    with CollectorProcess({"PULSE_WRITE_KEY": KEY}, log_path=tmp_path / "collector.log") as process:
        yield process


def rows(url: str, sql: str, *params):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def event(**fields):
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": "u1",
        "messageId": uuid.uuid4().hex,
        **fields,
    }


def post(collector, path, body, auth=(KEY, ""), **kwargs):
    return httpx.post(collector.url + path, json=body, auth=auth, timeout=30, **kwargs)


def test_segment_python_library_sends_every_event_into_raw_events(settings, collector):
    errors = []
    client = Client(
        write_key=KEY, host=collector.url, gzip=True, max_retries=3, on_error=lambda e, b: errors.append(e)
    )
    sent = []
    for i in range(150):
        _, msg = client.track(
            user_id=f"u{i % 7}", event="Product Viewed", properties={"product_id": f"p{i}", "price": i / 10}
        )
        sent.append(msg["messageId"])
    calls = [
        client.identify(user_id="u1", traits={"email": " Jane@Example.COM ", "phone": "(415) 555-0100"}),
        client.page(user_id="u1", category="Docs", name="Pricing", properties={"path": "/pricing"}),
        client.screen(user_id="u1", name="Home"),
        client.alias(previous_id="anon-1", user_id="u1"),
        client.group(user_id="u1", group_id="acme", traits={"plan": "pro"}),
        client.track(anonymous_id="a-9", event="order-completed", properties={"revenue": 12.5}),
    ]
    sent += [msg["messageId"] for _, msg in calls]
    client.flush()
    client.join()
    assert errors == []

    found = dict(rows(settings.database_url, "select event_id, event_name from raw.events"))
    assert set(found) == set(sent)
    assert sorted(set(found.values())) == [
        "alias",
        "group",
        "identify",
        "order_completed",
        "page",
        "product_viewed",
        "screen",
    ]
    (alias,) = rows(
        settings.database_url, "select previous_id, user_id from raw.events where event_type = 'alias'"
    )
    assert alias == ("anon-1", "u1")
    (page_props,) = rows(settings.database_url, "select properties from raw.events where event_type = 'page'")
    assert page_props[0]["name"] == "Pricing"
    # PII: only hashes, E.164 for the phone (a US number written without a country code).
    (traits,) = rows(settings.database_url, "select traits from raw.events where event_type = 'identify'")
    from pulse.events.pii import sha256

    assert traits[0] == {"email_sha256": sha256("jane@example.com"), "phone_sha256": sha256("+14155550100")}
    everything = rows(settings.database_url, "select t::text from raw.events t")
    leaks = [
        r[0]
        for r in everything
        for p in ("jane", "example.com", "555-0100", "4155550100")
        if p in r[0].lower()
    ]
    assert leaks == []


def test_auth_is_the_write_key(settings, collector):
    body = {"batch": [event()]}
    assert post(collector, "/v1/batch", body, auth=None).status_code == 401
    assert post(collector, "/v1/batch", body, auth=("wrong", "")).status_code == 401
    no_auth = httpx.post(collector.url + "/v1/batch", content=b"{not json", timeout=30)
    assert no_auth.status_code == 401
    # Segment also takes the key in the body (analytics.js does, to avoid a CORS preflight).
    assert post(collector, "/v1/batch", {**body, "writeKey": KEY}, auth=None).json()["accepted"] == 1
    assert rows(settings.database_url, "select count(*) from raw.events")[0][0] == 1
    assert rows(settings.database_url, "select count(*) from raw.events_rejected")[0][0] == 0
    assert post(collector, "/v1/nothing", body).status_code == 404
    health = httpx.get(collector.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["database"] == "up"


def test_gzip_single_calls_and_deterministic_ids(settings, collector):
    batch = {"batch": [event(), event(type="identify", event=None, traits={"plan": "pro"})]}
    response = httpx.post(
        collector.url + "/v1/batch",
        content=gzip.compress(json.dumps(batch).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        auth=(KEY, ""),
        timeout=30,
    )
    assert response.json() == {"success": True, "accepted": 2, "rejected": 0}
    # Single-call endpoints: the path names the call; an event without messageId gets a deterministic
    # one, so a retried event is still one event.
    no_id = {"userId": "u2", "event": "Signed In", "timestamp": "2026-03-01T10:00:00Z"}
    for _ in range(3):
        assert post(collector, "/v1/track", no_id).json()["accepted"] == 1
    assert (
        post(collector, "/v1/page", {"userId": "u2", "name": "Home", "messageId": "pg-1"}).status_code == 200
    )
    found = rows(settings.database_url, "select event_type, event_name from raw.events order by event_id")
    assert len(found) == 4  # two from the batch, one signed_in however often retried, one page
    assert ("track", "signed_in") in found and ("page", "page") in found
    bad_gzip = httpx.post(
        collector.url + "/v1/batch",
        content=b"\x1f\x8b not really gzip",
        headers={"Content-Encoding": "gzip"},
        auth=(KEY, ""),
        timeout=30,
    )
    assert bad_gzip.status_code == 400 and "decompress" in bad_gzip.json()["message"]


def test_segment_limits_answer_400_with_a_reason_and_keep_the_events(settings, collector):
    big_event = event(properties={"blob": "x" * (33 * 1024)})
    single = post(collector, "/v1/track", big_event)
    assert single.status_code == 400 and "32 KB" in single.json()["message"]

    in_batch = post(collector, "/v1/batch", {"batch": [event(), big_event, event()]})
    assert in_batch.status_code == 400
    assert in_batch.json()["message"].startswith("event 2 is") and in_batch.json()["rejected"] == 3

    huge = {"batch": [event(properties={"blob": "y" * 20_000}) for _ in range(30)]}  # ~600 KB
    too_big = post(collector, "/v1/batch", huge)
    assert too_big.status_code == 400 and "500 KB" in too_big.json()["message"]
    assert too_big.json()["rejected"] == 30

    malformed = httpx.post(collector.url + "/v1/batch", content=b'{"batch": [', auth=(KEY, ""), timeout=30)
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_json"

    assert rows(settings.database_url, "select count(*) from raw.events")[0][0] == 0
    reasons = [r[0] for r in rows(settings.database_url, "select reason from raw.events_rejected")]
    assert len(reasons) == 1 + 3 + 30 + 1
    assert sum("500 KB" in r for r in reasons) == 30 and sum("invalid JSON" in r for r in reasons) == 1


def test_clock_skew_is_corrected_as_segment_does(settings, collector):
    now = datetime.now(UTC)
    fast_clock = now + timedelta(hours=1)  # the device's clock is an hour ahead
    happened = fast_clock - timedelta(minutes=10)
    own = event(messageId="own", timestamp=happened.isoformat(), sentAt=fast_clock.isoformat())
    batch_level = event(messageId="batch", timestamp=happened.isoformat())
    no_sent_at = event(messageId="plain", timestamp="2026-01-01T10:00:00+02:00")
    post(collector, "/v1/batch", {"batch": [own], "sentAt": "2000-01-01T00:00:00Z"})  # event's own wins
    post(collector, "/v1/batch", {"batch": [batch_level], "sentAt": fast_clock.isoformat()})
    post(collector, "/v1/track", no_sent_at)
    got = {
        r[0]: r[1:]
        for r in rows(
            settings.database_url, "select event_id, event_at, original_at, received_at from raw.events"
        )
    }
    for key in ("own", "batch"):
        event_at, original_at, received_at = got[key]
        assert original_at == happened.replace(microsecond=happened.microsecond)
        assert abs(event_at - (received_at - timedelta(minutes=10))) < timedelta(seconds=1)
        assert abs(received_at - now) < timedelta(seconds=30)
    assert got["plain"][0] == datetime(2026, 1, 1, 8, tzinfo=UTC)  # no sentAt: kept, as UTC


def test_writer_hooks_see_new_rows_after_commit_and_unreachable_database_is_unavailable(settings):
    seen: list[list[dict]] = []
    writer = GroupCommitWriter(settings.database_url, hooks=[seen.append]).start()
    try:
        now = datetime.now(UTC)
        good = [parse_payload(event(messageId=f"h{i}"), "test", i, now) for i in range(5)]
        assert writer.submit(good, []).result(10) == 5
        assert writer.submit(good[:2], []).result(10) == 2  # a replay: durable, nothing new
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert [sorted(r["event_id"] for r in batch) for batch in seen] == [[f"h{i}" for i in range(5)]]
        assert rows(settings.database_url, "select count(*) from raw.events")[0][0] == 5
    finally:
        writer.close()

    nowhere = GroupCommitWriter(
        f"postgresql://postgres@127.0.0.1:{free_port()}/none", connect_timeout=1
    ).start()
    try:
        with pytest.raises(Unavailable):
            nowhere.submit(good, []).result(10)
        assert nowhere.stats.database_up is False
    finally:
        nowhere.close()
