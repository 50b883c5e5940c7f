"""The report's plots: matplotlib (Agg, no display, no pyplot global state) rendered to base64 PNGs so the
HTML page is one self-contained file. Each function takes the DataFrame from `data` and returns a
base64 string, or None when there is nothing to draw."""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")  # headless: never look for a display

import matplotlib.dates as mdates  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DRIFT_THRESHOLD = 0.2  # PSI above this is flagged as drift (same rule as scoring)
WIDTH = 11.0  # inches at DPI: about the page's content width
DPI = 100
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(height: float, ncols: int = 1, nrows: int = 1, **kwargs) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(WIDTH, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, [ax for row in axes for ax in row]


def _style(ax: Axes) -> None:
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _dates(ax: Axes, values: pd.Series) -> None:
    """Readable date ticks; a single date gets a few days either side instead of matplotlib's years."""
    when = pd.to_datetime(values)
    if when.nunique() <= 1:
        centre = when.min()
        ax.set_xlim(centre - pd.Timedelta(days=3), centre + pd.Timedelta(days=3))
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.tick_params(axis="x", labelsize=7)


def _lines(ax: Axes, frame: pd.DataFrame, by: str, when: str, value: str, title: str) -> None:
    """One dated line per `by` value."""
    for i, (name, group) in enumerate(frame.groupby(by, sort=True)):
        ax.plot(
            pd.to_datetime(group[when]),
            group[value],
            marker="o",
            markersize=3,
            color=COLORS[i % len(COLORS)],
            label=name,
        )
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    _dates(ax, frame[when])
    _style(ax)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def model_performance(runs: pd.DataFrame, scalars: pd.DataFrame) -> str | None:
    """Per task: holdout AUC and PR-AUC (R² for regression) of the champion and the challengers."""
    if runs.empty or scalars.empty:
        return None
    values = scalars.pivot_table(index="run_id", columns="metric", values="value")
    tasks = [
        t
        for t in runs["model_name"].unique()
        if runs.loc[runs["model_name"] == t, "run_id"].isin(values.index).any()
    ]
    if not tasks:
        return None
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = _figure(3.4 * nrows, ncols=ncols, nrows=nrows)
    for ax, task in zip(axes, tasks, strict=False):
        group = runs[(runs["model_name"] == task) & runs["run_id"].isin(values.index)]
        kind = group["kind"].iloc[0]
        metrics = ["auc", "pr_auc"] if kind == "classification" else ["r2"]
        labels = {"auc": "AUC", "pr_auc": "PR-AUC", "r2": "R²"}
        x = np.arange(len(group))
        width = 0.8 / len(metrics)
        for i, metric in enumerate(metrics):
            heights = [values.loc[r, metric] if metric in values.columns else np.nan for r in group["run_id"]]
            bars = ax.bar(
                x + (i - (len(metrics) - 1) / 2) * width,
                heights,
                width,
                label=labels[metric],
                color=COLORS[i],
            )
            for bar, champion in zip(bars, group["is_champion"], strict=True):
                if champion:
                    bar.set_edgecolor("black")
                    bar.set_linewidth(2)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        truth = [
            values.loc[r, "true_probability_auc"]
            for r in group["run_id"]
            if "true_probability_auc" in values.columns and not pd.isna(values.loc[r, "true_probability_auc"])
        ]
        if truth:
            ax.axhline(
                truth[0], color="black", linestyle="--", linewidth=1, label="AUC of true probabilities"
            )
        ticks = [
            f"{a}\n({'champion' if c else s})"
            for a, c, s in zip(group["algorithm"], group["is_champion"], group["status"], strict=True)
        ]
        ax.set_xticks(x, ticks, fontsize=7, rotation=30, ha="right")
        ax.set_title(task, fontsize=10)
        top = np.nanmax(
            values.loc[group["run_id"], [m for m in metrics if m in values.columns]].to_numpy(dtype=float)
        )
        ax.set_ylim(
            min(
                0.0,
                np.nanmin(
                    values.loc[group["run_id"], [m for m in metrics if m in values.columns]].to_numpy(
                        dtype=float
                    )
                ),
            ),
            max(1.0, top) * 1.08,
        )
        ax.legend(fontsize=7, loc="lower right")
        _style(ax)
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    fig.suptitle("Holdout performance (champion outlined in black)", fontsize=11)
    return _png(fig)


def roc_curves(points: pd.DataFrame, aucs: dict[str, float]) -> str | None:
    if points.empty:
        return None
    fig, (ax,) = _figure(5.0)
    ax.set_box_aspect(1)
    for i, (task, group) in enumerate(points.groupby("model_name", sort=True)):
        group = (
            pd.concat([group, pd.DataFrame([{"fpr": 1.0, "tpr": 1.0}])])
            if group["source"].iloc[0] == "deciles"
            else group
        )
        label = f"{task} (stored AUC {aucs[task]:.3f})" if task in aucs else task
        ax.plot(
            group["fpr"], group["tpr"], marker="o", markersize=3, color=COLORS[i % len(COLORS)], label=label
        )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title("ROC of each champion on the holdout", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    _style(ax)
    return _png(fig)


def gain_and_lift(deciles: pd.DataFrame) -> str | None:
    if deciles.empty:
        return None
    fig, (gain_ax, lift_ax) = _figure(4.2, ncols=2)
    for i, (task, group) in enumerate(deciles.groupby("model_name", sort=True)):
        color = COLORS[i % len(COLORS)]
        gain = group[group["metric"] == "cumulative_gain"].sort_values("bucket")
        lift = group[group["metric"] == "lift"].sort_values("bucket")
        if not gain.empty:
            gain_ax.plot(
                [0, *(gain["bucket"] * 10)],
                [0, *(gain["value"] * 100)],
                marker="o",
                markersize=3,
                color=color,
                label=task,
            )
        if not lift.empty:
            lift_ax.plot(lift["bucket"], lift["value"], marker="o", markersize=3, color=color, label=task)
    gain_ax.plot([0, 100], [0, 100], color="grey", linestyle=":", label="random")
    gain_ax.set_xlabel("customers targeted, top % by score")
    gain_ax.set_ylabel("% of the outcome captured")
    gain_ax.set_title("Cumulative gain", fontsize=11)
    lift_ax.axhline(1, color="grey", linestyle=":")
    lift_ax.set_xticks(range(1, 11))
    lift_ax.set_xlabel("score decile (1 = top 10%)")
    lift_ax.set_ylabel("decile outcome rate / overall rate")
    lift_ax.set_title("Lift by decile", fontsize=11)
    for ax in (gain_ax, lift_ax):
        ax.legend(fontsize=8)
        _style(ax)
    return _png(fig)


def uplift(metrics: pd.DataFrame, campaign: str) -> str | None:
    """One campaign: every learner's held-out Qini curve, and the champion's uplift by decile."""
    rows = metrics[metrics["campaign"] == campaign]
    if rows.empty:
        return None
    fig, (qini_ax, decile_ax) = _figure(4.2, ncols=2)
    for i, (algorithm, group) in enumerate(rows.groupby("algorithm", sort=True)):
        x = group[group["metric"] == "qini_x"].sort_values("bucket")["value"].to_numpy()
        y = group[group["metric"] == "qini_y"].sort_values("bucket")["value"].to_numpy()
        if len(x) and len(x) == len(y):
            truth = algorithm == "true_effect"  # the simulator's known effect: a black dashed reference
            qini_ax.plot(
                x * 100,
                y * 100,
                label=algorithm,
                color="black" if truth else COLORS[i % len(COLORS)],
                linestyle="--" if truth else "-",
            )
            if algorithm != "true_effect" and group["is_champion"].any():
                qini_ax.plot([0, 100], [0, y[-1] * 100], color="grey", linestyle=":", label="random")
                deciles = group[group["metric"] == "uplift_decile"].sort_values("bucket")
                decile_ax.bar(deciles["bucket"], deciles["value"] * 100, color=COLORS[i % len(COLORS)])
                decile_ax.set_title(f"Uplift by decile ({algorithm})", fontsize=11)
    qini_ax.set_xlabel("customers targeted, top % by predicted uplift")
    qini_ax.set_ylabel("incremental outcomes per 100 treated")
    qini_ax.set_title("Qini curves (held-out)", fontsize=11)
    qini_ax.legend(fontsize=8)
    decile_ax.axhline(0, color="grey", linewidth=0.8)
    decile_ax.set_xticks(range(1, 11))
    decile_ax.set_xlabel("predicted-uplift decile (1 = top 10%)")
    decile_ax.set_ylabel("treated minus control rate, points")
    for ax in (qini_ax, decile_ax):
        _style(ax)
    return _png(fig)


def calibration(bins: pd.DataFrame) -> str | None:
    if bins.empty:
        return None
    fig, (ax,) = _figure(5.0)
    ax.set_box_aspect(1)
    biggest = max(float(bins["count"].max()), 1.0)
    for i, (task, group) in enumerate(bins.groupby("model_name", sort=True)):
        group = group.sort_values("predicted")
        color = COLORS[i % len(COLORS)]
        ax.plot(group["predicted"], group["observed"], color=color, linewidth=1, label=task)
        ax.scatter(
            group["predicted"],
            group["observed"],
            s=10 + 190 * group["count"] / biggest,
            color=color,
            alpha=0.7,
        )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted probability in the bin")
    ax.set_ylabel("observed rate in the bin")
    ax.set_title("Calibration on the holdout (marker area ∝ customers in the bin)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    _style(ax)
    return _png(fig)


def feature_importance(importance: pd.DataFrame, top: int = 12) -> str | None:
    if importance.empty:
        return None
    tasks = sorted(importance["model_name"].unique())
    ncols = min(2, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = _figure(3.2 * nrows, ncols=ncols, nrows=nrows)
    for i, (ax, task) in enumerate(zip(axes, tasks, strict=False)):
        group = importance[importance["model_name"] == task].nlargest(top, "importance").iloc[::-1]
        ax.barh(group["feature"], group["importance"], color=COLORS[i % len(COLORS)])
        ax.set_title(f"{task} ({group['algorithm'].iloc[0]})", fontsize=10)
        ax.tick_params(axis="y", labelsize=7)
        ax.axvline(0, color="black", linewidth=0.8)
        _style(ax)
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    fig.supxlabel("permutation importance on the holdout (drop in the selection metric)", fontsize=9)
    return _png(fig)


def segment_profiles(profiles: pd.DataFrame) -> str | None:
    """Cluster sizes and a heat map of each cluster's feature means (colour: z-score across clusters)."""
    if profiles.empty:
        return None
    fixed = {"as_of", "cluster", "cluster_label", "customers"}
    features = [c for c in profiles.columns if c not in fixed]
    names = [f"{c}: {label}" for c, label in zip(profiles["cluster"], profiles["cluster_label"], strict=True)]
    fig, (size_ax, heat_ax) = _figure(
        max(3.0, 0.45 * len(profiles) + 1.8), ncols=2, gridspec_kw={"width_ratios": [1, 3]}
    )
    size_ax.barh(names[::-1], profiles["customers"].iloc[::-1], color=COLORS[0])
    size_ax.set_title("customers per cluster", fontsize=10)
    size_ax.tick_params(axis="y", labelsize=8)
    _style(size_ax)
    if features:
        values = profiles[features].astype(float)
        spread = values.std(ddof=0).replace(0, 1.0)
        z = ((values - values.mean()) / spread).to_numpy()
        heat_ax.imshow(z, cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
        heat_ax.set_xticks(range(len(features)), features, rotation=35, ha="right", fontsize=8)
        heat_ax.set_yticks(range(len(names)), [])
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                value = values.iat[r, c]
                colour = "white" if abs(z[r, c]) > 1.3 else "black"
                heat_ax.text(c, r, _number(value), ha="center", va="center", fontsize=7, color=colour)
        heat_ax.set_title("feature means (colour: above / below the other clusters)", fontsize=10)
    else:
        heat_ax.set_visible(False)
    return _png(fig)


def rfm_segments(rfm: pd.DataFrame) -> str | None:
    if rfm.empty:
        return None
    fig, (ax,) = _figure(max(2.5, 0.3 * len(rfm) + 1.2))
    ordered = rfm.sort_values("customers")
    bars = ax.barh(ordered["rfm_segment"], ordered["customers"], color=COLORS[2])
    ax.bar_label(bars, fontsize=7, padding=2)
    ax.set_title("customers per RFM segment", fontsize=10)
    _style(ax)
    return _png(fig)


def audience_sizes(sizes: pd.DataFrame, history: pd.DataFrame, lift: pd.DataFrame) -> str | None:
    """Current treatment/holdout sizes; beside them the size over time (membership history, or else the
    cohorts of the lift readout)."""
    over_time = None
    if not history.empty:
        over_time = ("members per day", history.rename(columns={"day": "when"}))
    elif not lift.empty:
        cohorts = lift.assign(
            when=lift["as_of"], customers=lift["treatment_customers"] + lift["holdout_customers"]
        )
        over_time = ("cohort size at selection (lift readout)", cohorts)
    if sizes.empty and over_time is None:
        return None
    panels = int(not sizes.empty) + int(over_time is not None)
    fig, axes = _figure(3.8, ncols=panels)
    if not sizes.empty:
        ax = axes[0]
        table = sizes.pivot_table(index="audience_name", columns="group", values="customers", fill_value=0)
        left = np.zeros(len(table))
        widest = float(table.sum(axis=1).max()) or 1.0
        for i, group in enumerate(g for g in ("treatment", "holdout") if g in table.columns):
            bars = ax.barh(table.index, table[group], left=left, label=group, color=COLORS[i])
            # Label only segments wide enough to hold their number; the totals go after the bars.
            labels = [f"{v:,.0f}" if v >= 0.08 * widest else "" for v in table[group]]
            ax.bar_label(bars, labels=labels, label_type="center", fontsize=7)
            left += table[group].to_numpy()
        for y, total in enumerate(left):
            ax.text(total + 0.01 * widest, y, f"{total:,.0f}", va="center", fontsize=7)
        ax.set_title("current members", fontsize=10)
        ax.legend(fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        _style(ax)
    if over_time is not None:
        title, frame = over_time
        _lines(axes[-1], frame, "audience_name", "when", "customers", title)
    return _png(fig)


def audience_lift(lift: pd.DataFrame) -> str | None:
    """Absolute conversion lift and revenue lift per cohort with their 95% intervals."""
    if lift.empty:
        return None
    fig, (conv_ax, rev_ax) = _figure(3.8, ncols=2)
    for i, (name, group) in enumerate(lift.groupby("audience_name", sort=True)):
        when = pd.to_datetime(group["as_of"])
        color = COLORS[i % len(COLORS)]
        for ax, col, scale in ((conv_ax, "absolute_lift", 100), (rev_ax, "revenue_lift", 1)):
            value = group[col].astype(float) * scale
            low = value - group[f"{col}_ci_low"].astype(float) * scale
            high = group[f"{col}_ci_high"].astype(float) * scale - value
            ax.errorbar(
                when, value, yerr=[low, high], marker="o", markersize=4, capsize=3, color=color, label=name
            )
    conv_ax.set_title("conversion lift, treatment − holdout (points, 95% CI)", fontsize=10)
    conv_ax.set_ylabel("percentage points")
    rev_ax.set_title("revenue per customer lift (95% CI)", fontsize=10)
    for ax in (conv_ax, rev_ax):
        ax.axhline(0, color="black", linewidth=0.8)
        ax.legend(fontsize=8)
        _dates(ax, lift["as_of"])
        _style(ax)
    return _png(fig)


def drift(drift_rows: pd.DataFrame) -> str | None:
    """PSI of the score per scoring run, and the latest run's PSI per variable, against the 0.2 flag."""
    if drift_rows.empty:
        return None
    fig, (time_ax, latest_ax) = _figure(4.0, ncols=2)
    scores = drift_rows[drift_rows["variable"] == "score"]
    for i, (task, group) in enumerate(scores.groupby("model_name", sort=True)):
        time_ax.plot(
            pd.to_datetime(group["as_of"]),
            group["psi"],
            marker="o",
            markersize=4,
            color=COLORS[i % len(COLORS)],
            label=task,
        )
    time_ax.axhline(DRIFT_THRESHOLD, color="red", linestyle="--", linewidth=1, label="drift flag (0.2)")
    time_ax.set_title("score PSI per scoring run", fontsize=10)
    _dates(time_ax, scores["as_of"] if not scores.empty else drift_rows["as_of"])
    time_ax.legend(fontsize=7)
    latest = drift_rows[drift_rows["as_of"] == drift_rows["as_of"].max()]
    latest = (
        latest.assign(label=latest["model_name"] + " · " + latest["variable"]).nlargest(15, "psi").iloc[::-1]
    )
    colors = ["#d62728" if d else COLORS[0] for d in latest["is_drifted"]]
    latest_ax.barh(latest["label"], latest["psi"], color=colors)
    latest_ax.axvline(DRIFT_THRESHOLD, color="red", linestyle="--", linewidth=1)
    latest_ax.tick_params(axis="y", labelsize=7)
    latest_ax.set_title(
        f"latest run ({pd.to_datetime(latest['as_of'].max()):%Y-%m-%d}): highest PSI", fontsize=10
    )
    for ax in (time_ax, latest_ax):
        _style(ax)
    return _png(fig)


def activation(delivery: pd.DataFrame, sizes: pd.DataFrame) -> str | None:
    """Delivery rate per sync (accepted of sent rows) and each sync's size at its destination per run."""
    delivery = delivery[delivery["sent"].fillna(0) > 0] if not delivery.empty else delivery
    if delivery.empty and sizes.empty:
        return None
    panels = int(not delivery.empty) + int(not sizes.empty)
    fig, axes = _figure(3.6, ncols=panels)
    if not delivery.empty:
        ax = axes[0]
        rate = delivery["delivery_rate"].astype(float)
        bars = ax.barh(delivery["sync_name"], rate, color=COLORS[0])
        labels = [f"{r:.1%} of {int(s):,}" for r, s in zip(rate, delivery["sent"], strict=True)]
        ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
        ax.set_xlim(0, 1.25)
        ax.set_title("delivery rate (accepted / sent, 30 days)", fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        _style(ax)
    if not sizes.empty:
        title = "customers at the destination after each run"
        _lines(axes[-1], sizes, "sync_name", "finished_at", "destination_size", title)
    return _png(fig)
