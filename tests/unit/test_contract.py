from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pulse.events.contract import Event, normalise_event_name
from pulse.events.pii import hash_email, hash_phone, scrub

RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def event(**overrides):
    base = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m-1",
        "userId": "c1",
        "timestamp": "2026-01-01T10:00:00+02:00",
        "properties": {"revenue": 10.5},
    }
    return Event.model_validate({**base, **overrides})


@pytest.mark.parametrize(
    "name", ["Order Completed", "order_completed", "order-completed", "  ORDER   completed "]
)
def test_event_names_normalise_to_one(name):
    assert normalise_event_name(name) == "order_completed"


def test_timestamps_are_utc():
    row = event().to_row("test", RECEIVED)
    assert row["event_at"] == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    assert row["event_name"] == "order_completed"


def test_naive_timestamp_is_taken_as_utc_and_missing_one_defaults_to_receipt():
    assert event(timestamp="2026-01-01T10:00:00").timestamp == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert event(timestamp=None).to_row("test", RECEIVED)["event_at"] == RECEIVED


def test_numeric_user_ids_become_text():
    assert event(userId=42).userId == "42"


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"userId": None}, "userId or anonymousId"),
        ({"event": ""}, "non-empty 'event'"),
        ({"type": "purchase"}, "type"),
        ({"messageId": ""}, "messageId"),
        ({"timestamp": "yesterday-ish"}, "timestamp"),
        ({"properties": [1, 2]}, "properties"),
    ],
)
def test_invalid_events_say_why(overrides, reason):
    with pytest.raises(ValidationError, match=reason):
        event(**overrides)


def test_non_track_calls_are_named_by_type():
    assert event(type="page", event=None).event_name == "page"
    assert event(type="identify", event=None).event_name == "identify"


def test_pii_is_hashed_everywhere_and_never_kept():
    row = event(
        type="identify",
        event=None,
        traits={"email": "  Jane@Example.COM ", "phone": "+1 (555) 010-9999", "plan": "pro"},
        context={"traits": {"email": "jane@example.com"}},
    ).to_row("test", RECEIVED)
    assert row["traits"] == {
        "email_sha256": hash_email("jane@example.com"),
        "phone_sha256": hash_phone("+15550109999"),
        "plan": "pro",
    }
    assert row["context"] == {"traits": {"email_sha256": hash_email("jane@example.com")}}
    assert "jane" not in str(row).lower()


def test_scrub_leaves_other_values_alone():
    assert scrub({"a": 1, "nested": {"b": [1, 2]}}) == {"a": 1, "nested": {"b": [1, 2]}}
    # The known SHA-256 of the normalised address (what ad platforms compute).
    assert (
        hash_email("Test@Example.com ") == "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    )
