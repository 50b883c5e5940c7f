"""The event contract: Segment Spec shaped events, validated once for every way in."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pulse.events.pii import scrub

EventType = Literal["track", "identify", "page", "screen", "alias", "group"]

MAX_ID_LENGTH = 256


def normalise_event_name(name: str) -> str:
    """`Order Completed`, `order_completed` and `order-completed` are one event: `order_completed`."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _as_utc(value: datetime) -> datetime:
    # Naive timestamps are taken as UTC, as Segment does.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Event(BaseModel):
    """One Segment-style event. Field names follow the Segment Spec (camelCase on the wire)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    type: EventType
    messageId: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    event: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    userId: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    anonymousId: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    previousId: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    timestamp: datetime | None = None
    sentAt: datetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("userId", "anonymousId", "previousId", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        # Segment libraries send numeric ids as numbers; they are still ids.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value or None

    @field_validator("timestamp", "sentAt")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)

    @field_validator("properties", "traits", "context", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _check_shape(self) -> Event:
        if not (self.userId or self.anonymousId):
            raise ValueError("userId or anonymousId is required")
        if self.type == "track" and not (self.event and normalise_event_name(self.event)):
            raise ValueError("track events need a non-empty 'event' name")
        return self

    @property
    def event_name(self) -> str:
        return normalise_event_name(self.event) if self.type == "track" and self.event else self.type

    def to_row(self, source: str, received_at: datetime) -> dict[str, Any]:
        """The `raw.events` row for this event, PII hashed."""
        return {
            "event_id": self.messageId,
            "event_type": self.type,
            "event_name": self.event_name,
            "user_id": self.userId,
            "anonymous_id": self.anonymousId,
            "event_at": self.timestamp or received_at,
            "sent_at": self.sentAt,
            "received_at": received_at,
            "properties": scrub(self.properties),
            "traits": scrub(self.traits),
            "context": scrub(self.context),
            "source": source,
        }
