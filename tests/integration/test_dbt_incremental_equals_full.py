"""An incremental build after new events gives exactly the tables a full rebuild of the same raw data gives.

Real PostgreSQL, real dbt. A warehouse is built from a simulation; then a day of new events arrives
together with the awkward cases an incremental path must get right: late events dated days back
(an order and product views), anonymous browsing that a later sign-in claims, a device that a late
identify hands from one customer to another, an order resent with the same order id, and an alias of an
anonymous id. After a plain (incremental) `dbt build`, every mart and the stitched events are compared
row for row (a checksum over all rows, and on mismatch the differing keys) with a `--full-refresh`
build of the same raw data. Bookkeeping columns (`_updated_at`, `_replace_from`, `replaced_customer_id`)
are left out: they record how a row was written, not what it says.
"""

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from pulse import forget
from pulse.config import Settings
from pulse.events.simulator import simulate
from tests.conftest import BOOKKEEPING_COLUMNS, table_columns
from tests.integration.dbt_support import END, dbt_build, ingest_events, load_simulation

pytestmark = pytest.mark.e2e

# Quintiles relative to each snapshot day's buyers (see the forget test).
RFM_SCORES = {
    "marts.customer_features": frozenset({"rfm_recency_score", "rfm_frequency_score", "rfm_monetary_score"})
}

# Every mart the warehouse build writes, incremental or not, the stitched events they read and the
# incremental intermediate aggregates read by marts that are rebuilt on every run.
TABLES = {
    "marts.customers": ["customer_id"],
    "marts.sessions": ["session_id"],
    "marts.orders": ["order_id"],
    "marts.order_lines": ["order_line_id"],
    "marts.products": ["product_id"],
    "marts.product_categories": ["product_category"],
    "marts.customer_features": ["customer_id", "snapshot_date"],
    "marts.identity_graph": ["identity_link_id"],
    "intermediate.int_events_stitched_to_customers": ["event_id"],
    "intermediate.int_customer_activity_aggregated_to_customers": ["customer_id"],
    "intermediate.int_product_activity_aggregated_to_days": ["product_id", "activity_date"],
}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def table_rows(settings: Settings, table: str, exclude: frozenset[str] = frozenset()) -> dict[tuple, str]:
    """key -> the row's text (all columns but the bookkeeping ones and `exclude`), for every row of `table`."""
    with psycopg.connect(settings.database_url) as conn:
        columns = table_columns(conn, table, BOOKKEEPING_COLUMNS | exclude)
        assert columns, table
        key = TABLES[table]
        select = ", ".join(f'"{c}"' for c in key)
        row_text = "row(" + ", ".join(f'"{c}"' for c in columns) + ")::text"
        rows = conn.execute(f"select {select}, {row_text} from {table}").fetchall()
    result = {tuple(r[:-1]): r[-1] for r in rows}
    assert len(result) == len(rows), f"{table}: duplicate keys"
    return result


def snapshot(
    settings: Settings, exclude: dict[str, frozenset[str]] | None = None
) -> dict[str, dict[tuple, str]]:
    """Every table's rows; `exclude`: table -> columns left out of the comparison."""
    return {table: table_rows(settings, table, (exclude or {}).get(table, frozenset())) for table in TABLES}


def awkward_events(settings: Settings) -> list[dict]:
    """A day of new events plus late and identity-changing ones, built from what the warehouse holds."""
    with psycopg.connect(settings.database_url) as conn:
        buyers = [
            r[0]
            for r in conn.execute(
                "select customer_id from marts.customers where order_count > 0 order by customer_id limit 3"
            )
        ]
        device, device_owner = conn.execute(
            "select anonymous_id, customer_id from marts.identity_graph "
            "where is_current and episode_number = 1 order by anonymous_id limit 1"
        ).fetchone()
        resent_order = conn.execute(
            "select order_id, customer_id from marts.orders order by order_id limit 1"
        ).fetchone()
    day = datetime(END.year, END.month, END.day, tzinfo=UTC)
    events = []
    # New day: product views and an order by known customers.
    for k, customer in enumerate(buyers):
        events.append(
            {
                "type": "track",
                "event": "Product Viewed",
                "messageId": f"new-view-{k}",
                "userId": customer,
                "timestamp": iso(day + timedelta(hours=9, minutes=k)),
                "properties": {"product_id": f"p-new-{k}", "category": "toys", "price": 12.5},
            }
        )
    events.append(
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": "new-order-1",
            "userId": buyers[0],
            "timestamp": iso(day + timedelta(hours=10)),
            "properties": {
                "order_id": "new-o-1",
                "revenue": 40.0,
                "currency": "USD",
                "products": [{"product_id": "p-new-0", "category": "toys", "price": 20.0, "quantity": 2}],
            },
        }
    )
    # Late: an order 4 days back and a product view 10 days back.
    events.append(
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": "late-order-1",
            "userId": buyers[1],
            "timestamp": iso(day - timedelta(days=4, hours=-13)),
            "properties": {"order_id": "late-o-1", "revenue": 310.0, "currency": "USD", "products": []},
        }
    )
    events.append(
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": "late-view-1",
            "userId": buyers[2],
            "timestamp": iso(day - timedelta(days=10, hours=-8)),
            "properties": {"product_id": "p0003", "category": "books", "price": 7.0},
        }
    )
    # The same order resent, earlier and by the owner of another device: the first one wins.
    events.append(
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": "resent-order-1",
            "userId": device_owner,
            "timestamp": iso(day - timedelta(days=1000)),  # long before, within the accepted age
            "properties": {"order_id": resent_order[0], "revenue": 1.0, "currency": "USD", "products": []},
        }
    )
    # Anonymous browsing on a new device, claimed by a sign-in on the new day.
    for k in range(3):
        events.append(
            {
                "type": "page",
                "messageId": f"anon-page-{k}",
                "anonymousId": "new-device-1",
                "timestamp": iso(day - timedelta(days=6, hours=-k)),
                "properties": {"path": f"/p/{k}"},
                "context": {"campaign": {"source": "newsletter", "medium": "email"}},
            }
        )
    events.append(
        {
            "type": "identify",
            "messageId": "new-identify-1",
            "anonymousId": "new-device-1",
            "userId": buyers[2],
            "timestamp": iso(day + timedelta(hours=11)),
            "traits": {},
        }
    )
    # A late identify hands an existing device to another customer before its owner's first sign-in.
    events.append(
        {
            "type": "identify",
            "messageId": "late-handover-1",
            "anonymousId": device,
            "userId": buyers[0] if buyers[0] != device_owner else buyers[1],
            "timestamp": iso(day - timedelta(days=999)),
            "traits": {},
        }
    )
    # An alias of an anonymous id (the common case).
    events.append(
        {
            "type": "alias",
            "messageId": "new-alias-1",
            "previousId": "new-device-2",
            "userId": buyers[1],
            "timestamp": iso(day + timedelta(hours=12)),
        }
    )
    return events


def mismatches(incremental: dict, rebuilt: dict) -> dict[str, list]:
    found = {}
    for table in TABLES:
        a, b = incremental[table], rebuilt[table]
        differing = sorted(
            {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}, key=lambda k: tuple(map(str, k))
        )
        if differing:
            found[table] = [(k, a.get(k), b.get(k)) for k in differing[:3]] + [f"{len(differing)} rows"]
    return found


def test_incremental_build_equals_full_rebuild(settings, tmp_path):
    load_simulation(settings, tmp_path, customers=150, days=30, seed=8)
    dbt_build(settings, full_refresh=True)
    ingest_events(settings, tmp_path, "awkward", awkward_events(settings))

    dbt_build(settings)  # incremental, with its data tests
    incremental = snapshot(settings)
    assert "new-o-1" in {k[0] for k in incremental["marts.orders"]}
    assert incremental["marts.customer_features"], "no snapshots"

    dbt_build(settings, full_refresh=True)
    rebuilt = snapshot(settings)
    assert mismatches(incremental, rebuilt) == {}


def test_alias_merging_a_known_customer_equals_full_rebuild(settings, tmp_path):
    """previousId = an old user id: that customer disappears into the new one everywhere."""
    load_simulation(settings, tmp_path, customers=60, days=20, seed=9)
    dbt_build(settings, full_refresh=True)
    with psycopg.connect(settings.database_url) as conn:
        old, new = [
            r[0]
            for r in conn.execute(
                "select customer_id from marts.customers where order_count > 0 order by customer_id limit 2"
            )
        ]
    day = datetime(END.year, END.month, END.day, tzinfo=UTC)
    ingest_events(
        settings,
        tmp_path,
        "merge",
        [{"type": "alias", "messageId": "merge-1", "previousId": old, "userId": new, "timestamp": iso(day)}],
    )
    dbt_build(settings)
    incremental = snapshot(settings)
    customers = {k[0] for k in incremental["marts.customers"]}
    assert old not in customers and new in customers
    assert old not in {k[0] for k in incremental["marts.customer_features"]}

    dbt_build(settings, full_refresh=True)
    assert mismatches(incremental, snapshot(settings)) == {}


def test_forgetting_a_customer_then_building_equals_full_rebuild(settings, tmp_path):
    """`pulse forget` deletes a buyer's events between two builds: the next (incremental) build gives
    what a full rebuild of the remaining events gives, product counts included. Except, by design, the
    RFM quintiles of the other customers' past snapshots: they rank each day's buyers as the build that
    wrote them saw them, and forgetting one does not re-rank history (a full refresh does).
    Another customer had resent one of the buyer's orders: once the buyer is gone, the order is theirs."""
    load_simulation(settings, tmp_path, customers=60, days=20, seed=10)
    dbt_build(settings, full_refresh=True)
    with psycopg.connect(settings.database_url) as conn:
        buyer, order_id, ordered_at = conn.execute(
            "select c.customer_id, o.order_id, o.ordered_at from marts.customers c "
            "join marts.orders o on o.customer_id = c.customer_id "
            "where c.order_count > 0 and c.product_views > 0 order by c.customer_id, o.order_id limit 1"
        ).fetchone()
        (other,) = conn.execute(
            "select customer_id from marts.customers where customer_id <> %s order by customer_id limit 1",
            [buyer],
        ).fetchone()
    resend = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "resent-by-other-1",
        "userId": other,
        "timestamp": iso(ordered_at + timedelta(hours=1)),
        "properties": {"order_id": order_id, "revenue": 5.0, "currency": "USD", "products": []},
    }
    ingest_events(settings, tmp_path, "resend", [resend])
    dbt_build(settings)
    with psycopg.connect(settings.database_url) as conn:
        views_before = conn.execute("select sum(views) from marts.products").fetchone()[0]
        owner = conn.execute(
            "select customer_id from marts.orders where order_id = %s", [order_id]
        ).fetchone()
    assert owner == (buyer,)
    forget.forget_warehouse(forget.resolve(customer_id=buyer, settings=settings), settings)

    dbt_build(settings)
    incremental = snapshot(settings, exclude=RFM_SCORES)
    assert buyer not in {k[0] for k in incremental["marts.customers"]}
    assert incremental["marts.orders"][(order_id,)].startswith(f"({order_id},resent-by-other-1,{other},")
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("select sum(views) from marts.products").fetchone()[0] < views_before

    dbt_build(settings, full_refresh=True)
    assert mismatches(incremental, snapshot(settings, exclude=RFM_SCORES)) == {}


def test_events_deleted_from_raw_make_the_next_build_rebuild(settings, tmp_path):
    """A retention job deletes a day of old events straight from raw.events: the deletion is logged
    (raw.events_deletions), the next build empties and rebuilds its incremental models, equals a full
    rebuild, and consumes the log."""
    load_simulation(settings, tmp_path, customers=40, days=15, seed=11)
    dbt_build(settings, full_refresh=True)
    with psycopg.connect(settings.database_url) as conn:
        deleted = conn.execute(
            "delete from raw.events where event_at < (select min(event_at) + interval '1 day' from raw.events)"
        ).rowcount
        assert deleted > 0
        assert conn.execute("select sum(deleted) from raw.events_deletions").fetchone()[0] == deleted

    dbt_build(settings)
    incremental = snapshot(settings)
    with psycopg.connect(settings.database_url) as conn:
        raw, stitched, logged = conn.execute(
            "select (select count(*) from raw.events), "
            "(select count(*) from intermediate.int_events_stitched_to_customers), "
            "(select count(*) from raw.events_deletions)"
        ).fetchone()
    assert (raw, logged) == (stitched, 0)

    dbt_build(settings, full_refresh=True)
    assert mismatches(incremental, snapshot(settings)) == {}


def test_builds_batched_by_day_equal_full_rebuild(settings, tmp_path):
    """The same days' events loaded and built in other batches (one build per day, then two days in one
    build) end in the tables one full rebuild gives: what an Airflow backfill and day-by-day runs must
    agree on (tests/dags/test_backfill.py checks that through the scheduler)."""
    sim = simulate(tmp_path / "sim", customers=80, days=5, seed=11, end=END)
    by_day: dict[str, list[dict]] = {}
    for line in sim.events_path.read_text().splitlines():
        event = json.loads(line)
        by_day.setdefault(event["timestamp"][:10], []).append(event)
    days = sorted(by_day)
    for n, batch in enumerate([days[:1], days[1:2], days[2:4], days[4:]]):
        ingest_events(settings, tmp_path, f"batch-{n}", [e for day in batch for e in by_day[day]])
        dbt_build(settings)
    batched = snapshot(settings)
    assert batched["marts.sessions"], "no sessions"

    dbt_build(settings, full_refresh=True)
    assert mismatches(batched, snapshot(settings)) == {}
