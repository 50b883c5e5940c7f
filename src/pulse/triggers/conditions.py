"""Conditions written in trigger YAML, parsed by a small typed grammar (never `eval`, never SQL).

One condition is `FIELD OP VALUE` or `FIELD is [not] null`:

    value > 50                      properties.value (entry filters) or a feature (conditions)
    purchase_propensity_percentile >= 80
    category in ["shoes", "bags"]
    coupon is null

`FIELD` is a dotted name (`[a-z_][a-z0-9_]*(.[a-z0-9_]+)*`); `OP` one of `== != > >= < <= in not in`;
Alternatives are joined by `or` (`order_count is null or order_count == 0`); the items of a list of
conditions must all hold. `VALUE` a JSON literal (number, "string" or 'string', true, false, or a list of those for `in`).
Ordered comparisons need a number. A missing field, or a value of the wrong type, makes the condition
false (except `is null`): a trigger never fires on data it cannot read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_FIELD = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*"
_NULL_RE = re.compile(rf"^\s*(?P<field>{_FIELD})\s+is\s+(?P<not>not\s+)?null\s*$", re.IGNORECASE)
_CMP_RE = re.compile(
    rf"^\s*(?P<field>{_FIELD})\s*(?P<op>==|!=|>=|<=|>|<|=|\s+not\s+in\s+|\s+in\s+)\s*(?P<value>.+?)\s*$",
    re.IGNORECASE,
)
MAX_CONDITION_CHARS = 500
MAX_LIST_ITEMS = 1_000

_ORDERED: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}
Scalar = str | int | float | bool


class ConditionError(ValueError):
    """A condition that does not parse; the message says what was expected."""


_STRINGS_RE = re.compile(r"""("(?:[^"\\]|\\.)*")|'([^']*)'""")


def _literal(text: str) -> Any:
    # 'single-quoted' strings become JSON strings; "double-quoted" ones are left as they are.
    text = _STRINGS_RE.sub(lambda m: m[1] or json.dumps(m[2]), text)
    try:
        value = json.loads(text)
    except ValueError:
        raise ConditionError(
            f"{text!r} is not a value: write a number, a quoted string, true, false or a [list]"
        ) from None
    return value


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int | float) and not (
        isinstance(value, float) and not math.isfinite(value)
    )


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # == != > >= < <= in "not in" "is null" "is not null"
    value: Scalar | tuple[Scalar, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> Condition:
        """One comparison (`Clause.parse` checks the text's type and length first)."""
        if match := _NULL_RE.match(text):
            return cls(match["field"].lower(), "is not null" if match["not"] else "is null")
        match = _CMP_RE.match(text)
        if not match:
            raise ConditionError(
                f"{text!r}: expected `FIELD OP VALUE` (OP one of == != > >= < <= in, not in) "
                "or `FIELD is [not] null`"
            )
        op = " ".join(match["op"].lower().split())
        op = "==" if op == "=" else op
        value = _literal(match["value"])
        if op in ("in", "not in"):
            if not isinstance(value, list) or not value or len(value) > MAX_LIST_ITEMS:
                raise ConditionError(f"{text!r}: `{op}` takes a non-empty [list] of values")
            if not all(_scalar(v) for v in value):
                raise ConditionError(f"{text!r}: list items must be numbers, strings or booleans")
            return cls(match["field"].lower(), op, tuple(value))
        if not _scalar(value):
            raise ConditionError(f"{text!r}: compare with a number, a string or a boolean")
        if op in _ORDERED and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConditionError(f"{text!r}: `{op}` compares numbers")
        return cls(match["field"].lower(), op, value)

    def __str__(self) -> str:
        if self.op in ("is null", "is not null"):
            return f"{self.field} {self.op}"
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return f"{self.field} {self.op} {json.dumps(value)}"

    def holds(self, values: Mapping[str, Any]) -> bool:
        """True when the condition holds for `values` (a flat mapping of field -> value)."""
        present = self.field in values and values[self.field] is not None
        if self.op == "is null":
            return not present
        if self.op == "is not null":
            return present
        if not present:
            return False
        actual = values[self.field]
        if self.op in _ORDERED:
            number = _number(actual)
            return number is not None and _ORDERED[self.op](number, float(self.value))  # type: ignore[arg-type]
        if self.op in ("in", "not in"):
            found = any(_equal(actual, v) for v in self.value)  # type: ignore[union-attr]
            return found if self.op == "in" else not found
        same = _equal(actual, self.value)
        return same if self.op == "==" else not same


_OR_RE = re.compile(r"""\s+or\s+(?=(?:[^"']|"[^"]*"|'[^']*')*$)""", re.IGNORECASE)


@dataclass(frozen=True)
class Clause:
    """Conditions joined by `or`: holds when any of them does."""

    alternatives: tuple[Condition, ...]

    @classmethod
    def parse(cls, text: str) -> Clause:
        if not isinstance(text, str) or not text.strip():
            raise ConditionError("a condition is a non-empty string like `value > 50`")
        if len(text) > MAX_CONDITION_CHARS:
            raise ConditionError(f"a condition is at most {MAX_CONDITION_CHARS} characters")
        return cls(tuple(Condition.parse(part) for part in _OR_RE.split(text)))

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(c.field for c in self.alternatives)

    def holds(self, values: Mapping[str, Any]) -> bool:
        return any(c.holds(values) for c in self.alternatives)

    def __str__(self) -> str:
        return " or ".join(map(str, self.alternatives))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, int | float):
        number = _number(actual)
        return number is not None and number == float(expected)
    return isinstance(actual, str) and actual == expected


def flatten(
    document: Any, prefix: str = "", depth: int = 0, out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (keys lowercased, 8 levels at most): what FIELD names."""
    out = {} if out is None else out
    if isinstance(document, Mapping) and depth < 8:
        for key, value in document.items():
            name = f"{prefix}{str(key).lower()}"
            if isinstance(value, Mapping):
                flatten(value, name + ".", depth + 1, out)
            else:
                out[name] = value
    return out
