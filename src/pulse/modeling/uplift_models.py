"""Uplift learners: who changes their behaviour because of a campaign, from a randomised treatment/control.

Each learner is fitted on features X, a treated flag t and an outcome y (0/1, or a number such as
revenue), and predicts per customer the outcome if treated, the outcome if not, and their difference
(the uplift). All are scikit-learn pipelines underneath, compared on a held-out split (modeling/uplift.py).

- `t_learner` (two models): one outcome model on the treated, one on the controls; uplift = difference.
- `class_transformation` (Jaskowski & Jaroszewicz 2012): one classifier of Z = 1 when (treated and
  bought) or (control and did not buy); uplift = 2 P(Z) - 1. That identity needs a 50/50 split, and
  holdouts are usually 10%, so rows are weighted to give each group half the weight. For a numeric
  outcome, the transformed-outcome regression (y * (t - p) / (p (1 - p)), whose mean is the uplift).
- `x_learner` (Kunzel et al. 2019): the T-learner's outcome models impute each customer's own effect
  (treated: y - mu0(x); control: mu1(x) - y), one regression per group learns it, and the two are
  blended by the treated share. Strong when one group is much smaller, as holdouts are.

causalml 0.18.0 (the maintained library with X-learners and causal forests) does not install beside
Pulse's pinned stack (its black dependency wants pathspec >= 1.0; Pulse pins 0.12.1), so the X-learner
is written here on scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

MAX_CATEGORIES = 30  # one-hot columns per text feature; rarer values share an "infrequent" column
# Small, few trees: an uplift is the difference of two noisy fits, and deeper trees fit noise that the
# difference then ranks by. On the simulator (events/campaign_sim.py) going from 15 leaves of >= 50 rows and
# 150 rounds to this raised how much of the true effects' ranking the learners recover (noise-free: area of
# cumulative true effect, model order vs true order) from 0.63-0.69 to 0.77-0.81.
SMALL_TREES = {"learning_rate": 0.05, "max_iter": 100, "max_leaf_nodes": 5, "min_samples_leaf": 150,
               "l2_regularization": 1.0}  # fmt: skip


@dataclass
class UpliftPrediction:
    uplift: np.ndarray
    if_treated: np.ndarray  # probability (0/1 outcome) or expected value if treated
    if_control: np.ndarray


def is_binary(y: np.ndarray) -> bool:
    return bool(np.isin(np.unique(y), [0.0, 1.0]).all())


def _prep(X: pd.DataFrame) -> ColumnTransformer:
    """Numbers as they are (missing values stay missing: the boosted trees route them), text one-hot."""
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    numbers = [c for c in X.columns if c not in text]
    return ColumnTransformer(
        [
            ("numbers", "passthrough", numbers),
            (
                "text",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist", max_categories=MAX_CATEGORIES, sparse_output=False
                ),
                text,
            ),
        ]
    )


def _pipeline(X: pd.DataFrame, learner) -> Pipeline:
    return Pipeline([("prep", _prep(X)), ("model", learner)])


def _classifier(seed: int):
    return HistGradientBoostingClassifier(**SMALL_TREES, random_state=seed)


def _regressor(seed: int):
    return HistGradientBoostingRegressor(**SMALL_TREES, random_state=seed)


class _OutcomeModel:
    """The expected outcome given X: a classifier's probability for 0/1 outcomes, else a regression."""

    def __init__(self, X: pd.DataFrame, binary: bool, seed: int) -> None:
        self.binary = binary
        self.model = _pipeline(X, _classifier(seed) if binary else _regressor(seed))

    def fit(self, X, y, sample_weight=None):
        if self.binary and len(np.unique(y)) < 2:  # every customer of this group did the same thing
            self.constant = float(y[0])
            return self
        self.constant = None
        self.model.fit(X, y, model__sample_weight=sample_weight)
        return self

    def predict(self, X) -> np.ndarray:
        if self.constant is not None:
            return np.full(len(X), self.constant)
        return self.model.predict_proba(X)[:, 1] if self.binary else self.model.predict(X)


class UpliftLearner:
    algorithm = ""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: pd.DataFrame, treated: np.ndarray, y: np.ndarray) -> UpliftLearner:
        treated = np.asarray(treated, dtype=bool)
        y = np.asarray(y, dtype=float)
        self.binary = is_binary(y)
        self.treated_share = float(treated.mean())
        self.mu1 = _OutcomeModel(X, self.binary, self.seed).fit(X[treated], y[treated])
        self.mu0 = _OutcomeModel(X, self.binary, self.seed).fit(X[~treated], y[~treated])
        self._fit(X, treated, y)
        return self

    def _fit(self, X, treated, y) -> None:
        pass

    def predict(self, X: pd.DataFrame) -> UpliftPrediction:
        p1, p0 = self.mu1.predict(X), self.mu0.predict(X)
        return UpliftPrediction(self._uplift(X, p1, p0), p1, p0)

    def _uplift(self, X, p1, p0) -> np.ndarray:
        return p1 - p0


class TLearner(UpliftLearner):
    algorithm = "t_learner"


class ClassTransformation(UpliftLearner):
    """Outcome-if-treated/if-not columns come from the T-learner's models; the ranking from Z."""

    algorithm = "class_transformation"

    def _fit(self, X, treated, y) -> None:
        p = self.treated_share
        if self.binary:
            z = np.where(treated, y, 1 - y)
            weight = np.where(treated, 0.5 / p, 0.5 / (1 - p))  # as if treatment were a coin flip
            self.z_model = _pipeline(X, _classifier(self.seed)).fit(X, z, model__sample_weight=weight)
        else:
            transformed = y * (treated.astype(float) - p) / (p * (1 - p))
            self.z_model = _pipeline(X, _regressor(self.seed)).fit(X, transformed)

    def _uplift(self, X, p1, p0) -> np.ndarray:
        if self.binary:
            return 2 * self.z_model.predict_proba(X)[:, 1] - 1
        return self.z_model.predict(X)


class XLearner(UpliftLearner):
    algorithm = "x_learner"

    def _fit(self, X, treated, y) -> None:
        imputed_treated = y[treated] - self.mu0.predict(X[treated])
        imputed_control = self.mu1.predict(X[~treated]) - y[~treated]
        self.tau1 = _pipeline(X, _regressor(self.seed)).fit(X[treated], imputed_treated)
        self.tau0 = _pipeline(X, _regressor(self.seed)).fit(X[~treated], imputed_control)

    def _uplift(self, X, p1, p0) -> np.ndarray:
        # Weight each group's effect model by the other group's share: the small group's imputed effects
        # use the big group's (better) outcome model.
        g = self.treated_share
        return g * self.tau0.predict(X) + (1 - g) * self.tau1.predict(X)


LEARNERS: dict[str, type[UpliftLearner]] = {
    cls.algorithm: cls for cls in (TLearner, ClassTransformation, XLearner)
}


def learners(seed: int = 0) -> dict[str, UpliftLearner]:
    return {name: cls(seed) for name, cls in LEARNERS.items()}


def refit(learner: UpliftLearner, X, treated, y) -> UpliftLearner:
    return type(learner)(learner.seed).fit(X, treated, y)


__all__ = ["LEARNERS", "UpliftLearner", "UpliftPrediction", "is_binary", "learners", "refit"]
