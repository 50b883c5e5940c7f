"""Buy-till-you-die baselines: BG/NBD purchase counts and Gamma-Gamma spend, plus an RFM summary helper.

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

Formulas (with ``z = t / (alpha + T + t)``)
-------------------------------------------
* log-likelihood (FHL 2005)::

      L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
          + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))

  evaluated in log space with ``gammaln`` and ``logaddexp`` (the second term's beta ratio is
  ``a / (b+x-1)`` times the first's).
* ``P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))`` (FHL 2005). A
  customer with ``x = 0`` is alive with probability 1 by construction: in BG/NBD dropout can only happen
  right after a repeat purchase.
* conditional expectation (FHL 2005)::

      E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]
                            * P(alive | x, t_x, T)

  The bracket is evaluated through Euler's transformation
  ``2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z)``, which turns it into
  ``1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``: same value, but no huge intermediate ``2F1`` for
  heavy buyers (``(1-z)^(r+x)`` underflows while ``2F1`` overflows in the textbook form).
* unconditional ``E[X(t)] = (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]``
  (FHL 2005): the expected number of repeat purchases in ``(0, t]`` for a customer who has just made
  their first purchase (it equals the conditional expectation at ``x = t_x = T = 0``).
* probability of at least one purchase in ``(T, T+t]`` (the propensity baseline). Derivation: the likelihood
  factorises by state at ``T``. Given the data and that the customer is still alive at ``T``, the posterior of
  ``lambda`` is ``Gamma(r+x, alpha+T)`` (the Poisson part contributes ``lambda^x e^(-lambda T)``) and ``p`` is
  independent of it. An alive customer makes no purchase in the next ``t`` exactly when the next Poisson
  arrival comes after ``t`` (dropout only happens *after* a purchase, and the exponential wait is memoryless),
  which has probability ``e^(-lambda t)``; integrating over the posterior gamma gives
  ``((alpha+T)/(alpha+T+t))^(r+x)``. A dead customer never buys. Hence::

      P(Y(t) > 0 | x, t_x, T) = P(alive | x, t_x, T) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)]

  (``p`` does not appear: whether the customer drops out after that first future purchase is irrelevant).
* Gamma-Gamma: the mean ``zbar`` of ``x`` transactions is ``Gamma(p x, x nu)`` given ``nu``; integrating ``nu``
  out gives the likelihood ``Gamma(px+q)/(Gamma(px) Gamma(q)) v^q x^(px) zbar^(px-1) / (v + x zbar)^(px+q)``
  and the conditional expected transaction value::

      E[Z | zbar, x] = p (v + x zbar) / (p x + q - 1)
                     = (q-1)/(p x + q - 1) * p v/(q-1)  +  p x/(p x + q - 1) * zbar

  a weighted average of the population mean ``p v / (q-1)`` and the customer's own mean (needs ``q > 1``).
* Customer lifetime value / expected revenue over a horizon ``H``: ``E[Y(H) | ...] * E[Z | ...]``. With a
  ``discount_rate`` ``d`` per time unit, the horizon is cut into steps (one time unit by default); purchases
  expected in each step (differences of the conditional expectation) are discounted by ``(1+d)^-t_end`` at
  the end of their step. With ``d = 0`` this is exactly the undiscounted product.

Inputs may be scalars, numpy arrays or pandas Series (broadcast together); results come back as a float for
all-scalar input, a Series (with the first Series argument's index) if any input is a Series, else an array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

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

ArrayLike = Any  # float | np.ndarray | pd.Series
_LOG_BOUND = 30.0  # optimise log-parameters within [-30, 30]: positive, finite, no exp() overflow


class NotFittedError(RuntimeError):
    """The model has no parameters yet: call `fit` (or build it with `from_params`)."""


@dataclass(frozen=True)
class BetaGeoParams:
    """BG/NBD parameters: purchase rate ~ Gamma(shape r, rate alpha); dropout probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        _check_positive_params(self)


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma parameters: transaction value ~ Gamma(shape p, rate nu); nu ~ Gamma(shape q, rate v)."""

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        _check_positive_params(self)

    @property
    def population_mean_spend(self) -> float:
        """E[Z] = p v / (q - 1), the mean transaction value across customers (infinite unless q > 1)."""
        return self.p * self.v / (self.q - 1.0) if self.q > 1.0 else math.inf


def _check_positive_params(params: BetaGeoParams | GammaGammaParams) -> None:
    for name, value in vars(params).items():
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"parameter {name} must be a finite positive number, got {value!r}")


# --------------------------------------------------------------------------------------------------------
# input handling


def _series_index(*values: ArrayLike) -> pd.Index | None:
    for value in values:
        if isinstance(value, pd.Series):
            return value.index
    return None


def _as_float_arrays(names: tuple[str, ...], values: tuple[ArrayLike, ...]) -> list[np.ndarray]:
    arrays = []
    for name, value in zip(names, values, strict=True):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be numeric, got {type(value).__name__}") from exc
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        arrays.append(arr)
    try:
        return list(np.broadcast_arrays(*arrays))
    except ValueError as exc:
        shapes = ", ".join(f"{n}{a.shape}" for n, a in zip(names, arrays, strict=True))
        raise ValueError(f"inputs do not broadcast together: {shapes}") from exc


def _wrap(result: np.ndarray, *inputs: ArrayLike) -> ArrayLike:
    index = _series_index(*inputs)
    if index is not None and result.ndim == 1 and len(result) == len(index):
        return pd.Series(result, index=index)
    if result.ndim == 0:
        return float(result)
    return result


def _validate_rfm(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> tuple[np.ndarray, ...]:
    x, t_x, age = _as_float_arrays(("frequency", "recency", "T"), (frequency, recency, T))
    if np.any(x < 0):
        raise ValueError("frequency (repeat purchases) must be >= 0")
    if np.any(x != np.floor(x)):
        raise ValueError("frequency (repeat purchases) must be whole numbers")
    if np.any(t_x < 0):
        raise ValueError("recency must be >= 0")
    if np.any(age < 0):
        raise ValueError("T must be >= 0")
    tolerance = 1e-9 * np.maximum(1.0, np.abs(age))
    if np.any(t_x > age + tolerance):
        raise ValueError(
            "recency must not exceed T (the last purchase cannot come after the observation end)"
        )
    if np.any((x == 0) & (t_x > 0)):
        raise ValueError(
            "recency must be 0 when frequency is 0 (recency is the time from the first to the last purchase, "
            "not the time since the last purchase)"
        )
    return x, np.minimum(t_x, age), age


def _validate_horizon(t: ArrayLike, name: str = "t") -> np.ndarray:
    (arr,) = _as_float_arrays((name,), (t,))
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0")
    return arr


def _validate_spend(frequency: ArrayLike, monetary_value: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, m = _as_float_arrays(("frequency", "monetary_value"), (frequency, monetary_value))
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise ValueError("frequency (repeat purchases) must be whole numbers >= 0")
    if np.any(m < 0):
        raise ValueError("monetary_value must be >= 0")
    if np.any((x > 0) & (m <= 0)):
        raise ValueError("monetary_value must be > 0 for customers with repeat purchases (frequency > 0)")
    return x, m


def _validate_weights(weights: ArrayLike | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    (w,) = _as_float_arrays(("weights",), (weights,))
    w = np.broadcast_to(w, (n,)).astype(float)
    if np.any(w < 0) or not np.any(w > 0):
        raise ValueError("weights must be >= 0 and not all zero")
    return w


# --------------------------------------------------------------------------------------------------------
# BG/NBD formulas (plain functions; the model class wraps them)


def _bgnbd_ll(r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray):
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.where(x > 0, b + x - 1.0, 1.0)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return a1 + a2 + np.logaddexp(a3, a4)


def bgnbd_log_likelihood(params: BetaGeoParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike):
    """Per-customer BG/NBD log-likelihood log L(r, alpha, a, b | x, t_x, T)."""
    x, t_x, age = _validate_rfm(frequency, recency, T)
    ll = _bgnbd_ll(params.r, params.alpha, params.a, params.b, x, t_x, age)
    return _wrap(ll, frequency, recency, T)


def _prob_alive(params: BetaGeoParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    safe_denominator = np.where(x > 0, b + x - 1.0, 1.0)
    log_odds_dead = np.log(a) - np.log(safe_denominator) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(x > 0, special.expit(-log_odds_dead), 1.0)


def _expectation_bracket(r: float, a: float, b: float, x: np.ndarray, log_one_minus_z: np.ndarray, z):
    """(a+b+x-1)/(a-1) * [1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)] via Euler's transformation."""
    if abs(a - 1.0) < 1e-7:  # removable singularity at a = 1: step just off it (relative error ~1e-7)
        a = 1.0 + 1e-7
    c, z = np.broadcast_arrays(np.asarray(a + b + x - 1.0, dtype=float), np.asarray(z, dtype=float))
    hyp = np.atleast_1d(special.hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)).astype(float)
    # scipy returns NaN when c - A - B (= x + r - a + 1) is exactly an integer; the function is smooth in c,
    # so nudge c by a relative 1e-12 there.
    bad = ~np.isfinite(hyp)
    if np.any(bad):
        c_flat, z_flat = np.atleast_1d(c), np.atleast_1d(z)
        hyp[bad] = special.hyp2f1(a + b - 1.0 - r, a - 1.0, c_flat[bad] * (1.0 + 1e-12), z_flat[bad])
    hyp = hyp.reshape(c.shape)
    log_power = (a - 1.0) * log_one_minus_z
    # 1 - (1-z)^(a-1) * hyp, as -expm1(...) for accuracy when hyp > 0 (hyp can be negative only when
    # c = a + b + x - 1 < 0, i.e. x = 0 and a + b < 1).
    positive = hyp > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        bracket = np.where(
            positive,
            -np.expm1(log_power + np.log(np.where(positive, hyp, 1.0))),
            1.0 - np.exp(log_power) * hyp,
        )
    return c / (a - 1.0) * bracket


def _conditional_expected(params: BetaGeoParams, t: np.ndarray, x, t_x, T) -> np.ndarray:
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    log_one_minus_z = np.log(alpha + T) - np.log(alpha + T + t)
    expected = _expectation_bracket(r, a, b, x, log_one_minus_z, z) * _prob_alive(params, x, t_x, T)
    return np.where(t > 0, expected, 0.0)


def bgnbd_expected_purchases(params: BetaGeoParams, t: ArrayLike):
    """Unconditional E[X(t)]: expected repeat purchases in (0, t] after a customer's first purchase."""
    horizon = _validate_horizon(t)
    zeros = np.zeros_like(horizon)
    result = _conditional_expected(params, horizon, zeros, zeros, zeros)
    return _wrap(result, t)


def bgnbd_conditional_expected_purchases(
    params: BetaGeoParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
):
    """E[Y(t) | x, t_x, T]: expected purchases in the next t periods (FHL 2005)."""
    horizon = _validate_horizon(t)
    x, t_x, age = _validate_rfm(frequency, recency, T)
    horizon, x, t_x, age = np.broadcast_arrays(horizon, x, t_x, age)
    return _wrap(_conditional_expected(params, horizon, x, t_x, age), t, frequency, recency, T)


def bgnbd_prob_alive(params: BetaGeoParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike):
    """P(alive | x, t_x, T): probability the customer has not dropped out by T."""
    x, t_x, age = _validate_rfm(frequency, recency, T)
    return _wrap(_prob_alive(params, x, t_x, age), frequency, recency, T)


def bgnbd_prob_purchase(
    params: BetaGeoParams, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
):
    """P(at least one purchase in (T, T+t] | x, t_x, T) = P(alive) * [1 - ((alpha+T)/(alpha+T+t))^(r+x)]."""
    horizon = _validate_horizon(t)
    x, t_x, age = _validate_rfm(frequency, recency, T)
    horizon, x, t_x, age = np.broadcast_arrays(horizon, x, t_x, age)
    log_no_purchase_if_alive = (params.r + x) * (
        np.log(params.alpha + age) - np.log(params.alpha + age + horizon)
    )
    result = _prob_alive(params, x, t_x, age) * -np.expm1(log_no_purchase_if_alive)
    return _wrap(result, t, frequency, recency, T)


# --------------------------------------------------------------------------------------------------------
# Gamma-Gamma formulas


def _gg_ll(p: float, q: float, v: float, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    px = p * x
    return (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(v)
        + px * np.log(x)
        + (px - 1.0) * np.log(m)
        - (px + q) * np.log(v + x * m)
    )


def gamma_gamma_log_likelihood(params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike):
    """Per-customer log density of the mean transaction value (customers with frequency > 0 only)."""
    x, m = _validate_spend(frequency, monetary_value)
    if np.any(x == 0):
        raise ValueError("the Gamma-Gamma likelihood needs frequency > 0 (repeat transactions) for every row")
    return _wrap(_gg_ll(params.p, params.q, params.v, x, m), frequency, monetary_value)


def gamma_gamma_conditional_expected_spend(
    params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike
):
    """E[Z | zbar, x] = p (v + x zbar) / (p x + q - 1); x = 0 gives the population mean p v / (q - 1)."""
    if params.q <= 1.0:
        raise ValueError(f"expected spend is infinite unless q > 1 (fitted q = {params.q:.4g})")
    x, m = _validate_spend(frequency, monetary_value)
    p, q, v = params.p, params.q, params.v
    result = p * (v + x * m) / (p * x + q - 1.0)
    return _wrap(result, frequency, monetary_value)


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
