"""Deciding one entry: filters already passed, then paused, stale, consent, conditions, cap, holdout and
cancelling events already seen. Pure: everything it reads is handed to it (`pulse.triggers.lookups`).

Consent for real-time decisions: the entry event's own `context.consent.categoryPreferences` (the
freshest signal, free to read); when the event carries none, the customer's row in
`marts.customer_consent` (if that mart exists); otherwise `PULSE_CONSENT_DEFAULT` (deny), as for syncs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from pulse.triggers.conditions import flatten
from pulse.triggers.definitions import TriggerDefinition, holdout_bucket

MAX_ENTRY_LAG = timedelta(hours=1)  # entries older than wait + grace + this are stale: never fired
_decode = msgspec.json.Decoder().decode


def as_json(value: Any) -> Mapping[str, Any]:
    """A JSON object column as a mapping (psycopg may hand it over parsed or as text); {} otherwise."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str | bytes) and value:
        try:
            parsed = _decode(value)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event_consent(context: Mapping[str, Any]) -> dict[str, bool]:
    """Segment's consent object: `context.consent.categoryPreferences` ({category: bool})."""
    consent = context.get("consent")
    prefs = consent.get("categoryPreferences") if isinstance(consent, Mapping) else None
    if not isinstance(prefs, Mapping):
        return {}
    return {str(k).lower(): v for k, v in prefs.items() if isinstance(v, bool)}


@dataclass
class Trigger:
    definition: TriggerDefinition
    status: str  # active / paused

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass
class Decision:
    timer_key: str
    trigger: str
    customer_id: str
    entry_event_id: str
    entry_at: datetime
    wait_until: datetime
    fire_at: datetime
    group: str
    status: str  # pending / suppressed / cancelled
    action: str  # the log row: entered / suppressed_* / cancelled
    reason: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    cancel_event_id: str | None = None


@dataclass
class Context:
    """What the decisions of one batch read, fetched once for the batch."""

    batch_features: Mapping[str, Mapping[str, Any]]
    consent_rows: Mapping[str, Mapping[str, bool]]
    caps: Mapping[tuple[str, str], list[datetime]]
    prior_signals: Mapping[str, list[tuple[str, str, datetime]]]
    consent_default: str
    now: datetime


def decide(key: str, trigger: Trigger, record: Mapping[str, Any], ctx: Context) -> Decision:
    d = trigger.definition
    customer, entry_at = record["user_id"], utc(record["event_at"])
    wait = d.wait.duration if d.wait else timedelta(0)
    grace = d.wait.grace if d.wait else timedelta(0)
    group = "holdout" if holdout_bucket(d.name, customer) < d.holdout_pct else "treatment"
    features = {**ctx.batch_features.get(customer, {}), **(record.get("realtime") or {})}
    decision = Decision(
        key,
        d.name,
        customer,
        record["event_id"],
        entry_at,
        entry_at + wait,
        entry_at + wait + grace,
        group,
        "pending",
        "entered",
    )
    decision.payload = payload(d, record, features, decision)

    def suppress(action: str, reason: str) -> Decision:
        decision.status, decision.action, decision.reason = "suppressed", action, reason
        return decision

    if trigger.status != "active":
        return suppress("suppressed_paused", "the trigger is paused")
    if entry_at < ctx.now - wait - grace - MAX_ENTRY_LAG:
        return suppress(
            "suppressed_condition", f"entry event is stale (older than the wait + {MAX_ENTRY_LAG})"
        )
    if d.consent:
        category = d.consent.lower()
        own = event_consent(as_json(record.get("context")))
        if category in own:
            allowed, source = own[category], "the event's consent"
        elif category in ctx.consent_rows.get(customer, {}):
            allowed, source = ctx.consent_rows[customer][category], "marts.customer_consent"
        else:
            allowed, source = ctx.consent_default == "allow", "no consent signal (default)"
        if not allowed:
            return suppress("suppressed_consent", f"no consent for {category!r} ({source})")
    failed = [str(c) for c in d.conditions if not c.holds(features)]
    if failed:
        return suppress("suppressed_condition", "condition not met: " + "; ".join(failed))
    if d.frequency_cap:
        window_start = entry_at - d.frequency_cap.per
        recent = [at for at in ctx.caps.get((d.name, customer), []) if window_start < at <= entry_at]
        if len(recent) >= d.frequency_cap.max:
            return suppress(
                "suppressed_cap",
                f"{len(recent)} entries within {d.frequency_cap.per} (cap {d.frequency_cap.max})",
            )
    for event_id, name, at in ctx.prior_signals.get(customer, []):
        if name in d.cancel_events and entry_at < at <= decision.wait_until:
            decision.status, decision.action = "cancelled", "cancelled"
            decision.cancel_event_id, decision.reason = event_id, f"{name} at {at.isoformat()}"
            return decision
    return decision


def payload(
    d: TriggerDefinition, record: Mapping[str, Any], features: Mapping[str, Any], decision: Decision
) -> dict[str, Any]:
    props = None
    sources = {
        "customer_id": decision.customer_id,
        "trigger": d.name,
        "entry_event_id": decision.entry_event_id,
        "entry_event": d.entry.event,
        "entry_at": decision.entry_at.isoformat(),
        "due_at": decision.fire_at.isoformat(),
        "group": decision.group,
    }
    out: dict[str, Any] = {}
    for key, source in d.payload.items():
        if source in sources:
            out[key] = sources[source]
        elif source.startswith("properties."):
            props = props if props is not None else flatten(as_json(record.get("properties")))
            out[key] = props.get(source.removeprefix("properties."))
        else:
            value = features.get(source)
            out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out
