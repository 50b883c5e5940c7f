"""The algorithms Pulse compares, as scikit-learn pipelines.

Every pipeline starts with the same feature engineering (rates per day of tenure and per visit, which
turn raw counts into what the counts estimate), so algorithms differ only in the learner.

Scores must be probabilities. Logistic regression and gradient boosting minimise log loss, which makes
them calibrated by construction; the tree, the forest, the neighbours and the network are not, so they
are wrapped in sigmoid (Platt) calibration. Random forest and k-nearest neighbours are there because the
original analysis compared them: every comparison it made can be read from `ml.model_runs`. `ml.model_metrics` keeps calibration bins for every model and fold to check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeClassifier

# (numerator, denominator) pairs; a pair is used when both columns exist, so order-only data still works.
RATIOS = {
    "visits_per_day_90d": ("page_views_90d", "tenure_days_90"),
    "product_views_per_visit_90d": ("product_views_90d", "page_views_90d"),
    "cart_adds_per_view_90d": ("cart_adds_90d", "product_views_90d"),
    "orders_per_day_90d": ("orders_90d", "tenure_days_90"),
    "orders_per_visit_90d": ("orders_90d", "page_views_90d"),
    "active_day_share": ("active_days_total", "tenure_days"),
    "visits_per_day_30d": ("page_views_30d", "tenure_days_30"),
}


class RateFeatures(BaseEstimator, TransformerMixin):
    """Adds per-day and per-visit rates to the feature frame; non-negative counts in, floats out."""

    def fit(self, X: pd.DataFrame, y=None):
        self.feature_names_in_ = np.asarray(X.columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        # numpy, not pandas column operations: the scoring API transforms one row per request, where
        # pandas costs milliseconds (the result is the same as astype/fillna/clip/assign).
        values = X.to_numpy(dtype=float, copy=True)
        values[np.isnan(values)] = 0.0
        values[values < 0] = 0.0
        columns = dict(zip(X.columns, values.T, strict=True))
        source = dict(columns)
        if "tenure_days" in columns:
            source["tenure_days_90"] = np.clip(columns["tenure_days"], 1, 90)
            source["tenure_days_30"] = np.clip(columns["tenure_days"], 1, 30)
        extra = {
            name: source[num] / np.maximum(source[den], 1)
            for name, (num, den) in RATIOS.items()
            if num in source and den in source
        }
        if extra.keys() & columns.keys():  # a ratio's name is already a column: replaced in place
            return pd.DataFrame(columns | extra, index=X.index)
        return pd.DataFrame(
            np.column_stack([values, *extra.values()]), columns=[*columns, *extra], index=X.index
        )

    def get_feature_names_out(self, input_features=None):
        return None


def _log1p(frame):
    return np.log1p(np.asarray(frame, dtype=float))


def _linear_front() -> list:
    return [("rates", RateFeatures()), ("log", FunctionTransformer(_log1p)), ("scale", StandardScaler())]


def _calibrated(estimator) -> CalibratedClassifierCV:
    # Sigmoid calibration on 3 folds, then one model refit on everything (ensemble=False keeps it small).
    return CalibratedClassifierCV(estimator, method="sigmoid", cv=3, ensemble=False)


def classifiers(seed: int = 0) -> dict[str, Pipeline]:
    return {
        "logistic_regression": Pipeline(
            [*_linear_front(), ("model", LogisticRegression(C=1.0, max_iter=500, tol=1e-3))]
        ),
        "decision_tree": Pipeline(
            [
                ("rates", RateFeatures()),
                (
                    "model",
                    _calibrated(DecisionTreeClassifier(max_depth=6, min_samples_leaf=50, random_state=seed)),
                ),
            ]
        ),
        "gradient_boosting": Pipeline(
            [
                ("rates", RateFeatures()),
                (
                    "model",
                    HistGradientBoostingClassifier(
                        learning_rate=0.05,
                        max_iter=200,
                        max_leaf_nodes=15,
                        min_samples_leaf=100,
                        l2_regularization=1.0,
                        random_state=seed,
                    ),
                ),
            ]
        ),
        "random_forest": Pipeline(
            [("rates", RateFeatures()), ("model", _calibrated(_forest(RandomForestClassifier, seed)))]
        ),
        "knn": Pipeline([*_linear_front(), ("model", _calibrated(KNeighborsClassifier(**KNN)))]),
        "mlp": Pipeline(
            [
                *_linear_front(),
                (
                    "model",
                    _calibrated(
                        MLPClassifier(
                            hidden_layer_sizes=(16,),
                            alpha=1e-2,
                            max_iter=200,
                            early_stopping=True,
                            random_state=seed,
                        )
                    ),
                ),
            ]
        ),
    }


KNN = {"n_neighbors": 50, "weights": "distance"}  # scaled log features; 50 smooths rare outcomes


def _forest(cls, seed: int):
    # Few, shallow trees on a quarter of the rows each: a 2-core machine trains every candidate on every
    # fold of every task (100 full-sample trees took 61 s per fit on 20k rows, 10x gradient boosting).
    return cls(
        n_estimators=50, max_depth=8, min_samples_leaf=50, max_features="sqrt", max_samples=0.25,
        random_state=seed,
    )  # fmt: skip


def regressors(seed: int = 0) -> dict[str, Pipeline]:
    return {
        "linear_regression": Pipeline([*_linear_front(), ("model", LinearRegression())]),
        "random_forest": Pipeline(
            [("rates", RateFeatures()), ("model", _forest(RandomForestRegressor, seed))]
        ),
        "knn": Pipeline([*_linear_front(), ("model", KNeighborsRegressor(**KNN))]),
        "gradient_boosting": Pipeline(
            [
                ("rates", RateFeatures()),
                (
                    "model",
                    HistGradientBoostingRegressor(
                        learning_rate=0.05, max_iter=200, min_samples_leaf=100, random_state=seed
                    ),
                ),
            ]
        ),
    }


def candidates(kind: str, seed: int = 0) -> dict[str, Pipeline]:
    return classifiers(seed) if kind == "classification" else regressors(seed)


def predict(model, frame: pd.DataFrame, kind: str) -> np.ndarray:
    """Probability of the positive class, or the predicted value (never negative)."""
    if kind == "classification":
        return model.predict_proba(frame)[:, 1]
    return np.clip(model.predict(frame), 0, None)
