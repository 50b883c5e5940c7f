"""Feast offline sources: each reads one dbt mart in the warehouse."""

from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

customer_features_source = PostgreSQLSource(
    name="customer_features_source",
    query="select * from marts.customer_features",
    timestamp_field="event_timestamp",
    description="Point-in-time customer snapshots built by dbt.",
    tags={"dbt_model": "marts/customer_features"},
)
