"""Feast against the test's own warehouse: point-in-time training sets, windowed (idempotent)
materialisation into the PostgreSQL and the Redis online store, and pushes of real-time features."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from pulse.db import engine
from pulse.features import store as feast_store
from pulse.features.realtime import PUSH_SOURCE, RealtimeAggregator
from tests.conftest import TEST_REDIS_URL

D1 = datetime(2026, 5, 1, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)


def activity_features(settings) -> dict:
    """The batch view's feature names and types, from the feature repo itself."""
    (view,) = [o for o in feast_store.repo_objects(settings) if o.name == "customer_activity"]
    return {f.name: f.dtype for f in view.features}


def write_snapshots(settings, rows: list[dict]) -> None:
    """Create `marts.customer_features` (every feature column, as dbt would) and insert `rows`; features
    not given are derived from `orders_7d` so each row is recognisable."""
    from feast.types import Float64

    features = activity_features(settings)
    columns = ", ".join(
        f"{n} {'double precision' if t == Float64 else 'bigint'}" for n, t in features.items()
    )
    frame = pd.DataFrame(
        [{**{n: row.get("orders_7d", 0) for n in features}, **row} for row in rows],
        columns=["customer_id", "event_timestamp", *features],
    )
    with engine(settings).begin() as conn:
        conn.execute(sa.text("create schema if not exists marts"))
        conn.execute(
            sa.text(
                "create table if not exists marts.customer_features "
                f"(customer_id text not null, event_timestamp timestamptz not null, {columns})"
            )
        )
        frame.to_sql("customer_features", conn, schema="marts", if_exists="append", index=False)


def test_training_frame_is_point_in_time_and_keeps_the_label(settings):
    write_snapshots(
        settings,
        [
            {"customer_id": "a", "event_timestamp": D1, "orders_7d": 1},
            {"customer_id": "a", "event_timestamp": D2, "orders_7d": 2},
            {"customer_id": "a", "event_timestamp": D3, "orders_7d": 3},
            {"customer_id": "b", "event_timestamp": D2 + timedelta(hours=12), "orders_7d": 7},
        ],
    )
    feast_store.apply(settings)
    entities = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b"],
            "event_timestamp": [
                D1 + timedelta(hours=1),  # sees D1 only
                D2 + timedelta(hours=23),  # sees D2; D3 is in its future
                D3,  # a value written exactly at the row's time is known
                D2 + timedelta(hours=11),  # b's first value comes an hour later: nothing
                D3,  # b's value (ttl 2 days): seen
            ],
            "label": [0, 1, 0, 1, 0],
        }
    )
    frame = feast_store.training_frame(entities, "purchase_propensity_v1", settings)
    frame = frame.sort_values(["customer_id", "event_timestamp"]).reset_index(drop=True)
    assert list(frame["label"]) == [0, 1, 0, 1, 0]
    assert frame["orders_7d"].tolist()[:3] == [1, 2, 3]
    assert pd.isna(frame.loc[3, "orders_7d"])
    assert frame.loc[4, "orders_7d"] == 7
    assert len(frame.columns) > 50


@pytest.mark.parametrize("online", ["postgres", "redis"])
def test_windowed_materialisation_and_pushes_reach_the_online_store(settings, monkeypatch, online):
    if online == "redis":
        monkeypatch.setattr(settings, "redis_url", TEST_REDIS_URL)
    write_snapshots(
        settings,
        [
            {"customer_id": "a", "event_timestamp": D1, "orders_7d": 1},
            {"customer_id": "b", "event_timestamp": D1, "orders_7d": 5},
            {"customer_id": "a", "event_timestamp": D2, "orders_7d": 2},
        ],
    )
    store = feast_store.feature_store(settings)
    try:
        # The Airflow run for [D1, D2): a's D1 row (the D2 row is the next interval's), b's D1 row.
        feast_store.materialize_window(D1, D2, settings)
        online = feast_store.online_frame(["a", "b", "zz"], "purchase_propensity_v1", settings)
        assert online["orders_7d"].tolist()[:2] == [1, 5]
        assert pd.isna(online["orders_7d"].iloc[2])
        feast_store.materialize_window(D1, D2, settings)  # a re-run changes nothing
        again = feast_store.online_frame(["a", "b", "zz"], "purchase_propensity_v1", settings)
        pd.testing.assert_frame_equal(online, again)
        feast_store.materialize_window(D2, D3, settings)  # the next interval brings a's D2 row
        later = feast_store.online_frame(["a", "b"], "purchase_propensity_v1", settings)
        assert later["orders_7d"].tolist() == [2, 5]

        # Real-time: a push of the collector's aggregates, read with the on-demand features.
        now = datetime.now(UTC)
        aggregator = RealtimeAggregator()
        aggregator.add_all(
            [
                {
                    "user_id": "a",
                    "event_at": now - timedelta(minutes=2),
                    "event_name": "product_viewed",
                    "properties": '{"category": "shoes"}',
                },
                {
                    "user_id": "a",
                    "event_at": now - timedelta(minutes=1),
                    "event_name": "product_added",
                    "properties": '{"price": 12.5, "quantity": 2}',
                },
            ]
        )
        store.push(PUSH_SOURCE, aggregator.frame(["a"]))
        values = store.get_online_features(
            features=[
                "customer_realtime:cart_value",
                "customer_realtime:last_viewed_category",
                "customer_realtime_now:minutes_since_last_event",
                "customer_realtime_now:events_30m_now",
                "customer_activity:orders_7d",
            ],
            entity_rows=[{"customer_id": "a"}, {"customer_id": "b"}],
        ).to_dict()
        assert values["cart_value"] == [25.0, None]
        assert values["last_viewed_category"] == ["shoes", None]
        assert values["events_30m_now"] == [2, 0]
        assert 0.9 < values["minutes_since_last_event"][0] < 3
        assert values["orders_7d"] == [2, 5]  # pushes leave the batch view alone
    finally:
        store.teardown()
