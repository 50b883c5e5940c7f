"""How well a score ranks customers by the effect of a campaign: Qini, AUUC, uplift at the top k%.

All metrics read three arrays: the outcome (0/1 or a number), whether the customer was treated, and the
score (predicted uplift; higher = target first). Customers are taken best score first; customers with
equal scores enter together (the curves have points only where the score changes, and straight lines in
between), so a score with ties, such as the true effect of a campaign with a few customer types, is
measured the same whatever order the ties arrive in.

- Qini curve (Radcliffe 2007): after the top k customers, incremental outcomes
  `Y_t(k) - Y_c(k) * N_t(k) / N_c(k)`, divided here by the size of the treatment group so campaigns of
  different sizes compare; x is the share of customers targeted (0..1).
- Qini coefficient: area between the Qini curve and the straight line from (0, 0) to its end (random
  targeting). Positive = better than random; the same units as the curve.
- Uplift curve: `(Y_t(k)/N_t(k) - Y_c(k)/N_c(k)) * k / n`; AUUC is the area under it (x = share targeted).
- Uplift at k%: treated minus control outcome rate among the top k% of customers, with a bootstrap
  interval (customers resampled within each group, the scores kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP_SHARES = (0.1, 0.2, 0.3)
CURVE_POINTS = 50


@dataclass(frozen=True)
class Curve:
    x: np.ndarray  # share of customers targeted, 0..1, starting at 0
    y: np.ndarray


def _arrays(outcome, treated, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(outcome, dtype=float)
    t = np.asarray(treated, dtype=bool)
    s = np.asarray(score, dtype=float)
    if not (len(y) == len(t) == len(s)) or len(y) == 0:
        raise ValueError("outcome, treated and score must be non-empty and of equal length")
    if not t.any() or t.all():
        raise ValueError("uplift metrics need both treated and control customers")
    if np.isnan(y).any() or np.isnan(s).any():
        raise ValueError("outcome and score must not be missing")
    return y, t, s


def _cumulative(y, t, s):
    """Cumulative counts at the end of each group of tied scores, best score first (with a 0 point)."""
    order = np.argsort(-s, kind="stable")
    y, t, s = y[order], t[order], s[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each tie group
    n_t = np.r_[0, np.cumsum(t)[ends]]
    n_c = np.r_[0, np.cumsum(~t)[ends]]
    y_t = np.r_[0.0, np.cumsum(y * t)[ends]]
    y_c = np.r_[0.0, np.cumsum(y * ~t)[ends]]
    return n_t, n_c, y_t, y_c


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)


def qini_curve(outcome, treated, score) -> Curve:
    y, t, s = _arrays(outcome, treated, score)
    n_t, n_c, y_t, y_c = _cumulative(y, t, s)
    incremental = y_t - y_c * _ratio(n_t.astype(float), n_c.astype(float))
    return Curve((n_t + n_c) / len(y), incremental / t.sum())


def uplift_curve(outcome, treated, score) -> Curve:
    y, t, s = _arrays(outcome, treated, score)
    n_t, n_c, y_t, y_c = _cumulative(y, t, s)
    size = n_t + n_c
    gap = _ratio(y_t, n_t.astype(float)) - _ratio(y_c, n_c.astype(float))
    return Curve(size / len(y), gap * size / len(y))


def _area(curve: Curve) -> float:
    return float(np.trapezoid(curve.y, curve.x))


def qini_coefficient(outcome, treated, score) -> float:
    curve = qini_curve(outcome, treated, score)
    return float(_area(curve) - curve.y[-1] / 2)  # minus the random-targeting triangle


def auuc(outcome, treated, score) -> float:
    return _area(uplift_curve(outcome, treated, score))


def uplift_at(outcome, treated, score, share: float) -> float:
    """Treated minus control outcome rate among the top `share` of customers (ties broken by position)."""
    y, t, s = _arrays(outcome, treated, score)
    top = np.argsort(-s, kind="stable")[: max(1, int(round(share * len(y))))]
    yt, tt = y[top], t[top]
    if not tt.any() or tt.all():
        return float("nan")  # the top share holds only one group: no estimate
    return float(yt[tt].mean() - yt[~tt].mean())


def bootstrap_uplift_at(
    outcome, treated, score, share: float, rounds: int = 200, seed: int = 0
) -> tuple[float, float, float]:
    """Uplift at `share` and its 95% percentile bootstrap interval (resampling within each group)."""
    y, t, s = _arrays(outcome, treated, score)
    rng = np.random.default_rng(seed)
    treated_rows, control_rows = np.flatnonzero(t), np.flatnonzero(~t)
    samples = []
    for _ in range(rounds):
        rows = np.r_[rng.choice(treated_rows, len(treated_rows)), rng.choice(control_rows, len(control_rows))]
        samples.append(uplift_at(y[rows], t[rows], s[rows], share))
    values = np.asarray(samples)
    values = values[~np.isnan(values)]
    estimate = uplift_at(y, t, s, share)
    if len(values) == 0:
        return estimate, float("nan"), float("nan")
    low, high = np.quantile(values, [0.025, 0.975])
    return estimate, float(low), float(high)


def uplift_by_decile(outcome, treated, score, deciles: int = 10) -> list[float]:
    """Treated minus control outcome rate in each decile of score (1 = highest); nan where a group is empty."""
    y, t, s = _arrays(outcome, treated, score)
    order = np.argsort(-s, kind="stable")
    result = []
    for part in np.array_split(order, deciles):
        yt, tt = y[part], t[part]
        result.append(float(yt[tt].mean() - yt[~tt].mean()) if tt.any() and (~tt).any() else float("nan"))
    return result


def thin(curve: Curve, points: int = CURVE_POINTS) -> Curve:
    """At most `points` points of a curve, evenly spaced along x, for storing and plotting."""
    grid = np.linspace(0, 1, points)
    return Curve(grid, np.interp(grid, curve.x, curve.y))


def metric_rows(outcome, treated, score, rounds: int = 200) -> list[tuple[str, int, float]]:
    """Every uplift metric as (metric, bucket, value) rows, as ml.model_metrics keeps them."""
    rows: list[tuple[str, int, float]] = [
        ("qini", 0, qini_coefficient(outcome, treated, score)),
        ("auuc", 0, auuc(outcome, treated, score)),
    ]
    for share in TOP_SHARES:
        pct = int(round(share * 100))
        value, low, high = bootstrap_uplift_at(outcome, treated, score, share, rounds)
        rows += [(f"uplift_at_{pct}", 0, value), (f"uplift_at_{pct}_low", 0, low)]
        rows.append((f"uplift_at_{pct}_high", 0, high))
    curve = thin(qini_curve(outcome, treated, score))
    for i, (x, y) in enumerate(zip(curve.x, curve.y, strict=True), 1):
        rows += [("qini_x", i, float(x)), ("qini_y", i, float(y))]
    for d, value in enumerate(uplift_by_decile(outcome, treated, score), 1):
        rows.append(("uplift_decile", d, value))
    return rows
