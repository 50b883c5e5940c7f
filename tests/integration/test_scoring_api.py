"""GET /v1/scores/{customer_id} in `pulse serve` (PostgreSQL online store): the champion's score from
online features, its percentile in the latest batch scores, 404s, 409 for order-history baselines, and
a newly promoted champion picked up without a restart."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from pulse.collector.process import CollectorProcess
from pulse.db import engine
from pulse.features import store as feast_store
from pulse.modeling.baseline import BtydModel
from pulse.modeling.registry import ModelRun, save_runs
from pulse.modeling.tasks import PredictionTask
from pulse.scoring.batch import percentiles
from tests.integration.test_online_stores import write_snapshots

KEY = "test-write-key"
READ_KEY = "test-read-key"
D1 = datetime(2026, 5, 1, tzinfo=UTC)
FEATURES = ["orders_7d", "product_views_7d", "cart_adds_7d", "revenue_30d"]


def run_row(model_name: str, algorithm: str, features: list[str], **extra) -> ModelRun:
    return ModelRun(
        run_id=uuid.uuid4().hex,
        training_id="t",
        model_name=model_name,
        algorithm=algorithm,
        kind="classification",
        feature_service="purchase_propensity_v1",
        trained_at=datetime.now(UTC),
        data_end=D1,
        holdout_at=D1,
        horizon_days=7,
        n_train=60,
        n_holdout=0,
        features=features,
        selection_metric="auc",
        status="champion",
        is_champion=True,
        **extra,
    )


def fit(frame: pd.DataFrame, features: list[str], seed: int) -> LogisticRegression:
    y = (frame["orders_7d"] + np.random.default_rng(seed).normal(0, 2, len(frame)) > 5).astype(int)
    return LogisticRegression(max_iter=500).fit(frame[features], y)


@pytest.fixture
def served(settings, tmp_path):
    rng = np.random.default_rng(3)
    rows = [
        {
            "customer_id": f"c{i:02d}",
            "event_timestamp": D1,
            "orders_7d": int(rng.integers(0, 10)),
            "product_views_7d": int(rng.integers(0, 50)),
            "cart_adds_7d": int(rng.integers(0, 5)),
            "revenue_30d": float(rng.uniform(0, 500)),
        }
        for i in range(60)
    ]
    write_snapshots(settings, rows)
    feast_store.materialize_window(D1, D1 + timedelta(days=1), settings)
    frame = pd.DataFrame(rows)
    model = fit(frame, FEATURES, 1)
    run = run_row("purchase_propensity", "logistic_regression", FEATURES)
    save_runs([(run, model, {})], settings)
    scores = pd.Series(model.predict_proba(frame[FEATURES])[:, 1])
    pd.DataFrame(
        {
            "customer_id": frame["customer_id"],
            "model_name": run.model_name,
            "run_id": run.run_id,
            "as_of": D1,
            "score": scores,
            "percentile": percentiles(scores),
            "scored_at": datetime.now(UTC),
        }
    ).to_sql("scores", engine(settings), schema="ml", if_exists="append", index=False)
    env = {"PULSE_WRITE_KEY": KEY, "PULSE_READ_KEY": READ_KEY}
    with CollectorProcess(env, log_path=tmp_path / "collector.log") as collector:
        headers = {"Authorization": f"Bearer {READ_KEY}"}
        with httpx.Client(base_url=collector.url, timeout=30, headers=headers) as client:
            yield client, frame, model, run, scores


def test_scores_come_from_online_features_with_percentile_and_version(settings, served):
    client, frame, model, run, scores = served
    for i in (0, 7, 42):
        body = client.get(f"/v1/scores/c{i:02d}").json()
        assert body["model_version"] == run.run_id
        assert body["score"] == pytest.approx(scores[i], abs=1e-9)
        assert body["percentile"] == percentiles(scores)[i]
        assert body["feature_service"] == "purchase_propensity_v1"

    unknown = client.get("/v1/scores/nobody")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_customer"
    no_model = client.get("/v1/scores/c00", params={"model": "no_such_model"})
    assert no_model.status_code == 404 and no_model.json()["code"] == "no_model"

    # A BG/NBD champion scores from order history, which the online store does not hold.
    task = PredictionTask("churn_90d", "classification", "no_order", 90, "churn", "churn_v1", True)
    save_runs([(run_row("churn_90d", "bg_nbd", []), BtydModel(task), {})], settings)
    baseline = client.get("/v1/scores/c00", params={"model": "churn_90d"})
    assert baseline.status_code == 409 and baseline.json()["code"] == "needs_order_history"

    # The collector's real-time features come with the score.
    event = {"event": "Product Added", "userId": "c07", "properties": {"price": 10, "quantity": 2}}
    assert client.post("/v1/track", json=event, auth=(KEY, "")).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        realtime = client.get("/v1/scores/c07").json()["realtime"]
        if realtime.get("cart_value") == 20.0:
            break
        time.sleep(0.2)
    assert realtime["cart_value"] == 20.0 and realtime["events_30m_now"] == 1

    # A new champion is served within the check interval (5 s), without a restart.
    other = ["orders_7d", "cart_adds_7d"]
    new_model = fit(frame, other, 2)
    new_run = run_row("purchase_propensity", "logistic_regression", other)
    save_runs([(new_run, new_model, {})], settings)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = client.get("/v1/scores/c07").json()
        if body["model_version"] == new_run.run_id:
            break
        time.sleep(0.25)
    assert body["model_version"] == new_run.run_id
    assert body["score"] == pytest.approx(new_model.predict_proba(frame.loc[[7], other])[0, 1], abs=1e-9)
    assert body["percentile"] is None  # not batch-scored yet: no distribution to rank against
