"""Uplift metrics against cases computed by hand (the arithmetic is in each test's comments)."""

import numpy as np
import pytest

from pulse.modeling import uplift_metrics as um

# Four customers, best score first: treated buyer, control non-buyer, treated non-buyer, control buyer.
SCORE = [4, 3, 2, 1]
TREATED = [1, 0, 1, 0]
OUTCOME = [1, 0, 0, 1]


def test_qini_curve_by_hand():
    # After k customers: Y_t - Y_c * N_t / N_c = 1, 1, 1, 1 - 1*2/2 = 0; divided by N_t = 2.
    curve = um.qini_curve(OUTCOME, TREATED, SCORE)
    assert curve.x.tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert curve.y.tolist() == [0, 0.5, 0.5, 0.5, 0]


def test_qini_coefficient_by_hand():
    # Trapezoids: .25*.25 + .25*.5 + .25*.5 + .25*.25 = 0.375; the random line ends at 0.
    assert um.qini_coefficient(OUTCOME, TREATED, SCORE) == pytest.approx(0.375)
    # The reverse ranking (control buyer first):
    # k=1: c buyer -> 0 - 1*0/1 = 0; k=2: +t non-buyer -> 0 - 1*1/1 = -1; k=3: +c -> 0 - 1*1/2 = -.5;
    # k=4: 1 - 1 = 0. y/2 = 0, -.5, -.25, 0 -> area .25*(-.25) + .25*(-.375) + .25*(-.125) = -0.1875.
    assert um.qini_coefficient(OUTCOME, TREATED, [1, 2, 3, 4]) == pytest.approx(-0.1875)


def test_auuc_by_hand():
    # (rate_t - rate_c) * k / n = 1*1/4, 1*2/4, (.5-0)*3/4, (.5-.5)*4/4 = .25, .5, .375, 0.
    # Trapezoids: .25*(.125 + .375 + .4375 + .1875) = 0.28125.
    assert um.uplift_curve(OUTCOME, TREATED, SCORE).y.tolist() == [0, 0.25, 0.5, 0.375, 0]
    assert um.auuc(OUTCOME, TREATED, SCORE) == pytest.approx(0.28125)


def test_ties_enter_together_so_a_constant_score_is_random():
    outcome = [1, 0, 0, 1, 1, 0]
    treated = [1, 1, 0, 0, 1, 0]
    # One tie group: the curve is the line from (0, 0) to its end, so the Qini coefficient is 0.
    curve = um.qini_curve(outcome, treated, [7] * 6)
    assert curve.x.tolist() == [0, 1]
    assert um.qini_coefficient(outcome, treated, [7] * 6) == pytest.approx(0)
    # Reordering rows inside a tie group changes nothing.
    score = [2, 2, 1, 1, 2, 1]
    perm = [4, 3, 0, 5, 1, 2]
    a = um.qini_coefficient(outcome, treated, score)
    b = um.qini_coefficient(np.take(outcome, perm), np.take(treated, perm), np.take(score, perm))
    assert a == pytest.approx(b)


def test_uplift_at_share_by_hand():
    # Top half: the treated buyer and the control non-buyer: 1 - 0.
    assert um.uplift_at(OUTCOME, TREATED, SCORE, 0.5) == 1.0
    # Everyone: 1/2 - 1/2.
    assert um.uplift_at(OUTCOME, TREATED, SCORE, 1.0) == 0.0
    # Top quarter holds only a treated customer: no estimate.
    assert np.isnan(um.uplift_at(OUTCOME, TREATED, SCORE, 0.25))


def test_bootstrap_interval_covers_the_estimate_and_narrows_with_data():
    rng = np.random.default_rng(1)
    n = 4000
    treated = rng.random(n) < 0.5
    score = rng.random(n)
    effect = np.where(score > 0.8, 0.3, 0.0)  # the top 20% respond to treatment, nobody else
    outcome = (rng.random(n) < 0.1 + effect * treated).astype(float)
    value, low, high = um.bootstrap_uplift_at(outcome, treated, score, 0.1, rounds=200)
    assert low < value < high
    assert low > 0.15 and high < 0.45  # true uplift in the top 10% is 0.3
    small = um.bootstrap_uplift_at(outcome[:400], treated[:400], score[:400], 0.1, rounds=200)
    assert small[2] - small[1] > high - low


def test_uplift_by_decile_and_rows():
    outcome = [1, 0] * 10
    treated = [1, 0] * 10
    score = np.arange(20, 0, -1)
    # Each decile holds one treated buyer and one control non-buyer.
    assert um.uplift_by_decile(outcome, treated, score) == [1.0] * 10
    rows = um.metric_rows(outcome, treated, score, rounds=20)
    names = {name for name, _, _ in rows}
    assert {"qini", "auuc", "uplift_at_10", "uplift_at_20_low", "uplift_at_30_high", "qini_x"} <= names
    assert len([r for r in rows if r[0] == "qini_y"]) == um.CURVE_POINTS


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="both treated and control"):
        um.qini_coefficient([1, 0], [1, 1], [1, 2])
    with pytest.raises(ValueError, match="equal length"):
        um.auuc([1, 0], [1, 0], [1])
