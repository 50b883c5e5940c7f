"""Train every prediction task: compare algorithms on a rolling time-split backtest, keep a champion.

For each task (modeling/tasks.py) the split is planned from the snapshot mart (datasets.plan_folds):
backtest folds a week apart, then the holdout snapshot `horizon` days before the end of the data. Every
candidate (modeling/candidates.py) and the BG/NBD baseline is fitted on the snapshots whose labels close
before each fold's cutoff and evaluated on the cutoff snapshot. A challenger replaces the champion only
if its mean backtest score beats the champion algorithm's by `PROMOTION_MARGIN`; every run is kept.
The champion is then refitted on the newest labelled snapshots for scoring.

A task without enough history or enough positives and negatives is not trained: it is recorded as
ineligible with the reason, and the BG/NBD baseline (or RFM) stands in as its champion.

Plainly broken data is refused before anything is recorded (`TrainingDataError`, and every champion
stays): every feature null or constant, far fewer holdout rows or positives than the champion's own run
saw, a task the champion trained on that now lacks the data to train at all, or a champion whose own
backtest score collapsed since its run. Such a change is a data alarm (a half-built mart, a broken
upstream), not a reason to promote another algorithm.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.inspection import permutation_importance

from pulse.config import Settings, get_settings
from pulse.features.snapshots import snapshot_bounds
from pulse.locks import marts_lock
from pulse.modeling import candidates as algos
from pulse.modeling.baseline import BtydModel, RfmModel, load_orders
from pulse.modeling.datasets import (
    FeatureCache,
    NotEnoughDataError,
    check_eligible,
    feature_columns,
    labels,
    plan_folds,
    sample_rows,
)
from pulse.modeling.evaluate import MetricRow, metrics_for, scalar
from pulse.modeling.registry import ModelRun, champion_run, holdout_metric, save_runs
from pulse.modeling.tasks import PROPENSITY, PredictionTask, default_tasks

log = logging.getLogger(__name__)

PROMOTION_MARGIN = {"auc": 0.005, "r2": 0.01}  # a challenger must beat the champion by this on the backtest
REFERENCE_SAMPLE = 2000
TOP_FEATURES = 5
# Data alarms (see the module doc): a holdout with less than this share of the rows or positives the
# champion's run had, or a champion algorithm whose backtest fell by more than this since its run.
MIN_SHARE_OF_LAST_RUN = 0.5
COLLAPSE = {"auc": 0.1, "r2": 0.2}

__all__ = ["NotEnoughDataError", "TaskOutcome", "TrainingDataError", "train"]


class TrainingDataError(RuntimeError):
    """The training data looks broken (or a champion collapsed): nothing was trained or promoted."""


@dataclass
class TaskOutcome:
    task: PredictionTask
    champion: ModelRun | None
    runs: list[ModelRun] = field(default_factory=list)
    holdout: dict[str, float] = field(default_factory=dict)  # champion's scalar holdout metrics
    reason: str | None = None
    # What `train` records once every task passed its checks: (run, model, metrics) per run.
    pending: list = field(default_factory=list, repr=False)
    alarm: str | None = None  # why this task's data looks broken (nothing is recorded then)


@dataclass
class _Candidate:
    algorithm: str
    model: object  # unfitted pipeline, or a baseline factory
    metrics: dict[str, list[MetricRow]] = field(default_factory=dict)
    n_train: int = 0
    n_holdout: int = 0

    def score(self, metric: str, folds: list[str]) -> float | None:
        values = [scalar(self.metrics[f], metric) for f in folds if f in self.metrics]
        return float(np.mean(values)) if values else None

    def rank(self, metric: str, folds: list[str]) -> float:
        """`score` for comparing candidates: one without a score ranks last."""
        score = self.score(metric, folds)
        return -np.inf if score is None else score


def train(
    settings: Settings | None = None,
    truth_path: Path | None = None,
    tasks: list[PredictionTask] | None = None,
    progress=None,
) -> list[TaskOutcome]:
    """Train every task; return what happened to each (champion, runs, or why not).

    Reads the marts under the shared marts lock (a build in progress is waited for). Records nothing,
    and raises TrainingDataError naming each alarm, if any task's data looks broken.
    """
    settings = settings or get_settings()
    tasks = tasks or default_tasks(settings)
    with marts_lock("shared", "training", settings):
        first, last = snapshot_bounds(settings)
        cache = FeatureCache(settings)
        orders = load_orders(settings)
        training_id = f"train-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        truth = pd.read_csv(truth_path) if truth_path else None
        outcomes = []
        for task in tasks:
            if progress:
                progress(task.name)
            outcomes.append(_train_task(task, first, last, cache, orders, training_id, truth, settings))
    alarms = [f"{o.task.name}: {o.alarm}" for o in outcomes if o.alarm]
    if alarms:
        log.error("training refused its data: %s", "; ".join(alarms))
        raise TrainingDataError(
            "training refused: the data looks broken, so no model was recorded and every champion stays. "
            + "; ".join(alarms)
            + ". Check the last dbt build (marts.customer_features, marts.orders) before training again."
        )
    for outcome in outcomes:
        save_runs(outcome.pending, settings)
    return outcomes


def _data_alarm(task, data, features, holdout_rows, incumbent, settings) -> str | None:
    """Why this task's training data looks broken, or None."""
    if features and all(data[c].nunique(dropna=True) <= 1 for c in features):
        return f"every feature is null or constant over {len(data):,} rows"
    if incumbent is None or not incumbent.n_holdout:
        return None
    if len(holdout_rows) < MIN_SHARE_OF_LAST_RUN * incumbent.n_holdout:
        return (
            f"the holdout has {len(holdout_rows):,} rows; the champion's run ({incumbent.run_id}) had "
            f"{incumbent.n_holdout:,}"
        )
    rate = holdout_metric(incumbent.run_id, "positive_rate", settings)
    if task.kind == "classification" and rate:
        before, now = rate * incumbent.n_holdout, float(holdout_rows["label"].sum())
        if now < MIN_SHARE_OF_LAST_RUN * before:
            return f"the holdout has {now:,.0f} positives; the champion's run ({incumbent.run_id}) had {before:,.0f}"
    return None


def _collapse(task, scored, folds, incumbent) -> str | None:
    """The champion's algorithm scoring far below its own recorded backtest: a data alarm."""
    if incumbent is None or incumbent.backtest_score is None or not incumbent.n_train:
        return None
    metric = task.selection_metric
    defender = next((c for c in scored if c.algorithm == incumbent.algorithm), None)
    now = defender.score(metric, folds) if defender else None
    if now is None or now < incumbent.backtest_score - COLLAPSE[metric]:
        shown = "no score" if now is None else f"{now:.4f}"
        return (
            f"the champion {incumbent.algorithm}'s backtest {metric} fell from {incumbent.backtest_score:.4f} "
            f"to {shown}"
        )
    return None


def _train_task(task, first, last, cache, orders, training_id, truth, settings) -> TaskOutcome:
    incumbent = champion_run(task.name, settings)
    try:
        folds = plan_folds(first, last, task.horizon_days)
        evaluation = [f for f in folds if f.name != "final"]
        snapshots = sorted({s for f in folds for s in f.train_snapshots} | {f.cutoff for f in evaluation})
        data = cache.get(labels(task, snapshots, settings), task.feature_service)
        holdout = evaluation[-1]
        check_eligible(
            task, data.loc[data["event_timestamp"].isin(holdout.train_snapshots), "label"], "the training set"
        )
        check_eligible(task, data.loc[data["event_timestamp"] == holdout.cutoff, "label"], "the holdout set")
    except NotEnoughDataError as error:
        if incumbent is not None and incumbent.n_train:
            return TaskOutcome(
                task, None, alarm=f"{error}, yet the champion {incumbent.run_id} was trained on it"
            )
        return _fallback(task, first, last, orders, training_id, str(error))

    features = feature_columns(data)
    alarm = _data_alarm(
        task, data, features, data[data["event_timestamp"] == holdout.cutoff], incumbent, settings
    )
    if alarm:
        return TaskOutcome(task, None, alarm=alarm)
    pool = [_Candidate(name, model) for name, model in algos.candidates(task.kind).items()]
    pool.append(_Candidate(BtydModel.algorithm, BtydModel(task)))
    for fold in evaluation:
        train = sample_rows(data[data["event_timestamp"].isin(fold.train_snapshots)])
        test = data[data["event_timestamp"] == fold.cutoff]
        try:
            check_eligible(task, train["label"], f"{fold.name} training")
            check_eligible(task, test["label"], f"{fold.name} evaluation")
        except NotEnoughDataError as error:
            log.info("skipping %s of %s: %s", fold.name, task.name, error)
            continue
        for candidate in pool:
            try:
                prediction = _fit_predict(candidate, task, train, test, features, orders, fold.cutoff)
            except ValueError as error:  # e.g. the baseline has too few buyers this early
                log.info("%s on %s of %s: %s", candidate.algorithm, fold.name, task.name, error)
                continue
            candidate.metrics[fold.name] = metrics_for(task.kind, test["label"].to_numpy(), prediction)
            if fold.name == "holdout":
                candidate.n_train, candidate.n_holdout = len(train), len(test)
    if truth is not None and task.name == PROPENSITY:
        _add_truth(pool, data[data["event_timestamp"] == holdout.cutoff], truth, holdout.cutoff)

    backtest_folds = [f.name for f in evaluation if f.name != "holdout"] or ["holdout"]
    scored = [c for c in pool if c.score(task.selection_metric, backtest_folds) is not None]
    alarm = _collapse(task, scored, backtest_folds, incumbent)
    if alarm:
        return TaskOutcome(task, None, alarm=alarm)
    best, reason = _select(task, scored, backtest_folds, incumbent)

    final = next(f for f in folds if f.name == "final")
    final_rows = sample_rows(data[data["event_timestamp"].isin(final.train_snapshots)])
    champion_model = _final_fit(best, task, final_rows, features, orders, last)
    holdout_rows = data[data["event_timestamp"] == holdout.cutoff]

    runs = []
    for candidate in scored:
        is_best = candidate is best
        run = _new_run(
            task,
            candidate.algorithm,
            training_id,
            last,
            holdout_at=holdout.cutoff,
            n_train=candidate.n_train,
            n_holdout=candidate.n_holdout,
            features=features,
            backtest_score=candidate.score(task.selection_metric, backtest_folds),
            holdout_score=candidate.score(task.selection_metric, ["holdout"]),
            status="champion"
            if is_best
            else ("baseline" if candidate.algorithm == BtydModel.algorithm else "challenger"),
            is_champion=is_best,
            reason=reason if is_best else None,
        )
        model = champion_model if is_best else _holdout_model(candidate)
        if is_best:
            run.reference = _reference(candidate, model, task, holdout_rows, features, orders, last)
        runs.append((run, model, candidate.metrics))
    champion = next(r for r, _, _ in runs if r.is_champion)
    holdout_metrics = {m: v for m, b, v in best.metrics.get("holdout", []) if b == 0}
    return TaskOutcome(task, champion, [r for r, _, _ in runs], holdout_metrics, reason, pending=runs)


def _fit_predict(candidate, task, train, test, features, orders, cutoff) -> np.ndarray:
    if isinstance(candidate.model, BtydModel):
        model = BtydModel(task).fit(orders, cutoff)
        candidate.fitted = model
        return model.predict(test["customer_id"], orders, cutoff)
    model = clone(candidate.model).fit(train[features], train["label"])
    candidate.fitted = model
    return algos.predict(model, test[features], task.kind)


def _holdout_model(candidate):
    # Every run keeps a loadable model: challengers keep their holdout fit.
    return getattr(candidate, "fitted", None)


def _final_fit(best, task, rows, features, orders, last):
    if isinstance(best.model, BtydModel):
        return BtydModel(task).fit(orders, last)
    return clone(best.model).fit(rows[features], rows["label"])


def _select(
    task, scored: list[_Candidate], folds: list[str], incumbent: ModelRun | None
) -> tuple[_Candidate, str]:
    """The best candidate, unless the incumbent champion's algorithm is within the promotion margin."""
    metric = task.selection_metric
    ranked = sorted(scored, key=lambda c: c.rank(metric, folds), reverse=True)
    best = ranked[0]
    if incumbent is None or incumbent.algorithm == best.algorithm:
        why = "first champion" if incumbent is None else f"{best.algorithm} stays champion"
        return best, f"{why}: best mean backtest {metric} {best.score(metric, folds):.4f}"
    defender = next((c for c in scored if c.algorithm == incumbent.algorithm), None)
    margin = PROMOTION_MARGIN[metric]
    if defender is None or best.rank(metric, folds) >= defender.rank(metric, folds) + margin:
        return best, (
            f"{best.algorithm} replaces {incumbent.algorithm}: backtest {metric} "
            f"{best.score(metric, folds):.4f} vs {defender.score(metric, folds) if defender else float('nan'):.4f} "
            f"(margin {margin})"
        )
    return defender, (
        f"{incumbent.algorithm} stays champion: challenger {best.algorithm} backtest {metric} "
        f"{best.score(metric, folds):.4f} does not beat {defender.score(metric, folds):.4f} by {margin}"
    )


def _add_truth(pool, holdout_rows: pd.DataFrame, truth: pd.DataFrame, holdout_at) -> None:
    """AUC of the simulator's true probabilities on the same holdout customers and labels."""
    from sklearn.metrics import roc_auc_score

    window_start = pd.to_datetime(truth["window_start"].iloc[0], utc=True)
    if window_start != pd.Timestamp(holdout_at):
        raise ValueError(
            f"the truth file's label window starts {window_start}, the holdout snapshot is {holdout_at}: "
            "simulate with the same --label-days and end date"
        )
    joined = holdout_rows[["customer_id", "label"]].merge(
        truth[["customer_id", "true_probability"]], on="customer_id"
    )
    value = float(roc_auc_score(joined["label"], joined["true_probability"]))
    for candidate in pool:
        if "holdout" in candidate.metrics:
            candidate.metrics["holdout"].append(("true_probability_auc", 0, value))


def _reference(candidate, model, task, holdout_rows, features, orders=None, as_of=None) -> dict:
    """What drift is measured against: the deployed model's own scores on the holdout snapshot, and the
    most important features. Not the holdout fit's scores: those come from a different model, so every
    scoring run would report drift even when nothing changed."""
    rng = np.random.default_rng(0)
    if isinstance(model, BtydModel):
        scores = model.predict(holdout_rows["customer_id"], orders, as_of)
    else:
        scores = algos.predict(model, holdout_rows[features], task.kind)
    reference: dict = {
        # not rounded: scores take few distinct values, and a rounded copy falls on the other side of a
        # bin edge than the same score does when scored again (PSI 1.07 on identical data)
        "score": rng.choice(scores, min(len(scores), REFERENCE_SAMPLE), replace=False).tolist()
    }
    if isinstance(candidate.model, BtydModel):
        return reference
    sample = holdout_rows.iloc[rng.choice(len(holdout_rows), min(len(holdout_rows), 1000), replace=False)]
    scoring = "roc_auc" if task.kind == "classification" else "r2"
    result = permutation_importance(
        model, sample[features], sample["label"], scoring=scoring, n_repeats=2, random_state=0
    )
    importance = dict(zip(features, result.importances_mean.round(6).tolist(), strict=True))
    top = sorted(importance, key=lambda name: importance[name], reverse=True)[:TOP_FEATURES]
    reference["importance"] = importance
    reference["features"] = {
        name: holdout_rows[name]
        .astype(float)
        .sample(min(len(holdout_rows), REFERENCE_SAMPLE), random_state=0)
        .tolist()
        for name in top
    }
    return reference


def _new_run(
    task: PredictionTask, algorithm: str, training_id: str, data_end: datetime, **fields
) -> ModelRun:
    now = datetime.now(UTC)
    return ModelRun(
        run_id=f"{task.name}-{algorithm}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        training_id=training_id,
        model_name=task.name,
        algorithm=algorithm,
        kind=task.kind,
        feature_service=task.feature_service,
        trained_at=now,
        data_end=data_end,
        horizon_days=task.horizon_days,
        selection_metric=task.selection_metric,
        **fields,
    )


def _fallback(task, first, last, orders, training_id, reason) -> TaskOutcome:
    """Not eligible for ML: record why, and let BG/NBD (or RFM) stand in as the champion."""
    model: BtydModel | RfmModel
    try:
        model, algorithm = BtydModel(task).fit(orders, last), BtydModel.algorithm
    except ValueError as error:
        model, algorithm = RfmModel(task), RfmModel.algorithm
        reason = f"{reason}; {error}"
    run = _new_run(
        task,
        algorithm,
        training_id,
        last,
        holdout_at=last,
        n_train=0,
        n_holdout=0,
        features=[],
        status="champion",
        is_champion=True,
        reason=f"not eligible for ML ({reason}); {algorithm} baseline stands in",
    )
    return TaskOutcome(task, run, [run], {}, run.reason, pending=[(run, model, {})])
