"""#13 item 10: PII inside URLs and free text is hashed in place, `context.ip` is truncated, and reject
reasons carry no raw values."""

from __future__ import annotations

import httpx
import psycopg

from pulse.collector.process import CollectorProcess
from tests.conftest import tables_naming

KEY = "security-write-key"
PLAIN = [
    "jane.doe@example.com",  # in a URL's query
    "john%40example.org",  # percent-encoded, in a URL
    "%2B14155550100",  # a phone in a URL parameter
    "20 7946 0018",  # a phone in free text
    "203.0.113.77",  # context.ip
    "2001:db8:85a3:1234:5678:8a2e:370:7334",
]


def test_pii_in_urls_and_text_is_hashed_and_ips_truncated(settings, tmp_path):
    url = settings.database_url
    events = [
        {
            "type": "track",
            "event": "Checkout Started",
            "userId": "u1",
            "messageId": "pii-1",
            "properties": {
                "url": "https://shop.example.com/checkout?email=jane.doe@example.com&step=2",
                "note": "please call me on +44 20 7946 0018 after six",
            },
            "context": {
                "ip": "203.0.113.77",
                "page": {"referrer": "https://mail.example/?contact=john%40example.org&phone=%2B14155550100"},
            },
        },
        {
            "type": "page",
            "anonymousId": "a1",
            "messageId": "pii-2",
            "context": {"ip": "2001:db8:85a3:1234:5678:8a2e:370:7334"},
        },
        {"type": "track", "event": "Viewed", "userId": "refused-user-7", "messageId": "pii-3"},
    ]
    # A value PostgreSQL refuses: the row becomes a reject, whose reason must not quote the row.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("alter table raw.events add constraint no_refused check (user_id <> 'refused-user-7')")
    with CollectorProcess({"PULSE_WRITE_KEY": KEY}, log_path=tmp_path / "collector.log") as collector:
        answer = httpx.post(collector.url + "/v1/batch", json={"batch": events}, auth=(KEY, ""), timeout=30)
    assert answer.status_code == 200, answer.text
    for value in PLAIN:
        assert tables_naming(url, value) == {}, value
    with psycopg.connect(url) as conn:
        ips = dict(conn.execute("select event_id, context->>'ip' from raw.events").fetchall())
        reasons = [r[0] for r in conn.execute("select reason from raw.events_rejected")]
    assert ips == {"pii-1": "203.0.113.0", "pii-2": "2001:db8:85a3::"}
    assert len(reasons) == 1 and reasons[0].startswith("database refused the row")
    assert "refused-user-7" not in reasons[0] and "DETAIL" not in reasons[0]
