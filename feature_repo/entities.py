"""Feast entities: who features describe."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A known customer (the stitched `customer_id` of the dbt marts).",
)
