"""`pulse forget` finds every stored form of a person (issue 13, item 9): a user id that was their email
(stored as `sha256:<hex>`), email hashes nested deep in an event, their email hashed inside someone else's
event, a landed file holding only their event, and an export written outside `PULSE_HOME/exports`."""

from __future__ import annotations

import csv
import json

import psycopg

from pulse import forget as erasure
from pulse.audiences import export_audiences
from pulse.events.ingest import ingest_file
from pulse.events.pii import normalise_email, sha256
from tests.conftest import tables_naming

TARGET, OTHER = "c-forget", "c-other"
EMAIL = "Pat@Example.com"
HASH = sha256(normalise_email(EMAIL))
AT = "2026-05-01T10:00:00Z"


def _event(message_id: str, **fields) -> dict:
    return {"type": "track", "event": "Product Viewed", "messageId": message_id, "timestamp": AT, **fields}


def test_forget_finds_hashed_ids_nested_hashes_single_event_files_and_outside_exports(settings, tmp_path):
    url = settings.database_url
    landing = settings.landing_dir / "loaded" / "20260501T1100Z"
    landing.mkdir(parents=True)
    events = landing / "events.jsonl"
    theirs = [
        _event("m1", userId=EMAIL.lower(), anonymousId="anon-pat"),  # an email as user id: sha256:<hex>
        {
            "type": "identify",
            "messageId": "m2",
            "timestamp": AT,
            "userId": TARGET,
            "traits": {"email": EMAIL},
        },
        _event("m3", userId=TARGET, properties={"order": {"buyer": {"email": EMAIL}}}),  # nested
    ]
    others = [
        _event("m4", userId=OTHER, anonymousId="anon-other"),
        # Someone else's event naming them: their address, hashed in place, goes with it.
        _event("m5", userId=OTHER, properties={"referral": {"contact": EMAIL}}),
        {
            "type": "identify",
            "messageId": "m6",
            "timestamp": AT,
            "userId": OTHER,
            "traits": {"email": "o@x.io"},
        },
    ]
    events.write_text("".join(json.dumps(e) + "\n" for e in [*theirs, *others]))
    single = landing / "pat.json"  # one event, alone in its file
    single.write_text(json.dumps(_event("m7", userId=TARGET)))
    for path in (events, single):
        ingest_file(path, settings)
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from raw.events").fetchone()[0] == 7
    assert tables_naming(url, f"sha256:{HASH}") and tables_naming(url, HASH)

    outside = tmp_path / "crm-drop"  # an export folder a user chose, outside PULSE_HOME/exports
    export_audiences(outside, settings)
    export = outside / "vip.csv"
    with export.open("w", newline="") as handle:
        csv.writer(handle).writerows(
            [["customer_id", "email_sha256", "rank"], [TARGET, HASH, "1"], [OTHER, sha256("o@x.io"), "2"]]
        )

    result = erasure.forget(customer_id=TARGET, settings=settings)

    assert f"sha256:{HASH}" in result.identities.customer_ids and HASH in result.identities.email_hashes
    for value in (TARGET, f"sha256:{HASH}", HASH, "anon-pat"):
        assert tables_naming(url, value) == {}, value
    with psycopg.connect(url) as conn:
        kept = [r[0] for r in conn.execute("select event_id from raw.events order by 1")]
    assert len(kept) == 2  # m4 and m6: the other customer's own events
    assert not single.exists()
    text = events.read_text()
    assert TARGET not in text and EMAIL.lower() not in text.lower() and len(text.splitlines()) == 2
    with export.open() as handle:
        assert [row[0] for row in csv.reader(handle)] == ["customer_id", OTHER]
