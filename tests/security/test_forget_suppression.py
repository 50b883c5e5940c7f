"""A forgotten person's later events are rejected (issue 13, item 9): by file ingest and by the collector,
with reason `forgotten_subject`, keeping nothing of theirs; the suppression list holds hashes only."""

from __future__ import annotations

import json
import time

import httpx
import psycopg

from pulse import forget as erasure
from pulse.collector.process import CollectorProcess
from pulse.events.ingest import ingest_file
from pulse.events.pii import sha256
from tests.conftest import tables_naming

TARGET, OTHER = "c-gone", "c-stays"
EMAIL = "gone@example.com"
KEY = "suppression-write-key"


def _track(message_id: str, at: str, **fields) -> dict:
    return {"type": "track", "event": "Product Viewed", "messageId": message_id, "timestamp": at, **fields}


def _rejects(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("select reason, payload from raw.events_rejected order by payload").fetchall()


def test_events_of_a_forgotten_person_are_rejected_by_ingest_and_the_collector(settings, tmp_path):
    url = settings.database_url
    first = tmp_path / "first.jsonl"
    first.write_text(
        json.dumps(
            {
                "type": "identify",
                "messageId": "a1",
                "timestamp": "2026-05-01T10:00:00Z",
                "userId": TARGET,
                "anonymousId": "dev-gone",
                "traits": {"email": EMAIL},
            }
        )
        + "\n"
    )
    ingest_file(first, settings)
    erasure.forget(customer_id=TARGET, settings=settings)
    with psycopg.connect(url) as conn:
        listed = conn.execute(
            "select subject_sha256, kind from raw.forgotten_subjects order by 2, 1"
        ).fetchall()
    assert sorted(listed) == sorted(
        [
            (sha256(TARGET), "id"),
            (sha256("dev-gone"), "id"),
            (sha256(f"sha256:{sha256(EMAIL)}"), "id"),  # their address as a user id, as stored
            (sha256(sha256(EMAIL)), "email"),
        ]
    )

    later = tmp_path / "later.jsonl"
    later.write_text(
        "".join(
            json.dumps(e) + "\n"
            for e in [
                _track("b1", "2026-05-02T10:00:00Z", userId=TARGET),
                _track("b2", "2026-05-02T10:01:00Z", anonymousId="dev-gone"),  # their device, signed out
                # A new device, but their address: hashed at ingest, then recognised.
                {
                    "type": "identify",
                    "messageId": "b3",
                    "timestamp": "2026-05-02T10:02:00Z",
                    "anonymousId": "dev-new",
                    "traits": {"email": EMAIL.upper()},
                },
                _track("b4", "2026-05-02T10:03:00Z", userId=OTHER),
            ]
        )
    )
    result = ingest_file(later, settings)
    assert (result.inserted, result.rejected) == (1, 3)
    rejects = _rejects(url)
    assert [reason for reason, _ in rejects] == ["forgotten_subject"] * 3
    for _, payload in rejects:
        assert TARGET not in payload and "dev-gone" not in payload and sha256(EMAIL) not in payload
    assert tables_naming(url, TARGET) == {} and tables_naming(url, "dev-gone") == {}
    with psycopg.connect(url) as conn:
        assert [r[0] for r in conn.execute("select user_id from raw.events")] == [OTHER]

    # The collector: accepted over HTTP (the client cannot tell), kept only as a reject.
    with CollectorProcess({"PULSE_WRITE_KEY": KEY}, log_path=tmp_path / "collector.log") as collector:
        with httpx.Client(base_url=collector.url, timeout=30) as client:
            for message_id, user in (("c1", TARGET), ("c2", OTHER)):
                event = _track(message_id, "2026-05-03T10:00:00Z", userId=user)
                assert client.post("/v1/track", json=event, auth=(KEY, "")).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_rejects(url)) < 4:
        time.sleep(0.2)
    assert [reason for reason, _ in _rejects(url)] == ["forgotten_subject"] * 4
    with psycopg.connect(url) as conn:
        assert sorted(r[0] for r in conn.execute("select event_id from raw.events")) == ["b4", "c2"]
    assert tables_naming(url, TARGET) == {}
