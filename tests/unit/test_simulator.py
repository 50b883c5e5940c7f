import json
from datetime import date

import pandas as pd

from pulse.events.contract import Event
from pulse.events.simulator import simulate

END = date(2026, 3, 1)


def test_same_seed_same_files(tmp_path):
    a = simulate(tmp_path / "a", customers=40, days=30, seed=3, end=END)
    b = simulate(tmp_path / "b", customers=40, days=30, seed=3, end=END)
    c = simulate(tmp_path / "c", customers=40, days=30, seed=4, end=END)
    assert a.events_path.read_bytes() == b.events_path.read_bytes()
    assert a.truth_path.read_bytes() == b.truth_path.read_bytes()
    assert a.events_path.read_bytes() != c.events_path.read_bytes()


def test_events_follow_the_contract_and_tell_a_customer_story(tmp_path):
    result = simulate(tmp_path, customers=150, days=40, seed=1, end=END)
    events = [json.loads(line) for line in result.events_path.open()]
    assert len(events) == result.n_events > 1000
    parsed = [Event.model_validate(e) for e in events]
    names = {e.event_name for e in parsed}
    assert {
        "page",
        "identify",
        "signed_in",
        "product_viewed",
        "product_added",
        "product_removed",
        "checkout_started",
        "order_completed",
        "email_opened",
        "email_clicked",
    } <= names
    assert len({e.messageId for e in parsed}) == len(parsed)
    # Browsing before the first sign-in is anonymous.
    assert any(e.userId is None and e.anonymousId for e in parsed)
    # Everything lies inside the simulated window.
    assert all(result.start <= e.timestamp < result.end for e in parsed)
    orders = [e for e in parsed if e.event_name == "order_completed"]
    assert all(e.properties["revenue"] > 0 and e.properties["order_id"] for e in orders)


def test_truth_is_a_probability_per_customer_and_matches_outcomes(tmp_path):
    result = simulate(tmp_path, customers=400, days=40, seed=2, end=END, label_days=14)
    truth = pd.read_csv(result.truth_path)
    assert len(truth) == 400 and truth["true_probability"].between(0, 1).all()
    assert truth["churned"].sum() > 0
    # Planted truth is real: customers with a high true probability order in the window far more often.
    window_start = pd.Timestamp(truth["window_start"].iloc[0])
    ordered = {
        e["userId"]
        for e in map(json.loads, result.events_path.open())
        if e.get("event") == "Order Completed" and pd.Timestamp(e["timestamp"]) >= window_start
    }
    truth["ordered"] = truth["customer_id"].isin(ordered)
    high = truth[truth["true_probability"] > 0.6]["ordered"].mean()
    low = truth[truth["true_probability"] < 0.1]["ordered"].mean()
    assert high > 0.6 and low < 0.15


def test_campaign_plants_the_four_responses_and_is_reproducible(tmp_path):
    from collections import Counter

    from pulse.events.campaign_sim import play_campaign

    simulate(tmp_path / "sim", customers=400, days=21, seed=5, end=date(2026, 3, 1))
    groups = {f"c{i:06d}": ("treatment" if i % 2 else "holdout") for i in range(400)}
    events, truth_path, truth = play_campaign(tmp_path / "sim", groups, 14, "t")
    kinds = Counter(t.response for t in truth)
    assert set(kinds) == {"persuadable", "sure_thing", "lost_cause", "do_not_disturb"}, kinds
    assert all(t.true_effect > 0 for t in truth if t.response == "persuadable")
    assert all(t.true_effect <= 0 for t in truth if t.response == "do_not_disturb")
    assert all(t.true_effect == 0 for t in truth if t.response in ("sure_thing", "lost_cause"))
    first = (events.read_text(), truth_path.read_text())
    again = play_campaign(tmp_path / "sim", groups, 14, "t", out_dir=tmp_path / "again")
    assert (again[0].read_text(), again[1].read_text()) == first
    # Orders of the playing customers: the campaign's inside the outcome window, then ordinary orders
    # on the day after it (so the data shows the window closed).
    orders = [json.loads(line) for line in first[0].splitlines()]
    assert all(e["userId"] in groups for e in orders)
    window = [e for e in orders if e["context"]]
    after = [e for e in orders if not e["context"]]
    assert window and after
    assert all("2026-03-01" <= e["timestamp"] < "2026-03-15" for e in window)
    assert all("2026-03-15" <= e["timestamp"] < "2026-03-16" for e in after)
