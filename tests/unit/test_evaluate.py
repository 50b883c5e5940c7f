import numpy as np
import pandas as pd
import pytest

from pulse.modeling.candidates import RateFeatures, candidates, predict
from pulse.modeling.evaluate import classification_metrics, lift_and_gain, psi, regression_metrics, scalar


def test_lift_and_gain_by_decile():
    score = np.arange(100, dtype=float)
    outcome = (score >= 90).astype(int)  # every positive in the top decile
    rows = {(m, b): v for m, b, v in lift_and_gain(outcome, score)}
    assert rows[("lift", 1)] == pytest.approx(10.0)
    assert rows[("lift", 2)] == 0.0
    assert rows[("cumulative_gain", 1)] == 1.0 and rows[("cumulative_gain", 10)] == 1.0


def test_classification_metrics_on_a_known_ranking():
    label = np.array([0, 0, 1, 1])
    rows = classification_metrics(label, np.array([0.1, 0.4, 0.35, 0.8]))
    assert scalar(rows, "auc") == pytest.approx(0.75)
    assert scalar(rows, "positive_rate") == 0.5
    assert scalar(rows, "brier") == pytest.approx(np.mean((np.array([0.1, 0.4, 0.35, 0.8]) - label) ** 2))
    bins = {b: v for m, b, v in rows if m == "calibration_count"}
    assert sum(bins.values()) == 4
    fpr = [v for m, b, v in rows if m == "roc_fpr"]
    tpr = [v for m, b, v in rows if m == "roc_tpr"]
    assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)


def test_regression_metrics():
    rows = regression_metrics(np.array([0.0, 10.0, 20.0]), np.array([0.0, 10.0, 20.0]))
    assert scalar(rows, "r2") == 1.0 and scalar(rows, "rmse") == 0.0


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 5000)
    assert psi(reference, rng.normal(0, 1, 5000)) < 0.02
    assert psi(reference, rng.normal(1.0, 1, 5000)) > 0.2
    assert psi(np.zeros(100), np.zeros(100)) == pytest.approx(0.0)


def test_rate_features_handle_order_only_data():
    frame = pd.DataFrame({"tenure_days": [10, 100], "orders_90d": [2, 9], "revenue_total": [50.0, 300.0]})
    out = RateFeatures().fit(frame).transform(frame)
    assert out["orders_per_day_90d"].tolist() == pytest.approx([0.2, 0.1])
    assert "product_views_per_visit_90d" not in out  # no browsing columns, no browsing rates


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_every_candidate_learns_a_planted_signal(kind):
    rng = np.random.default_rng(1)
    n = 3000
    frame = pd.DataFrame(
        {
            "tenure_days": rng.integers(10, 90, n),
            "page_views_90d": rng.poisson(20, n),
            "orders_90d": rng.poisson(1, n),
            "noise": rng.normal(0, 1, n),
        }
    )
    signal = frame["page_views_90d"] / frame["tenure_days"]
    target = (
        (signal + rng.normal(0, 0.1, n) > signal.median()).astype(int)
        if kind == "classification"
        else signal * 100
    )
    train, test = frame.iloc[:2000], frame.iloc[2000:]
    for name, model in candidates(kind).items():
        model.fit(train, target.iloc[:2000])
        prediction = predict(model, test, kind)
        rows = (
            classification_metrics(target.iloc[2000:], prediction)
            if kind == "classification"
            else regression_metrics(target.iloc[2000:], prediction)
        )
        metric = "auc" if kind == "classification" else "r2"
        assert scalar(rows, metric) > 0.7, (name, scalar(rows, metric))
