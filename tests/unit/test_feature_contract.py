"""Feast's `customer_activity` schema is the enforced dbt contract of `marts.customer_features`.

The contract (`_marts__models.yml`) is what dbt creates the table with and checks the model's SQL
against; Feast's hand-written field list must name exactly its feature columns, with matching types, or
a renamed or retyped column would only fail at materialisation or training time.
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MARTS = ROOT / "dbt_project" / "models" / "marts" / "_marts__models.yml"
NOTHING_STORED = ROOT / "dbt_project" / "tests" / "fixtures" / "customer_features_nothing_stored.sql"
FEAST_TYPES = {"bigint": "Int64", "integer": "Int64", "double precision": "Float64"}


def contract() -> dict[str, dict]:
    models = yaml.safe_load(MARTS.read_text())["models"]
    model = next(m for m in models if m["name"] == "customer_features")
    assert model["config"]["contract"]["enforced"] is True
    return {c["name"]: c for c in model["columns"]}


def test_customer_activity_fields_are_the_contracts_feature_columns(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "feature_repo"))
    for name in ("feature_views", "data_sources", "entities"):
        sys.modules.pop(name, None)
    from feature_views import customer_activity

    # Feature columns: every numeric column not marked `meta: {feature: false}` (keys, dates and the
    # top category's name are not numeric).
    expected = {
        name: FEAST_TYPES[column["data_type"]]
        for name, column in contract().items()
        if column["data_type"] in FEAST_TYPES and column.get("meta", {}).get("feature", True)
    }
    actual = {field.name: str(field.dtype) for field in customer_activity.schema}
    assert actual == expected


def test_the_unit_tests_empty_mart_has_the_contracts_columns():
    lines = [line.strip().rstrip(",") for line in NOTHING_STORED.read_text().splitlines()]
    declared = [line.removeprefix("null::").split(" as ") for line in lines if line.startswith("null::")]
    assert {name: data_type for data_type, name in declared} == {
        name: column["data_type"] for name, column in contract().items()
    }
