"""Feast feature views over the dbt marts."""

from datetime import timedelta

from data_sources import customer_features_source
from entities import customer
from feast import FeatureView, Field
from feast.types import Float64, Int64

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
