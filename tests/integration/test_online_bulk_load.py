"""The bulk loader (`pulse.features.store.materialize`) leaves the online store exactly as Feast's own
`materialize` does: same stored keys, fields and bytes, same `get_online_features` answers, for the
Redis and the PostgreSQL online store, including re-runs and an older window loaded after a newer one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
import sqlalchemy as sa

from pulse.db import engine
from pulse.features import bulk_load
from pulse.features import store as feast_store
from tests.conftest import TEST_REDIS_URL
from tests.integration.test_online_stores import activity_features, write_snapshots

D1 = datetime(2026, 5, 1, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
CUSTOMERS = ["a", "b", "c", "d", "é-ü", "nobody"]


def snapshots() -> list[dict]:
    rows = []
    for i, customer in enumerate(CUSTOMERS[:-1]):
        for day, at in enumerate((D1 + timedelta(microseconds=123_456 * i), D2 + timedelta(hours=i))):
            rows.append(
                {
                    "customer_id": customer,
                    "event_timestamp": at,
                    "orders_7d": 10 * day + i,
                    "revenue_30d": None if i == 1 else 1.1 * i + day / 3,
                    "tenure_days": None if i == 2 else -(i**9) * (day + 1),
                    "avg_order_value": float("nan") if i == 3 else 0.1 * i,
                    "top_category_share_90d": -0.0 if i == 0 else 1e300 / (i + 1),
                }
            )
    return rows


def online_values(settings, store) -> dict:
    features = [f"customer_activity:{name}" for name in activity_features(settings)]
    rows = [{"customer_id": c} for c in CUSTOMERS]
    values = store.get_online_features(features=features, entity_rows=rows).to_dict()
    return {k: [repr(v) for v in vs] for k, vs in values.items()}  # repr: nan == nan


def stored(settings, store) -> list:
    """Everything the online store holds for the project, with the project's name taken out."""
    project = store.project
    if settings.redis_url:
        client = redis.Redis.from_url(settings.redis_url)
        keys = sorted(k for k in client.scan_iter(match=f"*{project}") if k.endswith(project.encode()))
        return [(k[: -len(project)], sorted(client.hgetall(k).items())) for k in keys]
    table = f'feast_online."{project}_customer_activity"'
    with engine(settings).connect() as conn:
        rows = conn.execute(
            sa.text(f"select entity_key, feature_name, value, value_text, event_ts, created_ts from {table}")
        ).all()
    return sorted(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows)


@pytest.mark.parametrize("online", ["postgres", "redis"])
def test_bulk_load_leaves_the_online_store_as_feast_does(settings, monkeypatch, online):
    if online == "redis":
        monkeypatch.setattr(settings, "redis_url", TEST_REDIS_URL)
    native_settings = settings.model_copy(update={"feast_project": f"{settings.feast_project}_native"})
    write_snapshots(settings, snapshots())
    feast_store.apply(settings)
    feast_store.apply(native_settings)
    bulk, native = feast_store.feature_store(settings), feast_store.feature_store(native_settings)
    assert bulk_load.supports(bulk, bulk.get_feature_view("customer_activity"))
    try:
        assert stored(settings, bulk) == [] == stored(settings, native)
        # An empty window, the newer window, the older one (Redis keeps the newer values), then a re-run.
        windows = [(D1 - timedelta(days=9), D1 - timedelta(days=8)), (D2, D2 + timedelta(days=1))]
        windows += [(D1, D2 - timedelta(microseconds=1)), (D1, D2)]
        for start, end in windows:
            feast_store.materialize(start, end, settings)
            native.materialize(start, end, feature_views=["customer_activity"])
            assert stored(settings, bulk) == stored(settings, native)
            assert online_values(settings, bulk) == online_values(settings, native)
        # The last window holds a's newer row (at D2) and the others' older rows: Feast's Redis store keeps
        # the newer values it already has, its PostgreSQL store overwrites them.
        newest = ["10", "11", "12", "13", "14"] if online == "redis" else ["10", "1", "2", "3", "4"]
        assert online_values(settings, bulk)["orders_7d"] == [*newest, "None"]
        assert len(stored(settings, bulk)) > 0
        registered = bulk.registry.get_feature_view("customer_activity", bulk.project, allow_cache=False)
        assert registered.materialization_intervals  # recorded, as Feast records it
    finally:
        # Feast's teardown also drops the (shared) SQL registry: remove the other project's keys first.
        native._get_provider().teardown_infra(
            native.project, native.list_feature_views(), native.list_entities()
        )
        bulk.teardown()
