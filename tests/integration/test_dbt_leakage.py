"""No leakage: features recomputed in Python from raw events strictly before each snapshot equal the mart.

The Python side is an independent implementation of the documented rules (identity episodes from
identify / alias / sign-in events, an anonymous event known from its own time inside an episode or from
the device's first link before it, 30-minute sessions, windows of whole UTC days before the snapshot,
RFM quintiles with ties sharing a score). It reads only `raw.events` rows with `event_at < T` and
`identified_at < T`; any use of later events or later links by the mart makes this test fail.
"""

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
import pytest

from pulse.config import Settings
from tests.integration.dbt_support import dbt_build, ingest_events, load_simulation

pytestmark = pytest.mark.e2e


def read_sql(settings: Settings, query: str, params: dict | None = None) -> pd.DataFrame:
    with psycopg.connect(settings.database_url) as conn:
        cursor = conn.execute(query, params or {})
        columns = [c.name for c in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=columns)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


WINDOWS = (1, 7, 30, 90)
CATEGORIES = ("apparel", "shoes", "beauty", "home", "electronics", "sports", "books", "toys")
EVENT_METRICS = {
    "page_views": lambda e: e.event_type == "page",
    "product_views": lambda e: e.event_name == "product_viewed",
    "cart_adds": lambda e: e.event_name == "product_added",
    "cart_removes": lambda e: e.event_name == "product_removed",
    "checkouts": lambda e: e.event_name == "checkout_started",
    "email_opens": lambda e: e.event_name == "email_opened",
    "email_clicks": lambda e: e.event_name == "email_clicked",
}


def stitch(events: pd.DataFrame) -> pd.DataFrame:
    """customer_id and identified_at for every event (point-in-time identity episodes)."""
    is_link = events.event_type.isin(["identify", "alias"]) | events.event_name.isin(
        ["signed_in", "signed_up"]
    )
    links = events[is_link & events.anonymous_id.notna() & events.user_id.notna()]
    links = links[["anonymous_id", "user_id", "event_at", "event_id"]].rename(
        columns={"anonymous_id": "device"}
    )
    episodes: dict[str, list[tuple]] = {}
    for device, group in links.sort_values(["event_at", "event_id"]).groupby("device", sort=False):
        current = None
        for row in group.itertuples():
            if row.user_id != current:
                episodes.setdefault(device, []).append((row.event_at, row.user_id))
                current = row.user_id
    customers, known = [], []
    for row in events.itertuples():
        if row.user_id is not None:
            customers.append(row.user_id)
            known.append(row.event_at)
            continue
        device_episodes = episodes.get(row.anonymous_id, [])
        before = [e for e in device_episodes if e[0] <= row.event_at]
        if before:
            customers.append(before[-1][1])
            known.append(row.event_at)
        elif device_episodes:
            customers.append(device_episodes[0][1])
            known.append(device_episodes[0][0])
        else:
            customers.append(None)
            known.append(pd.NaT)
    return events.assign(customer_id=customers, identified_at=pd.to_datetime(known, utc=True))


def sessionise(events: pd.DataFrame) -> pd.DataFrame:
    site = events[~events.event_name.str.startswith("email_")].copy()
    site["visitor"] = site.anonymous_id.fillna("user:" + site.user_id.fillna(""))
    site = site.sort_values(["visitor", "event_at", "event_id"])
    gap = site.groupby("visitor").event_at.diff()
    site["session"] = (gap.isna() | (gap > pd.Timedelta(minutes=30))).cumsum()
    rows = []
    for _, s in site.groupby("session"):
        identified = s[s.customer_id.notna()].sort_values(["identified_at", "event_at", "event_id"])
        if identified.empty:
            continue
        orders = s[s.event_name == "order_completed"].order_id.nunique()
        rows.append(
            {
                "customer_id": identified.customer_id.iloc[0],
                "activity_date": s.event_at.min().date(),
                "known_date": identified.identified_at.min().date(),
                "abandoned": int((s.event_name == "product_added").any() and orders == 0),
            }
        )
    return pd.DataFrame(rows)


def expected_features(events: pd.DataFrame, sessions: pd.DataFrame, snapshot) -> pd.DataFrame:
    """Every customer's features at midnight `snapshot` from events known strictly before it."""
    at = pd.Timestamp(snapshot).tz_localize("UTC")
    e = events[(events.event_at < at) & (events.identified_at < at) & events.customer_id.notna()]
    s = sessions[(sessions.activity_date < snapshot) & (sessions.known_date < snapshot)]
    rows = []
    for customer, ce in e.groupby("customer_id"):
        days = ce.event_at.dt.date
        row = {"customer_id": customer, "tenure_days": (snapshot - days.min()).days}
        row["days_since_last_event"] = (snapshot - days.max()).days
        orders = ce[ce.event_name == "order_completed"]
        order_cells = orders.assign(day=orders.event_at.dt.date, known=orders.identified_at.dt.date)
        distinct_orders = order_cells.drop_duplicates(["day", "known", "order_id"])
        cs = s[s.customer_id == customer]
        for w in WINDOWS:
            start = snapshot - timedelta(days=w)
            in_window = (days >= start).to_numpy()
            for name, test in EVENT_METRICS.items():
                row[f"{name}_{w}d"] = int((test(ce) & in_window).sum())
            row[f"orders_{w}d"] = int((distinct_orders.day >= start).sum())
            row[f"revenue_{w}d"] = float(orders[(orders.event_at.dt.date >= start)].revenue.sum())
            row[f"sessions_{w}d"] = int((cs.activity_date >= start).sum())
            row[f"abandoned_carts_{w}d"] = int(cs[cs.activity_date >= start].abandoned.sum())
        row["events_7d"] = int((days >= snapshot - timedelta(days=7)).sum())
        row["active_days_7d"] = days[days >= snapshot - timedelta(days=7)].nunique()
        row["active_days_30d"] = days[days >= snapshot - timedelta(days=30)].nunique()
        row["active_days_total"] = days.nunique()
        row["orders_total"] = len(distinct_orders)
        row["revenue_total"] = float(orders.revenue.sum())
        row["is_buyer"] = int(len(distinct_orders) > 0)
        last_order = distinct_orders.day.max() if len(distinct_orders) else None
        row["last_order_on"] = last_order
        row["days_since_last_order"] = (snapshot - last_order).days if last_order else row["tenure_days"] + 1
        views = ce[(ce.event_name == "product_viewed") & (days >= snapshot - timedelta(days=90)).to_numpy()]
        counts = views.category.value_counts()
        per_category = [int(counts.get(c, 0)) for c in CATEGORIES]
        for c, n in zip(CATEGORIES, per_category, strict=True):
            row[f"product_views_90d_{c}"] = n
        total = sum(per_category)
        row["top_category_90d"] = CATEGORIES[int(np.argmax(per_category))] if total else None
        row["top_category_share_90d"] = max(per_category) / total if total else None
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("customer_id")
    recency = frame.last_order_on.map(lambda d: d.toordinal() if d else 0)
    for column, values in (
        ("rfm_recency_score", recency),
        ("rfm_frequency_score", frame.orders_total),
        ("rfm_monetary_score", frame.revenue_total),
    ):
        rank = values.rank(method="min") - 1
        percent = rank / (len(values) - 1) if len(values) > 1 else rank * 0
        frame[column] = np.minimum(5, 1 + np.floor(5 * percent + 1e-9)).astype(int)
    return frame.drop(columns=["last_order_on"])


def test_features_use_only_what_was_known_before_each_snapshot(settings, tmp_path):
    sim = load_simulation(settings, tmp_path, customers=100, days=30, seed=33)
    # Boundary cases the simulator rarely makes: events exactly at a snapshot's midnight (must not count
    # in it), and browsing claimed by a sign-in days later (must count only after the sign-in).
    boundary = sim.end - timedelta(days=6)
    extra = [
        {
            "type": "identify",
            "messageId": "midnight-identify",
            "userId": "c-midnight",
            "timestamp": iso(boundary - timedelta(days=3)),
        },
        {
            "type": "track",
            "event": "Order Completed",
            "messageId": "at-midnight-order",
            "userId": "c-midnight",
            "timestamp": iso(boundary),
            "properties": {"order_id": "midnight-1", "revenue": 50.0},
        },
        *(
            {
                "type": "page",
                "messageId": f"early-anon-{k}",
                "anonymousId": "leak-device",
                "timestamp": iso(boundary - timedelta(days=4, hours=-k)),
                "properties": {"path": "/"},
            }
            for k in range(3)
        ),
        {
            "type": "track",
            "event": "Signed In",
            "messageId": "leak-sign-in",
            "anonymousId": "leak-device",
            "userId": "c-leak",
            "timestamp": iso(boundary + timedelta(hours=8)),
        },
    ]
    ingest_events(settings, tmp_path, "boundary", extra)
    dbt_build(settings)

    raw = read_sql(
        settings,
        "select event_id, event_type, event_name, user_id, anonymous_id, event_at, "
        "properties ->> 'order_id' as order_id, (properties ->> 'revenue')::float as revenue, "
        "lower(properties ->> 'category') as category from raw.events",
    )
    raw["event_at"] = pd.to_datetime(raw.event_at, utc=True)
    raw["revenue"] = raw.revenue.fillna(0.0)
    raw["order_id"] = raw.order_id.fillna(raw.event_id)  # the marts count an order without id by its event
    events = stitch(raw)
    sessions = sessionise(events)

    mart = read_sql(settings, "select * from marts.customer_features")
    snapshots = sorted(mart.snapshot_date.unique())
    sampled = [snapshots[2], boundary.date(), boundary.date() + timedelta(days=1), snapshots[-1]]
    checked = 0
    for snapshot in sampled:
        expected = expected_features(events, sessions, snapshot)
        actual = mart[mart.snapshot_date == snapshot].set_index("customer_id")
        assert set(actual.index) == set(expected.index), snapshot
        actual = actual.loc[expected.index, expected.columns]
        ts = mart[mart.snapshot_date == snapshot].event_timestamp.iloc[0]
        assert pd.Timestamp(ts) == pd.Timestamp(snapshot).tz_localize("UTC")
        for column in expected.columns:
            left, right = actual[column], expected[column]
            if left.dtype.kind in "fc" or right.dtype.kind in "fc":
                ok = np.isclose(left.astype(float), right.astype(float), equal_nan=True)
            else:
                ok = (left == right) | (left.isna() & right.isna())
            assert ok.all(), (
                snapshot,
                column,
                actual.loc[~ok, column].head(),
                expected.loc[~ok, column].head(),
            )
        checked += len(expected)
    assert checked > 150

    # The boundary cases really were exercised.
    features = mart.set_index(["customer_id", "snapshot_date"])
    assert features.loc[("c-midnight", boundary.date()), "orders_total"] == 0
    assert features.loc[("c-midnight", boundary.date() + timedelta(days=1)), "orders_total"] == 1
    leak = mart[mart.customer_id == "c-leak"]
    assert leak.snapshot_date.min() == boundary.date() + timedelta(days=1)
    assert (leak.page_views_7d.iloc[:1] == 3).all()
