"""Must-show of uplift modelling on the simulator: a 50/50 test campaign on every simulated customer,
played with planted effects (events/campaign_sim.py) over a 7-day outcome window, imported and trained
like any campaign file.

- the audience of the top 10% by predicted uplift gains more (true) incremental conversions than the
  likely-buyers audience of the same size (top 10% by true purchase probability);
- the champion's held-out Qini is at least 0.8x the Qini of the true effects on the same customers (the
  issue's goal). Measured 0.95x-1.02x over seeds 11 and 12 and several outcome draws (docs/benchmarks.md);
  before the planted types followed the customers' habits, 0.42x.
Features are the customers' last 30 days of simulated behaviour (emails: all history), counted from
the event file, not from the warehouse (a 5,000-customer dbt build + Feast run would triple the time).
"""

import csv
import hashlib
import json
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from pulse.db import engine
from pulse.events.campaign_sim import play_campaign
from pulse.events.simulator import simulate
from pulse.modeling.campaigns import CampaignColumns, import_campaign
from pulse.modeling.uplift import TRUE_EFFECT, train_uplift

pytestmark = pytest.mark.e2e
END = datetime(2026, 5, 1, tzinfo=UTC)
N = 5000
OUTCOME_DAYS = 7  # a shorter window: fewer of the orders that would come anyway, less outcome noise
EVENTS = {"Product Viewed": "views", "Product Added": "cart_adds", "Order Completed": "orders",
          "Email Opened": "email_opens", "Email Clicked": "email_clicks"}  # fmt: skip


def behaviour(events_path, since: datetime) -> dict[str, Counter]:
    counts: dict[str, Counter] = defaultdict(Counter)
    anonymous: dict[str, str] = {}
    for line in events_path.open():
        event = json.loads(line)
        if event.get("userId"):
            anonymous[event["anonymousId"]] = event["userId"]
        customer = event.get("userId") or anonymous.get(event["anonymousId"])
        at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        if customer is None:
            continue
        counts[customer]["signed_in"] |= bool(event.get("userId"))
        if event.get("event") in ("Email Opened", "Email Clicked"):  # weekly: the whole history
            counts[customer][EVENTS[event["event"]]] += 1
        if at < since or event.get("event") in ("Email Opened", "Email Clicked"):
            continue
        name = "visits" if event["type"] == "page" else EVENTS.get(event.get("event"))
        if name:
            counts[customer][name] += 1
    return counts


def test_uplift_model_finds_the_persuadable(settings, tmp_path):
    started = time.monotonic()
    sim = simulate(tmp_path / "sim", customers=N, days=35, seed=11, end=END, label_days=14)
    ids = [f"c{i:06d}" for i in range(N)]
    groups = {c: "treatment" if hashlib.sha256(c.encode()).digest()[0] % 2 else "holdout" for c in ids}
    events, _, truth = play_campaign(tmp_path / "sim", groups, OUTCOME_DAYS, "test_campaign")
    print(f"simulated and played in {time.monotonic() - started:.0f} s")
    window_end = (END + timedelta(days=OUTCOME_DAYS)).isoformat().replace("+00:00", "Z")
    buyers = {e["userId"] for e in map(json.loads, events.open()) if e["timestamp"] < window_end}
    counts = behaviour(sim.events_path, END - timedelta(days=30))
    names = ["visits", "signed_in", *EVENTS.values()]
    path = tmp_path / "campaign.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "group", "converted", *names])
        for c in ids:
            writer.writerow([c, groups[c], int(c in buyers), *(counts[c][n] for n in names)])
    import_campaign(path, "test_campaign", settings, CampaignColumns(control_value="holdout"))
    effect = pd.Series({t.customer_id: t.true_effect for t in truth})
    outcome = train_uplift("test_campaign", settings, truth=effect)

    model_qini = outcome.held_out[outcome.champion]["qini"]
    true_qini = outcome.held_out[TRUE_EFFECT]["qini"]
    print(f"Qini: {outcome.champion} {model_qini:.4f}, true effects {true_qini:.4f}")
    assert true_qini > 0
    assert model_qini >= 0.8 * true_qini

    with engine(settings).connect() as conn:
        scores = pd.read_sql(
            sa.text("select customer_id, uplift from ml.uplift_scores where campaign = 'test_campaign'"), conn
        ).set_index("customer_id")["uplift"]
    base = pd.Series({t.customer_id: t.base_probability for t in truth})
    size = len(ids) // 10
    persuadable = effect[scores.sort_values(ascending=False).index[:size]].sum()
    likely = effect[base.sort_values(ascending=False).index[:size]].sum()
    print(f"incremental conversions of {size} customers: persuadable {persuadable:.1f}, likely {likely:.1f}")
    assert persuadable > likely
