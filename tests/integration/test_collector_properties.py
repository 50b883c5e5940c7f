"""Property-based tests of the running collector (hypothesis): whatever arrives, nothing is lost.

Every generated event carries a unique marker. After each request, each event must be found exactly
once: in raw.events (by its messageId) if it was accepted, or in raw.events_rejected (by its marker) if
not, and the response's `accepted + rejected` must equal what was sent. Bad input never gets a 5xx.
"""

from __future__ import annotations

import gzip
import json
import uuid

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from pulse.collector.process import CollectorProcess

KEY = "prop-write-key"
HYPOTHESIS = hyp_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def collector(settings, tmp_path):
    with CollectorProcess({"PULSE_WRITE_KEY": KEY}, log_path=tmp_path / "collector.log") as process:
        with httpx.Client(base_url=process.url, auth=(KEY, ""), timeout=60) as client:
            yield client


NASTY_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "'); drop table raw.events; --",
            "1' or '1'='1",
            "\\.\n\\N\t\\",  # COPY's own escapes
            "\u202e\u200b\ufeff",  # bidi override, zero width, BOM
            "😀👩‍👩‍👧 ñ ü 中文 عربي",
            "\x00",  # NUL: PostgreSQL text cannot hold it
            "\ud800",  # a lone surrogate (invalid in the warehouse)
            "",
            " " * 10,
        ]
    ),
)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | NASTY_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(NASTY_TEXT, children, max_size=4),
    max_leaves=12,
)
TYPES = st.sampled_from(["track", "identify", "page", "screen", "alias", "group"])


@st.composite
def an_event(draw) -> tuple[object, str]:
    """(event, marker): mostly plausible events with wrong types, missing fields, odd values."""
    marker = f"mk{uuid.uuid4().hex}"
    shape = draw(st.integers(0, 9))
    if shape == 0:  # not an object at all
        return draw(st.sampled_from([[marker], marker, {"nested": [marker]}])), marker
    event: dict = {"marker": marker, "messageId": f"{marker}-id"}
    event["type"] = draw(st.one_of(TYPES, TYPES, st.integers(), NASTY_TEXT))
    if draw(st.booleans()):
        event["event"] = draw(st.one_of(st.just("Order Completed"), NASTY_TEXT, st.integers()))
    if draw(st.integers(0, 4)):
        event["userId"] = draw(st.one_of(st.just("u1"), NASTY_TEXT, st.integers(), st.booleans(), st.none()))
    if draw(st.booleans()):
        event["anonymousId"] = draw(st.one_of(NASTY_TEXT, st.just("a-1")))
    if draw(st.booleans()):
        event["previousId"], event["groupId"] = "p-1", "g-1"
    if draw(st.booleans()):
        event["timestamp"] = draw(
            st.one_of(
                st.just("2026-01-01T10:00:00+02:00"),
                st.just("0001-01-01T00:00:00+01:00"),
                st.just("9999-12-31T23:59:59-05:00"),
                NASTY_TEXT,
                st.integers(),
            )
        )
    for field in ("properties", "traits", "context"):
        if draw(st.booleans()):
            event[field] = draw(st.one_of(st.dictionaries(NASTY_TEXT, JSON_VALUE, max_size=5), JSON_VALUE))
    if draw(st.integers(0, 12)) == 0:  # oversized field
        event.setdefault("properties", {})
        if isinstance(event["properties"], dict):
            event["properties"]["blob"] = "z" * draw(st.sampled_from([40_000, 2_000, 300]))
    return event, marker


def found(url: str, markers: list[str]) -> tuple[int, int, set[str]]:
    """(events in raw.events, rejects mentioning a marker, markers seen anywhere)."""
    with psycopg.connect(url) as conn:
        accepted = conn.execute(
            "select event_id from raw.events where event_id = any(%s)", ([f"{m}-id" for m in markers],)
        ).fetchall()
        payloads = [r[0] for r in conn.execute("select payload from raw.events_rejected").fetchall()]
    seen = {row[0].removesuffix("-id") for row in accepted}
    rejected_markers = {m for m in markers if any(m in p for p in payloads)}
    return len(accepted), len(rejected_markers), seen | rejected_markers


@HYPOTHESIS
@given(
    batch=st.lists(an_event(), min_size=1, max_size=40),
    gzip_it=st.booleans(),
    pad=st.sampled_from([0, 0, 0, 520_000]),
)
def test_every_event_is_accepted_or_rejected_never_lost(settings, collector, batch, gzip_it, pad):
    events = [e for e, _ in batch]
    markers = [m for _, m in batch]
    body = {"batch": events, "sentAt": "2026-01-01T10:00:01Z"}
    if pad:  # a huge batch: over Segment's 500 KB limit
        body["context"] = {"padding": "p" * pad}
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if gzip_it:
        raw, headers["Content-Encoding"] = gzip.compress(raw), "gzip"

    response = collector.post("/v1/batch", content=raw, headers=headers)
    assert response.status_code < 500, response.text
    answer = response.json()
    accepted_db, rejected_db, seen = found(settings.database_url, markers)
    assert seen == set(markers), "an event is neither in raw.events nor in raw.events_rejected"
    if response.status_code == 200:
        assert answer["accepted"] + answer["rejected"] == len(events)
        assert answer["accepted"] == accepted_db
    else:
        assert response.status_code == 400 and answer["accepted"] == 0 and accepted_db == 0
        # Refused whole: every event kept (one reject per event, or the undecodable body as one).
        assert answer["rejected"] in (len(events), 1)
    assert accepted_db + rejected_db == len(events) or (response.status_code == 400 and accepted_db == 0)


@HYPOTHESIS
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        st.sampled_from([b"{", b"[]", b"null", b'{"batch": {}}', b'{"batch": "x"}', b"\xff\xfe", b"1e999"]),
        JSON_VALUE.map(lambda v: json.dumps(v).encode()),
    ),
    path=st.sampled_from(["/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/alias", "/v1/group"]),
    encoding=st.sampled_from([None, "gzip", "br"]),
)
def test_malformed_bodies_get_4xx_not_5xx(settings, collector, body, path, encoding):
    headers = {"Content-Encoding": encoding} if encoding else {}
    response = collector.post(path, content=body, headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.json()["code"] and response.json()["message"]
    else:  # a JSON object or array that was a (possibly empty) batch or event: every item accounted for
        answer = response.json()
        decoded = json.loads(body)
        if path == "/v1/batch":
            sent = len(decoded if isinstance(decoded, list) else decoded["batch"])
        else:
            sent = 1
        assert answer["accepted"] + answer["rejected"] == sent


@HYPOTHESIS
@given(batch=st.lists(an_event(), min_size=1, max_size=30))
def test_replaying_a_batch_three_times_adds_no_rows(settings, collector, batch):
    body = {"batch": [e for e, _ in batch]}

    def counts() -> tuple[int, int]:
        with psycopg.connect(settings.database_url) as conn:
            return (
                conn.execute("select count(*) from raw.events").fetchone()[0],
                conn.execute("select count(*) from raw.events_rejected").fetchone()[0],
            )

    raw = json.dumps(body).encode()  # ASCII-escaped: lone surrogates reach the server as \ud800
    first = collector.post("/v1/batch", content=raw)
    assert first.status_code < 500
    after_first = counts()
    for _ in range(2):
        again = collector.post("/v1/batch", content=raw)
        assert again.status_code == first.status_code
        assert again.json().get("accepted") == first.json().get("accepted")
    assert counts() == after_first
