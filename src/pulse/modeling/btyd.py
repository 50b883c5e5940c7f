"""Buy-till-you-die baselines: fitting BG/NBD purchase counts and Gamma-Gamma spend, CLV, RFM summaries.

Models
------
*BG/NBD* (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2)). While active, a customer buys as a Poisson process with rate
``lambda ~ Gamma(r, alpha)`` (shape ``r``, rate ``alpha``); after every *repeat* purchase they drop out for
good with probability ``p ~ Beta(a, b)``. Per-customer data: ``x`` repeat purchases (the first purchase is
excluded), ``t_x`` the time of the last purchase and ``T`` the customer's age, both measured from the first
purchase. Any time unit works; ``alpha`` is expressed in it (scale ``t``, ``t_x`` and ``T`` by ``c`` and the
fitted ``alpha`` scales by ``c``, the other parameters are unchanged).

*Gamma-Gamma* (Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary Value"). Each transaction value is
``Gamma(p, nu)`` with a customer-level rate ``nu ~ Gamma(q, v)`` (the note writes ``gamma`` for ``v``); fitted
on ``x`` repeat transactions and their mean value. It assumes spend is independent of the purchase process,
so check that ``frequency`` and ``monetary_value`` are not strongly correlated before combining the two.

The formulas (likelihoods, P(alive), expectations) and their input checks are in
modeling/btyd_formulas.py; every public name of it is importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from pulse.modeling.btyd_formulas import (
    ArrayLike,
    BetaGeoParams,
    GammaGammaParams,
    NotFittedError,
    _bgnbd_ll,
    _conditional_expected,
    _gg_ll,
    _validate_rfm,
    _validate_spend,
    _validate_weights,
    _wrap,
    bgnbd_conditional_expected_purchases,
    bgnbd_expected_purchases,
    bgnbd_log_likelihood,
    bgnbd_prob_alive,
    bgnbd_prob_purchase,
    gamma_gamma_conditional_expected_spend,
    gamma_gamma_log_likelihood,
)

__all__ = [
    "BetaGeoModel",
    "BetaGeoParams",
    "GammaGammaModel",
    "GammaGammaParams",
    "NotFittedError",
    "bgnbd_conditional_expected_purchases",
    "bgnbd_expected_purchases",
    "bgnbd_log_likelihood",
    "bgnbd_prob_alive",
    "bgnbd_prob_purchase",
    "customer_lifetime_value",
    "gamma_gamma_conditional_expected_spend",
    "gamma_gamma_log_likelihood",
    "rfm_summary",
]

_LOG_BOUND = 30.0  # optimise log-parameters within [-30, 30]: positive, finite, no exp() overflow


# --------------------------------------------------------------------------------------------------------
# fitting


@dataclass(frozen=True)
class _FitResult:
    params: np.ndarray
    mean_log_likelihood: float
    converged: bool
    message: str


def _maximise(neg_mean_ll, x0: np.ndarray, penalizer_coef: float) -> _FitResult:
    def objective(theta: np.ndarray) -> float:
        params = np.exp(theta)
        value = neg_mean_ll(params) + penalizer_coef * float(np.sum(params**2))
        return value if np.isfinite(value) else 1e300

    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(x0)
    best = optimize.minimize(objective, x0, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000})
    if not best.success:  # fall back to a derivative-free polish from wherever L-BFGS-B stopped
        polished = optimize.minimize(
            objective,
            best.x,
            method="Nelder-Mead",
            bounds=bounds,
            options={"maxiter": 20000, "xatol": 1e-8, "fatol": 1e-12},
        )
        if polished.fun <= best.fun:
            best = polished
    params = np.exp(best.x)
    return _FitResult(params, -float(neg_mean_ll(params)), bool(best.success), str(best.message))


class BetaGeoModel:
    """BG/NBD model: `fit(frequency, recency, T)`, then predict purchases, P(alive) and purchase propensity.

    `penalizer_coef` adds an L2 penalty `coef * (r^2 + alpha^2 + a^2 + b^2)` to the mean negative
    log-likelihood (0 = plain maximum likelihood); a small value helps on tiny or degenerate data sets.
    After fitting: `params_` (BetaGeoParams), `log_likelihood_` (summed, weighted), `n_customers_`,
    `converged_`.
    """

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        if not (penalizer_coef >= 0 and np.isfinite(penalizer_coef)):
            raise ValueError("penalizer_coef must be a finite number >= 0")
        self.penalizer_coef = float(penalizer_coef)
        self.params_: BetaGeoParams | None = None
        self.log_likelihood_: float | None = None
        self.n_customers_: int | None = None
        self.converged_: bool | None = None

    @classmethod
    def from_params(cls, r: float, alpha: float, a: float, b: float) -> BetaGeoModel:
        model = cls()
        model.params_ = BetaGeoParams(float(r), float(alpha), float(a), float(b))
        return model

    @property
    def params(self) -> BetaGeoParams:
        if self.params_ is None:
            raise NotFittedError("BetaGeoModel is not fitted: call fit() or BetaGeoModel.from_params()")
        return self.params_

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
        initial_params: BetaGeoParams | None = None,
    ) -> BetaGeoModel:
        """Maximum likelihood on per-customer summaries (optionally weighted, e.g. counts of identical rows)."""
        x, t_x, age = (np.ravel(a) for a in _validate_rfm(frequency, recency, T))
        if x.size == 0:
            raise ValueError("cannot fit on zero customers")
        if np.all(age == 0):
            raise ValueError("every customer has T = 0: there is no observation time to learn from")
        w = _validate_weights(weights, x.size)
        total = w.sum()

        def neg_mean_ll(params: np.ndarray) -> float:
            r, alpha, a, b = params
            return -float(np.dot(w, _bgnbd_ll(r, alpha, a, b, x, t_x, age))) / total

        if initial_params is None:  # alpha carries the time unit, so start it at the data's time scale
            x0 = np.log([1.0, max(float(np.average(age, weights=w)), 1e-6), 1.0, 1.0])
        else:
            x0 = np.log([initial_params.r, initial_params.alpha, initial_params.a, initial_params.b])
        result = _maximise(neg_mean_ll, x0, self.penalizer_coef)
        self.params_ = BetaGeoParams(*(float(v) for v in result.params))
        self.log_likelihood_ = result.mean_log_likelihood * float(total)
        self.n_customers_ = int(x.size)
        self.converged_ = result.converged
        return self

    def log_likelihood(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike):
        """Per-customer log-likelihood under the current parameters."""
        return bgnbd_log_likelihood(self.params, frequency, recency, T)

    def expected_purchases(self, t: ArrayLike):
        """Unconditional E[X(t)]: expected repeat purchases in the first t periods after a first purchase."""
        return bgnbd_expected_purchases(self.params, t)

    def predict_purchases(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike):
        """Expected number of purchases in the next t periods, given (x, t_x, T)."""
        return bgnbd_conditional_expected_purchases(self.params, t, frequency, recency, T)

    def prob_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike):
        """P(customer is still active at T | x, t_x, T)."""
        return bgnbd_prob_alive(self.params, frequency, recency, T)

    def prob_purchase(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike):
        """P(at least one purchase in the next t periods | x, t_x, T) — the propensity baseline."""
        return bgnbd_prob_purchase(self.params, t, frequency, recency, T)

    def __repr__(self) -> str:
        if self.params_ is None:
            return "BetaGeoModel(unfitted)"
        p = self.params_
        return f"BetaGeoModel(r={p.r:.4g}, alpha={p.alpha:.4g}, a={p.a:.4g}, b={p.b:.4g})"


class GammaGammaModel:
    """Gamma-Gamma spend model: `fit(frequency, monetary_value)`, then `expected_spend(...)`.

    Rows with frequency 0 are ignored when fitting (they carry no repeat-spend information; `rfm_summary`
    gives them monetary_value 0). After fitting: `params_` (GammaGammaParams), `log_likelihood_`,
    `n_customers_` (rows used), `converged_`.
    """

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        if not (penalizer_coef >= 0 and np.isfinite(penalizer_coef)):
            raise ValueError("penalizer_coef must be a finite number >= 0")
        self.penalizer_coef = float(penalizer_coef)
        self.params_: GammaGammaParams | None = None
        self.log_likelihood_: float | None = None
        self.n_customers_: int | None = None
        self.converged_: bool | None = None

    @classmethod
    def from_params(cls, p: float, q: float, v: float) -> GammaGammaModel:
        model = cls()
        model.params_ = GammaGammaParams(float(p), float(q), float(v))
        return model

    @property
    def params(self) -> GammaGammaParams:
        if self.params_ is None:
            raise NotFittedError("GammaGammaModel is not fitted: call fit() or GammaGammaModel.from_params()")
        return self.params_

    @property
    def population_mean_spend(self) -> float:
        return self.params.population_mean_spend

    def fit(
        self,
        frequency: ArrayLike,
        monetary_value: ArrayLike,
        weights: ArrayLike | None = None,
        initial_params: GammaGammaParams | None = None,
    ) -> GammaGammaModel:
        x, m = (np.ravel(a) for a in _validate_spend(frequency, monetary_value))
        w = _validate_weights(weights, x.size) if x.size else np.ones(0)
        keep = x > 0
        x, m, w = x[keep], m[keep], w[keep]
        if x.size < 2 or w.sum() <= 0:
            raise ValueError("need at least two customers with repeat purchases (frequency > 0) to fit")
        total = w.sum()

        def neg_mean_ll(params: np.ndarray) -> float:
            p, q, v = params
            return -float(np.dot(w, _gg_ll(p, q, v, x, m))) / total

        if initial_params is None:  # p = 1, q = 2 makes the population mean p v / (q - 1) = mean spend
            x0 = np.log([1.0, 2.0, float(np.average(m, weights=w))])
        else:
            x0 = np.log([initial_params.p, initial_params.q, initial_params.v])
        result = _maximise(neg_mean_ll, x0, self.penalizer_coef)
        self.params_ = GammaGammaParams(*(float(v) for v in result.params))
        self.log_likelihood_ = result.mean_log_likelihood * float(total)
        self.n_customers_ = int(x.size)
        self.converged_ = result.converged
        return self

    def log_likelihood(self, frequency: ArrayLike, monetary_value: ArrayLike):
        return gamma_gamma_log_likelihood(self.params, frequency, monetary_value)

    def expected_spend(self, frequency: ArrayLike, monetary_value: ArrayLike):
        """Conditional expected value of a customer's future transactions, E[Z | zbar, x]."""
        return gamma_gamma_conditional_expected_spend(self.params, frequency, monetary_value)

    def __repr__(self) -> str:
        if self.params_ is None:
            return "GammaGammaModel(unfitted)"
        p = self.params_
        return f"GammaGammaModel(p={p.p:.4g}, q={p.q:.4g}, v={p.v:.4g})"


def customer_lifetime_value(
    purchase_model: BetaGeoModel,
    spend_model: GammaGammaModel,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    horizon: float,
    discount_rate: float = 0.0,
    step: float = 1.0,
):
    """Expected revenue over the next `horizon` periods: expected purchases x expected spend.

    `discount_rate` is per time unit (e.g. weekly if the data are in weeks). With a positive rate the horizon
    is cut into steps of `step` units (the last one may be shorter); the purchases expected in each step are
    discounted by (1 + discount_rate) ** -t_end at the end of their step. With 0 this is exactly
    `predict_purchases(horizon, ...) * expected_spend(...)`.
    """
    if not (np.isfinite(horizon) and horizon >= 0):
        raise ValueError("horizon must be a finite number >= 0")
    if not (np.isfinite(discount_rate) and discount_rate >= 0):
        raise ValueError("discount_rate must be a finite number >= 0")
    if not (np.isfinite(step) and step > 0):
        raise ValueError("step must be a finite number > 0")
    x, t_x, age = _validate_rfm(frequency, recency, T)
    _, m = _validate_spend(frequency, monetary_value)
    spend = np.asarray(spend_model.expected_spend(x, m), dtype=float)
    params = purchase_model.params
    if discount_rate == 0.0 or horizon == 0.0:
        purchases = _conditional_expected(params, np.full(x.shape, float(horizon)), x, t_x, age)
    else:
        ends = np.append(np.arange(step, horizon, step), horizon)
        purchases = np.zeros(x.shape)
        previous = np.zeros(x.shape)
        for end in ends:
            cumulative = _conditional_expected(params, np.full(x.shape, end), x, t_x, age)
            purchases = purchases + (cumulative - previous) / (1.0 + discount_rate) ** end
            previous = cumulative
    return _wrap(purchases * spend, frequency, recency, T, monetary_value)


# --------------------------------------------------------------------------------------------------------
# RFM summary


def _naive_utc(values: pd.Series) -> pd.Series:
    if values.dt.tz is not None:
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values


def rfm_summary(
    orders: pd.DataFrame,
    observation_end: Any,
    time_unit_days: float = 1.0,
    *,
    customer_col: str = "customer_id",
    datetime_col: str = "ordered_at",
    monetary_col: str = "revenue",
) -> pd.DataFrame:
    """Per-customer frequency / recency / T / monetary_value from an orders table (lifetimes convention).

    * Orders at or after `observation_end` are ignored (the window is half-open, like the propensity labels,
      which count orders from the snapshot on), so a later holdout can be taken from the same table.
    * Time is cut into periods of `time_unit_days` days counted back from `observation_end`: period k holds
      orders placed in (end - (k+1) units, end - k units]. With a midnight `observation_end` and
      `time_unit_days=1` these are calendar days; with 7, weeks ending at `observation_end`.
    * Several orders in the same period count as one purchase occasion with their revenue summed, so
      `frequency` = number of distinct order periods - 1 (the first purchase is not a repeat).
    * `T` = periods from the first order's period to the end; `recency` = periods from the first to the last
      order's period (0 when frequency is 0). Both are whole numbers of `time_unit_days`.
    * `monetary_value` = mean revenue per repeat period (the first period excluded); 0 when frequency is 0.

    Timezone-aware timestamps are compared in UTC; naive ones are taken as UTC. Negative revenue (refunds) is
    rejected: net it out per order first. Returns a frame indexed by customer id with integer frequency and
    float recency / T / monetary_value, sorted by customer id.
    """
    missing = [c for c in (customer_col, datetime_col, monetary_col) if c not in orders.columns]
    if missing:
        raise KeyError(f"orders is missing column(s) {missing}")
    if not (np.isfinite(time_unit_days) and time_unit_days > 0):
        raise ValueError("time_unit_days must be a finite number > 0")
    frame = orders[[customer_col, datetime_col, monetary_col]].copy()
    if frame[[customer_col, datetime_col, monetary_col]].isna().any().any():
        raise ValueError("orders contains missing customer ids, timestamps or revenue")
    frame[datetime_col] = _naive_utc(pd.to_datetime(frame[datetime_col], utc=False))
    revenue = pd.to_numeric(frame[monetary_col])
    if (revenue < 0).any() or not np.all(np.isfinite(revenue)):
        raise ValueError("revenue must be finite and >= 0")
    frame[monetary_col] = revenue.astype(float)
    end = pd.Timestamp(observation_end)
    if end.tzinfo is not None:
        end = end.tz_convert("UTC").tz_localize(None)

    frame = frame[frame[datetime_col] < end]
    columns = ["frequency", "recency", "T", "monetary_value"]
    if frame.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name=customer_col)).astype(
            {"frequency": int, "recency": float, "T": float, "monetary_value": float}
        )
    unit = pd.Timedelta(days=time_unit_days)
    periods_back = np.ceil((end - frame[datetime_col]) / unit).astype(np.int64) - 1
    frame["_period"] = periods_back
    per_period = frame.groupby([customer_col, "_period"], sort=True)[monetary_col].sum().reset_index()

    grouped = per_period.groupby(customer_col, sort=True)
    first = grouped["_period"].max()  # periods are counted backwards: the largest is the earliest
    last = grouped["_period"].min()
    n_periods = grouped["_period"].size()
    total_revenue = grouped[monetary_col].sum()
    first_revenue = per_period.loc[per_period.groupby(customer_col)["_period"].idxmax()].set_index(
        customer_col
    )[monetary_col]
    frequency = (n_periods - 1).astype(int)
    repeat_revenue = total_revenue - first_revenue.reindex(total_revenue.index)
    monetary = (repeat_revenue / frequency.where(frequency > 0)).fillna(0.0)
    summary = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (first - last).astype(float),
            "T": first.astype(float),
            "monetary_value": monetary.astype(float),
        }
    )
    summary.index.name = customer_col
    return summary[columns]
