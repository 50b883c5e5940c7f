"""Transactions-only data (a shop's order export) as `Order Completed` events.

Each CSV row becomes one track event through the same contract and write path as every other event:

    {"type": "track", "event": "Order Completed", "userId": <customer>, "timestamp": <order time>,
     "messageId": <deterministic>, "properties": {"order_id", "revenue", "total", "quantity", "currency"}}

The messageId is derived from the row, so importing the same file again (or an export that overlaps the
last one) adds nothing: with an order id column it is a hash of the order id; without one, a hash of
customer, timestamp, amount and quantity plus the occurrence number of that combination in the file
(two identical rows are two orders, and stay two on re-import).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from pulse.config import Settings
from pulse.db import warehouse_url
from pulse.events.contract import utc_now
from pulse.events.ingest import IngestResult, parse_payload
from pulse.events.load import Rejection, write_events, write_rejections


@dataclass(frozen=True)
class OrderColumns:
    customer_id: str = "customer_id"
    order_timestamp: str = "order_timestamp"
    amount: str = "amount"
    quantity: str = "quantity"  # optional
    order_id: str = "order_id"  # optional


class OrderRowError(ValueError):
    pass


_AMOUNT_JUNK = re.compile(r"[\s$€£¥]")


def parse_amount(text: str) -> float:
    """`12.5`, `$1,234.50`, `1.234,50 €`, `€7,00`. With both marks the later one is the decimal mark; a
    lone comma is a thousands separator when groups of three digits follow it, else the decimal mark."""
    cleaned = _AMOUNT_JUNK.sub("", text)
    if "," in cleaned and "." in cleaned:
        thousands = "." if cleaned.rfind(",") > cleaned.rfind(".") else ","
        cleaned = cleaned.replace(thousands, "").replace(",", ".")
    elif "," in cleaned:
        if re.fullmatch(r"-?\d{1,3}(,\d{3})+", cleaned):
            cleaned = cleaned.replace(",", "")
        else:
            cleaned = cleaned.replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise OrderRowError(f"amount {text!r} is not a number") from None
    if not value.is_finite():
        raise OrderRowError(f"amount {text!r} is not a number")
    return float(value)


def parse_quantity(text: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise OrderRowError(f"quantity {text!r} is not a whole number") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise OrderRowError(f"quantity {text!r} is not a whole number")
    return int(value)


def parse_timestamp(text: str, date_format: str | None, tz: ZoneInfo) -> datetime:
    """ISO 8601 by default (`2026-01-31`, `2026-01-31 14:05`, `2026-01-31T14:05:00Z`), or strptime's
    `date_format`. Times without an offset are in `tz` (UTC unless told otherwise). Returns UTC."""
    text = text.strip()
    try:
        parsed = datetime.strptime(text, date_format) if date_format else datetime.fromisoformat(text)
    except ValueError as error:
        how = f"format {date_format!r}" if date_format else "ISO 8601 (or set a date format)"
        raise OrderRowError(f"order timestamp {text!r} does not match {how}: {error}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def order_event(
    row: dict[str, str],
    columns: OrderColumns,
    date_format: str | None,
    tz: ZoneInfo,
    currency: str | None,
    seen: Counter,
) -> dict:
    """One CSV row to a Segment `Order Completed` event (not yet validated: the contract does that)."""

    def cell(name: str) -> str | None:
        return (row.get(name) or "").strip() or None

    def required(name: str) -> str:
        value = cell(name)
        if value is None:
            raise OrderRowError(f"column {name!r} is empty or missing")
        return value

    customer = required(columns.customer_id)
    at = parse_timestamp(required(columns.order_timestamp), date_format, tz)
    amount = parse_amount(required(columns.amount))
    quantity_text, order_id = cell(columns.quantity), cell(columns.order_id)
    quantity = parse_quantity(quantity_text) if quantity_text else None

    if order_id:
        message_id = "order-" + _digest("order", order_id)
    else:
        key = (customer, at.isoformat(), repr(amount), repr(quantity))
        seen[key] += 1
        message_id = "order-" + _digest("row", *key, str(seen[key]))
    properties: dict = {"revenue": amount, "total": amount}
    if order_id:
        properties["order_id"] = order_id
    if quantity is not None:
        properties["quantity"] = quantity
    if currency:
        properties["currency"] = currency
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": message_id,
        "userId": customer,
        "timestamp": at,
        "properties": properties,
        "context": {"source": {"import": "orders"}},
    }


def import_orders(
    path: Path,
    settings: Settings | None = None,
    columns: OrderColumns = OrderColumns(),
    date_format: str | None = None,
    timezone: str = "UTC",
    currency: str | None = None,
    delimiter: str = ",",
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Load an orders CSV as `Order Completed` events in one transaction; bad rows are rejected."""
    path = Path(path)
    source = str(path.resolve())
    received_at = utc_now()
    tz = ZoneInfo(timezone)
    rejections: list[Rejection] = []
    lines = 0

    def rows() -> Iterator[tuple]:
        nonlocal lines
        seen: Counter = Counter()
        with path.open("rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
            reader = csv.DictReader(text, delimiter=delimiter)
            missing = [
                c
                for c in (columns.customer_id, columns.order_timestamp, columns.amount)
                if c not in (reader.fieldnames or [])
            ]
            if missing:
                raise ValueError(
                    f"{path} has no column(s) {', '.join(map(repr, missing))}; its header is "
                    f"{reader.fieldnames!r} (map names with the column options)"
                )
            reported = 0
            for row in reader:
                lines += 1
                if progress and raw.tell() - reported >= 256 * 1024:
                    progress(raw.tell() - reported)
                    reported = raw.tell()
                original = json.dumps(row, ensure_ascii=False)
                try:
                    event = order_event(row, columns, date_format, tz, currency, seen)
                except OrderRowError as error:
                    rejections.append(Rejection.of(original, str(error), source, reader.line_num))
                    continue
                parsed = parse_payload(
                    event, source, reader.line_num, received_at, raw=original, check_encoding=True
                )
                if isinstance(parsed, Rejection):
                    rejections.append(parsed)
                else:
                    yield parsed
            if progress:
                progress(raw.tell() - reported)

    with psycopg.connect(warehouse_url(settings)) as conn:
        written = write_events(conn, rows())
        rejected = write_rejections(conn, rejections)
    return IngestResult(
        files=1,
        lines=lines,
        inserted=written.inserted,
        duplicates=written.valid - written.inserted,
        rejected=rejected,
    )
