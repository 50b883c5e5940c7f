"""Late-arriving events: an incremental run corrects exactly the snapshots they belong to.

Real PostgreSQL, real dbt. A warehouse is built, then events dated before the latest snapshot arrive;
the next (incremental) run must change the affected snapshot rows, and no other row, and end up equal to
a full rebuild from scratch.
"""

from datetime import datetime, timedelta

import pandas as pd
import psycopg
import pytest

from pulse.config import Settings
from tests.integration.dbt_support import dbt_build, ingest_events, load_simulation

pytestmark = pytest.mark.e2e


def dbt_run(settings: Settings, full_refresh: bool = False) -> None:
    """Models only (the first build of each test also runs every data and unit test)."""
    dbt_build(settings, full_refresh, command="run")


def read_sql(settings: Settings, query: str, params: dict | None = None) -> pd.DataFrame:
    with psycopg.connect(settings.database_url) as conn:
        cursor = conn.execute(query, params or {})
        columns = [c.name for c in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=columns)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


FEATURES = "select * from marts.customer_features order by customer_id, snapshot_date"
KEY = ["customer_id", "snapshot_date"]


def features(settings) -> pd.DataFrame:
    return read_sql(settings, FEATURES).drop(columns=["_updated_at"]).set_index(KEY)


def changed_rows(before: pd.DataFrame, after: pd.DataFrame) -> set[tuple]:
    assert before.index.equals(after.index)
    differs = ~((before == after) | (before.isna() & after.isna())).all(axis=1)
    return set(before.index[differs])


def test_late_events_correct_their_snapshots_and_no_other(settings, tmp_path):
    load_simulation(settings, tmp_path)
    dbt_build(settings)
    before = features(settings)
    latest = before.index.get_level_values("snapshot_date").max()
    latest_at = pd.Timestamp(latest).tz_localize("UTC").to_pydatetime()

    # A customer seen at the latest snapshot, with a row the day before (so the late view is not their
    # first activity), and one with no orders yet (so RFM stays as it was for everyone else).
    at_latest = before.xs(latest, level="snapshot_date")
    viewer = at_latest[(at_latest.tenure_days > 3) & (at_latest.orders_total == 0)].index[0]

    # 1) A product view from 3 hours before the latest snapshot arrives after it was built.
    ingest_events(
        settings,
        tmp_path,
        "late_view",
        [
            {
                "type": "track",
                "event": "Product Viewed",
                "messageId": "late-view-1",
                "userId": viewer,
                "timestamp": iso(latest_at - timedelta(hours=3)),
                "properties": {"product_id": "p0001", "category": "shoes", "price": 10.0},
            }
        ],
    )
    dbt_run(settings)
    after = features(settings)
    assert changed_rows(before, after) == {(viewer, latest)}
    row_before, row_after = before.loc[(viewer, latest)], after.loc[(viewer, latest)]
    for column in ("product_views_1d", "product_views_7d", "product_views_30d", "product_views_90d"):
        assert row_after[column] == row_before[column] + 1, column
    assert row_after["product_views_90d_shoes"] == row_before["product_views_90d_shoes"] + 1
    assert row_after["events_7d"] == row_before["events_7d"] + 1
    assert row_after["days_since_last_event"] == 1

    # 2) An order from 3 days before the latest snapshot: that customer's last 3 snapshots change; other
    # customers' rows change only where the RFM quintiles of those days move.
    buyer = at_latest[at_latest.tenure_days > 10].index[-1]
    order_at = latest_at - timedelta(days=3) + timedelta(hours=12)
    ingest_events(
        settings,
        tmp_path,
        "late_order",
        [
            {
                "type": "track",
                "event": "Order Completed",
                "messageId": "late-order-1",
                "userId": buyer,
                "timestamp": iso(order_at),
                "properties": {"order_id": "late-o-1", "revenue": 1000.0, "currency": "USD", "products": []},
            }
        ],
    )
    dbt_run(settings)
    incremental = features(settings)
    changed = changed_rows(after, incremental)
    affected_days = {latest - timedelta(days=k) for k in range(3)}
    assert {(buyer, day) for day in affected_days} <= changed
    assert {day for _, day in changed} == affected_days
    others = {key for key in changed if key[0] != buyer}
    rfm = ["rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score"]
    for key in others:
        moved = [c for c in incremental.columns if not _same(after.loc[key, c], incremental.loc[key, c])]
        assert set(moved) <= set(rfm), (key, moved)
    assert incremental.loc[(buyer, latest), "orders_total"] == after.loc[(buyer, latest), "orders_total"] + 1
    assert incremental.loc[(buyer, latest), "days_since_last_order"] == 3

    # The incremental result is exactly what a full rebuild gives.
    dbt_run(settings, full_refresh=True)
    rebuilt = features(settings)
    mismatched = changed_rows(rebuilt, incremental[rebuilt.columns])
    detail = {
        key: {
            c: (incremental.loc[key, c], rebuilt.loc[key, c])
            for c in rebuilt.columns
            if not _same(incremental.loc[key, c], rebuilt.loc[key, c])
        }
        for key in sorted(mismatched)[:3]
    }
    assert mismatched == set(), detail


def test_late_sign_in_attributes_earlier_browsing_from_its_own_time(settings, tmp_path):
    """Anonymous browsing claimed by a later sign-in counts from the sign-in on, never before it."""
    load_simulation(settings, tmp_path, customers=40, days=20, seed=4)
    dbt_build(settings)
    before = features(settings)
    latest = before.index.get_level_values("snapshot_date").max()
    latest_at = pd.Timestamp(latest).tz_localize("UTC").to_pydatetime()
    device = "late-device-1"
    browse = [
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": f"anon-view-{k}",
            "anonymousId": device,
            "timestamp": iso(latest_at - timedelta(days=5, hours=-k)),
            "properties": {"product_id": "p0002", "category": "books", "price": 5.0},
        }
        for k in range(3)
    ]
    ingest_events(settings, tmp_path, "anon", browse)
    dbt_run(settings)
    # Nobody is known on that device: no snapshot changes.
    assert changed_rows(before, features(settings)) == set()

    sign_in_at = latest_at - timedelta(days=2, hours=-10)
    ingest_events(
        settings,
        tmp_path,
        "sign_in",
        [
            {
                "type": "identify",
                "messageId": "late-identify-1",
                "anonymousId": device,
                "userId": "c-new-customer",
                "timestamp": iso(sign_in_at),
                "traits": {},
            }
        ],
    )
    dbt_run(settings)
    after = read_sql(settings, FEATURES).set_index(KEY)
    mine = after.xs("c-new-customer", level="customer_id")
    # First known at the sign-in: snapshots start the day after it, with the earlier views included.
    assert list(mine.index) == [latest - timedelta(days=1), latest]
    assert (mine.product_views_7d == 3).all()
    assert (mine.tenure_days == [4, 5]).all()
    stitched = read_sql(
        settings,
        "select customer_id, identified_at from intermediate.int_events_stitched_to_customers "
        "where anonymous_id = %(d)s",
        {"d": device},
    )
    assert (stitched.customer_id == "c-new-customer").all()
    assert (stitched.identified_at == pd.Timestamp(sign_in_at)).all()


def _same(a, b) -> bool:
    return (pd.isna(a) and pd.isna(b)) or a == b
