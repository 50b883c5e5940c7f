"""Build the HTML report: one section per question, each with its plots (inline PNGs) and the tables
behind them, rendered with Jinja2 into a single self-contained file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.reporting import plots
from pulse.reporting.data import ROC_FPR_METRIC, ROC_TPR_METRIC, ReportData, load, roc_points

REPORT_NAME = "pulse_report.html"
UNAVAILABLE = "Not available yet"


@dataclass
class Plot:
    caption: str
    png: str  # base64


@dataclass
class Section:
    id: str
    title: str
    text: str = ""
    plots: list[Plot] = field(default_factory=list)
    tables: list[tuple[str, Markup]] = field(default_factory=list)
    unavailable: str | None = None  # shown instead of plots and tables


def _table(frame: pd.DataFrame, digits: int = 3) -> Markup:
    def fmt(value: float) -> str:
        return f"{value:.{digits}f}"

    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M")
    # to_html escapes cell text; the markup it returns is safe to embed.
    return Markup(shown.to_html(index=False, float_format=fmt, na_rep="–", border=0, classes="data"))


def _missing(data: ReportData, *tables: str) -> str:
    """Why a section is empty: which of its tables do not exist, or that they hold no rows."""
    absent = [t for t in tables if t in data.missing]
    if absent:
        return f"{UNAVAILABLE}: {', '.join(absent)} does not exist in this warehouse."
    return f"{UNAVAILABLE}: {', '.join(tables)} has no rows yet."


def _add(section: Section, caption: str, png: str | None) -> None:
    if png:
        section.plots.append(Plot(caption, png))


def _performance(data: ReportData) -> Section:
    section = Section(
        "performance",
        "Model performance",
        "Each prediction task's champion and the challengers of its latest training run, on the holdout "
        "snapshot (the baseline is the buy-till-you-die model). Classification tasks show AUC and PR-AUC, "
        "regression tasks R². Promotion is decided on the backtest score, not the holdout.",
    )
    if data.runs.empty:
        section.unavailable = _missing(data, "ml.model_runs")
        return section
    _add(
        section,
        "Holdout AUC and PR-AUC (R² for value) per task",
        plots.model_performance(data.runs, data.scalars),
    )
    metrics = (
        data.scalars.pivot_table(index="run_id", columns="metric", values="value").reset_index()
        if not data.scalars.empty
        else pd.DataFrame(columns=["run_id"])
    )
    table = data.runs.merge(metrics, on="run_id", how="left")
    columns = ["model_name", "algorithm", "status", "selection_metric", "backtest_score", "holdout_score"]
    columns += [
        m
        for m in ("auc", "pr_auc", "true_probability_auc", "log_loss", "brier", "positive_rate", "r2", "rmse")
        if m in table.columns
    ]
    columns += ["n_train", "n_holdout", "reason"]
    section.tables.append(
        ("ml.model_runs with holdout metrics (ml.model_metrics, fold 'holdout')", _table(table[columns]))
    )
    return section


def _roc(data: ReportData) -> Section:
    section = Section(
        "roc",
        "ROC curve",
        f"The trainer stores each model's holdout ROC curve ('{ROC_FPR_METRIC}'/'{ROC_TPR_METRIC}' rows in "
        "ml.model_metrics, thinned to at most 50 points); that is what is drawn, with the stored AUC in the "
        "legend. For runs from before those rows existed, the points are derived exactly from the stored "
        "gain by decile: targeting the top d deciles has a true-positive rate equal to the cumulative gain "
        "and a false-positive rate of (share targeted − positive rate × gain) / (1 − positive rate).",
    )
    points = roc_points(data)
    if points.empty:
        section.unavailable = (
            _missing(data, "ml.model_metrics")
            if data.runs.empty
            else (
                f"{UNAVAILABLE}: no classification champion has holdout cumulative gain, positive rate and n "
                "in ml.model_metrics."
            )
        )
        return section
    champions = data.runs[data.runs["is_champion"]]
    stored = data.scalars[
        (data.scalars["metric"] == "auc") & data.scalars["run_id"].isin(champions["run_id"])
    ]
    aucs = dict(
        zip(champions.set_index("run_id").loc[stored["run_id"], "model_name"], stored["value"], strict=True)
    )
    _add(
        section,
        "Holdout ROC curve of each classification champion",
        plots.roc_curves(points, aucs),
    )
    summary = []
    for task, group in points.groupby("model_name", sort=True):
        curve = pd.concat([group, pd.DataFrame([{"fpr": 1.0, "tpr": 1.0}])]).sort_values(["fpr", "tpr"])
        fpr, tpr = curve["fpr"].to_numpy(), curve["tpr"].to_numpy()
        area = float(((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2).sum())
        summary.append(
            {
                "model_name": task,
                "source": group["source"].iloc[0],
                "stored_auc": aucs.get(task),
                "area_under_the_points": area,
            }
        )
    section.tables.append(("Stored AUC and the area under the plotted points", _table(pd.DataFrame(summary))))
    section.tables.append(("ROC points", _table(points)))
    return section


def _gain(data: ReportData) -> Section:
    section = Section(
        "gain-lift",
        "Gain and lift by decile",
        "Champions on the holdout: customers ranked by score and cut into ten equal deciles (1 = highest "
        "scores). Lift is a decile's outcome rate over the overall rate; cumulative gain is the share of "
        "all outcomes (orders, churners or revenue) found in the top deciles.",
    )
    if data.deciles.empty:
        section.unavailable = _missing(data, "ml.model_metrics")
        return section
    _add(section, "Cumulative gain and lift of each champion", plots.gain_and_lift(data.deciles))
    wide = data.deciles.pivot_table(
        index=["model_name", "bucket"], columns="metric", values="value"
    ).reset_index()
    wide = wide.rename(columns={"bucket": "decile"})
    section.tables.append(("ml.model_metrics: lift and cumulative_gain, fold 'holdout'", _table(wide)))
    return section


def _calibration(data: ReportData) -> Section:
    section = Section(
        "calibration",
        "Calibration",
        "Classification champions on the holdout: predicted probabilities in ten equal-width bins against "
        "the rate observed in each bin. Points on the diagonal mean the probabilities can be read as such.",
    )
    if data.calibration.empty:
        section.unavailable = _missing(data, "ml.model_metrics")
        return section
    _add(section, "Predicted against observed, per bin", plots.calibration(data.calibration))
    section.tables.append(
        ("ml.model_metrics: calibration_predicted / _observed / _count", _table(data.calibration))
    )
    return section


def _importance(data: ReportData) -> Section:
    section = Section(
        "importance",
        "Feature importance",
        "Permutation importance of each champion's features on the holdout, as recorded at training "
        "(ml.model_runs.reference → 'importance'). Baselines and fallbacks have none.",
    )
    if data.importance.empty:
        section.unavailable = _missing(data, "ml.model_runs")
        return section
    _add(section, "Top features per champion", plots.feature_importance(data.importance))
    top = data.importance.groupby("model_name", sort=True).head(10)
    section.tables.append(("Top 10 features per champion", _table(top, digits=4)))
    return section


def _segments(data: ReportData) -> Section:
    section = Section(
        "segments",
        "Segment profiles",
        "The latest segmentation: k-means clusters with their feature means (ml.segment_profiles) and the "
        "named RFM segments (ml.segments).",
    )
    if data.segment_profiles.empty and data.rfm_segments.empty:
        section.unavailable = _missing(data, "ml.segment_profiles", "ml.segments")
        return section
    _add(section, "Cluster sizes and profiles", plots.segment_profiles(data.segment_profiles))
    _add(section, "RFM segments", plots.rfm_segments(data.rfm_segments))
    if not data.segment_profiles.empty:
        section.tables.append(("ml.segment_profiles (latest as_of)", _table(data.segment_profiles)))
    if not data.rfm_segments.empty:
        section.tables.append(("ml.segments by RFM segment (latest as_of)", _table(data.rfm_segments)))
    return section


def _audiences(data: ReportData) -> Section:
    section = Section(
        "audiences",
        "Audience sizes",
        "Current members by group (treatment or holdout), and the size over time: daily members from "
        "audiences.audience_membership_history, or, until that exists, each lift cohort's size when it "
        "was selected.",
    )
    if data.audience_sizes.empty and data.audience_history.empty and data.audience_lift.empty:
        section.unavailable = _missing(data, "audiences.audience_members")
        return section
    _add(
        section,
        "Audience sizes",
        plots.audience_sizes(data.audience_sizes, data.audience_history, data.audience_lift),
    )
    if not data.audience_definitions.empty:
        section.tables.append(("audiences.audience_definitions", _table(data.audience_definitions)))
    if not data.audience_sizes.empty:
        section.tables.append(("audiences.audience_members by group", _table(data.audience_sizes)))
    if not data.audience_history.empty:
        section.tables.append(
            ("Members per day (audiences.audience_membership_history)", _table(data.audience_history))
        )
    elif "audience_history" in data.notes:
        section.text += " " + data.notes["audience_history"]
    elif "audiences.audience_membership_history" in data.missing:
        section.text += " (audiences.audience_membership_history does not exist yet.)"
    return section


def _lift(data: ReportData) -> Section:
    section = Section(
        "lift",
        "Audience lift over time",
        "Each audience cohort, once its outcome window has passed: conversion and revenue per customer of "
        "treatment minus holdout, with 95% confidence intervals (audiences.audience_lift).",
    )
    if data.audience_lift.empty:
        section.unavailable = _missing(data, "audiences.audience_lift")
        return section
    _add(section, "Lift per cohort", plots.audience_lift(data.audience_lift))
    section.tables.append(
        ("audiences.audience_lift", _table(data.audience_lift.drop(columns=["measured_at"], errors="ignore")))
    )
    return section


def _triggers(data: ReportData) -> Section:
    section = Section(
        "triggers",
        "Triggered campaigns",
        "Real-time triggers (campaigns/triggers/): each trigger's state and timers by outcome "
        "(activation.trigger_timers), what happened per day (activation.trigger_events) and, once outcome "
        "windows have passed, treatment (fired) against holdout (held out) conversion with 95% intervals "
        "(activation.trigger_lift, `pulse triggers readout`), read as the audiences' lift above.",
    )
    if data.triggers.empty:
        section.unavailable = _missing(data, "activation.trigger_definitions")
        return section
    section.tables.append(("Triggers and their timers", _table(data.triggers)))
    if not data.trigger_actions.empty:
        wide = data.trigger_actions.pivot_table(
            index=["trigger_name", "day"], columns="action", values="events", fill_value=0
        ).reset_index()
        section.tables.append(("activation.trigger_events per day (last 30 days)", _table(wide)))
    if not data.trigger_lift.empty:
        section.tables.append(
            (
                "activation.trigger_lift",
                _table(data.trigger_lift.drop(columns=["measured_at"], errors="ignore")),
            )
        )
    else:
        section.text += " No lift readout yet (no trigger has both groups past their outcome window)."
    return section


def _activation(data: ReportData) -> Section:
    section = Section(
        "activation",
        "Activation",
        "Audiences pushed to destinations (campaigns/syncs/, `pulse sync`) and triggers' deliveries: "
        "delivery rate (accepted of sent rows) per sync over 30 days, rows the destinations refused grouped "
        "by their reason (activation.sync_records), each sync's size at its destination after every run, "
        "and the latest runs (activation.sync_runs; a run with any refused row is partial).",
    )
    if data.sync_runs.empty:
        section.unavailable = _missing(data, "activation.sync_runs")
        return section
    _add(
        section, "Delivery and size at the destination", plots.activation(data.sync_delivery, data.sync_sizes)
    )
    section.tables.append(("Delivery per sync (last 30 days)", _table(data.sync_delivery)))
    if data.sync_rejects.empty:
        section.text += " No row was refused in the last 30 days."
    else:
        section.tables.append(("Refused rows by reason (last 30 days)", _table(data.sync_rejects)))
    section.tables.append(("Latest runs", _table(data.sync_runs.drop(columns=["run_id"]))))
    return section


def _drift(data: ReportData) -> Section:
    section = Section(
        "drift",
        "Drift (PSI)",
        "Population stability index of the score and of the top features at each scoring run against the "
        "champion's training distribution; above 0.2 is flagged as drift (ml.score_drift).",
    )
    if data.drift.empty:
        section.unavailable = _missing(data, "ml.score_drift")
        return section
    _add(section, "PSI per scoring run", plots.drift(data.drift))
    flagged = data.drift[data.drift["is_drifted"]]
    section.tables.append(
        (
            f"Drifted variables ({len(flagged)} of {len(data.drift)} rows)",
            _table(flagged) if not flagged.empty else Markup("<p>None.</p>"),
        )
    )
    section.tables.append(("ml.score_drift", _table(data.drift)))
    return section


def _uplift(data: ReportData) -> Section:
    section = Section(
        "uplift",
        "Uplift models",
        "Per campaign (`pulse train-uplift`), on the held-out 30%: the Qini curve of every learner (incremental "
        "outcomes as more customers are targeted, best predicted uplift first; above the dotted line is better "
        "than random; `true_effect` is the simulator's truth) and the champion's observed uplift by decile.",
    )
    if data.uplift.empty:
        section.unavailable = _missing(data, "ml.uplift_metrics")
        return section
    for campaign in sorted(data.uplift["campaign"].unique()):
        _add(section, f"Campaign {campaign}", plots.uplift(data.uplift, campaign))
    scalars = data.uplift[data.uplift["bucket"] == 0]
    wide = scalars.pivot_table(
        index=["campaign", "algorithm", "is_champion"], columns="metric", values="value"
    )
    section.tables.append(("ml.uplift_metrics (held-out)", _table(wide.reset_index(), digits=4)))
    return section


def build_sections(data: ReportData) -> list[Section]:
    return [
        _performance(data),
        _roc(data),
        _gain(data),
        _calibration(data),
        _importance(data),
        _segments(data),
        _audiences(data),
        _lift(data),
        _uplift(data),
        _triggers(data),
        _activation(data),
        _drift(data),
    ]


TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Pulse report</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 0 24px 48px; color: #222; line-height: 1.45; }
header { border-bottom: 2px solid #1f77b4; margin-bottom: 12px; }
nav a { margin-right: 14px; font-size: 14px; }
h2 { margin-top: 40px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.intro { color: #444; max-width: 900px; }
p.unavailable { background: #fff6e0; border-left: 4px solid #f0b000; padding: 8px 12px; }
figure { margin: 12px 0; }
figure img { max-width: 100%; }
figcaption { font-size: 13px; color: #555; }
details { margin: 8px 0; }
summary { cursor: pointer; font-size: 14px; color: #1f4f7f; }
table.data { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
table.data th, table.data td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
table.data th { background: #f3f6fa; }
table.data td:first-child, table.data th:first-child { text-align: left; }
</style>
</head>
<body>
<header>
<h1>Pulse report</h1>
<p>Generated {{ generated }} from the warehouse's <code>ml</code> and <code>audiences</code> tables.</p>
<nav>{% for s in sections %}<a href="#{{ s.id }}">{{ s.title }}</a>{% endfor %}</nav>
</header>
<section id="tables">
<details><summary>Output tables and row counts</summary>{{ counts }}</details>
</section>
{% for s in sections %}
<section id="{{ s.id }}">
<h2>{{ s.title }}</h2>
<p class="intro">{{ s.text }}</p>
{% if s.unavailable %}
<p class="unavailable">{{ s.unavailable }}</p>
{% else %}
{% for p in s.plots %}
<figure><img alt="{{ p.caption }}" src="data:image/png;base64,{{ p.png }}"><figcaption>{{ p.caption }}</figcaption></figure>
{% endfor %}
{% for caption, table in s.tables %}
<details><summary>{{ caption }}</summary>{{ table }}</details>
{% endfor %}
{% endif %}
</section>
{% endfor %}
</body>
</html>
"""


def render(data: ReportData, row_counts: dict[str, int | None] | None = None) -> str:
    counts = pd.DataFrame(
        [
            {"table": t, "rows": "does not exist" if n is None else f"{n:,}"}
            for t, n in (row_counts or {}).items()
        ]
    )
    environment = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return environment.from_string(TEMPLATE).render(
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sections=build_sections(data),
        counts=_table(counts) if not counts.empty else "",
    )


def write_report(settings: Settings | None = None, path: Path | None = None) -> Path:
    """Write PULSE_HOME/reports/pulse_report.html (or `path`) and return where it went."""
    from pulse.reporting.summary import summarize

    settings = settings or get_settings()
    with engine(settings).connect() as conn:
        data = load(conn)
    html = render(data, summarize(settings).row_counts)
    target = path or settings.home_dir / "reports" / REPORT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8")
    return target
