"""The real-time aggregation the collector runs for every accepted event (pulse.features.realtime)."""

from datetime import UTC, datetime, timedelta

import numpy as np

from pulse.features.realtime import RealtimeAggregator, RealtimePusher
from pulse.scoring.api import percentile_of

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def ev(name, minutes, customer="c1", **properties):
    import json

    return {
        "user_id": customer,
        "event_at": T0 + timedelta(minutes=minutes),
        "event_name": name,
        "event_type": "track",
        "properties": json.dumps(properties),
    }


def test_windows_count_the_30_minutes_up_to_the_latest_event():
    agg = RealtimeAggregator()
    agg.add_all([ev("page", 0), ev("product_viewed", 5, category="shoes"), ev("product_viewed", 20)])
    row = agg.row("c1", T0)
    assert (row["events_30m"], row["product_views_30m"]) == (3, 2)
    assert row["last_event_at"] == T0 + timedelta(minutes=20)
    assert row["last_event_name"] == "product_viewed"
    agg.add(ev("page", 34))  # minutes 0 and 5 leave the window [4, 34] ... minute 0 only
    row = agg.row("c1", T0)
    assert (row["events_30m"], row["product_views_30m"]) == (3, 2)
    agg.add(ev("page", 36))  # window [6, 36]: minute 5 leaves too
    assert (agg.row("c1", T0)["events_30m"], agg.row("c1", T0)["product_views_30m"]) == (3, 1)


def test_late_events_count_but_do_not_move_the_last_event():
    agg = RealtimeAggregator()
    agg.add_all(
        [ev("page", 10), ev("product_viewed", 2, category="old"), ev("product_viewed", 8, category="new")]
    )
    row = agg.row("c1", T0)
    assert row["last_event_at"] == T0 + timedelta(minutes=10)
    assert row["last_event_name"] == "page"
    assert row["events_30m"] == 3
    agg.add(ev("product_viewed", 1, category="older"))
    assert agg.row("c1", T0)["last_viewed_category"] == "new"


def test_cart_value_and_items_follow_adds_removes_and_orders():
    agg = RealtimeAggregator()
    agg.add_all(
        [
            ev("product_added", 0, price=10.0, quantity=2),
            ev("product_added", 1, price="5.5"),
            ev("product_removed", 2, price=10.0, quantity=1),
        ]
    )
    row = agg.row("c1", T0)
    assert (row["cart_items"], row["cart_value"]) == (2, 15.5)
    agg.add(ev("product_removed", 3, price=99.0, quantity=5))  # never below zero
    assert (agg.row("c1", T0)["cart_items"], agg.row("c1", T0)["cart_value"]) == (0, 0.0)
    agg.add_all([ev("product_added", 4, price=3.0), ev("order_completed", 5, revenue=3.0)])
    assert (agg.row("c1", T0)["cart_items"], agg.row("c1", T0)["cart_value"]) == (0, 0.0)


def test_customers_are_separate_and_anonymous_or_broken_rows_are_skipped():
    agg = RealtimeAggregator(max_customers=2)
    touched = agg.add_all(
        [ev("page", 0, "a"), ev("page", 1, "b"), {"user_id": None, "event_at": T0}, {"user_id": "x"}]
    )
    assert touched == {"a", "b"}
    agg.add(ev("page", 2, "c"))  # over max_customers: the least recently active (a) is evicted
    assert set(agg.states) == {"b", "c"}
    frame = agg.frame(["b", "c", "a"], as_of=T0)
    assert list(frame["customer_id"]) == ["b", "c"]
    assert str(frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"


def test_hook_marks_changed_customers_once_per_push():
    pusher = RealtimePusher(settings=None)  # no store needed: only the hook side runs
    pusher([ev("page", 0, "a"), ev("page", 1, "a"), ev("page", 2, "b")])
    assert sorted(pusher._dirty) == ["a", "b"]
    assert pusher.stats.events == 3


def test_percentile_ranks_like_batch_scoring():
    scores = np.sort(np.array([0.1, 0.2, 0.2, 0.4, 0.9]))
    assert percentile_of(scores, 0.2) == 60  # ties share the higher percentile
    assert percentile_of(scores, 0.0) == 1
    assert percentile_of(scores, 0.95) == 100
    assert percentile_of(scores, 0.5) == 80
