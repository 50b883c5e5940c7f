"""Metrics for every model on every fold: the numbers marketers read in `ml.model_metrics`.

Each function returns rows of (metric, bucket, value): bucket 0 for scalar metrics, 1..10 for deciles
(lift, cumulative gain) and calibration bins.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
    roc_curve,
)

MetricRow = tuple[str, int, float]
DECILES = 10


def _deciles(score: np.ndarray) -> np.ndarray:
    """Decile 1 = the top 10% of scores. Ties broken by position so deciles have equal sizes."""
    order = np.argsort(-score, kind="stable")
    ranks = np.empty(len(score), dtype=int)
    ranks[order] = np.arange(len(score))
    return ranks * DECILES // len(score) + 1


def lift_and_gain(outcome: np.ndarray, score: np.ndarray) -> list[MetricRow]:
    """Per decile of score: lift (decile outcome mean / overall mean) and cumulative share of outcome."""
    outcome = np.asarray(outcome, dtype=float)
    decile = _deciles(np.asarray(score, dtype=float))
    total, mean = outcome.sum(), outcome.mean()
    rows: list[MetricRow] = []
    cumulative = 0.0
    for d in range(1, DECILES + 1):
        in_decile = outcome[decile == d]
        cumulative += in_decile.sum()
        rows.append(("lift", d, float(in_decile.mean() / mean) if mean > 0 and len(in_decile) else 0.0))
        rows.append(("cumulative_gain", d, float(cumulative / total) if total > 0 else 0.0))
    return rows


def calibration_bins(label: np.ndarray, probability: np.ndarray, bins: int = 10) -> list[MetricRow]:
    """Equal-width probability bins: mean predicted, observed rate and count per bin."""
    index = np.minimum((np.asarray(probability) * bins).astype(int), bins - 1)
    rows: list[MetricRow] = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append(("calibration_predicted", b + 1, float(probability[mask].mean())))
            rows.append(("calibration_observed", b + 1, float(label[mask].mean())))
            rows.append(("calibration_count", b + 1, float(mask.sum())))
    return rows


def roc_points(label: np.ndarray, probability: np.ndarray, points: int = 50) -> list[MetricRow]:
    """The ROC curve thinned to at most `points` points (bucket = point number), for plotting."""
    fpr, tpr, _ = roc_curve(label, probability)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).round().astype(int))
    return [
        row
        for i, k in enumerate(keep, 1)
        for row in (("roc_fpr", i, float(fpr[k])), ("roc_tpr", i, float(tpr[k])))
    ]


def classification_metrics(label: np.ndarray, probability: np.ndarray) -> list[MetricRow]:
    label = np.asarray(label, dtype=int)
    probability = np.clip(np.asarray(probability, dtype=float), 1e-6, 1 - 1e-6)
    rows: list[MetricRow] = [
        ("auc", 0, float(roc_auc_score(label, probability))),
        ("pr_auc", 0, float(average_precision_score(label, probability))),
        ("log_loss", 0, float(log_loss(label, probability, labels=[0, 1]))),
        ("brier", 0, float(brier_score_loss(label, probability))),
        ("positive_rate", 0, float(label.mean())),
        ("n", 0, float(len(label))),
    ]
    return (
        rows
        + lift_and_gain(label, probability)
        + calibration_bins(label, probability)
        + roc_points(label, probability)
    )


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> list[MetricRow]:
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    rows: list[MetricRow] = [
        ("r2", 0, float(r2_score(actual, predicted))),
        ("rmse", 0, float(np.sqrt(mean_squared_error(actual, predicted)))),
        ("mae", 0, float(mean_absolute_error(actual, predicted))),
        ("mean_actual", 0, float(actual.mean())),
        ("mean_predicted", 0, float(predicted.mean())),
        ("n", 0, float(len(actual))),
    ]
    # Does ranking by predicted value find the valuable customers? Same lift/gain as for propensity.
    return rows + lift_and_gain(actual, predicted)


def metrics_for(kind: str, actual: np.ndarray, predicted: np.ndarray) -> list[MetricRow]:
    return (
        classification_metrics(actual, predicted)
        if kind == "classification"
        else regression_metrics(actual, predicted)
    )


def scalar(rows: list[MetricRow], metric: str) -> float:
    return next(value for name, bucket, value in rows if name == metric and bucket == 0)


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected`, on `expected`'s quantile bins."""
    expected = np.asarray(expected, dtype=float)
    actual = np.asarray(actual, dtype=float)
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:  # (nearly) constant reference: compare the share at the constant
        edges = np.array([-np.inf, edges[0], np.inf]) if len(edges) else np.array([-np.inf, np.inf])
    else:
        edges[0], edges[-1] = -np.inf, np.inf
    e = np.histogram(expected, edges)[0] / max(len(expected), 1)
    a = np.histogram(actual, edges)[0] / max(len(actual), 1)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))
