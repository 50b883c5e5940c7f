"""Triggers as code: `campaigns/triggers/*.yml`, validated with pydantic, synced to
`activation.trigger_definitions` (where their state, active or paused, lives).

A trigger: an entry event with property filters; conditions on features and scores; an optional wait
that a cancelling event ends; a frequency cap per customer; a holdout share (a hash of trigger and
customer, as audiences' `holdout_bucket`); the consent category it needs; a destination and the payload
it is sent. See the README's "Triggered campaigns" section for every field.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from pulse.campaign_files import load_folder
from pulse.triggers.conditions import Clause, ConditionError

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
EVENT_PATTERN = r"^[a-z0-9_]{1,100}$"

# What conditions may name: scores (latest of each task in ml.scores), the collector's real-time
# features (pulse.features.realtime) and batch customer attributes (marts.customers).
SCORE_TASKS = ("purchase_propensity", "purchase_7d", "purchase_30d", "churn_90d", "value_90d")
SCORE_FIELDS = frozenset(f"{t}_{kind}" for t in SCORE_TASKS for kind in ("score", "percentile"))
REALTIME_FIELDS = frozenset(
    {"events_30m", "product_views_30m", "cart_value", "cart_items", "last_viewed_category"}
)
CUSTOMER_FIELDS = frozenset(
    {
        "order_count",
        "revenue",
        "avg_order_value",
        "days_since_last_order",
        "preferred_category",
        "preferred_channel",
        "sessions",
        "abandoned_carts",
        "product_views",
        "email_opens",
        "email_clicks",
        "email_click_rate",
        "rfm_segment",
        "rfm_recency_score",
        "rfm_frequency_score",
        "rfm_monetary_score",
    }
)
FEATURE_FIELDS = SCORE_FIELDS | REALTIME_FIELDS | CUSTOMER_FIELDS
# Payload values name one of these, a feature, or `properties.<name>` of the entry event.
PAYLOAD_SOURCES = frozenset(
    {"customer_id", "trigger", "entry_event_id", "entry_event", "entry_at", "due_at", "group"}
)

_DURATION_RE = re.compile(r"^\s*(\d{1,7})\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any) -> Any:
    """`30m`, `5s`, `24h`, `7d` (or a number of seconds)."""
    if isinstance(value, bool):
        raise ValueError("a duration is like 30m, 5s, 24h or 7d")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration: write 30s, 30m, 24h or 7d")
        return timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    return value


Duration = Annotated[
    timedelta, BeforeValidator(_duration), PlainSerializer(lambda d: int(d.total_seconds()), return_type=int)
]


def _conditions(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("conditions are a list of strings like `value > 50`")
    try:
        return [v if isinstance(v, Clause) else Clause.parse(v) for v in value]
    except ConditionError as error:
        raise ValueError(str(error)) from None


Conditions = Annotated[
    list[Clause],
    BeforeValidator(_conditions),
    PlainSerializer(lambda cs: [str(c) for c in cs], return_type=list[str]),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Entry(_Strict):
    event: str = Field(pattern=EVENT_PATTERN, description="normalised event name: checkout_started")
    where: Conditions = Field(default_factory=list, description="filters on the event's properties")


class Wait(_Strict):
    duration: Duration = Field(description="how long to hold before firing")
    cancel_on: list[Annotated[str, Field(pattern=EVENT_PATTERN)]] = Field(
        default_factory=list, description="events that cancel the wait (event time inside it)"
    )
    grace: Duration = Field(
        default=timedelta(seconds=5),
        description="how long after the wait a cancelling event timed inside it may still arrive",
    )

    @field_validator("duration")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(days=30):
            raise ValueError("a wait is between 1 second and 30 days")
        return value

    @field_validator("grace")
    @classmethod
    def _grace(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= timedelta(minutes=10):
            raise ValueError("the grace period is between 0 and 10 minutes")
        return value


class FrequencyCap(_Strict):
    max: int = Field(ge=1, le=1000, description="firings per customer")
    per: Duration = Field(description="within this period (30d; 3650d for 'ever')")


class Outcome(_Strict):
    event: str = Field(default="order_completed", pattern=EVENT_PATTERN)
    window: Duration = Field(default=timedelta(days=7), description="conversion window after the due time")


class Destination(_Strict):
    type: Literal["webhook"] = "webhook"
    url_env: str = Field(
        pattern=r"^[A-Z][A-Z0-9_]{0,99}$",
        description="environment variable holding the URL (secrets never live in YAML)",
    )
    secret_env: str | None = Field(
        default=None, pattern=r"^[A-Z][A-Z0-9_]{0,99}$", description="HMAC-SHA256 signing key, if any"
    )


class TriggerDefinition(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(min_length=1, max_length=500)
    entry: Entry
    conditions: Conditions = Field(default_factory=list)
    wait: Wait | None = None
    frequency_cap: FrequencyCap | None = None
    holdout_pct: int = Field(ge=0, le=50)
    consent: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_ -]{0,62}$")
    outcome: Outcome = Field(default_factory=Outcome)
    destination: Destination
    payload: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")], str] = Field(
        default_factory=lambda: {"customer_id": "customer_id", "trigger": "trigger"}
    )

    @field_validator("conditions")
    @classmethod
    def _known_features(cls, conditions: list[Clause]) -> list[Clause]:
        for field in {f for clause in conditions for f in clause.fields}:
            if field not in FEATURE_FIELDS:
                raise ValueError(
                    f"unknown feature {field!r}: use a score ({', '.join(sorted(SCORE_FIELDS)[:4])}, "
                    f"...), a real-time feature ({', '.join(sorted(REALTIME_FIELDS))}) or a customer "
                    "attribute of marts.customers"
                )
        return conditions

    @field_validator("payload")
    @classmethod
    def _known_sources(cls, payload: dict[str, str]) -> dict[str, str]:
        if not payload or len(payload) > 50:
            raise ValueError("a payload maps 1 to 50 keys to sources")
        for key, source in payload.items():
            if source in PAYLOAD_SOURCES or source in FEATURE_FIELDS:
                continue
            if re.fullmatch(r"properties\.[a-z0-9_]+(\.[a-z0-9_]+)*", source or ""):
                continue
            raise ValueError(
                f"payload {key!r}: {source!r} is not a source; use one of {sorted(PAYLOAD_SOURCES)}, "
                "a feature, or properties.<name> of the entry event"
            )
        return payload

    @property
    def cancel_events(self) -> frozenset[str]:
        return frozenset(self.wait.cancel_on) if self.wait else frozenset()

    @property
    def features(self) -> frozenset[str]:
        """The feature fields this trigger reads (conditions and payload)."""
        fields = {f for clause in self.conditions for f in clause.fields}
        fields |= {s for s in self.payload.values() if s in FEATURE_FIELDS}
        return frozenset(fields)

    def to_document(self) -> dict[str, Any]:
        """The definition as stored in the warehouse (durations in seconds, conditions as text)."""
        return json.loads(self.model_dump_json())

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> TriggerDefinition:
        return cls.model_validate(document)


def holdout_bucket(trigger: str, customer_id: str) -> int:
    """0..99, the same number dbt's `holdout_bucket` macro gives for (name, customer): md5 of
    `trigger:customer`, first 32 bits, modulo 100. The holdout is bucket < holdout_pct."""
    digest = hashlib.md5(f"{trigger}:{customer_id}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % 100


class TriggerConfigError(ValueError):
    """A trigger file is invalid; the message names the file and the field."""


def triggers_dir(project_dir: Path) -> Path:
    return project_dir / "campaigns" / "triggers"


def load_definitions(folder: Path) -> list[TriggerDefinition]:
    return load_folder(folder, TriggerDefinition, TriggerConfigError, "trigger")
