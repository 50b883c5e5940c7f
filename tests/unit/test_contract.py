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


def test_clock_skew_is_corrected_with_sent_at_and_received_at():
    received = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    # The device clock is 1 h fast: it stamped the event at 12:50 and sent it at 13:00 (its clock).
    skewed = event(timestamp="2026-01-02T12:50:00Z", sentAt="2026-01-02T13:00:00Z", receivedAt=received)
    event_at, original_at, received_at = skewed.event_times(received)
    assert event_at == datetime(2026, 1, 2, 11, 50, tzinfo=UTC)
    assert original_at == datetime(2026, 1, 2, 12, 50, tzinfo=UTC) and received_at == received
    # Without a receive time in the payload (a plain file) there is nothing to correct with.
    assert event(timestamp="2026-01-02T12:50:00Z", sentAt="2026-01-02T13:00:00Z").event_times(received)[
        0
    ] == (datetime(2026, 1, 2, 12, 50, tzinfo=UTC))
    # Segment exports carry originalTimestamp: their timestamp is already corrected.
    export = event(
        timestamp="2026-01-02T11:50:00Z", originalTimestamp="2026-01-02T12:50:00Z", receivedAt=received
    )
    assert export.event_times(received)[:2] == (
        datetime(2026, 1, 2, 11, 50, tzinfo=UTC),
        datetime(2026, 1, 2, 12, 50, tzinfo=UTC),
    )


def test_out_of_range_timestamps_are_rejected_not_crashing():
    with pytest.raises(ValidationError, match="out of range"):
        event(timestamp="0001-01-01T00:00:00+01:00")


@pytest.mark.parametrize(
    "raw, e164",
    [
        ("(415) 555-0100", "+14155550100"),  # national format, default region US
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+1-415-555-0100 ", "+14155550100"),
    ],
)
def test_phones_are_normalised_to_e164_before_hashing(raw, e164):
    from pulse.events.pii import normalise_phone, sha256

    assert normalise_phone(raw) == e164
    assert hash_phone(raw) == sha256(e164)


def test_phone_region_comes_from_the_settings_dotenv(tmp_path, monkeypatch):
    from pulse.events.pii import default_phone_region, normalise_phone

    monkeypatch.delenv("PULSE_PHONE_REGION", raising=False)
    (tmp_path / ".env").write_text("PULSE_PHONE_REGION=GB\n")
    monkeypatch.chdir(tmp_path)
    default_phone_region.cache_clear()
    normalise_phone.cache_clear()
    try:
        assert normalise_phone("020 7946 0958") == "+442079460958"
    finally:
        default_phone_region.cache_clear()
        normalise_phone.cache_clear()


def test_pii_key_spellings_and_email_values_are_hashed():
    row = event(
        type="identify",
        event=None,
        userId="Jane@Example.com",
        traits={"Email_Address": "jane@example.com", "phoneNumber": "415 555 0100", "contact": "bob@x.io"},
        properties={"items": [{"owner": "ann@y.org"}], "mobile": None},
    ).to_row("test", RECEIVED)
    assert row["user_id"] == "sha256:" + hash_email("jane@example.com")
    assert row["traits"] == {
        "email_sha256": hash_email("jane@example.com"),
        "phone_sha256": hash_phone("+14155550100"),
        "contact": "sha256:" + hash_email("bob@x.io"),
    }
    assert row["properties"] == {"items": [{"owner": "sha256:" + hash_email("ann@y.org")}]}


def test_maybe_pii_finds_keys_not_values():
    from pulse.events.pii import maybe_pii

    assert not maybe_pii(b'{"context":{"device":{"type":"mobile"},"campaign":{"medium":"email"}}}')
    assert maybe_pii(b'{"traits":{"Phone_Number" : 1}}')
    assert maybe_pii(b'{"x":"someone@example.com"}')
    assert maybe_pii(b'{"e-mail_":"x"}')


def test_rejected_payload_text_is_redacted():
    from pulse.events.pii import redact_text

    text = redact_text(
        '{"email": "Jane@Example.com", "phone": "+1 415 555 0100", "note": "mail bob@x.io", oops'
    )
    assert (
        "jane" not in text.lower()
        and "bob@x.io" not in text
        and "555" not in text.replace(hash_phone("+1 415 555 0100"), "")
    )
    assert hash_email("jane@example.com") in text and hash_email("bob@x.io") in text


def test_alias_and_group_need_their_ids():
    with pytest.raises(ValidationError, match="previousId"):
        event(type="alias", event=None)
    with pytest.raises(ValidationError, match="groupId"):
        event(type="group", event=None)
    row = event(type="group", event=None, groupId="acme").to_row("test", RECEIVED)
    assert row["properties"]["group_id"] == "acme"
