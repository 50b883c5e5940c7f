"""The scoring API's one-row path (numpy where the model allows) scores exactly as the model does on a
DataFrame, for every candidate Pulse trains and for a plain sklearn estimator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from pulse.modeling import candidates
from pulse.scoring.api import RowModel

COLUMNS = ["tenure_days", "page_views_90d", "product_views_90d", "cart_adds_90d", "orders_90d", "revenue_30d"]


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.integers(0, 30, (rows, len(COLUMNS))).astype(float), columns=COLUMNS)
    data.loc[3, "cart_adds_90d"] = np.nan  # a missing online value
    return data


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        *(("classification", n) for n in candidates.candidates("classification")),
        ("regression", "gradient_boosting"),
    ],
)
def test_candidates_score_a_row_as_they_score_a_frame(kind, name):
    train = frame(400)
    target = (train["orders_90d"] > 14) if kind == "classification" else train["orders_90d"] * 2.5
    model = candidates.candidates(kind)[name].fit(
        train.fillna(0), target.astype(float if kind == "regression" else int)
    )
    row_model = RowModel(model, COLUMNS, kind)
    assert row_model.head is not None  # Pulse's RateFeatures reads columns by name: it keeps a DataFrame
    rows = frame(10, seed=1)
    expected = candidates.predict(model, rows, kind)
    got = [row_model.predict(rows.iloc[i].to_numpy()) for i in range(len(rows))]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_a_plain_estimator_takes_the_numpy_row():
    train = frame(200).fillna(0)
    model = LogisticRegression(max_iter=500).fit(train, train["orders_90d"] > 14)
    row_model = RowModel(model, COLUMNS, "classification")
    assert row_model.head is None
    row = train.iloc[7]
    assert row_model.predict(row.to_numpy()) == pytest.approx(
        model.predict_proba(train.iloc[[7]])[0, 1], abs=1e-12
    )


def test_rate_features_fill_clip_and_divide():
    """RateFeatures (computed in numpy so one row costs microseconds): NaN and negatives become 0, tenure is
    clipped to the window, denominators to at least 1."""
    raw = pd.DataFrame(
        {"tenure_days": [200.0, 0.0], "page_views_90d": [45.0, np.nan], "orders_90d": [9.0, -3.0]},
        index=[7, 3],
    )
    out = candidates.RateFeatures().fit(raw).transform(raw)
    assert list(out.columns) == [
        "tenure_days",
        "page_views_90d",
        "orders_90d",
        "visits_per_day_90d",
        "orders_per_day_90d",
        "orders_per_visit_90d",
    ]
    assert list(out.index) == [7, 3]
    np.testing.assert_array_equal(out.to_numpy(), [[200, 45, 9, 0.5, 0.1, 0.2], [0, 0, 0, 0, 0, 0]])
