import math

import pytest

from pulse.audiences import AudienceConfigError, AudienceDefinition, Lift, load_definitions
from pulse.config import PROJECT_ROOT


def test_shipped_definitions_are_valid_and_cover_the_promised_audiences():
    names = {d.name for d in load_definitions(PROJECT_ROOT / "campaigns" / "audiences")}
    assert {"likely_buyers", "high_value_at_risk", "cart_abandoners", "win_back", "cross_sell"} <= names


@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": "Bad Name"}, "name"),
        ({"rule": "1=1; drop table raw.events"}, "rule"),
        ({"holdout_pct": 90}, "holdout_pct"),
        ({"rank_by": "score desc"}, "rank_by"),
        ({"max_size": 0}, "max_size"),
    ],
)
def test_bad_definitions_name_the_file_and_field(tmp_path, change, field):
    good = {
        "name": "x",
        "description": "d",
        "rule": "order_count > 0",
        "rank_by": "revenue",
        "holdout_pct": 10,
    }
    AudienceDefinition.model_validate(good)
    (tmp_path / "x.yml").write_text(
        "\n".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}" for k, v in {**good, **change}.items())
    )
    with pytest.raises(AudienceConfigError, match=field) as error:
        load_definitions(tmp_path)
    assert "x.yml" in str(error.value)


def test_lift_and_its_confidence_interval():
    lift = Lift(1000, 1000, 0.12, 0.10, 30.0, 25.0, 400.0, 400.0)
    assert lift.absolute_lift == pytest.approx(0.02)
    assert lift.relative_lift == pytest.approx(0.2)
    se = math.sqrt(0.12 * 0.88 / 1000 + 0.10 * 0.90 / 1000)
    low, high = lift.absolute_lift_ci
    assert (low, high) == pytest.approx((0.02 - 1.959964 * se, 0.02 + 1.959964 * se))
    assert lift.revenue_lift == 5.0
    assert lift.revenue_lift_ci[0] == pytest.approx(5.0 - 1.959964 * math.sqrt(0.8))
