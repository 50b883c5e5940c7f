"""Feast feature views: batch views over the dbt marts, a stream view fed by the collector, on-demand views."""

from datetime import timedelta

from data_sources import customer_features_source, customer_realtime_push
from entities import customer
from feast import FeatureView, Field, StreamFeatureView
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String, UnixTimestamp

ACTIVITY_FEATURES = {
    "tenure_days": Int64,
    "events_7d": Int64,
    "active_days_7d": Int64,
    "active_days_30d": Int64,
    "active_days_total": Int64,
    "page_views_7d": Int64,
    "page_views_30d": Int64,
    "page_views_90d": Int64,
    "product_views_1d": Int64,
    "product_views_7d": Int64,
    "product_views_30d": Int64,
    "product_views_90d": Int64,
    "cart_adds_7d": Int64,
    "cart_adds_30d": Int64,
    "cart_adds_90d": Int64,
    "cart_removes_30d": Int64,
    "checkouts_7d": Int64,
    "checkouts_30d": Int64,
    "orders_7d": Int64,
    "orders_30d": Int64,
    "orders_90d": Int64,
    "revenue_30d": Float64,
    "orders_total": Int64,
    "revenue_total": Float64,
    "avg_order_value": Float64,
    "email_opens_30d": Int64,
    "email_clicks_30d": Int64,
    "days_since_last_event": Int64,
    "days_since_last_order": Int64,
    "is_buyer": Int64,
    "rfm_recency_score": Int64,
    "rfm_frequency_score": Int64,
    "rfm_monetary_score": Int64,
    # Added with the warehouse models (issue 4): the full 1/7/30/90-day grid, sessions, abandoned carts,
    # and category affinity (share of 90-day product views in the top category).
    "page_views_1d": Int64,
    "cart_adds_1d": Int64,
    "cart_removes_1d": Int64,
    "cart_removes_7d": Int64,
    "cart_removes_90d": Int64,
    "checkouts_1d": Int64,
    "checkouts_90d": Int64,
    "orders_1d": Int64,
    "revenue_1d": Float64,
    "revenue_7d": Float64,
    "revenue_90d": Float64,
    "sessions_1d": Int64,
    "sessions_7d": Int64,
    "sessions_30d": Int64,
    "sessions_90d": Int64,
    "email_opens_1d": Int64,
    "email_opens_7d": Int64,
    "email_opens_90d": Int64,
    "email_clicks_1d": Int64,
    "email_clicks_7d": Int64,
    "email_clicks_90d": Int64,
    "abandoned_carts_1d": Int64,
    "abandoned_carts_7d": Int64,
    "abandoned_carts_30d": Int64,
    "abandoned_carts_90d": Int64,
    "top_category_share_90d": Float64,
}

customer_activity = FeatureView(
    name="customer_activity",
    entities=[customer],
    # Snapshots are daily; a snapshot older than two days is stale, not a feature value.
    ttl=timedelta(days=2),
    schema=[Field(name=name, dtype=dtype) for name, dtype in ACTIVITY_FEATURES.items()],
    source=customer_features_source,
    online=True,
    owner="data-team@pulse.example",
    description="RFM and recent-activity aggregates per customer (dbt mart customer_features).",
    tags={"dbt_model": "marts/customer_features"},
)

# -- real-time -------------------------------------------------------------------------------------
# Fed by the collector through `customer_realtime_push` (pulse.features.realtime computes the values, so
# this view has no udf). Window counts are as of the customer's latest event; the on-demand view below
# turns them into values as of the request.
REALTIME_FEATURES = {
    "last_event_at": UnixTimestamp,
    "last_event_name": String,
    "events_30m": Int64,
    "product_views_30m": Int64,
    "cart_value": Float64,
    "cart_items": Int64,
    "last_viewed_category": String,
}

customer_realtime = StreamFeatureView(
    name="customer_realtime",
    entities=[customer],
    # Pushed on every event; a value nobody refreshed for a day says nothing about "now".
    ttl=timedelta(days=1),
    schema=[Field(name=name, dtype=dtype) for name, dtype in REALTIME_FEATURES.items()],
    source=customer_realtime_push,
    timestamp_field="event_timestamp",
    online=True,
    owner="data-team@pulse.example",
    description="Last event, 30-minute activity, open cart and last viewed category, from the event stream.",
    tags={"producer": "pulse.features.realtime"},
)


@on_demand_feature_view(
    sources=[customer_realtime],
    schema=[
        Field(name="minutes_since_last_event", dtype=Float64),
        Field(name="is_active_30m", dtype=Int64),
        Field(name="events_30m_now", dtype=Int64),
        Field(name="product_views_30m_now", dtype=Int64),
        Field(name="has_open_cart", dtype=Int64),
    ],
    mode="python",
    owner="data-team@pulse.example",
    description="Computed at request time from customer_realtime: recency in minutes, and the 30-minute "
    "counts set to 0 once the customer's last event is more than 30 minutes old.",
)
def customer_realtime_now(inputs: dict) -> dict:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    out: dict = {name: [] for name in ("minutes_since_last_event", "is_active_30m", "events_30m_now")}
    out["product_views_30m_now"], out["has_open_cart"] = [], []
    for last, events, views, items in zip(
        inputs["last_event_at"],
        inputs["events_30m"],
        inputs["product_views_30m"],
        inputs["cart_items"],
        strict=True,
    ):
        if last is None:
            minutes = None
        else:
            last = last if last.tzinfo else last.replace(tzinfo=UTC)
            minutes = max(0.0, (now - last).total_seconds() / 60)
        active = minutes is not None and minutes <= 30
        out["minutes_since_last_event"].append(minutes)
        out["is_active_30m"].append(int(active))
        out["events_30m_now"].append(int(events or 0) if active else 0)
        out["product_views_30m_now"].append(int(views or 0) if active else 0)
        out["has_open_cart"].append(int((items or 0) > 0))
    return out
