"""Audience rules are parsed, not trusted: one boolean expression over `audiences.audience_inputs`.

A rule is SQL a marketer writes and dbt inlines into `audience_members`, so it is checked the way a
compiler would: sqlglot parses it (PostgreSQL dialect) and every node of the tree must be on an
allow-list of operators and functions, every column one of `audience_inputs`'s (read from that model's
enforced dbt contract, the one list of them). What is stored and run is sqlglot's rendering of the
checked tree, so text the parser did not see (comments, a second statement) cannot reach the warehouse.
"""

from __future__ import annotations

from functools import cache

import sqlglot
import yaml
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from pulse.config import PROJECT_ROOT

MAX_RULE_CHARS = 2000
INPUTS_CONTRACT = PROJECT_ROOT / "dbt_project" / "models" / "audiences" / "_audiences__models.yml"
NUMERIC_TYPES = {"integer", "bigint", "double precision", "numeric"}

_DIALECT = sqlglot.Dialect.get_or_raise("postgres")

# What a rule's result may be: a condition, not a value.
_PREDICATES = (
    exp.And,
    exp.Or,
    exp.Not,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.Is,
    exp.Between,
    exp.In,
    exp.Like,
    exp.ILike,
    exp.Boolean,
)
# Every node a rule may contain. Functions are pure, scalar and cheap: nothing that reads other tables,
# files or settings, sleeps, or returns sets.
_ALLOWED = (
    *_PREDICATES,
    exp.Paren,
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Null,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.Neg,
    exp.Case,
    exp.If,
    exp.Interval,
    exp.Cast,
    exp.DataType,
    exp.Coalesce,
    exp.Abs,
    exp.Greatest,
    exp.Least,
    exp.Round,
    exp.Floor,
    exp.Ceil,
    exp.Lower,
    exp.Upper,
    exp.Length,
    exp.Extract,
    exp.Var,
)
_CAST_TYPES = {
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
    exp.DataType.Type.DOUBLE,
    exp.DataType.Type.DECIMAL,
    exp.DataType.Type.TEXT,
    exp.DataType.Type.VARCHAR,
    exp.DataType.Type.BOOLEAN,
    exp.DataType.Type.DATE,
    exp.DataType.Type.TIMESTAMPTZ,
    exp.DataType.Type.INTERVAL,
}
_TIME_UNITS = {
    *(u + s for u in ("SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "YEAR") for s in ("", "S")),
    "DOW",
    "EPOCH",
}


class RuleError(ValueError):
    """A rule is refused; the message names the offending token."""


@cache
def input_columns() -> dict[str, str]:
    """`audiences.audience_inputs` column -> SQL type, from the model's dbt contract."""
    models = yaml.safe_load(INPUTS_CONTRACT.read_text())["models"]
    model = next(m for m in models if m["name"] == "audience_inputs")
    return {c["name"]: c["data_type"] for c in model["columns"]} | UPLIFT_COLUMNS


# Joined to the inputs per audience from ml.uplift_scores of the definition's `uplift_campaign`.
UPLIFT_COLUMNS = {"uplift": "double precision", "uplift_if_treated": "double precision",
                  "uplift_if_control": "double precision"}  # fmt: skip


def _node_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Func):
        # As PostgreSQL spells it (sqlglot's class names differ: unnest is Explode).
        return f"function {node.sql(dialect=_DIALECT).split('(')[0].strip().lower()}()"
    return node.key.upper()


def _check_node(node: exp.Expr, columns: dict[str, str]) -> None:
    if isinstance(node, (exp.Select, exp.Subquery, exp.Exists, exp.Query)):
        raise RuleError("a rule may not contain a subquery (SELECT)")
    if not isinstance(node, _ALLOWED) or isinstance(node, exp.Anonymous):
        raise RuleError(f"{_node_name(node)} is not allowed in a rule")
    if isinstance(node, exp.Column):
        if node.table or node.args.get("db") or node.args.get("catalog"):
            raise RuleError(f"column {node.sql(dialect='postgres')!r} may not be qualified")
        if node.name not in columns:
            raise RuleError(f"unknown column {node.name!r}: not a column of audiences.audience_inputs")
    elif isinstance(node, exp.Identifier) and not isinstance(node.parent, exp.Column):
        raise RuleError(f"identifier {node.name!r} is not allowed here")
    elif isinstance(node, exp.Var):
        if not isinstance(node.parent, (exp.Interval, exp.Extract)) or node.name.upper() not in _TIME_UNITS:
            raise RuleError(f"{node.name!r} is not allowed in a rule")
    elif isinstance(node, exp.DataType):
        if node.this not in _CAST_TYPES or node.expressions:
            raise RuleError(f"cast to {node.sql(dialect='postgres')} is not allowed")
    elif isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest")):
        raise RuleError("IN takes a list of values, not a subquery")
    elif isinstance(node, exp.Interval) and not (isinstance(node.this, exp.Literal) and node.this.is_string):
        raise RuleError("an interval is a quoted literal, e.g. interval '24 hours'")


def check_rule(rule: str) -> str:
    """The rule as PostgreSQL that may run, or RuleError naming what is refused."""
    if len(rule) > MAX_RULE_CHARS:
        raise RuleError(f"a rule is at most {MAX_RULE_CHARS} characters")
    try:
        tokens = _DIALECT.tokenize(rule)
    except TokenError as error:
        raise RuleError(f"not SQL: {error}") from None
    for token in tokens:
        if token.comments:
            raise RuleError(f"comments are not allowed (near {token.text!r})")
        if token.token_type == TokenType.SEMICOLON:
            raise RuleError("a rule is one condition: ';' (a second statement) is not allowed")
        if token.token_type in (TokenType.PARAMETER, TokenType.PLACEHOLDER, TokenType.COLON):
            raise RuleError(f"parameters ({token.text!r}) are not allowed in a rule")
        if token.token_type == TokenType.HEREDOC_STRING:
            raise RuleError("dollar-quoted strings are not allowed: quote text with '...'")
    try:
        statements = sqlglot.parse(rule, read=_DIALECT)
    except ParseError as error:
        where = error.errors[0] if error.errors else {}
        raise RuleError(
            f"not a SQL condition: {where.get('description', error)} at {where.get('highlight')!r} "
            f"(column {where.get('col')})"
        ) from None
    except TokenError as error:
        raise RuleError(f"not a SQL condition: {error}") from None
    except RecursionError:
        raise RuleError("a rule nests too deeply") from None
    if len(statements) != 1 or statements[0] is None:
        raise RuleError("a rule is exactly one condition")
    tree = statements[0]
    if tree.comments:
        raise RuleError("comments are not allowed")
    columns = input_columns()
    for node in tree.walk():
        _check_node(node, columns)
    top = tree.unnest()
    if not isinstance(top, _PREDICATES):
        raise RuleError(f"a rule must be a condition (true or false), not {_node_name(top)}")
    return tree.sql(dialect=_DIALECT)


def check_rank_by(column: str) -> str:
    """`rank_by` is a numeric column of audience_inputs, nothing else."""
    columns = input_columns()
    if column not in columns:
        raise RuleError(f"unknown column {column!r}: rank_by is a column of audiences.audience_inputs")
    if columns[column] not in NUMERIC_TYPES:
        raise RuleError(f"rank_by column {column!r} is {columns[column]}, not a number")
    return column
