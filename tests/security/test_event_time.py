"""#13 item 2: an event dated far ahead of (or long before) its receipt is rejected with reason
`event_time_out_of_range`, and a row already stored with such a time cannot make the daily snapshots
run past the load day."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from pulse.collector.process import CollectorProcess
from pulse.events.ingest import ingest_path
from tests.integration.dbt_support import dbt_build, load_simulation

KEY = "security-write-key"


def event(message_id: str, timestamp: str, **fields) -> dict:
    return {
        "type": "track",
        "event": "Viewed",
        "userId": "u1",
        "messageId": message_id,
        "timestamp": timestamp,
        **fields,
    }


def reasons(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("select reason from raw.events_rejected order by reason")]


def test_events_far_ahead_or_long_ago_are_rejected(settings, tmp_path):
    now = datetime.now(UTC)
    batch = [
        event("future", "4051-01-01T00:00:00Z"),
        event("ancient", "0001-01-02T00:00:00Z"),
        # The device clock is right, but sentAt claims year 1: the skew correction lands in the future.
        event("skewed", now.isoformat(), sentAt="0001-01-01T00:00:00Z"),
        event("tomorrow", (now + timedelta(hours=20)).isoformat()),  # time zones slip: accepted
        event("old", (now - timedelta(days=400)).isoformat()),  # a backfill: accepted
    ]
    with CollectorProcess({"PULSE_WRITE_KEY": KEY}, log_path=tmp_path / "collector.log") as collector:
        answer = httpx.post(collector.url + "/v1/batch", json={"batch": batch}, auth=(KEY, ""), timeout=30)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    assert {e["messageId"] for e in body["errors"]} == {"future", "ancient", "skewed"}
    assert all(e["reason"].startswith("event_time_out_of_range") for e in body["errors"])

    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in batch[:2]))
    assert ingest_path(path, settings).rejected == 2
    assert len(reasons(settings.database_url)) == 5
    assert all(r.startswith("event_time_out_of_range") for r in reasons(settings.database_url))


def test_a_stored_future_event_makes_no_snapshot_past_the_load_day(settings, tmp_path):
    load_simulation(settings, tmp_path, customers=15, days=10)
    with psycopg.connect(settings.database_url) as conn:
        customer = conn.execute(
            "select user_id from raw.events where user_id is not null limit 1"
        ).fetchone()[0]
        # As if stored before the range check existed (or by a tool writing raw.events directly).
        conn.execute(
            "insert into raw.events (event_id, event_type, event_name, user_id, event_at, received_at, "
            "properties, traits, context, source) values ('future-1', 'track', 'product_viewed', %s, "
            "now() + interval '60 days', now(), '{}', '{}', '{}', 'test')",
            (customer,),
        )
    dbt_build(settings)
    with psycopg.connect(settings.database_url) as conn:
        last, load_day = conn.execute(
            "select max(snapshot_date), (select max(loaded_at) at time zone 'UTC' from raw.events)::date "
            "from marts.customer_features"
        ).fetchone()
    assert last <= load_day + timedelta(days=1)
