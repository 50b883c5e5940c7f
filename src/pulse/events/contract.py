"""The event contract: Segment Spec shaped events, validated once for every way in.

Every path into `raw.events` (the collector, `pulse ingest`, `pulse import-orders`) validates against
`Event` and turns it into a row with `Event.to_row` / `Event.copy_row`; nothing else decides what an
accepted event is.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pulse.events.pii import hash_if_email, scrub, without_full_ip

EventType = Literal["track", "identify", "page", "screen", "alias", "group"]

MAX_ID_LENGTH = 256
MAX_NAME_LENGTH = 200

# The columns of raw.events Pulse writes, in COPY order (loaded_at is the server's default).
EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "event_name",
    "user_id",
    "anonymous_id",
    "previous_id",
    "event_at",
    "original_at",
    "sent_at",
    "received_at",
    "properties",
    "traits",
    "context",
    "source",
)
JSON_COLUMNS = frozenset({"properties", "traits", "context"})

# An event may be at most this far ahead of its receipt (clocks and time zones slip, a year ahead does
# not), and at most PULSE_EVENT_MAX_AGE_DAYS old: outside that window every daily model would build a
# row per customer per day up to it (`max_event_age`: Settings.event_max_age_days).
MAX_EVENT_AHEAD = timedelta(days=1)


@lru_cache(maxsize=1)
def max_event_age() -> timedelta:
    """`PULSE_EVENT_MAX_AGE_DAYS` from the settings object (environment or `.env`), read once per process."""
    from pulse.config import get_settings

    return timedelta(days=get_settings().event_max_age_days)


OUT_OF_RANGE = "event_time_out_of_range"


class EventTimeOutOfRange(ValueError):
    """The (skew-corrected) event time is implausible; the reason names the rule, never the value."""


_NAME_RE = re.compile(r"[^0-9a-z]+")
_json_encode = msgspec.json.Encoder().encode


@lru_cache(maxsize=4096)
def normalise_event_name(name: str) -> str:
    """`Order Completed`, `order_completed` and `order-completed` are one event: `order_completed`."""
    return _NAME_RE.sub("_", name.strip().lower()).strip("_")


def _as_utc(value: datetime) -> datetime:
    # Naive timestamps are taken as UTC, as Segment does.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event_times(
    timestamp: datetime | None,
    original: datetime | None,
    sent_at: datetime | None,
    received_field: datetime | None,
    received_at: datetime,
) -> tuple[datetime, datetime | None, datetime]:
    """(event_at, original_at, received_at), corrected for the client's clock as Segment does.

    `timestamp + (receivedAt - sentAt)`: a device whose clock is an hour fast sends timestamp and
    sentAt both an hour ahead; the difference to the server's receive time removes that hour.
    Without `sentAt` (or a receive time) there is nothing to correct with; without `timestamp` the
    event happened when it was received. Segment exports (with `originalTimestamp`) are already
    corrected and kept as they are. `received_field` is the event's `receivedAt` (the collector sets it
    to its own clock; files may carry one), `received_at` when the load started. Raises
    `EventTimeOutOfRange` outside the plausible window (`check_event_time`).
    """
    received = received_field or received_at
    times: tuple[datetime, datetime | None, datetime]
    if original is not None:
        times = timestamp or received, original, received
    elif timestamp is None:
        times = received, None, received
    else:
        times = timestamp, timestamp, received
        if sent_at is not None and received_field is not None:
            try:
                times = timestamp + (received_field - sent_at), timestamp, received
            except OverflowError as error:
                raise EventTimeOutOfRange(f"{OUT_OF_RANGE}: the clock-corrected time overflows") from error
    check_event_time(times[0], received_at)
    return times


def check_event_time(event_at: datetime, received_at: datetime) -> None:
    """`received_at`: when Pulse received the event (the collector's clock, or when a load started)."""
    if event_at - received_at > MAX_EVENT_AHEAD:
        raise EventTimeOutOfRange(
            f"{OUT_OF_RANGE}: more than {MAX_EVENT_AHEAD.days} day after it was received"
        )
    if received_at - event_at > max_event_age():
        raise EventTimeOutOfRange(
            f"{OUT_OF_RANGE}: older than {max_event_age().days} days (PULSE_EVENT_MAX_AGE_DAYS)"
        )


def call_properties(
    call: str, properties: dict[str, Any] | None, name: str | None, group_id: str | None
) -> dict[str, Any]:
    """The `properties` column: page/screen calls carry their `name`, group calls their `groupId`."""
    properties = properties or {}
    if call in ("page", "screen") and name and "name" not in properties:
        properties = {**properties, "name": name}  # as analytics.js does
    if call == "group" and "group_id" not in properties:
        properties = {**properties, "group_id": group_id}
    return properties


class Event(BaseModel):
    """One Segment-style event. Field names follow the Segment Spec (camelCase on the wire)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    type: EventType
    messageId: str = Field(min_length=1, max_length=MAX_ID_LENGTH, coerce_numbers_to_str=True)
    event: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    userId: str | None = Field(default=None, max_length=MAX_ID_LENGTH, coerce_numbers_to_str=True)
    anonymousId: str | None = Field(default=None, max_length=MAX_ID_LENGTH, coerce_numbers_to_str=True)
    previousId: str | None = Field(default=None, max_length=MAX_ID_LENGTH, coerce_numbers_to_str=True)
    groupId: str | None = Field(default=None, max_length=MAX_ID_LENGTH, coerce_numbers_to_str=True)
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None  # present in Segment exports, whose timestamp is corrected
    sentAt: datetime | None = None
    receivedAt: datetime | None = None  # set by the collector; kept from files that carry it
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None

    @field_validator("timestamp", "originalTimestamp", "sentAt", "receivedAt")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return _as_utc(value)
        except OverflowError as error:
            raise ValueError(f"timestamp out of range: {error}") from None

    @model_validator(mode="after")
    def _check_shape(self) -> Event:
        if not (self.userId or self.anonymousId):
            raise ValueError("userId or anonymousId is required")
        if self.type == "track" and not (self.event and normalise_event_name(self.event)):
            raise ValueError("track events need a non-empty 'event' name")
        if self.type == "alias" and not self.previousId:
            raise ValueError("alias events need a 'previousId'")
        if self.type == "group" and not self.groupId:
            raise ValueError("group events need a 'groupId'")
        return self

    @property
    def event_name(self) -> str:
        return normalise_event_name(self.event) if self.type == "track" and self.event else self.type

    def event_times(self, received_at: datetime) -> tuple[datetime, datetime | None, datetime]:
        """(event_at, original_at, received_at), corrected for the client's clock: `event_times`."""
        return event_times(self.timestamp, self.originalTimestamp, self.sentAt, self.receivedAt, received_at)

    def _payloads(self, scrub_pii: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        properties = call_properties(self.type, self.properties, self.name, self.groupId)
        traits, context = self.traits or {}, without_full_ip(self.context or {})
        if scrub_pii:
            return scrub(properties), scrub(traits), scrub(context)
        return properties, traits, context

    def to_row(self, source: str, received_at: datetime, scrub_pii: bool = True) -> dict[str, Any]:
        """The `raw.events` row for this event, PII hashed.

        `scrub_pii=False` is only for callers that have checked the raw input holds nothing that could
        be PII (`pii.maybe_pii`), a fast path for bulk loads.
        """
        event_at, original_at, received = self.event_times(received_at)
        properties, traits, context = self._payloads(scrub_pii)
        ids = (self.userId or None, self.anonymousId or None, self.previousId or None)  # blank is none
        user_id, anonymous_id, previous_id = (hash_if_email(i) for i in ids) if scrub_pii else ids
        return {
            "event_id": self.messageId,
            "event_type": self.type,
            "event_name": self.event_name,
            "user_id": user_id,
            "anonymous_id": anonymous_id,
            "previous_id": previous_id,
            "event_at": event_at,
            "original_at": original_at,
            "sent_at": self.sentAt,
            "received_at": received,
            "properties": properties,
            "traits": traits,
            "context": context,
            "source": source,
        }

    def copy_row(self, source: str, received_at: datetime, scrub_pii: bool = True) -> tuple[Any, ...]:
        """`to_row` as a tuple in `EVENT_COLUMNS` order with the JSON columns encoded: what COPY takes."""
        event_at, original_at, received = self.event_times(received_at)
        properties, traits, context = self._payloads(scrub_pii)
        user_id, anonymous_id, previous_id = (
            self.userId or None,
            self.anonymousId or None,
            self.previousId or None,
        )
        if scrub_pii:
            user_id, anonymous_id, previous_id = (
                hash_if_email(i) for i in (user_id, anonymous_id, previous_id)
            )
        return (
            self.messageId,
            self.type,
            self.event_name,
            user_id,
            anonymous_id,
            previous_id,
            event_at,
            original_at,
            self.sentAt,
            received,
            _json_encode(properties).decode(),
            _json_encode(traits).decode(),
            _json_encode(context).decode(),
            source,
        )


def utc_now() -> datetime:
    return datetime.now(UTC)
