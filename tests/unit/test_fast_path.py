"""The fast path (`pulse.events.fast`) gives exactly the contract's rows, or steps aside.

For every event: either the fast path returns None (the full pydantic contract then decides), or the
contract accepts the event too and `Event.copy_row` gives the very same row. Checked on simulated
traffic and on generated events full of the things the fast path must not get wrong (numeric ids,
blanks, odd timestamps, over-long fields, PII, NUL escapes, deep nesting).
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pulse.events.contract import Event
from pulse.events.fast import CALLS, copy_text, row_from_json, row_from_payload
from pulse.events.ingest import copy_line, parse_block, parse_line
from pulse.events.load import Rejection
from pulse.events.simulator import simulate

RECEIVED = datetime(2026, 3, 1, 12, 0, 1, 500, tzinfo=UTC)
SOURCE = "/data/events\tfile.jsonl"


def contract_row(line: bytes, scrub_pii: bool = False):
    try:
        return Event.model_validate_json(line).copy_row(SOURCE, RECEIVED, scrub_pii=scrub_pii)
    except (ValidationError, ValueError, OverflowError):
        return None


def check_line(line: bytes) -> tuple | None:
    fast = row_from_json(line, SOURCE, RECEIVED)
    if fast is not None:
        assert fast == contract_row(line)
    # And what ingest writes: the same COPY line either way, or a reject from the contract.
    written = copy_line(line, SOURCE, 7, RECEIVED)
    full = parse_line(line, SOURCE, 7, RECEIVED)
    if isinstance(full, Rejection):
        assert written == full
    else:
        assert written == copy_text(full).encode()
    return fast


@pytest.fixture(scope="module")
def simulated_lines(tmp_path_factory) -> list[bytes]:
    # Simulated up to the receive time: events from after it would be out of range.
    result = simulate(
        Path(tmp_path_factory.mktemp("sim")), customers=40, days=30, seed=3, end=RECEIVED.date()
    )
    return result.events_path.read_bytes().splitlines()


def test_simulated_traffic_takes_the_fast_path_with_identical_rows(simulated_lines):
    fast = [check_line(line) for line in simulated_lines]
    taken = sum(row is not None for row in fast)
    assert len(simulated_lines) > 1000
    assert taken > 0.9 * len(simulated_lines)  # the point of having it
    assert taken < len(simulated_lines)  # events with an email go through the scrub


# -- generated events ------------------------------------------------------------------------------
awkward_text = st.one_of(
    st.text(max_size=6),
    st.text(alphabet=" \t\n\r\\\x1c\u00a0\u2003ab@", max_size=6),
    st.sampled_from(["", " ", "a b", " c1", "c1 ", "x" * 201, "x" * 257, "Order Completed", "__", "é"]),
)
ids = st.one_of(st.none(), awkward_text, st.integers(-(10**20), 10**20), st.booleans(), st.floats(-1e3, 1e3))
zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))])
timestamps = st.one_of(
    st.none(),
    st.datetimes(timezones=zones).map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds")),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 2)).map(
        lambda d: d.isoformat() + "+05:00"
    ),
    st.sampled_from(
        [
            "2026-02-30T00:00:00Z",
            "2026-01-01T10:00:00+05:60",
            "2026-01-01 10:00:00Z",
            "2026-01-01t10:00:00z",
            "2026-01-01T10:00:00.1234567Z",
            "9999-12-31T23:59:59-05:00",
            "2026-01-01",
            "soon",
            "١٢٣٤-01-01T10:00:00Z",
        ]
    ),
    st.integers(0, 2**31),
)
keys = st.one_of(
    st.text(string.ascii_letters + "_", max_size=8), st.sampled_from(["email", "Phone", "tel", "x"])
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    awkward_text,
)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)
payloads = st.one_of(st.none(), st.dictionaries(keys, json_values, max_size=4), json_values)
events = st.fixed_dictionaries(
    {"type": st.sampled_from([*sorted(CALLS), "bogus", " track"])},
    optional={
        "messageId": ids,
        "event": awkward_text,
        "name": awkward_text,
        "userId": ids,
        "anonymousId": ids,
        "previousId": ids,
        "groupId": ids,
        "timestamp": timestamps,
        "originalTimestamp": timestamps,
        "sentAt": timestamps,
        "receivedAt": timestamps,
        "properties": payloads,
        "traits": payloads,
        "context": payloads,
        "extra": json_values,
    },
)


def valid_base(**overrides):
    return {"type": "track", "event": "Order Completed", "messageId": "m-1", "userId": "c1", **overrides}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events, ascii_only=st.booleans())
def test_generated_events_fast_row_equals_contract_row(event, ascii_only):
    check_line(json.dumps(event, ensure_ascii=ascii_only).encode())


@settings(max_examples=300, deadline=None)
@given(overrides=st.fixed_dictionaries({}, optional={"timestamp": timestamps, "sentAt": timestamps}))
def test_generated_timestamps_mostly_valid_events(overrides):
    check_line(json.dumps(valid_base(**overrides)).encode())


def collector_rows(event: dict) -> tuple:
    """(fast row, contract row) as the collector makes them: the server's clock is the receive time."""
    raw = msgspec.json.encode(event)
    payload = msgspec.json.decode(raw)
    fast = row_from_payload(payload, raw, "collector", RECEIVED, server_received=RECEIVED)
    try:
        full = Event.model_validate({**payload, "receivedAt": RECEIVED}).copy_row(
            "collector", RECEIVED, False
        )
    except (ValidationError, ValueError, OverflowError):
        full = None
    return fast, full


@settings(max_examples=300, deadline=None)
@given(event=events)
def test_decoded_payloads_fast_row_equals_contract_row(event):
    """The collector's way in: an already-decoded event with the server's receive time."""
    fast, full = collector_rows(event)
    if fast is not None:
        assert fast == full


def test_the_collector_takes_the_fast_path_and_corrects_clock_skew():
    sent = {"timestamp": "2026-03-01T13:00:00Z", "sentAt": "2026-03-01T13:00:01.000500Z"}
    fast, full = collector_rows({**valid_base(), **sent, "receivedAt": "2020-01-01T00:00:00Z"})
    assert fast is not None and fast == full
    assert fast[6] == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # the device clock was an hour fast


@pytest.mark.parametrize(
    "line",
    [
        json.dumps(valid_base(properties={"a": "\u0000"})),  # jsonb cannot store it
        json.dumps(valid_base(properties={"email": "A@b.co"})),  # PII: scrubbed by the contract
        json.dumps(valid_base(traits={"phone_number": "555"})),
        json.dumps(valid_base(userId=42)),  # coerced to "42" by pydantic
        json.dumps(valid_base(userId=" c1 ")),  # stripped by pydantic
        json.dumps(valid_base(properties={"deep": json.loads("[" * 150 + "]" * 150)})),
        json.dumps(valid_base(properties={"x": 1})).replace('"x": 1', '"x": NaN'),
        json.dumps(valid_base(event="Order\u2003")),
        '{"type": "track", "event": "X", "messageId": "m", "userId": "\\udc80"}',
    ],
)
def test_the_fast_path_steps_aside(line):
    assert row_from_json(line.encode(), SOURCE, RECEIVED) is None
    check_line(line.encode())


def test_copy_text_escapes_what_copy_reads_specially():
    row = contract_row(
        json.dumps(valid_base(messageId="a\tb\\c", userId="u\nv", properties={"q": 'say "hi"\\n'})).encode()
    )
    text = copy_text(row)
    assert text.endswith("\n") and text.count("\n") == 1
    fields = text[:-1].split("\t")
    assert len(fields) == 14
    assert fields[0] == "a\\tb\\\\c" and fields[3] == "u\\nv" and fields[5] == "\\N"
    assert fields[10] == '{"q":"say \\\\"hi\\\\"\\\\\\\\n"}'  # JSON's own backslashes doubled
    assert fields[13] == "/data/events\\tfile.jsonl"


def test_blocks_number_lines_and_keep_rejects():
    lines = [json.dumps(valid_base(messageId=f"m{i}")) for i in range(5)]
    lines.insert(2, "{broken")
    lines.insert(4, "   ")
    parsed = parse_block("\n".join(lines).encode() + b"\n", 10, SOURCE, RECEIVED)
    assert (parsed.copy.rows, parsed.lines) == (5, 6)
    assert [(r.line_number, r.payload) for r in parsed.rejections] == [(12, "{broken")]
    assert parsed.copy.data.count(b"\n") == 5
