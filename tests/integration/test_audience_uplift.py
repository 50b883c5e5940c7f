"""Audiences can rank by a campaign's uplift: the shipped persuadable_buyers reads ml.uplift_scores of
its `uplift_campaign`, keeps customers with positive uplift, best first; real dbt, real PostgreSQL."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from pulse.audiences import build_audiences
from pulse.db import engine
from pulse.modeling.registry import save_runs
from pulse.modeling.tasks import PredictionTask
from pulse.modeling.train import _new_run
from tests.integration.dbt_support import dbt_build, load_simulation

pytestmark = pytest.mark.e2e
TASK = PredictionTask("purchase_propensity", "classification", "any_order", 14, "test", "customer_features")


def test_persuadable_buyers_rank_by_uplift(settings, tmp_path):
    load_simulation(settings, tmp_path, customers=30, days=4, seed=3)
    dbt_build(settings, full_refresh=True)
    as_of = datetime(2026, 3, 1, tzinfo=UTC)
    run = _new_run(TASK, "logistic_regression", "t", as_of, holdout_at=as_of, n_train=1, n_holdout=1,
                   features=["x"], status="champion", is_champion=True)  # fmt: skip
    save_runs([(run, None, {})], settings)
    with engine(settings).begin() as conn:
        customers = (
            conn.execute(sa.text("select customer_id from marts.customers order by 1")).scalars().all()
        )
        conn.execute(
            sa.text("insert into ml.scores values (:c, 'purchase_propensity', :r, :t, :s, :p, now())"),
            [
                {"c": c, "r": run.run_id, "t": as_of, "s": i / 100, "p": 100 - i}
                for i, c in enumerate(customers)
            ],
        )
        conn.execute(
            sa.text("insert into ml.campaigns values ('uplift_test', 'file:t', now(), 3, 0, 0, true)")
        )
        # Three customers have uplift scores: two persuadable, one do-not-disturb.
        conn.execute(
            sa.text(
                "insert into ml.uplift_scores values ('uplift_test', :c, :u, 0.5, 0.5, 't_learner', 't', now())"
            ),
            [{"c": customers[0], "u": 0.1}, {"c": customers[1], "u": 0.3}, {"c": customers[2], "u": -0.2}],
        )
    build_audiences(settings)
    with engine(settings).connect() as conn:
        members = conn.execute(
            sa.text(
                "select customer_id, score from audiences.audience_members "
                "where audience_name = 'persuadable_buyers' order by member_rank"
            )
        ).all()
        likely = conn.execute(
            sa.text("select count(*) from audiences.audience_members where audience_name = 'likely_buyers'")
        ).scalar()
    assert [(c, round(s, 6)) for c, s in members] == [(customers[1], 0.3), (customers[0], 0.1)]
    assert likely > 0  # audiences without an uplift campaign are unchanged
