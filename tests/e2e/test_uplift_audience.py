"""`pulse train-uplift AUDIENCE --audience` on a campaign Pulse ran itself, end to end on a real warehouse:
the shipped `uplift_test` audience (half held out) is built from scores, `pulse simulate --campaign` plays
it over its outcome window, the orders are ingested and built like any others, and the uplift model
learns from the cohort: every member is a training row with its group, whether it ordered in the window
(checked against the played orders) and its features from the snapshot at entry, and every member is
scored."""

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from pulse.db import engine
from pulse.modeling.registry import save_runs
from pulse.modeling.tasks import PredictionTask
from pulse.modeling.train import _new_run
from tests.e2e.test_uplift_campaign import pulse
from tests.integration.dbt_support import load_simulation

pytestmark = pytest.mark.e2e
TASK = PredictionTask("purchase_propensity", "classification", "any_order", 14, "test", "customer_features")
AUDIENCE = "uplift_test"
OUTCOME_DAYS = 7  # campaigns/audiences/uplift_test.yml


def test_train_uplift_on_an_audience_pulse_ran(settings, tmp_path):
    sim = load_simulation(settings, tmp_path, customers=400, days=30, seed=8)
    pulse("build")
    with engine(settings).begin() as conn:
        as_of = conn.execute(sa.text("select max(event_timestamp) from marts.customer_features")).scalar()
        customers = (
            conn.execute(
                sa.text("select customer_id from marts.customer_features where event_timestamp = :t"),
                {"t": as_of},
            )
            .scalars()
            .all()
        )
        run = _new_run(TASK, "logistic_regression", "t", as_of, holdout_at=as_of, n_train=1, n_holdout=1,
                       features=["x"], status="champion", is_champion=True)  # fmt: skip
        save_runs([(run, None, {})], settings)
        conn.execute(
            sa.text("insert into ml.scores values (:c, 'purchase_propensity', :r, :t, :s, :p, now())"),
            [
                {"c": c, "r": run.run_id, "t": as_of, "s": (i % 97) / 100, "p": 1 + i % 100}
                for i, c in enumerate(customers)
            ],
        )
    pulse("audiences")
    with engine(settings).connect() as conn:
        groups = dict(
            conn.execute(
                sa.text(
                    'select customer_id, "group" from audiences.audience_members where audience_name = :a'
                ),
                {"a": AUDIENCE},
            ).all()
        )
    assert set(groups) == set(customers)
    assert 0.3 < sum(g == "holdout" for g in groups.values()) / len(groups) < 0.7

    # Too early: the outcome window has not passed.
    assert "no cohort whose outcome window has passed" in pulse(
        "train-uplift", AUDIENCE, "--audience", ok=False
    )

    assert "played on" in pulse("simulate", "--campaign", AUDIENCE, "--out", str(sim.events_path.parent))
    events = sim.events_path.parent / f"campaign_{AUDIENCE}" / "events.jsonl"
    played = [json.loads(line) for line in events.read_text().splitlines()]
    window_end = (as_of + timedelta(days=OUTCOME_DAYS)).isoformat().replace("+00:00", "Z")
    buyers = {e["userId"] for e in played if e["timestamp"] < window_end}
    pulse("ingest", str(events))
    pulse("build")

    out = pulse("train-uplift", AUDIENCE, "--audience")
    assert "(champion)" in out
    with engine(settings).connect() as conn:
        source = conn.execute(
            sa.text("select source, customers from ml.campaigns where campaign = :a"), {"a": AUDIENCE}
        ).one()
        rows = conn.execute(
            sa.text(
                "select customer_id, is_treated, outcome, features from ml.campaign_outcomes where campaign = :a"
            ),
            {"a": AUDIENCE},
        ).all()
        scored = conn.execute(
            sa.text("select count(*) from ml.uplift_scores where campaign = :a"), {"a": AUDIENCE}
        ).scalar()
    assert source == (f"audience:{AUDIENCE}", len(groups))
    assert {r.customer_id: r.is_treated for r in rows} == {c: g == "treatment" for c, g in groups.items()}
    assert {r.customer_id for r in rows if r.outcome == 1.0} == buyers & set(groups)
    assert all(r.outcome in (0.0, 1.0) for r in rows)
    # features as of entry: the snapshot the audience was chosen from, numbers only
    assert all(
        r.features and all(v is None or isinstance(v, int | float) for v in r.features.values()) for r in rows
    )
    assert "orders_30d" in rows[0].features
    assert scored == len(groups)
