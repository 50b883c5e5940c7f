from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pulse.db import ConnParts
from pulse.features.store import redis_connection_string
from pulse.modeling.datasets import NotEnoughDataError, plan_folds
from pulse.scoring.batch import percentiles

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_folds_keep_training_labels_before_each_cutoff():
    folds = plan_folds(T0, T0 + timedelta(days=60), horizon_days=14)
    assert [f.name for f in folds] == ["backtest_1", "backtest_2", "holdout", "final"]
    by_name = {f.name: f for f in folds}
    assert by_name["holdout"].cutoff == T0 + timedelta(days=46)
    assert by_name["backtest_2"].cutoff == T0 + timedelta(days=39)
    for fold in folds:
        assert max(fold.train_snapshots) + timedelta(days=14) <= fold.cutoff
        assert min(fold.train_snapshots) >= T0 + timedelta(days=14)
    # The production fit uses the newest labelled snapshots.
    assert max(by_name["final"].train_snapshots) == T0 + timedelta(days=46)


def test_split_refuses_too_little_history():
    with pytest.raises(NotEnoughDataError, match="spans 20 days"):
        plan_folds(T0, T0 + timedelta(days=20), horizon_days=14)


def test_percentiles_rank_scores_from_1_to_100():
    scores = pd.Series([0.1, 0.9, 0.5, 0.5, 0.2] * 40)
    result = percentiles(scores)
    assert result.min() >= 1 and result.max() == 100
    assert (result[scores == 0.9] == 100).all()
    assert result[scores == 0.1].max() < result[scores == 0.2].min()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://postgres:@/pulse?host=/tmp/pg", ("/tmp/pg", 5432, "postgres", "", "pulse")),
        ("postgresql://u:secret@db.example:6543/wh", ("db.example", 6543, "u", "secret", "wh")),
    ],
)
def test_warehouse_urls_split_for_dbt_and_feast(url, expected):
    parts = ConnParts.from_url(url)
    assert (parts.host, parts.port, parts.user, parts.password, parts.dbname) == expected


def test_redis_urls_become_feast_connection_strings():
    assert redis_connection_string("redis://127.0.0.1:6379/15") == "127.0.0.1:6379,db=15"
    assert redis_connection_string("redis://:pw@cache:6380") == "cache:6380,password=pw"
