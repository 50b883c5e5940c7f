"""The fast path for well-formed events: the contract's own rows, without building a pydantic model.

Bulk loads and the collector spend most of their Python time per event. Almost every event is already
well formed (string ids without surrounding blanks, RFC 3339 timestamps, object payloads, no PII), and
for those the contract (`pulse.events.contract.Event`) is a fixed series of checks that this module
applies directly on a `msgspec` decode, which is several times cheaper than pydantic.

The rule that keeps this safe: the fast path either returns exactly the row `Event.copy_row` would
return, or `None`, and the caller then runs the full contract (which also words the reasons of
rejects). Anything unusual goes back to pydantic: numeric ids (pydantic coerces them), blanks around
strings (pydantic strips them), timestamps that are not plain RFC 3339, over-long fields, invalid
events (and implausible event times: `EventTimeOutOfRange`), a possible email or phone anywhere in the event (the PII scrub), `\\u0000`, deep nesting, and
anything msgspec refuses (invalid JSON or UTF-8, lone surrogates, NaN). `tests/unit/test_fast_path.py`
checks the equivalence on simulated traffic and on generated events.

`copy_text` turns a row into one line of PostgreSQL's COPY text format, so rows can be formatted where
they are parsed (a worker process) and streamed to the server as bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, get_args

import msgspec

from pulse.events.contract import (
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    EventTimeOutOfRange,
    EventType,
    call_properties,
    event_times,
    normalise_event_name,
)
from pulse.events.pii import maybe_pii, without_full_ip

CALLS = frozenset(get_args(EventType))
# `{` plus `[` in the raw event above which the full contract decides: pydantic's JSON parser refuses
# nesting deeper than about 200 levels, msgspec does not, so deep documents must not pass here.
MAX_FAST_NESTING = 64


class WireEvent(msgspec.Struct):
    """The Segment fields the contract reads, in their plain wire types (anything else: not fast)."""

    type: str
    messageId: str
    event: str | None = None
    name: str | None = None
    userId: str | None = None
    anonymousId: str | None = None
    previousId: str | None = None
    groupId: str | None = None
    timestamp: str | None = None
    originalTimestamp: str | None = None
    sentAt: str | None = None
    receivedAt: str | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None


_decode_wire = msgspec.json.Decoder(WireEvent).decode
_encode = msgspec.json.Encoder().encode

# RFC 3339 as pydantic and `datetime.fromisoformat` both read it the same way (an optional offset, up
# to microseconds); the calendar itself (February 30th) is checked by fromisoformat.
_TIMESTAMP_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)


class NotFast(Exception):
    """This event needs the full contract."""


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    if _TIMESTAMP_RE.fullmatch(value) is None:
        raise NotFast
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise NotFast from None


def _text(value: str | None, limit: int) -> str | None:
    # pydantic strips surrounding whitespace (str_strip_whitespace): leave those strings to it. Python's
    # isspace() covers every character Rust's trim() removes, so nothing it would strip gets through.
    if value and (value[0].isspace() or value[-1].isspace() or len(value) > limit):
        raise NotFast
    return value


def wire_row(
    wire: WireEvent, source: str, received_at: datetime, server_received: datetime | None = None
) -> tuple[Any, ...]:
    """`Event.copy_row(source, received_at, scrub_pii=False)` for a decoded event, or `NotFast`.

    `server_received`: the collector's clock, which replaces any `receivedAt` the client sent."""
    call = wire.type
    if call not in CALLS:
        raise NotFast
    message_id = _text(wire.messageId, MAX_ID_LENGTH)
    user_id = _text(wire.userId, MAX_ID_LENGTH)
    anonymous_id = _text(wire.anonymousId, MAX_ID_LENGTH)
    previous_id = _text(wire.previousId, MAX_ID_LENGTH)
    group_id = _text(wire.groupId, MAX_ID_LENGTH)
    event = _text(wire.event, MAX_NAME_LENGTH)
    name = _text(wire.name, MAX_NAME_LENGTH)
    if not message_id or not (user_id or anonymous_id):
        raise NotFast
    if call == "track":
        event_name = normalise_event_name(event) if event else ""
        if not event_name:
            raise NotFast
    else:
        event_name = call
        if (call == "alias" and not previous_id) or (call == "group" and not group_id):
            raise NotFast
    sent_at = _time(wire.sentAt)
    received_field = server_received if server_received is not None else _time(wire.receivedAt)
    event_at, original_at, received = event_times(
        _time(wire.timestamp), _time(wire.originalTimestamp), sent_at, received_field, received_at
    )
    return (
        message_id,
        call,
        event_name,
        user_id or None,
        anonymous_id or None,
        previous_id or None,
        event_at,
        original_at,
        sent_at,
        received,
        _encode(call_properties(call, wire.properties, name, group_id)).decode(),
        _encode(wire.traits or {}).decode(),
        _encode(without_full_ip(wire.context) if wire.context else {}).decode(),
        source,
    )


def plain_json(raw: bytes) -> bool:
    """No NUL escape, nothing that could be PII, no deep nesting: the raw-text preconditions."""
    return (
        b"\\u0000" not in raw and raw.count(b"{") + raw.count(b"[") <= MAX_FAST_NESTING and not maybe_pii(raw)
    )


def row_from_json(line: bytes, source: str, received_at: datetime) -> tuple[Any, ...] | None:
    """The row for one JSON event (a JSONL line), or None when it needs the full contract."""
    if not plain_json(line):
        return None
    try:
        return wire_row(_decode_wire(line), source, received_at)
    except (msgspec.DecodeError, UnicodeDecodeError, NotFast, EventTimeOutOfRange):
        return None


def row_from_payload(
    payload: Any, raw: bytes, source: str, received_at: datetime, server_received: datetime | None = None
) -> tuple[Any, ...] | None:
    """The row for an already-decoded event whose JSON text is `raw`, or None (full contract)."""
    if not isinstance(payload, dict) or not plain_json(raw):
        return None
    try:
        return wire_row(msgspec.convert(payload, WireEvent), source, received_at, server_received)
    except (msgspec.ValidationError, NotFast, EventTimeOutOfRange):
        return None


# -- COPY text format ---------------------------------------------------------------------------------
_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
NULL = "\\N"


def _escape_match(match: re.Match[str]) -> str:
    return _ESCAPES[match.group()]


def copy_escape(value: str) -> str:
    """A text value for COPY's text format (backslash, tab, newline and carriage return escaped)."""
    return _SPECIAL.sub(_escape_match, value) if _SPECIAL.search(value) else value


def _when(value: datetime | None) -> str:
    return NULL if value is None else value.isoformat()


def copy_text(row: Sequence[Any]) -> str:
    """One `raw.events` row (`EVENT_COLUMNS` order, as `Event.copy_row` makes it) as a COPY text line.

    The event name is already `[0-9a-z_]` and the type one of `CALLS`; JSON text never holds a raw tab
    or newline (JSON escapes control characters), only backslashes need doubling there. The receive time
    and the source are the same for a whole file or request: formatted once (`_memo`)."""
    (
        event_id,
        call,
        event_name,
        user_id,
        anonymous_id,
        previous_id,
        event_at,
        original_at,
        sent_at,
        received,
        properties,
        traits,
        context,
        source,
    ) = row
    global _memo
    event_text = event_at.isoformat()
    memo = _memo  # a tuple, replaced whole: safe to share between threads
    if memo[0] is not received or memo[2] is not source:
        memo = _memo = (received, received.isoformat(), source, copy_escape(source))
    return (
        "\t".join(
            (
                copy_escape(event_id),
                call,
                event_name,
                NULL if user_id is None else copy_escape(user_id),
                NULL if anonymous_id is None else copy_escape(anonymous_id),
                NULL if previous_id is None else copy_escape(previous_id),
                event_text,
                event_text if original_at is event_at else _when(original_at),
                NULL if sent_at is None else sent_at.isoformat(),
                memo[1],
                properties.replace("\\", "\\\\"),
                traits.replace("\\", "\\\\"),
                context.replace("\\", "\\\\"),
                memo[3],
            )
        )
        + "\n"
    )


_memo: tuple[Any, ...] = (None, "", None, "")  # received_at, its text, source, its COPY text
