"""The registry side of champion/challenger: a new champion retires the old one in the same transaction."""

from datetime import UTC, datetime

import sqlalchemy as sa

from pulse.db import engine
from pulse.modeling.registry import champion_run, save_runs
from pulse.modeling.tasks import PredictionTask
from pulse.modeling.train import _new_run

TASK = PredictionTask("purchase_propensity", "classification", "any_order", 14, "test", "customer_features")
END = datetime(2026, 3, 1, tzinfo=UTC)


def _runs(training: str, champion: str, others: list[str]):
    fields = {"holdout_at": END, "n_train": 10, "n_holdout": 10, "features": ["x"]}
    runs = [
        (_new_run(TASK, champion, training, END, status="champion", is_champion=True, **fields), None, {})
    ]
    runs += [(_new_run(TASK, name, training, END, **fields), None, {}) for name in others]
    return runs


def test_new_champion_retires_the_old_one(settings):
    first = _runs("t1", "gradient_boosting", ["mlp"])
    save_runs(first, settings)
    assert champion_run(TASK.name, settings).run_id == first[0][0].run_id
    second = _runs("t2", "mlp", ["gradient_boosting"])
    save_runs(second, settings)
    assert champion_run(TASK.name, settings).run_id == second[0][0].run_id
    with engine(settings).connect() as conn:
        status = dict(conn.execute(sa.text("select run_id, status from ml.model_runs")).tuples().all())
    assert status[first[0][0].run_id] == "retired"
    assert status[first[1][0].run_id] == "challenger"  # a challenger is never retired: it never served
    assert list(status.values()).count("champion") == 1
