"""The lift readout on a real warehouse: treatment versus holdout of a cohort whose window has passed."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from pulse.audiences import read_out_lift, record_history
from pulse.db import engine

COHORT = datetime(2026, 3, 1, tzinfo=UTC)


def test_lift_readout_compares_treatment_with_holdout(settings):
    with engine(settings).begin() as conn:
        conn.execute(sa.text("create schema if not exists marts"))
        conn.execute(
            sa.text(
                "create table marts.orders (order_id text, customer_id text, ordered_at timestamptz, revenue numeric)"
            )
        )
        conn.execute(
            sa.text(
                "insert into audiences.audience_definitions values "
                "('vip', 'test', 'true', 'revenue', 50, null, 7, now())"
            )
        )
        # 10 treatment customers of whom 6 order (revenue 10 each), 10 holdout of whom 2 order.
        members = [(f"t{i}", "treatment") for i in range(10)] + [(f"h{i}", "holdout") for i in range(10)]
        conn.execute(
            sa.text("insert into audiences.audience_membership_history values ('vip', :c, :g, :t, null)"),
            [{"c": c, "g": g, "t": COHORT} for c, g in members],
        )
        buyers = [f"t{i}" for i in range(6)] + ["h0", "h1"]
        conn.execute(
            sa.text("insert into marts.orders values (:o, :c, :t, 10)"),
            [{"o": f"o-{c}", "c": c, "t": COHORT + timedelta(days=2)} for c in buyers],
        )
        # An order after the 7-day window does not count; the data ends 10 days after the cohort.
        conn.execute(
            sa.text("insert into marts.orders values ('late', 't9', :t, 99)"),
            {"t": COHORT + timedelta(days=10)},
        )
    assert read_out_lift(settings) == 1
    with engine(settings).connect() as conn:
        row = conn.execute(sa.text("select * from audiences.audience_lift")).mappings().one()
    assert (row["treatment_customers"], row["holdout_customers"]) == (10, 10)
    assert row["treatment_conversion"] == pytest.approx(0.6) and row["holdout_conversion"] == pytest.approx(
        0.2
    )
    assert row["absolute_lift"] == pytest.approx(0.4) and row["relative_lift"] == pytest.approx(2.0)
    assert row["absolute_lift_ci_low"] < 0.4 < row["absolute_lift_ci_high"]
    assert row["revenue_lift"] == pytest.approx(6.0 - 2.0)
    # Reading out again replaces, never duplicates, and leaves an unchanged row exactly as it was.
    assert read_out_lift(settings) == 1
    with engine(settings).connect() as conn:
        again = conn.execute(sa.text("select * from audiences.audience_lift")).mappings().one()
    assert again == row


def test_history_records_entries_and_exits_at_the_scores_snapshot(settings):
    first, second = COHORT, COHORT + timedelta(days=1)
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text(
                'create table audiences.audience_members (audience_name text, customer_id text, "group" text, as_of timestamptz)'
            )
        )
        conn.execute(
            sa.text(
                "insert into audiences.audience_members values ('a', 'c1', 'treatment', :t), ('a', 'c2', 'holdout', :t)"
            ),
            {"t": first},
        )
        record_history(conn)
        conn.execute(sa.text("delete from audiences.audience_members"))
        conn.execute(
            sa.text(
                "insert into audiences.audience_members values ('a', 'c2', 'holdout', :t), ('a', 'c3', 'treatment', :t)"
            ),
            {"t": second},
        )
        record_history(conn)
        record_history(conn)  # idempotent
        rows = conn.execute(
            sa.text(
                "select customer_id, entered_at, exited_at from audiences.audience_membership_history order by 1"
            )
        ).all()
    assert rows == [("c1", first, second), ("c2", first, None), ("c3", second, None)]
