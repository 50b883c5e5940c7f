"""Audience rules are one boolean expression over audience_inputs: hostile SQL is refused at validation,
with the offending token named, before anything reaches dbt or the warehouse."""

from __future__ import annotations

import pytest

from pulse.audiences import AudienceConfigError, AudienceDefinition, load_definitions
from pulse.config import PROJECT_ROOT

HOSTILE = [
    ("order_count > 0; drop table raw.events", "';'"),
    ("order_count > 0 -- and revenue > 100", "comments"),
    ("order_count > 0 /* */ or true", "comments"),
    ("pg_sleep(10) is null", "pg_sleep()"),
    ("lo_export(16385, '/tmp/x') > 0", "lo_export()"),
    ("pg_read_file('/etc/passwd') is not null", "pg_read_file()"),
    ("current_setting('is_superuser') = 'on'", "current_setting()"),
    ("exists (select 1 from raw.events)", "subquery"),
    ("customer_id in (select customer_id from raw.events)", "subquery"),
    ("revenue > (select max(revenue) from marts.customers)", "subquery"),
    ("customer_id = any(array(select usename from pg_user))", "Any"),
    ("password_hash is not null", "unknown column 'password_hash'"),
    ("marts.customers.revenue > 10", "qualified"),
    ("pg_catalog.pg_user.usename is not null", "qualified"),
    ("customer_id::regclass is not null", "regclass"),
    ("customer_id::xml is not null", "XML"),
    ("customer_id::oid > 0", "OID"),
    ("generate_series(1, 1000000000) > 0", "generate_series"),
    ("unnest(array[1, 2]) > 0", "unnest"),
    ("dblink('host=evil', 'select 1') is null", "dblink()"),
    ("set_config('role', 'postgres', false) = ''", "set_config()"),
    ("now() > as_of", "current_timestamp"),
    ("order_count > 0 union select 1", "subquery"),
    ("revenue", "must be a condition"),
    ("revenue + 1", "must be a condition"),
    ("$1 > 0", "parameters ('$')"),
    ("order_count > 0) or (true", "at ')' (column 16)"),
    ("customer_id = $q$x$q$", "dollar-quoted"),
    ("order_count > 0 and " + "(" * 3000 + "true" + ")" * 3000, "at most"),
    ("copy (select 1) to program 'id'", "COPY is not allowed"),
]


def test_thirty_hostile_rules_are_each_refused_naming_the_token():
    assert len(HOSTILE) == 30
    unclear = {}
    for rule, named in HOSTILE:
        with pytest.raises(ValueError) as error:
            AudienceDefinition(name="x", description="d", rule=rule, rank_by="revenue", holdout_pct=10)
        message = str(error.value).split("[type=")[0]
        if not ("rule" in message and named.lower() in message.lower()):
            unclear[rule[:60]] = message
    assert unclear == {}


@pytest.mark.parametrize(
    "rank_by, named",
    [("rfm_segment", "not a number"), ("secret", "unknown column"), ("revenue desc", "rank_by")],
)
def test_rank_by_is_a_numeric_input_column(rank_by, named):
    with pytest.raises(ValueError, match=named):
        AudienceDefinition(name="x", description="d", rule="true", rank_by=rank_by, holdout_pct=10)


def test_shipped_audiences_stay_valid_and_run_as_the_checked_rendering():
    definitions = load_definitions(PROJECT_ROOT / "campaigns" / "audiences")
    assert len(definitions) >= 5
    cart = next(d for d in definitions if d.name == "cart_abandoners")
    assert "INTERVAL '24 HOURS'" in cart.rule  # sqlglot's rendering, not the raw YAML text


def test_a_bad_rule_in_yaml_names_the_file(tmp_path):
    (tmp_path / "evil.yml").write_text(
        'name: evil\ndescription: d\nrule: "pg_sleep(60) is null"\nrank_by: revenue\nholdout_pct: 10\n'
    )
    with pytest.raises(AudienceConfigError, match=r"(?s)evil\.yml.*pg_sleep"):
        load_definitions(tmp_path)
