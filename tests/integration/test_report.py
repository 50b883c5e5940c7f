"""`pulse report`'s HTML report on a real PostgreSQL, from rows inserted the way training, scoring,
segmentation and audiences write them: every section renders with a plot, an empty table says so, and the
ROC points derived from the stored deciles are the true operating points of the scores."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pulse.config import Settings
from pulse.db import engine
from pulse.modeling.evaluate import classification_metrics, regression_metrics
from pulse.modeling.uplift_metrics import metric_rows as uplift_metric_rows
from pulse.reporting import write_report
from pulse.reporting.data import load, roc_points

AS_OF = datetime(2026, 11, 20, tzinfo=UTC)
SECTIONS = {
    "performance": "Model performance",
    "roc": "ROC curve",
    "gain-lift": "Gain and lift by decile",
    "calibration": "Calibration",
    "importance": "Feature importance",
    "segments": "Segment profiles",
    "audiences": "Audience sizes",
    "lift": "Audience lift over time",
    "drift": "Drift (PSI)",
    "uplift": "Uplift models",
}
PLOTS = {  # embedded PNGs per section with the rows below
    "performance": 1,
    "roc": 1,
    "gain-lift": 1,
    "calibration": 1,
    "importance": 1,
    "segments": 2,
    "audiences": 1,
    "lift": 0,  # audiences.audience_lift is left empty
    "drift": 1,
    "uplift": 1,  # one campaign
}


def _holdout(seed: int, n: int = 997) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores with some signal; n not a multiple of 10 so decile sizes differ by one."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    score = 1 / (1 + np.exp(-(latent - 1.5)))
    label = (rng.random(n) < 1 / (1 + np.exp(-(1.8 * latent - 1.8)))).astype(int)
    return label, score


def _run(conn, run_id, task, algorithm, kind, status, holdout, importance=None):
    metric = "auc" if kind == "classification" else "r2"
    conn.execute(
        """
        insert into ml.model_runs (run_id, training_id, model_name, algorithm, kind, feature_service,
            trained_at, data_end, holdout_at, horizon_days, n_train, n_holdout, features, selection_metric,
            backtest_score, holdout_score, status, is_champion, reason, reference)
        values (%s, 'train-1', %s, %s, %s, 'purchase_propensity_v1', %s, %s, %s, 14, 5000, %s, %s, %s,
            %s, %s, %s, %s, %s, %s)
        """,
        (
            run_id,
            task,
            algorithm,
            kind,
            AS_OF,
            AS_OF,
            AS_OF - timedelta(days=14),
            997,
            json.dumps(["orders_30d", "recency_days", "sessions_7d"]),
            metric,
            holdout[metric] - 0.01,
            holdout[metric],
            status,
            status == "champion",
            "best backtest" if status == "champion" else None,
            json.dumps({"importance": importance}) if importance else None,
        ),
    )


def _metrics(conn, run_id, rows):
    with conn.cursor() as cur:
        cur.executemany(
            "insert into ml.model_metrics (run_id, fold, metric, bucket, value) values (%s, 'holdout', %s, %s, %s)",
            [(run_id, metric, bucket, value) for metric, bucket, value in rows],
        )


def _insert(conn, table: str, row: dict) -> None:
    """Insert `row` as given: a column the table lacks fails the test (the report reads these names)."""
    quoted = ", ".join(f'"{c}"' for c in row)
    conn.execute(
        f"insert into {table} ({quoted}) values ({', '.join(['%s'] * len(row))})", list(row.values())
    )


def _audiences(conn) -> None:
    """One audience: its definition, 30 current members and their history.

    audiences.audience_members is a dbt model, so a fresh warehouse lacks it: created here as dbt would."""
    _insert(
        conn,
        "audiences.audience_definitions",
        {
            "audience_name": "likely_buyers",
            "description": "Top decile of purchase propensity",
            "rule": "propensity_percentile >= 91",
            "rank_by": "propensity",
            "holdout_pct": 10,
            "max_size": 1000,
            "outcome_days": 14,
            "synced_at": AS_OF,
        },
    )
    conn.execute(
        "create table if not exists audiences.audience_members (audience_name text, customer_id text, "
        '"group" text, score double precision, percentile integer, as_of timestamptz)'
    )
    for i in range(30):
        group = "holdout" if i % 10 == 0 else "treatment"
        member = {"audience_name": "likely_buyers", "customer_id": f"c{i}", "group": group}
        _insert(
            conn,
            "audiences.audience_members",
            {**member, "score": 0.5 + i / 100, "percentile": 95, "as_of": AS_OF},
        )
        entered = AS_OF - timedelta(days=i % 3)
        _insert(conn, "audiences.audience_membership_history", {**member, "entered_at": entered})
    _insert(  # one who left
        conn,
        "audiences.audience_membership_history",
        {
            "audience_name": "likely_buyers",
            "customer_id": "gone",
            "group": "treatment",
            "entered_at": AS_OF - timedelta(days=3),
            "exited_at": AS_OF - timedelta(days=1),
        },
    )


@pytest.fixture
def warehouse(settings: Settings) -> dict:
    """Runs, metrics, drift, segments and one audience; audience_lift stays empty."""
    label, score = _holdout(1)
    challenger_label, challenger_score = (
        label,
        np.clip(score + np.random.default_rng(2).normal(0, 0.2, len(score)), 0, 1),
    )
    rows = classification_metrics(label, score)
    challenger = classification_metrics(challenger_label, challenger_score) + [
        ("true_probability_auc", 0, 0.83)
    ]
    revenue = np.random.default_rng(3).gamma(1.0, 40.0, 500) * (np.random.default_rng(4).random(500) < 0.3)
    value_rows = regression_metrics(revenue, revenue * 0.6 + 5)
    with psycopg.connect(settings.database_url) as conn:
        scalar = dict(((m, v) for m, b, v in rows if b == 0))
        _run(
            conn,
            "pp-lr",
            "purchase_propensity",
            "logistic_regression",
            "classification",
            "champion",
            scalar,
            {"orders_30d": 0.061, "recency_days": 0.044, "sessions_7d": 0.012},
        )
        _run(
            conn,
            "pp-gb",
            "purchase_propensity",
            "gradient_boosting",
            "classification",
            "challenger",
            dict(((m, v) for m, b, v in challenger if b == 0)),
        )
        _run(conn, "pp-bgnbd", "purchase_propensity", "bg_nbd", "classification", "baseline", {"auc": 0.7})
        _run(
            conn,
            "value-lin",
            "value_90d",
            "linear_regression",
            "regression",
            "champion",
            dict(((m, v) for m, b, v in value_rows if b == 0)),
            {"orders_30d": 120.0, "recency_days": 15.5},
        )
        _metrics(conn, "pp-lr", rows)
        _metrics(conn, "pp-gb", challenger)
        _metrics(conn, "pp-bgnbd", [("auc", 0, 0.7), ("pr_auc", 0, 0.3)])
        _metrics(conn, "value-lin", value_rows)
        with conn.cursor() as cur:
            cur.executemany(
                "insert into ml.score_drift (run_id, as_of, variable, psi, is_drifted) values (%s, %s, %s, %s, %s)",
                [
                    ("pp-lr", AS_OF - timedelta(days=1), "score", 0.03, False),
                    ("pp-lr", AS_OF - timedelta(days=1), "orders_30d", 0.05, False),
                    ("pp-lr", AS_OF, "score", 0.08, False),
                    ("pp-lr", AS_OF, "orders_30d", 0.27, True),
                ],
            )
            cur.executemany(
                "insert into ml.segment_profiles (as_of, cluster, cluster_label, customers, profile) values (%s, %s, %s, %s, %s)",
                [
                    (AS_OF, 0, "browsers", 420, json.dumps({"orders_30d": 0.1, "recency_days": 21.0})),
                    (AS_OF, 1, "loyal buyers", 80, json.dumps({"orders_30d": 2.4, "recency_days": 3.5})),
                ],
            )
            cur.executemany(
                "insert into ml.segments (customer_id, as_of, rfm_segment, cluster, cluster_label) values (%s, %s, %s, %s, %s)",
                [
                    (f"c{i}", AS_OF, "champions" if i < 5 else "hibernating", int(i < 5), "x")
                    for i in range(20)
                ],
            )
            _audiences(conn)
            _uplift(cur)
    return {"label": label, "score": score, "metrics": rows}


def _uplift(cur) -> None:
    """One campaign: two learners' held-out metrics, as `pulse train-uplift` writes them."""
    rng = np.random.default_rng(5)
    treated = rng.random(600) < 0.5
    score = rng.random(600)
    outcome = (rng.random(600) < 0.1 + 0.2 * treated * (score > 0.7)).astype(float)
    cur.execute("insert into ml.campaigns values ('spring', 'file:spring.csv', now(), 600, 0, 0, true)")
    for algorithm, noise, champion in (("t_learner", 0.1, True), ("x_learner", 0.5, False)):
        rows = uplift_metric_rows(outcome, treated, score + rng.normal(0, noise, 600), rounds=20)
        cur.executemany(
            "insert into ml.uplift_metrics values ('spring', 'u1', %s, %s, %s, %s, %s, now())",
            [(algorithm, champion, m, b, v) for m, b, v in rows],
        )


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def test_report_renders_every_section(settings: Settings, warehouse: dict) -> None:
    path = write_report(settings)

    assert path == settings.home_dir / "reports" / "pulse_report.html"
    html = path.read_text()
    for section_id, title in SECTIONS.items():
        body = _section(html, section_id)
        assert f"<h2>{title}</h2>" in body
        images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', body)
        assert len(images) == PLOTS[section_id], section_id
        for image in images:
            assert base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n")
        if PLOTS[section_id]:
            assert "Not available yet" not in body, section_id
            assert '<table class="dataframe data">' in body, section_id
    lift = _section(html, "lift")
    assert "Not available yet: audiences.audience_lift has no rows yet." in lift
    # The tables behind the plots: the champion's and challenger's algorithms, the drifted feature.
    assert "gradient_boosting" in _section(html, "performance")
    assert "orders_30d" in _section(html, "drift")
    assert "loyal buyers" in _section(html, "segments")
    assert "t_learner" in _section(html, "uplift")
    assert "<script" not in html  # self-contained and static


def test_roc_points_are_the_scores_operating_points(settings: Settings, warehouse: dict) -> None:
    """The derived ROC points equal TPR/FPR of targeting the top 1..10 deciles of the actual scores."""
    # The trainer stores its own ROC points: those are drawn when present.
    with engine(settings).connect() as conn:
        stored = roc_points(load(conn))
    assert list(stored[stored["model_name"] == "purchase_propensity"]["source"].unique()) == ["stored"]
    # Without them (runs from before they were stored), the points are derived from the deciles.
    with engine(settings).begin() as conn:
        conn.execute(sa.text("delete from ml.model_metrics where metric in ('roc_fpr', 'roc_tpr')"))
    with engine(settings).connect() as conn:
        points = roc_points(load(conn))
    ours = points[points["model_name"] == "purchase_propensity"]
    assert list(ours["source"].unique()) == ["deciles"]
    label, score = warehouse["label"], warehouse["score"]
    order = np.argsort(-score, kind="stable")
    n, positives = len(label), label.sum()
    expected = [(0.0, 0.0)]
    for d in range(1, 11):
        top = order[: -(-d * n // 10)]
        caught = label[top].sum()
        expected.append(((len(top) - caught) / (n - positives), caught / positives))
    np.testing.assert_allclose(ours[["fpr", "tpr"]].to_numpy(), np.array(expected), atol=1e-9)
    # The value task is a regression: it has no ROC.
    assert "value_90d" not in set(points["model_name"])


def test_empty_warehouse_and_cli(settings: Settings) -> None:
    """With Pulse's tables empty every section says so; `pulse report` prints the file's path last."""
    from pulse.cli import app

    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last == str(settings.home_dir / "reports" / "pulse_report.html")
    html = (settings.home_dir / "reports" / "pulse_report.html").read_text()
    for section_id in SECTIONS:
        assert "Not available yet" in _section(html, section_id), section_id
    assert "data:image/png" not in html
    report = settings.home_dir / "reports" / "pulse_report.html"
    report.unlink()
    assert CliRunner().invoke(app, ["report", "--no-html"]).exit_code == 0
    assert not report.exists()
