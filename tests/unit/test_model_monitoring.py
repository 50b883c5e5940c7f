"""Honest monitoring: drift measured against the deployed model's own scores, the champion/challenger
rule (keep within the margin, replace beyond it), and the relative-lift interval."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from pulse.audiences import Lift
from pulse.modeling import candidates as algos
from pulse.modeling.evaluate import psi
from pulse.modeling.tasks import PredictionTask
from pulse.modeling.train import PROMOTION_MARGIN, _Candidate, _reference, _select
from pulse.scoring.batch import DRIFT_THRESHOLD

TASK = PredictionTask("purchase_propensity", "classification", "any_order", 14, "test", "customer_features")


def _snapshot(seed: int, n: int, base: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"page_views_90d": rng.poisson(5, n), "orders_90d": rng.poisson(0.5, n)})
    p = 1 / (1 + np.exp(-(base + 0.3 * frame["page_views_90d"] + frame["orders_90d"])))
    frame["label"] = (rng.random(n) < p).astype(int)
    return frame


def test_drift_reference_is_the_deployed_models_own_scores():
    features = ["page_views_90d", "orders_90d"]
    model = algos.classifiers()["logistic_regression"]
    # The holdout fold's fit saw an older, quieter period; the deployed model is refitted on newer data.
    older, newer, holdout = _snapshot(1, 3000, -6), _snapshot(2, 3000, -2), _snapshot(3, 3000, -2)
    holdout_fit = clone(model).fit(older[features], older["label"])
    deployed = clone(model).fit(newer[features], newer["label"])
    candidate = _Candidate("logistic_regression", model)
    holdout_fit_scores = algos.predict(holdout_fit, holdout[features], "classification")

    reference = _reference(candidate, deployed, TASK, holdout, features)
    # Scoring the same data again with the deployed model: nothing changed, so no drift.
    again = algos.predict(deployed, holdout[features], "classification")
    assert psi(np.asarray(reference["score"]), again) < 0.02
    # (The holdout fit's scores differ from the deployed model's: the old reference reported drift.)
    assert psi(holdout_fit_scores, again) > DRIFT_THRESHOLD


def _pool(scores: dict[str, float]) -> list[_Candidate]:
    pool = []
    for name, value in scores.items():
        candidate = _Candidate(name, None)
        candidate.metrics = {"backtest_1": [("auc", 0, value)]}
        pool.append(candidate)
    return pool


class _Incumbent:
    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm


def test_challenger_within_margin_keeps_the_champion():
    margin = PROMOTION_MARGIN["auc"]
    pool = _pool({"gradient_boosting": 0.800, "mlp": 0.800 + margin / 2})
    best, reason = _select(TASK, pool, ["backtest_1"], _Incumbent("gradient_boosting"))
    assert best.algorithm == "gradient_boosting" and "stays champion" in reason


def test_challenger_beyond_margin_replaces_the_champion():
    margin = PROMOTION_MARGIN["auc"]
    pool = _pool({"gradient_boosting": 0.800, "mlp": 0.800 + 2 * margin})
    best, reason = _select(TASK, pool, ["backtest_1"], _Incumbent("gradient_boosting"))
    assert best.algorithm == "mlp" and "replaces gradient_boosting" in reason


def test_first_champion_and_missing_defender():
    pool = _pool({"gradient_boosting": 0.80, "mlp": 0.79})
    assert _select(TASK, pool, ["backtest_1"], None)[0].algorithm == "gradient_boosting"
    # The incumbent's algorithm could not be evaluated this time: the best candidate takes over.
    best, reason = _select(TASK, pool, ["backtest_1"], _Incumbent("decision_tree"))
    assert best.algorithm == "gradient_boosting" and "replaces decision_tree" in reason


@pytest.mark.parametrize(("pt", "pc", "nt", "nc"), [(0.12, 0.08, 2000, 500), (0.05, 0.04, 5000, 800)])
def test_relative_lift_interval_matches_a_bootstrap(pt, pc, nt, nc):
    lift = Lift(nt, nc, pt, pc, 0, 0, 0, 0)
    low, high = lift.relative_lift_ci
    assert low < lift.relative_lift < high
    # Parametric bootstrap of the same two groups: conversions drawn again, relative lift recomputed.
    rng = np.random.default_rng(0)
    t = rng.binomial(nt, pt, 20000) / nt
    c = rng.binomial(nc, pc, 20000) / nc
    boot = t[c > 0] / c[c > 0] - 1
    b_low, b_high = np.quantile(boot, [0.025, 0.975])
    assert low == pytest.approx(b_low, abs=0.04) and high == pytest.approx(b_high, abs=0.06)
    # Asymmetric, as the ratio of two rates is: longer above than below.
    assert high - lift.relative_lift > lift.relative_lift - low


def test_relative_lift_interval_is_none_without_holdout_conversions():
    assert Lift(100, 100, 0.1, 0.0, 0, 0, 0, 0).relative_lift_ci is None
