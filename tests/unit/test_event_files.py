"""Pure parts of the file paths: CSV rows to events, Segment batch documents, order rows."""

from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pulse.events.ingest import batch_events, csv_row_to_payload
from pulse.events.orders import OrderColumns, OrderRowError, order_event, parse_amount, parse_timestamp

UTC_ZONE = ZoneInfo("UTC")


def test_csv_rows_map_to_segment_events():
    row = {
        "type": "",
        "event": "Product Viewed",
        "message_id": "m1",
        "user_id": "c1",
        "timestamp": "2026-01-01T00:00:00Z",
        "properties.price": "9.90",
        "properties.sku": "00123",
        "properties.in_stock": "true",
        "context": '{"page": {"path": "/"}}',
        "context.ip": "203.0.113.1",
        None: ["extra"],
    }
    assert csv_row_to_payload(row) == {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m1",
        "userId": "c1",
        "timestamp": "2026-01-01T00:00:00Z",
        "properties": {"price": 9.9, "sku": "00123", "in_stock": True},
        "context": {"page": {"path": "/"}, "ip": "203.0.113.1"},
    }


def test_batch_documents_apply_batch_sent_at_and_context():
    doc = {
        "batch": [{"type": "track", "context": {"ip": "1"}}, 7],
        "sentAt": "S",
        "context": {"ip": "0", "x": 1},
    }
    assert batch_events(doc) == [{"type": "track", "context": {"ip": "1", "x": 1}, "sentAt": "S"}, 7]
    assert batch_events([{"a": 1}]) == [{"a": 1}]
    assert batch_events({"type": "track"}) == [{"type": "track"}]
    assert batch_events(3) is None


def test_order_rows_become_order_completed_with_deterministic_ids():
    row = {"customer_id": "c1", "order_timestamp": "2026-02-03 10:00", "amount": "$1,234.50", "quantity": "2"}
    seen: Counter = Counter()
    first = order_event(row, OrderColumns(), None, ZoneInfo("Europe/Paris"), "EUR", seen)
    assert first["event"] == "Order Completed" and first["userId"] == "c1"
    assert first["timestamp"] == datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
    assert first["properties"] == {"revenue": 1234.5, "total": 1234.5, "quantity": 2, "currency": "EUR"}
    # An identical row in the same file is a second order; the same file again gives the same two ids.
    second = order_event(row, OrderColumns(), None, ZoneInfo("Europe/Paris"), "EUR", seen)
    again = Counter()
    assert first["messageId"] != second["messageId"]
    assert [
        order_event(row, OrderColumns(), None, ZoneInfo("Europe/Paris"), "EUR", again)["messageId"]
        for _ in "ab"
    ] == [
        first["messageId"],
        second["messageId"],
    ]
    with_id = order_event({**row, "order_id": "o-9"}, OrderColumns(), None, UTC_ZONE, None, Counter())
    assert with_id["properties"]["order_id"] == "o-9" and with_id["messageId"].startswith("order-")


def test_order_rows_fail_with_reasons():
    with pytest.raises(OrderRowError, match="amount"):
        parse_amount("ten")
    with pytest.raises(OrderRowError, match="date format"):
        parse_timestamp("03/02/2026", None, UTC_ZONE)
    assert parse_timestamp("03/02/2026", "%d/%m/%Y", UTC_ZONE) == datetime(2026, 2, 3, tzinfo=UTC)
    with pytest.raises(OrderRowError, match="customer_id"):
        order_event(
            {"order_timestamp": "2026-01-01", "amount": "1"}, OrderColumns(), None, UTC_ZONE, None, Counter()
        )
