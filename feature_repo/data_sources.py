"""Feast sources: each batch source reads one dbt mart in the warehouse; one push source for real-time features."""

from feast import PushSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

customer_features_source = PostgreSQLSource(
    name="customer_features_source",
    query="select * from marts.customer_features",
    timestamp_field="event_timestamp",
    description="Point-in-time customer snapshots built by dbt.",
    tags={"dbt_model": "marts/customer_features"},
)

# Real-time features. The collector aggregates accepted events per customer and pushes the result to this
# PushSource (online store only; see pulse.features.realtime). Feast requires a batch source behind every
# push source: `features.customer_realtime_log` is created by `pulse features` (not dbt: no dbt model
# computes these sub-minute values) and is where a history of pushed rows would be kept for training.
customer_realtime_log_source = PostgreSQLSource(
    name="customer_realtime_log_source",
    table="features.customer_realtime_log",
    timestamp_field="event_timestamp",
    description="History of the real-time customer aggregates (same columns as the pushes).",
    tags={"dbt_model": "none (written by pulse.features.realtime)"},
)

customer_realtime_push = PushSource(
    name="customer_realtime_push",
    batch_source=customer_realtime_log_source,
    description="Per-customer aggregates of accepted events, pushed by the collector (`pulse serve`).",
    tags={"producer": "pulse.features.realtime"},
    owner="data-team@pulse.example",
)
