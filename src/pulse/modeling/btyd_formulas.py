"""Buy-till-you-die formulas: BG/NBD and Gamma-Gamma parameters, likelihoods and closed-form
quantities (P(alive), expected purchases, purchase probability, expected spend), with input checks.

The models that fit them are in modeling/btyd.py.

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
from scipy import special

ArrayLike = Any  # float | np.ndarray | pd.Series


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
