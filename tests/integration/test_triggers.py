"""Real-time triggers against a real PostgreSQL and a local webhook server (activation's contract fake):
fire, cancel, frequency cap, holdout, consent, late cancelling events within and beyond the grace period,
pause, the worker's read of committed events. The engine and dispatcher run in-process with explicit clocks, so no
test sleeps through a wait; the collector kill -9 test is in test_triggers_collector.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml

from pulse.db import engine, warehouse_url
from pulse.triggers.definitions import holdout_bucket
from pulse.triggers.dispatch import Dispatcher
from pulse.triggers.engine import TriggerEngine
from pulse.triggers.state import set_status, sync_triggers
from pulse.triggers.worker import TriggerWorker
from tests.activation_fakes import FakeVendor

URL_ENV = "PULSE_TEST_TRIGGER_URL"
T0 = datetime.now(UTC).replace(microsecond=0)


def trigger(**overrides) -> dict:
    document = {
        "name": "abandoned",
        "description": "checkout without an order",
        "entry": {"event": "checkout_started", "where": ["value > 50"]},
        "wait": {"duration": "30m", "cancel_on": ["order_completed"], "grace": "5s"},
        "holdout_pct": 0,
        "destination": {"type": "webhook", "url_env": URL_ENV},
        "payload": {"customer_id": "customer_id", "cart_value": "properties.value"},
    }
    document.update(overrides)
    return document


def event(name: str, customer: str, at: datetime, consent: dict | None = None, **properties) -> dict:
    context = {"consent": {"categoryPreferences": consent}} if consent is not None else {}
    return {
        "event_id": f"e-{uuid.uuid4().hex[:12]}",
        "event_type": "track",
        "event_name": name,
        "user_id": customer,
        "event_at": at,
        "received_at": at,
        "properties": properties,
        "context": context,
    }


@pytest.fixture
def vendor(monkeypatch):
    server = FakeVendor("webhook").start()
    monkeypatch.setenv(URL_ENV, server.url + "/hook")
    yield server
    server.stop()


@pytest.fixture
def setup(settings, tmp_path: Path, vendor):
    """Sync the given trigger documents; returns (engine, dispatcher)."""
    made = []

    def make(*documents: dict, consent_default: str = "deny"):
        folder = tmp_path / f"triggers-{len(made)}"
        folder.mkdir()
        for d in documents:
            (folder / f"{d['name']}.yml").write_text(yaml.safe_dump(d))
        sync_triggers(settings, folder)
        eng = TriggerEngine(warehouse_url(settings), consent_default=consent_default)
        dispatcher = Dispatcher(engine(settings))
        made.append((eng, dispatcher))
        return eng, dispatcher

    yield make
    for eng, dispatcher in made:
        dispatcher.close()
        eng.close()


def timers(settings) -> dict[str, str]:
    with psycopg.connect(warehouse_url(settings)) as conn:
        return dict(conn.execute("select customer_id, status from activation.trigger_timers").fetchall())


def actions(settings) -> list[tuple[str, str]]:
    with psycopg.connect(warehouse_url(settings)) as conn:
        return conn.execute(
            "select customer_id, action from activation.trigger_events order by trigger_event_id"
        ).fetchall()


def sent(vendor: FakeVendor) -> list[dict]:
    return [op for r in vendor.requests for op in r.json["operations"]]


def test_fires_after_the_wait_and_records_the_outcome(settings, setup, vendor):
    eng, dispatcher = setup(trigger())
    eng.process(
        [event("checkout_started", "c1", T0, value=80), event("checkout_started", "c2", T0, value=20)]
    )
    assert timers(settings) == {"c1": "pending"}  # c2's cart is under the filter: no entry at all

    assert dispatcher.run_once(now=T0 + timedelta(minutes=30)) == 0  # not due before wait + grace
    assert dispatcher.run_once(now=T0 + timedelta(minutes=30, seconds=5)) == 1
    ops = sent(vendor)
    assert [(o["customer_id"], o["cart_value"], o["event"]) for o in ops] == [("c1", 80, "Trigger Fired")]
    assert ops[0]["idempotency_key"].startswith("abandoned:c1:")
    assert timers(settings) == {"c1": "fired"}
    assert actions(settings) == [("c1", "entered"), ("c1", "fired")]
    with psycopg.connect(warehouse_url(settings)) as conn:
        run = conn.execute("select kind, sync_name, sent, accepted from activation.sync_runs").fetchall()
        records = conn.execute(
            "select customer_id, status, http_status from activation.sync_records"
        ).fetchall()
    assert run == [("trigger", "abandoned", 1, 1)]
    assert records == [("c1", "accepted", 200)]
    assert dispatcher.run_once(now=T0 + timedelta(hours=2)) == 0  # fired once, never again


def test_cancelling_event_inside_the_wait_cancels(settings, setup, vendor):
    eng, dispatcher = setup(trigger())
    eng.process(
        [
            event("order_completed", "c3", T0 - timedelta(minutes=1)),  # before the entry: not a cancel
            event("checkout_started", "c1", T0, value=80),
            event("checkout_started", "c2", T0, value=80),
            event("checkout_started", "c3", T0, value=80),
        ]
    )
    eng.process([event("order_completed", "c1", T0 + timedelta(minutes=10))])
    eng.process([event("order_completed", "c2", T0 + timedelta(minutes=31))])  # after the wait: no cancel
    # An order processed before its checkout (out of order) still cancels it.
    late_entry = event("checkout_started", "c4", T0, value=90)
    eng.process([event("order_completed", "c4", T0 + timedelta(minutes=2))])
    eng.process([late_entry])
    assert timers(settings) == {"c1": "cancelled", "c2": "pending", "c3": "pending", "c4": "cancelled"}

    dispatcher.run_once(now=T0 + timedelta(minutes=31))
    assert sorted(o["customer_id"] for o in sent(vendor)) == ["c2", "c3"]
    assert ("c1", "cancelled") in actions(settings) and ("c4", "cancelled") in actions(settings)


def test_late_cancelling_event_within_and_beyond_the_grace_period(settings, setup, vendor):
    eng, dispatcher = setup(trigger())
    eng.process(
        [event("checkout_started", "c1", T0, value=80), event("checkout_started", "c2", T0, value=80)]
    )
    wait_end = T0 + timedelta(minutes=30)
    # Both orders happened inside the wait. c1's arrives 3 s after it ended (inside the 5 s grace): the
    # timer is not due yet, so the order cancels it.
    assert dispatcher.run_once(now=wait_end + timedelta(seconds=3)) == 0
    eng.process([event("order_completed", "c1", wait_end - timedelta(seconds=20))])
    # c2's arrives after the grace period: the timer has fired; the late order is logged, not acted on.
    assert dispatcher.run_once(now=wait_end + timedelta(seconds=6)) == 1
    eng.process([event("order_completed", "c2", wait_end - timedelta(seconds=1))])
    assert timers(settings) == {"c1": "cancelled", "c2": "fired"}
    assert [o["customer_id"] for o in sent(vendor)] == ["c2"]
    assert ("c2", "late_cancel_ignored") in actions(settings)
    assert ("c1", "late_cancel_ignored") not in actions(settings)


def test_frequency_cap(settings, setup, vendor):
    eng, dispatcher = setup(trigger(frequency_cap={"max": 1, "per": "24h"}))
    eng.process([event("checkout_started", "c1", T0, value=80)])
    eng.process([event("checkout_started", "c1", T0 + timedelta(minutes=5), value=90)])
    eng.process(
        [
            event("checkout_started", "c2", T0, value=80),  # two in one batch: the second is capped
            event("checkout_started", "c2", T0 + timedelta(minutes=1), value=80),
        ]
    )
    eng.process([event("checkout_started", "c1", T0 + timedelta(hours=25), value=90)])  # a new day
    assert sorted(actions(settings)) == sorted(
        [
            ("c1", "entered"),
            ("c1", "suppressed_cap"),
            ("c2", "entered"),
            ("c2", "suppressed_cap"),
            ("c1", "entered"),
        ]
    )
    dispatcher.run_once(now=T0 + timedelta(hours=26))
    assert sorted(o["customer_id"] for o in sent(vendor)) == ["c1", "c1", "c2"]


def test_holdout_is_deterministic_recorded_and_never_sent(settings, setup, vendor):
    eng, dispatcher = setup(trigger(holdout_pct=20))
    customers = [f"c{i:03d}" for i in range(200)]
    eng.process([event("checkout_started", c, T0, value=80) for c in customers])
    dispatcher.run_once(now=T0 + timedelta(hours=1))
    with psycopg.connect(warehouse_url(settings)) as conn:
        groups = dict(conn.execute('select customer_id, "group" from activation.trigger_timers').fetchall())
        status = dict(conn.execute("select customer_id, status from activation.trigger_timers").fetchall())
        # The same bucket as dbt's holdout_bucket macro computes for (trigger, customer).
        sql_bucket = dict(
            conn.execute(
                "select customer_id, ((('x' || substr(md5(trigger_name || ':' || customer_id), 1, 8))"
                "::bit(32)::bigint) % 100) from activation.trigger_timers"
            ).fetchall()
        )
    holdout = {c for c in customers if holdout_bucket("abandoned", c) < 20}
    assert 20 <= len(holdout) <= 60
    assert {c for c, g in groups.items() if g == "holdout"} == holdout
    assert all(sql_bucket[c] == holdout_bucket("abandoned", c) for c in customers)
    assert {c for c, s in status.items() if s == "held_out"} == holdout
    sent_to = {o["customer_id"] for o in sent(vendor)}
    assert sent_to == set(customers) - holdout and not sent_to & holdout


def test_consent(settings, setup, vendor):
    eng, dispatcher = setup(trigger(consent="marketing"))
    eng.process(
        [
            event("checkout_started", "yes", T0, consent={"marketing": True}, value=80),
            event("checkout_started", "no", T0, consent={"Marketing": False, "analytics": True}, value=80),
            event("checkout_started", "silent", T0, value=80),  # no signal: the default (deny)
        ]
    )
    assert timers(settings) == {"yes": "pending", "no": "suppressed", "silent": "suppressed"}
    assert sorted(actions(settings)) == [
        ("no", "suppressed_consent"),
        ("silent", "suppressed_consent"),
        ("yes", "entered"),
    ]
    dispatcher.run_once(now=T0 + timedelta(hours=1))
    assert [o["customer_id"] for o in sent(vendor)] == ["yes"]

    allow, _ = setup(trigger(name="allowing", consent="marketing"), consent_default="allow")
    allow.process([event("checkout_started", "silent2", T0, value=80)])
    assert timers(settings)["silent2"] == "pending"


def test_conditions_on_scores_and_pause(settings, setup, vendor):
    eng, dispatcher = setup(trigger(conditions=["purchase_propensity_percentile >= 80"]))
    with psycopg.connect(warehouse_url(settings)) as conn:
        conn.execute(
            "insert into ml.model_runs (run_id, training_id, model_name, algorithm, kind, feature_service, "
            "trained_at, data_end, holdout_at, horizon_days, n_train, n_holdout, features, selection_metric, "
            "status) values ('r1', 't1', 'purchase_propensity', 'logistic', 'classification', 'fs', now(), "
            "now(), now(), 14, 1, 1, '[]', 'auc', 'champion')"
        )
        conn.execute(
            "insert into ml.scores values ('hi', 'purchase_propensity', 'r1', now(), 0.9, 95, now()), "
            "('lo', 'purchase_propensity', 'r1', now(), 0.1, 10, now())"
        )
    eng.process([event("checkout_started", c, T0, value=80) for c in ("hi", "lo", "unscored")])
    assert timers(settings) == {"hi": "pending", "lo": "suppressed", "unscored": "suppressed"}

    set_status(settings, "abandoned", "paused")  # due timers of a paused trigger are not sent
    dispatcher.run_once(now=T0 + timedelta(hours=1))
    assert sent(vendor) == [] and timers(settings)["hi"] == "suppressed"
    assert ("hi", "suppressed_paused") in actions(settings)


def _commit_events(conn: psycopg.Connection, events: list[dict]) -> None:
    """What the collector's writer does: the rows, source 'collector' (xact_id by its default)."""
    for e in events:
        conn.execute(
            "insert into raw.events (event_id, event_type, event_name, user_id, event_at, received_at, "
            "properties, source) values (%s, 'track', %s, %s, %s, %s, %s, 'collector')",
            (
                e["event_id"],
                e["event_name"],
                e["user_id"],
                e["event_at"],
                e["received_at"],
                json.dumps(e["properties"]),
            ),
        )


def test_the_worker_reads_each_committed_event_once_from_its_position(settings, setup, vendor):
    """The worker reads what was committed since its saved position, including a transaction that was
    still open at its last read (committed later, with an older id); one worker evaluates at a time; a
    new one (a restart after kill -9) reads on from the saved position; evaluating again changes nothing."""
    eng, _ = setup(trigger())
    url = warehouse_url(settings)
    first = TriggerWorker(settings, dispatch=False)
    first.evaluate_once()  # first start: reads the last minute (nothing yet) and saves its position
    now = datetime.now(UTC)
    entries = [event("checkout_started", f"c{i}", now, value=80) for i in range(6)]
    with psycopg.connect(url) as slow, psycopg.connect(url, autocommit=True) as fast:
        _commit_events(slow, entries[5:])  # written first, committed last
        _commit_events(fast, entries[:5])
        assert first.evaluate_once() == 5
        assert first.evaluate_once() == 0  # nothing new: nothing read again
        second = TriggerWorker(settings, dispatch=False)
        assert second.evaluate_once() == 0  # the first one holds the consumer's lock
        first.close()
        slow.commit()
    assert second.evaluate_once() == 1  # c5, from the open transaction of the first read
    second.close()
    assert timers(settings) == {f"c{i}": "pending" for i in range(6)}
    assert eng.process(entries) == 0  # the same events again: nothing new
    assert actions(settings).count(("c0", "entered")) == 1
    restarted = TriggerWorker(settings, dispatch=False)
    assert restarted.evaluate_once() == 0  # a restart reads on from the saved position
    restarted.close()


def test_realtime_conditions_in_the_worker(settings, setup, vendor):
    """A condition on a real-time feature: the worker folds every collector event it reads."""
    setup(trigger(conditions=["cart_items >= 1"]))
    worker = TriggerWorker(settings, dispatch=False)
    worker.evaluate_once()
    now = datetime.now(UTC)
    added = event("product_added", "carted", now - timedelta(seconds=5), price=40, quantity=2)
    with psycopg.connect(warehouse_url(settings), autocommit=True) as conn:
        _commit_events(
            conn,
            [
                added,
                event("checkout_started", "carted", now, value=80),
                event("checkout_started", "empty", now, value=80),
            ],
        )
    assert worker.evaluate_once() == 3
    worker.close()
    assert timers(settings) == {"carted": "pending", "empty": "suppressed"}


def test_lift_readout_compares_fired_with_held_out(settings, setup, vendor):
    from pulse.triggers.readout import read_out_trigger_lift

    eng, dispatcher = setup(trigger(holdout_pct=50, outcome={"event": "order_completed", "window": "1d"}))
    customers = [f"c{i:03d}" for i in range(100)]
    eng.process([event("checkout_started", c, T0, value=80) for c in customers])
    due = T0 + timedelta(minutes=30, seconds=5)
    dispatcher.run_once(now=due)
    holdout = {c for c in customers if holdout_bucket("abandoned", c) < 50}
    # Every treatment customer orders an hour after the message; no holdout customer does; one order
    # outside the window (two days later) does not count.
    with psycopg.connect(warehouse_url(settings)) as conn:
        for c in [*sorted(set(customers) - holdout), sorted(holdout)[0]]:
            at = due + (timedelta(hours=1) if c not in holdout else timedelta(days=2))
            conn.execute(
                "insert into raw.events (event_id, event_type, event_name, user_id, event_at, received_at, "
                "properties, source) values (%s, 'track', 'order_completed', %s, %s, %s, "
                """'{"revenue": 40.0}', 'test')""",
                (f"o-{c}", c, at, at),
            )
    assert read_out_trigger_lift(settings, now=due + timedelta(hours=12)) == 0  # window not over yet
    assert read_out_trigger_lift(settings, now=due + timedelta(days=3)) == 1
    with psycopg.connect(warehouse_url(settings)) as conn:
        row = conn.execute(
            "select treatment_customers, holdout_customers, treatment_conversion, holdout_conversion, "
            "absolute_lift, treatment_revenue from activation.trigger_lift"
        ).fetchone()
    assert row == (len(customers) - len(holdout), len(holdout), 1.0, 0.0, 1.0, 40.0)
    # The HTML report's triggers section shows the state and the readout.
    from pulse.reporting import write_report

    html = write_report(settings).read_text()
    section = html[html.index('<section id="triggers">') :]
    section = section[: section.index("</section>")]
    assert "abandoned" in section and "activation.trigger_lift" in section and "held_out" in section
