"""Real-time customer features from the collector's event stream, pushed to Feast's online store.

Two parts:

- `RealtimeAggregator` (pure, unit-tested): folds accepted events into per-customer state and gives the
  `customer_realtime` row of each customer it touched: last event time and name, events and product views
  in the 30 minutes up to the customer's latest event, open cart value and items, last viewed category.
- `RealtimePusher`: the collector's post-commit hook. The hook only aggregates (microseconds per event,
  on the writer's hook thread, never on a request's path); a background thread pushes the rows of the
  customers that changed since the last push, one `store.push(..., to=PushMode.ONLINE)` per interval
  (`interval`, 50 ms by default), so a burst of events for one customer costs one online write.

The state lives in the collector process: after a restart the 30-minute windows refill within 30 minutes
and the cart totals start from the events seen since. With several uvicorn workers each worker holds the
customers whose events it received; run one worker (the default) when the real-time features matter.
Events without a `user_id` (anonymous visitors) have no customer to describe and are skipped.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from pulse.config import Settings

log = logging.getLogger(__name__)

PUSH_SOURCE = "customer_realtime_push"
FEATURE_VIEW = "customer_realtime"
WINDOW = timedelta(minutes=30)
COLUMNS = (
    "customer_id",
    "event_timestamp",
    "last_event_at",
    "last_event_name",
    "events_30m",
    "product_views_30m",
    "cart_value",
    "cart_items",
    "last_viewed_category",
)


@dataclass
class CustomerState:
    event_times: list[datetime] = field(default_factory=list)  # sorted, within WINDOW of the latest
    view_times: list[datetime] = field(default_factory=list)
    last_event_at: datetime | None = None
    last_event_name: str | None = None
    cart_value: float = 0.0
    cart_items: int = 0
    last_viewed_category: str | None = None
    last_view_at: datetime | None = None


def _properties(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str | bytes) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return default
    return default


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _trim(times: list[datetime], start: datetime) -> None:
    del times[: bisect.bisect_left(times, start)]


class RealtimeAggregator:
    """Per-customer state, at most `max_customers` of them (least recently active evicted first)."""

    def __init__(self, window: timedelta = WINDOW, max_customers: int = 200_000):
        self.window = window
        self.max_customers = max_customers
        self.states: OrderedDict[str, CustomerState] = OrderedDict()

    def add(self, record: Mapping[str, Any]) -> str | None:
        """Fold one accepted event (a row dict keyed by `EVENT_COLUMNS`); returns its customer, if any."""
        customer = record.get("user_id")
        event_at = record.get("event_at")
        if not customer or not isinstance(event_at, datetime):
            return None
        event_at = _utc(event_at)
        name = record.get("event_name") or record.get("event_type") or ""
        state = self.states.get(customer)
        if state is None:
            state = self.states[customer] = CustomerState()
            if len(self.states) > self.max_customers:
                self.states.popitem(last=False)
        else:
            self.states.move_to_end(customer)

        if state.last_event_at is None or event_at >= state.last_event_at:
            state.last_event_at, state.last_event_name = event_at, name
        bisect.insort(state.event_times, event_at)
        props = _properties(record.get("properties"))
        if name == "product_viewed":
            bisect.insort(state.view_times, event_at)
            category = props.get("category")
            if isinstance(category, str) and category:
                if state.last_view_at is None or event_at >= state.last_view_at:
                    state.last_viewed_category, state.last_view_at = category, event_at
        elif name in ("product_added", "product_removed"):
            quantity = max(0, int(_number(props.get("quantity"), 1)))
            value = max(0.0, _number(props.get("price"), 0.0)) * quantity
            sign = 1 if name == "product_added" else -1
            state.cart_items = max(0, state.cart_items + sign * quantity)
            state.cart_value = (
                max(0.0, round(state.cart_value + sign * value, 2)) if state.cart_items else 0.0
            )
        elif name == "order_completed":
            state.cart_value, state.cart_items = 0.0, 0
        start = state.last_event_at - self.window
        _trim(state.event_times, start)
        _trim(state.view_times, start)
        return customer

    def add_all(self, records: Iterable[Mapping[str, Any]]) -> set[str]:
        return {c for c in map(self.add, records) if c is not None}

    def row(self, customer: str, as_of: datetime) -> dict[str, Any]:
        """The `customer_realtime` row for a customer (`as_of` becomes Feast's event_timestamp)."""
        state = self.states[customer]
        return {
            "customer_id": customer,
            "event_timestamp": as_of,
            "last_event_at": state.last_event_at,
            "last_event_name": state.last_event_name,
            "events_30m": len(state.event_times),
            "product_views_30m": len(state.view_times),
            "cart_value": float(state.cart_value),
            "cart_items": int(state.cart_items),
            "last_viewed_category": state.last_viewed_category,
        }

    def features(self, customer: str, as_of: datetime) -> dict[str, Any] | None:
        """The customer's real-time features (for trigger conditions), or None if unseen."""
        if customer not in self.states:
            return None
        row = self.row(customer, as_of)
        return {k: v for k, v in row.items() if k not in ("customer_id", "event_timestamp")}

    def frame(self, customers: Iterable[str], as_of: datetime | None = None) -> pd.DataFrame:
        """Rows for `customers`, ready for `FeatureStore.push`. `as_of` (default now) is the push time, so
        every push of a customer is newer than the one before (the Redis store skips rows that are not)."""
        as_of = as_of or datetime.now(UTC)
        rows = [self.row(c, as_of) for c in customers if c in self.states]
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        for column in ("event_timestamp", "last_event_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame


@dataclass
class PusherStats:
    events: int = 0
    pushes: int = 0
    rows_pushed: int = 0
    failures: int = 0
    last_push_seconds: float = 0.0
    last_error: str | None = None


class RealtimePusher:
    """The collector hook: aggregate on the hook thread, push changed customers from a background thread.

    `store` is built lazily (first push) from `settings`; until the feature repo is applied (`pulse
    features`) the push source is unknown, pushes are skipped and retried every `retry_seconds`.
    """

    def __init__(
        self,
        settings: Settings,
        interval: float = 0.05,
        max_rows: int = 5_000,
        retry_seconds: float = 30.0,
        aggregator: RealtimeAggregator | None = None,
        store=None,
    ):
        self.settings = settings
        self.interval = interval
        self.max_rows = max_rows
        self.retry_seconds = retry_seconds
        self.aggregator = aggregator or RealtimeAggregator()
        self.stats = PusherStats()
        self._store = store
        self._dirty: dict[str, None] = {}  # insertion-ordered set
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._disabled_until = 0.0
        self._thread = threading.Thread(target=self._run, name="pulse-realtime-push", daemon=True)

    # -- the hook ---------------------------------------------------------------------------------
    def __call__(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            touched = self.aggregator.add_all(records)
            self.stats.events += len(records)
            for customer in touched:
                self._dirty[customer] = None
        if touched:
            self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> RealtimePusher:
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- pushing ----------------------------------------------------------------------------------
    def _store_or_none(self):
        if self._store is None and time.monotonic() >= self._disabled_until:
            from pulse.features.store import feature_store

            store = feature_store(self.settings)
            try:
                store.get_stream_feature_view(FEATURE_VIEW)
            except Exception as error:  # noqa: BLE001 - not applied yet, or the registry is unreachable
                self._disabled_until = time.monotonic() + self.retry_seconds
                log.warning(
                    "real-time features off for %.0f s: %s (run `pulse features`)", self.retry_seconds, error
                )
                return None
            self._store = store
        return self._store

    def flush(self) -> int:
        """Push the rows of every customer changed since the last push; returns the number of rows."""
        from feast.data_source import PushMode

        if not self._dirty:
            return 0
        store = self._store_or_none()  # outside the lock: the first call imports Feast (seconds)
        with self._lock:
            if store is None:
                self._dirty.clear()
                return 0
            if not self._dirty:
                return 0
            customers = list(self._dirty)[: self.max_rows]
            for customer in customers:
                del self._dirty[customer]
            frame = self.aggregator.frame(customers)
        started = time.perf_counter()
        try:
            store.push(PUSH_SOURCE, frame, to=PushMode.ONLINE)
        except Exception as error:  # noqa: BLE001 - the warehouse has the events; never crash the collector
            self.stats.failures += 1
            self.stats.last_error = f"{type(error).__name__}: {error}"
            log.warning("real-time push of %d rows failed: %s", len(frame), self.stats.last_error)
            return 0
        self.stats.pushes += 1
        self.stats.rows_pushed += len(frame)
        self.stats.last_push_seconds = time.perf_counter() - started
        return len(frame)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            closing = self._closing
            try:
                while self.flush():
                    pass
            except Exception:  # noqa: BLE001
                log.exception("real-time push loop failed")
            if closing:
                return
            time.sleep(self.interval)  # let the next events gather into one push
