"""BG/NBD + Gamma-Gamma baselines: published CDNOW figures, simulation-based recovery, edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from pulse.modeling.btyd import (
    BetaGeoModel,
    BetaGeoParams,
    GammaGammaModel,
    NotFittedError,
    customer_lifetime_value,
    rfm_summary,
)

# CDNOW estimates, time in weeks: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way".
CDNOW_BG = (0.243, 4.414, 0.793, 2.426)
# CDNOW estimates from Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value".
CDNOW_GG = (6.25, 3.74, 15.44)


def simulate_bgnbd(rng, n, r, alpha, a, b, T, holdout):
    """Simulate BG/NBD customers; returns calibration (x, t_x), holdout purchases and alive-at-T flags.

    Time 0 is each customer's first purchase. While active, purchases arrive at Poisson rate lambda; after
    every repeat purchase the customer drops out with probability p.
    """
    lam = np.maximum(rng.gamma(r, 1.0 / alpha, n), 1e-12)
    p = rng.beta(a, b, n)
    end = T + holdout
    t = np.zeros(n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    x_holdout = np.zeros(n)
    died_at = np.full(n, np.inf)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        t[idx] += rng.exponential(1.0 / lam[idx])
        in_calibration = t[idx] <= T[idx]
        in_holdout = (t[idx] > T[idx]) & (t[idx] <= end[idx])
        x[idx[in_calibration]] += 1
        t_x[idx[in_calibration]] = t[idx[in_calibration]]
        x_holdout[idx[in_holdout]] += 1
        drops = rng.random(idx.size) < p[idx]
        bought = in_calibration | in_holdout
        died_at[idx[bought & drops]] = t[idx[bought & drops]]
        active[idx[~bought | drops]] = False
    return x, t_x, x_holdout, died_at > T


def simulate_gamma_gamma(rng, x, p, q, v):
    """Mean of x Gamma(p, nu) transaction values per customer, nu ~ Gamma(q, v) (rates)."""
    nu = rng.gamma(q, 1.0 / v, x.size)
    return rng.gamma(p * x, 1.0 / (x * nu))


TRUE_BG = (0.5, 4.0, 0.6, 2.4)
TRUE_GG = (6.25, 3.74, 15.44)
N_CUSTOMERS = 5000
HOLDOUT = 26.0


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(20240611)
    T = rng.uniform(26.0, 52.0, N_CUSTOMERS)
    x, t_x, x_holdout, alive = simulate_bgnbd(rng, N_CUSTOMERS, *TRUE_BG, T, HOLDOUT)
    spend = np.zeros(N_CUSTOMERS)
    repeat = x > 0
    spend[repeat] = simulate_gamma_gamma(rng, x[repeat], *TRUE_GG)
    return pd.DataFrame(
        {
            "frequency": x,
            "recency": t_x,
            "T": T,
            "monetary_value": spend,
            "holdout": x_holdout,
            "alive": alive,
        }
    )


@pytest.fixture(scope="module")
def fitted_bg(simulated):
    return BetaGeoModel().fit(simulated["frequency"], simulated["recency"], simulated["T"])


# ---------------------------------------------------------------------------------------------------------
# published figures


def test_paper_worked_example_conditional_expectation():
    model = BetaGeoModel.from_params(*CDNOW_BG)
    # FHL (2005): x = 2, t_x = 30.43, T = 38.86 weeks -> 1.226 expected purchases in the next 39 weeks.
    assert model.predict_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-4)


def test_cdnow_unconditional_expectation_matches_hardie_spreadsheet():
    # E[X(t)] from Hardie's BG/NBD Excel implementation for CDNOW (the values the `lifetimes` test suite
    # checks). The published parameters are rounded to 3 decimals, which moves E[X(78)] by a few 1e-3,
    # hence the looser tolerance at long horizons.
    model = BetaGeoModel.from_params(*CDNOW_BG)
    times = np.array([0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0])
    expected = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    np.testing.assert_allclose(model.expected_purchases(times)[:3], expected[:3], atol=5e-4)
    np.testing.assert_allclose(model.expected_purchases(times)[3:], expected[3:], atol=5e-3)


def test_conditional_expectation_matches_textbook_hypergeometric_form():
    # The module evaluates the conditional expectation through Euler's transformation; the textbook form must agree.
    r, alpha, a, b = CDNOW_BG
    model = BetaGeoModel.from_params(*CDNOW_BG)
    t = np.array([39.0, 10.0, 39.0, 5.0, 52.0])
    x = np.array([2.0, 0.0, 20.0, 50.0, 7.0])
    t_x = np.array([30.43, 0.0, 35.0, 30.0, 12.0])
    T = np.array([38.86, 20.0, 38.0, 39.0, 38.0])
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    alive = 1 / (1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
    textbook = (a + b + x - 1) / (a - 1) * bracket * alive
    np.testing.assert_allclose(model.predict_purchases(t, x, t_x, T), textbook, rtol=1e-9)
    np.testing.assert_allclose(model.prob_alive(x, t_x, T), alive, rtol=1e-12)


def test_unconditional_expectation_is_the_conditional_one_for_a_brand_new_customer():
    model = BetaGeoModel.from_params(*CDNOW_BG)
    t = np.array([1.0, 13.0, 52.0, 104.0])
    np.testing.assert_allclose(model.expected_purchases(t), model.predict_purchases(t, 0, 0, 0), rtol=1e-12)


def test_log_likelihood_matches_direct_formula():
    r, alpha, a, b = CDNOW_BG
    model = BetaGeoModel.from_params(*CDNOW_BG)
    x = np.array([0.0, 1.0, 2.0, 7.0])
    t_x = np.array([0.0, 1.71, 30.43, 29.43])
    T = np.array([38.86, 38.86, 38.86, 38.86])
    common = special.gamma(r + x) * alpha**r / special.gamma(r)
    direct = special.beta(a, b + x) / special.beta(a, b) * common / (alpha + T) ** (r + x)
    direct = direct + np.where(
        x > 0,
        special.beta(a + 1, b + x - 1) / special.beta(a, b) * common / (alpha + t_x) ** (r + x),
        0.0,
    )
    np.testing.assert_allclose(model.log_likelihood(x, t_x, T), np.log(direct), rtol=1e-10)


def test_gamma_gamma_population_mean_and_weighted_average_form():
    p, q, v = CDNOW_GG
    model = GammaGammaModel.from_params(*CDNOW_GG)
    assert model.population_mean_spend == pytest.approx(p * v / (q - 1))
    assert model.population_mean_spend == pytest.approx(35.219, abs=1e-3)
    x = np.array([0, 1, 2, 5, 20])
    zbar = np.array([0.0, 10.0, 40.0, 35.0, 100.0])
    weight = p * x / (p * x + q - 1)
    expected = (1 - weight) * p * v / (q - 1) + weight * zbar
    np.testing.assert_allclose(model.expected_spend(x, zbar), expected, rtol=1e-12)
    assert model.expected_spend(0, 0.0) == pytest.approx(model.population_mean_spend)  # no repeat data
    assert model.expected_spend(10_000, 80.0) == pytest.approx(80.0, rel=1e-3)  # lots of data: own mean


def test_gamma_gamma_likelihood_is_a_density_of_the_mean_spend():
    # Integrates to 1 over zbar for any x, and its mean equals the population mean p v / (q - 1).
    model = GammaGammaModel.from_params(*CDNOW_GG)
    grid = np.linspace(1e-6, 2000.0, 400_001)
    for x in (1, 3, 10):
        density = np.exp(model.log_likelihood(np.full(grid.size, x), grid))
        assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)
        assert np.trapezoid(grid * density, grid) == pytest.approx(model.population_mean_spend, rel=5e-3)


# ---------------------------------------------------------------------------------------------------------
# simulation: parameter recovery and holdout calibration


def test_bgnbd_recovers_simulated_parameters(simulated, fitted_bg):
    r, alpha, a, b = TRUE_BG
    est = fitted_bg.params
    assert fitted_bg.converged_
    assert est.r == pytest.approx(r, rel=0.10)
    assert est.alpha == pytest.approx(alpha, rel=0.15)
    assert est.a / (est.a + est.b) == pytest.approx(a / (a + b), rel=0.10)  # mean dropout probability
    assert est.a == pytest.approx(a, rel=0.35)
    assert est.b == pytest.approx(b, rel=0.35)
    # Likelihood-ratio check: the truth must sit inside the 99.9% confidence region of the MLE.
    true_ll = float(
        np.sum(
            BetaGeoModel.from_params(*TRUE_BG).log_likelihood(
                *(simulated[c] for c in ("frequency", "recency", "T"))
            )
        )
    )
    assert fitted_bg.log_likelihood_ >= true_ll - 1e-6
    assert 2 * (fitted_bg.log_likelihood_ - true_ll) < stats.chi2.ppf(0.999, df=4)


def test_bgnbd_fit_is_time_unit_invariant(simulated, fitted_bg):
    days = BetaGeoModel().fit(simulated["frequency"], simulated["recency"] * 7, simulated["T"] * 7)
    assert days.params.alpha == pytest.approx(fitted_bg.params.alpha * 7, rel=1e-3)
    for name in ("r", "a", "b"):
        assert getattr(days.params, name) == pytest.approx(getattr(fitted_bg.params, name), rel=1e-3)


def test_holdout_purchases_match_predictions_on_average(simulated, fitted_bg):
    cal = simulated["frequency"], simulated["recency"], simulated["T"]
    holdout = simulated["holdout"]
    standard_error = holdout.std() / np.sqrt(len(holdout))
    predicted = fitted_bg.predict_purchases(HOLDOUT, *cal)
    assert isinstance(predicted, pd.Series) and predicted.index.equals(simulated.index)
    assert abs(predicted.mean() - holdout.mean()) < 4 * standard_error
    propensity = fitted_bg.prob_purchase(HOLDOUT, *cal)
    share_buying = (holdout > 0).mean()
    assert abs(propensity.mean() - share_buying) < 4 * np.sqrt(
        share_buying * (1 - share_buying) / len(holdout)
    )


@pytest.mark.parametrize("group", ["x=0", "x=1", "x=2-4", "x>=5"])
def test_conditional_formulas_are_calibrated_within_frequency_groups(simulated, group):
    # With the true parameters, E[Y | x, t_x, T], P(alive) and P(Y > 0) are exact conditional expectations,
    # so they must match the simulated outcomes within any group defined by the calibration data.
    x = simulated["frequency"]
    mask = {"x=0": x == 0, "x=1": x == 1, "x=2-4": (x >= 2) & (x <= 4), "x>=5": x >= 5}[group]
    data = simulated[mask]
    assert len(data) > 300
    n = len(data)
    model = BetaGeoModel.from_params(*TRUE_BG)
    cal = data["frequency"], data["recency"], data["T"]

    def close(predicted, observed):
        observed = np.asarray(observed, dtype=float)
        return abs(np.mean(predicted) - observed.mean()) < 4 * max(observed.std(), 0.05) / np.sqrt(n)

    assert close(model.predict_purchases(HOLDOUT, *cal), data["holdout"])
    assert close(model.prob_purchase(HOLDOUT, *cal), data["holdout"] > 0)
    assert close(model.prob_alive(*cal), data["alive"])


def test_gamma_gamma_recovers_simulated_parameters():
    # p and q trade off against each other with few transactions per customer (at a CDNOW-sized sample p
    # ranges over roughly 5-10 across seeds), so recovery uses a larger sample; still well under a second.
    p, q, v = TRUE_GG
    rng = np.random.default_rng(11)
    n = 20_000
    x = 1.0 + rng.poisson(2.0, n)
    zbar = simulate_gamma_gamma(rng, x, p, q, v)
    model = GammaGammaModel().fit(x, zbar)
    assert model.converged_
    est = model.params
    assert est.p == pytest.approx(p, rel=0.15)
    assert est.q == pytest.approx(q, rel=0.10)
    assert est.v == pytest.approx(v, rel=0.20)
    assert model.population_mean_spend == pytest.approx(p * v / (q - 1), rel=0.03)
    true_ll = float(np.sum(GammaGammaModel.from_params(*TRUE_GG).log_likelihood(x, zbar)))
    assert 0 <= 2 * (model.log_likelihood_ - true_ll) < stats.chi2.ppf(0.999, df=3)


def test_gamma_gamma_fit_ignores_customers_without_repeat_purchases(simulated):
    repeat = simulated[simulated["frequency"] > 0]
    everyone = GammaGammaModel().fit(simulated["frequency"], simulated["monetary_value"])
    repeaters = GammaGammaModel().fit(repeat["frequency"], repeat["monetary_value"])
    assert everyone.n_customers_ == repeaters.n_customers_ == len(repeat)
    assert everyone.params == repeaters.params
    # A CDNOW-sized sample still lands on the right population mean spend.
    p, q, v = TRUE_GG
    assert everyone.population_mean_spend == pytest.approx(p * v / (q - 1), rel=0.08)


def test_gamma_gamma_expected_spend_is_calibrated():
    # Customers' future transaction values average to their conditional expected spend.
    rng = np.random.default_rng(7)
    p, q, v = TRUE_GG
    n = 20_000
    x = rng.integers(1, 6, n).astype(float)
    nu = rng.gamma(q, 1.0 / v, n)
    zbar = rng.gamma(p * x, 1.0 / (x * nu))
    future = rng.gamma(p, 1.0 / nu)  # one future transaction each
    expected = GammaGammaModel.from_params(*TRUE_GG).expected_spend(x, zbar)
    for k in (1, 3, 5):
        group = x == k
        se = future[group].std() / np.sqrt(group.sum())
        assert abs(expected[group].mean() - future[group].mean()) < 4 * se


def test_customer_lifetime_value(simulated, fitted_bg):
    spend_model = GammaGammaModel.from_params(*TRUE_GG)
    cols = [simulated[c] for c in ("frequency", "recency", "T", "monetary_value")]
    undiscounted = customer_lifetime_value(fitted_bg, spend_model, *cols, horizon=52)
    product = fitted_bg.predict_purchases(52, *cols[:3]) * spend_model.expected_spend(cols[0], cols[3])
    np.testing.assert_allclose(undiscounted, product, rtol=1e-12)
    discounted = customer_lifetime_value(fitted_bg, spend_model, *cols, horizon=52, discount_rate=0.01)
    assert np.all(discounted < undiscounted)
    assert np.all(discounted > undiscounted / 1.01**52)
    # One step over the whole horizon discounts everything at the end.
    one_step = customer_lifetime_value(fitted_bg, spend_model, *cols, horizon=52, discount_rate=0.01, step=52)
    np.testing.assert_allclose(one_step, undiscounted / 1.01**52, rtol=1e-12)
    assert customer_lifetime_value(fitted_bg, spend_model, 0, 0, 30, 0, horizon=0) == 0.0


# ---------------------------------------------------------------------------------------------------------
# edge cases and validation


def test_customers_without_repeat_purchases():
    model = BetaGeoModel.from_params(*CDNOW_BG)
    r, alpha, _, _ = CDNOW_BG
    assert model.prob_alive(0, 0, 38.86) == 1.0
    T = np.array([0.0, 10.0, 38.86])
    # P(Y(t) > 0) for x = 0 is the NBD probability of at least one arrival: 1 - ((alpha+T)/(alpha+T+t))^r.
    np.testing.assert_allclose(model.prob_purchase(39, 0, 0, T), 1 - ((alpha + T) / (alpha + T + 39)) ** r)
    ll = model.log_likelihood(np.zeros(3), np.zeros(3), T)
    assert np.all(np.isfinite(ll)) and np.all(ll <= 0)
    # Expected purchases fall with T for a non-repeater (they have been quiet for longer).
    assert np.all(np.diff(model.predict_purchases(39, 0, 0, T)) < 0)


def test_prob_purchase_properties():
    model = BetaGeoModel.from_params(*CDNOW_BG)
    t = np.array([0.0, 1.0, 10.0, 1000.0, 1e7])
    prob = model.prob_purchase(t, 2, 30.43, 38.86)
    assert prob[0] == 0.0 and np.all(np.diff(prob) > 0)
    assert prob[-1] == pytest.approx(model.prob_alive(2, 30.43, 38.86), rel=1e-4)  # bounded by P(alive)
    assert np.all(prob <= model.predict_purchases(t, 2, 30.43, 38.86) + 1e-12)  # P(Y>0) <= E[Y]


def test_recent_heavy_buyers_and_lapsed_buyers_are_stable():
    model = BetaGeoModel.from_params(*CDNOW_BG)
    heavy = model.predict_purchases(
        39, np.array([200.0, 2000.0]), np.array([38.8, 38.8]), np.array([38.86, 38.86])
    )
    assert np.all(np.isfinite(heavy)) and heavy[1] > heavy[0] > 50
    lapsed = model.predict_purchases(39, 2000.0, 1.0, 38.86)  # many purchases, then silence: surely gone
    assert 0 <= lapsed < 1e-12
    assert model.prob_alive(2000, 1.0, 38.86) == pytest.approx(0.0, abs=1e-12)
    assert model.predict_purchases(0, 3, 10, 20) == 0.0


def test_awkward_parameter_regions_stay_finite():
    # c - A - B of the transformed 2F1 is x + r - a + 1: exactly an integer here (scipy returns NaN there).
    model = BetaGeoModel.from_params(0.01, 0.1, 1.01, 0.05)
    value = model.predict_purchases(1e4, 500, 100, 100)
    nearby = BetaGeoModel.from_params(0.01 + 1e-9, 0.1, 1.01, 0.05).predict_purchases(1e4, 500, 100, 100)
    assert np.isfinite(value) and value == pytest.approx(nearby, rel=1e-6)
    # a + b < 1 makes the hypergeometric's c negative for x = 0 (its value can be negative): still valid.
    r, alpha, a, b = 0.5, 5.0, 0.05, 0.05
    textbook = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + 52)) ** r * special.hyp2f1(r, b, a + b - 1, 52 / (alpha + 52)))
    )
    assert BetaGeoModel.from_params(r, alpha, a, b).expected_purchases(52.0) == pytest.approx(
        textbook, rel=1e-9
    )
    # a = 1 is a removable singularity of (a+b+x-1)/(a-1) * [...].
    at_one = BetaGeoModel.from_params(0.243, 4.414, 1.0, 2.426).predict_purchases(39, 2, 30.43, 38.86)
    around = [
        BetaGeoModel.from_params(0.243, 4.414, 1.0 + d, 2.426).predict_purchases(39, 2, 30.43, 38.86)
        for d in (-1e-4, 1e-4)
    ]
    assert min(around) - 1e-6 <= at_one <= max(around) + 1e-6


def test_scalar_and_array_outputs():
    model = BetaGeoModel.from_params(*CDNOW_BG)
    assert isinstance(model.prob_alive(2, 30.43, 38.86), float)
    out = model.predict_purchases(np.array([13.0, 26.0, 39.0]), 2, 30.43, 38.86)  # broadcast over t
    assert isinstance(out, np.ndarray) and out.shape == (3,) and np.all(np.diff(out) > 0)


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        (-1, 0, 10, "frequency"),
        (1.5, 2, 10, "whole numbers"),
        (2, -1, 10, "recency must be >= 0"),
        (2, 12, 10, "must not exceed T"),
        (2, 5, -1, "T must be >= 0"),
        (0, 3, 10, "recency must be 0 when frequency is 0"),
        (np.nan, 3, 10, "finite"),
    ],
)
def test_bad_rfm_inputs_raise(x, t_x, T, message):
    model = BetaGeoModel.from_params(*CDNOW_BG)
    with pytest.raises(ValueError, match=message):
        model.prob_alive(x, t_x, T)
    with pytest.raises(ValueError, match=message):
        BetaGeoModel().fit(np.array([x, 1]), np.array([t_x, 1]), np.array([T, 10]))


def test_other_validation_errors():
    model = BetaGeoModel.from_params(*CDNOW_BG)
    with pytest.raises(ValueError, match="t must be >= 0"):
        model.predict_purchases(-1, 2, 3, 10)
    with pytest.raises(ValueError, match="broadcast"):
        model.prob_alive([1, 2], [1, 2, 3], [5, 5])
    with pytest.raises(NotFittedError):
        BetaGeoModel().prob_alive(1, 1, 2)
    with pytest.raises(NotFittedError):
        GammaGammaModel().expected_spend(1, 10.0)
    with pytest.raises(ValueError, match="positive"):
        BetaGeoParams(0.2, -1.0, 0.5, 2.0)
    with pytest.raises(ValueError, match="T = 0"):
        BetaGeoModel().fit([0, 0], [0, 0], [0, 0])
    with pytest.raises(ValueError, match="monetary_value must be > 0"):
        GammaGammaModel().fit([1, 2, 3], [10.0, 0.0, 5.0])
    with pytest.raises(ValueError, match="monetary_value must be >= 0"):
        GammaGammaModel().fit([1, 2, 3], [10.0, -1.0, 5.0])
    with pytest.raises(ValueError, match="at least two customers"):
        GammaGammaModel().fit([0, 0, 4], [0.0, 0.0, 5.0])
    with pytest.raises(ValueError, match="q > 1"):
        GammaGammaModel.from_params(2.0, 0.9, 10.0).expected_spend(1, 10.0)


# ---------------------------------------------------------------------------------------------------------
# rfm_summary


def test_rfm_summary_daily():
    orders = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c", "c"],
            "ordered_at": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-01-01 18:00",  # same day as the first order: one purchase occasion, revenue summed
                    "2024-01-05 10:00",
                    "2024-01-11 12:00",
                    "2024-01-20 08:00",
                    "2024-01-03 10:00",
                    "2024-02-02 10:00",  # at/after observation_end: ignored
                ]
            ),
            "revenue": [10.0, 5.0, 20.0, 40.0, 7.0, 12.0, 99.0],
        }
    )
    summary = rfm_summary(orders, pd.Timestamp("2024-01-31"))
    assert list(summary.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert summary.loc["a"].tolist() == [2, 10.0, 29.0, 30.0]  # repeats on Jan 5 and Jan 11: (20 + 40) / 2
    assert summary.loc["b"].tolist() == [0, 0.0, 10.0, 0.0]
    assert summary.loc["c"].tolist() == [0, 0.0, 27.0, 0.0]
    assert summary["frequency"].dtype.kind == "i"


def test_rfm_summary_weekly_and_timezones():
    orders = pd.DataFrame(
        {
            "customer_id": [1, 1, 1],
            "ordered_at": pd.to_datetime(
                ["2024-01-01 10:00", "2024-01-02 10:00", "2024-01-20 10:00"]
            ).tz_localize("UTC"),
            "revenue": [10.0, 10.0, 30.0],
        }
    )
    summary = rfm_summary(orders, "2024-01-29T00:00:00+00:00", time_unit_days=7)
    # Weeks end at observation_end: (Jan 22, Jan 29] is week 0, ..., (Jan 1, Jan 8] is week 3.
    assert summary.loc[1].tolist() == [1, 2.0, 3.0, 30.0]
    # A naive observation_end is read as UTC too.
    assert rfm_summary(orders, "2024-01-29", time_unit_days=7).equals(summary)


def test_rfm_summary_feeds_the_models():
    rng = np.random.default_rng(3)
    n_orders = 3000
    orders = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 400, n_orders),
            "ordered_at": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.uniform(0, 180, n_orders), unit="D"),
            "revenue": rng.gamma(2.0, 20.0, n_orders),
        }
    )
    summary = rfm_summary(orders, "2024-07-01", time_unit_days=7)
    assert (summary["recency"] <= summary["T"]).all()
    model = BetaGeoModel().fit(summary["frequency"], summary["recency"], summary["T"])
    assert np.isfinite(model.log_likelihood_)
    spend = GammaGammaModel().fit(summary["frequency"], summary["monetary_value"])
    assert spend.params.p > 0


def test_rfm_summary_validation():
    good = pd.DataFrame({"customer_id": [1], "ordered_at": [pd.Timestamp("2024-01-01")], "revenue": [1.0]})
    with pytest.raises(KeyError, match="revenue"):
        rfm_summary(good.drop(columns="revenue"), "2024-02-01")
    with pytest.raises(ValueError, match="time_unit_days"):
        rfm_summary(good, "2024-02-01", time_unit_days=0)
    with pytest.raises(ValueError, match="revenue must be"):
        rfm_summary(good.assign(revenue=-1.0), "2024-02-01")
    empty = rfm_summary(good, "2023-01-01")
    assert empty.empty and list(empty.columns) == ["frequency", "recency", "T", "monetary_value"]
