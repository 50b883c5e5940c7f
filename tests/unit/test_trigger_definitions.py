"""Trigger YAML: the condition grammar (typed, no eval) and the definitions' validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.config import PROJECT_ROOT
from pulse.triggers.conditions import Clause, ConditionError
from pulse.triggers.definitions import TriggerDefinition, holdout_bucket, load_definitions


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("value > 50", {"value": 60}, True),
        ("value > 50", {"value": "60.5"}, True),
        ("value > 50", {"value": 50}, False),
        ("value > 50", {}, False),  # missing: false
        ("value > 50", {"value": "lots"}, False),  # wrong type: false
        ("value > 50", {"value": True}, False),
        ("category in ['shoes', \"bags\"]", {"category": "bags"}, True),
        ("category not in ['shoes']", {"category": "bags"}, True),
        ("coupon is null", {}, True),
        ("coupon is not null", {"coupon": "X"}, True),
        ("flag == true", {"flag": 1}, False),
        ("order_count is null or order_count == 0", {"order_count": 0}, True),
        ("order_count is null or order_count == 0", {"order_count": 2}, False),
        ("name == 'a or b'", {"name": "a or b"}, True),  # `or` inside quotes is text
    ],
)
def test_conditions(text, values, expected):
    assert Clause.parse(text).holds(values) is expected


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('x') == 1",
        "value > 'fifty'",
        "value >> 5",
        "value in 5",
        "value == {'a': 1}",
        "1 == value",
        "value > 5; drop table x",
        "",
        "value > " + "9" * 600,
    ],
)
def test_conditions_refused(text):
    with pytest.raises(ConditionError):
        Clause.parse(text)


def base(**overrides) -> dict:
    document = {
        "name": "t",
        "description": "d",
        "entry": {"event": "checkout_started"},
        "holdout_pct": 10,
        "destination": {"url_env": "HOOK_URL"},
    }
    document.update(overrides)
    return document


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"conditions": ["no_such_feature > 1"]}, "unknown feature"),
        ({"payload": {"x": "traits.email"}}, "is not a source"),
        ({"wait": {"duration": "forever"}}, "is not a duration"),
        ({"wait": {"duration": "31d"}}, "between 1 second and 30 days"),
        ({"holdout_pct": 80}, "less than or equal to 50"),
        ({"destination": {"url": "https://x"}}, "url_env"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_invalid_definitions(overrides, message):
    with pytest.raises(ValueError, match=message):
        TriggerDefinition.model_validate(base(**overrides))


def test_shipped_triggers_load_and_round_trip():
    definitions = load_definitions(PROJECT_ROOT / "campaigns" / "triggers")
    assert {d.name for d in definitions} == {"abandoned_checkout", "welcome_first_order"}
    for d in definitions:
        assert TriggerDefinition.from_document(d.to_document()) == d


def test_holdout_bucket_is_stable_and_spread():
    buckets = [holdout_bucket("abandoned_checkout", f"c{i}") for i in range(2000)]
    assert buckets == [holdout_bucket("abandoned_checkout", f"c{i}") for i in range(2000)]
    assert 150 <= sum(b < 10 for b in buckets) <= 250


def test_duplicate_names_are_refused(tmp_path: Path):
    import yaml

    for file in ("a.yml", "b.yml"):
        (tmp_path / file).write_text(yaml.safe_dump(base()))
    with pytest.raises(ValueError, match="unique"):
        load_definitions(tmp_path)
