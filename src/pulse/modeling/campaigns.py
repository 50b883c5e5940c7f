"""Campaign outcomes with a random control group: the training data of uplift models.

Two sources, one table (`ml.campaign_outcomes`: group, outcome, features per customer):
- a file of an earlier campaign (`pulse import-campaign`), one row per customer;
- an audience Pulse ran itself, once a cohort's outcome window has passed: each member's group
  (treatment or holdout), whether they ordered in the window, and their features at entry, read from the
  same point-in-time feature snapshot the audience was chosen from.

Re-importing a name replaces that campaign's rows in one transaction.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine

MAX_FEATURES = 200


@dataclass(frozen=True)
class CampaignColumns:
    customer: str = "customer_id"
    group: str = "group"
    treatment_value: str = "treatment"
    control_value: str = "control"
    outcome: str = "converted"
    features: tuple[str, ...] | None = None  # None: every other column


@dataclass(frozen=True)
class CampaignImport:
    campaign: str
    treatment: int
    control: int
    without_outcome: int
    other_groups: int
    outcome_is_binary: bool
    features: tuple[str, ...]


def lock_campaign(conn, campaign: str) -> None:
    """Serialise writers of one campaign (import, training) until the transaction ends."""
    conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('pulse.campaign:' || :c))"), {"c": campaign})


def _outcome(text: str, line: int) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"line {line}: outcome {text[:40]!r} is not 0/1 or a number") from None
    if not math.isfinite(value):
        raise ValueError(f"line {line}: outcome must be a finite number")
    return value


def import_campaign(
    path: Path, name: str, settings: Settings | None = None, columns: CampaignColumns | None = None
) -> CampaignImport:
    """Read a campaign CSV (one row per customer) into ml.campaign_outcomes under `name`."""
    settings = settings or get_settings()
    columns = columns or CampaignColumns()
    if not name.strip():
        raise ValueError("the campaign needs a name")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        required = [columns.customer, columns.group, columns.outcome]
        missing = [c for c in [*required, *(columns.features or ())] if c not in header]
        if missing:
            raise ValueError(f"{path.name} has no column {', '.join(missing)} (columns: {', '.join(header)})")
        features = columns.features or tuple(c for c in header if c not in required)
        if len(features) > MAX_FEATURES:
            raise ValueError(
                f"{len(features)} feature columns; at most {MAX_FEATURES} (choose with --features)"
            )
        rows, seen, other = [], set(), 0
        for line, record in enumerate(reader, start=2):
            if None in record:
                raise ValueError(f"line {line}: more fields than the header has columns")
            group = (record[columns.group] or "").strip()
            if group not in (columns.treatment_value, columns.control_value):
                other += 1
                continue
            customer = (record[columns.customer] or "").strip()
            if not customer:
                raise ValueError(f"line {line}: empty {columns.customer}")
            if customer in seen:
                raise ValueError(f"line {line}: customer {customer[:40]!r} appears twice")
            seen.add(customer)
            rows.append(
                {
                    "customer_id": customer,
                    "is_treated": group == columns.treatment_value,
                    "outcome": _outcome(record[columns.outcome] or "", line),
                    "features": json.dumps({f: record[f] for f in features}),
                }
            )
    return _store(name, f"file:{path.name}", rows, other, features, settings)


def _store(name, source, rows, other_groups, features, settings) -> CampaignImport:
    treated = sum(r["is_treated"] for r in rows)
    known = [r["outcome"] for r in rows if r["outcome"] is not None]
    if treated == 0 or treated == len(rows):
        raise ValueError(f"campaign {name!r} needs customers in both the treatment and the control group")
    binary = all(v in (0.0, 1.0) for v in known)
    with engine(settings).begin() as conn:
        lock_campaign(conn, name)
        conn.execute(sa.text("delete from ml.campaigns where campaign = :c"), {"c": name})
        conn.execute(
            sa.text("insert into ml.campaigns values (:c, :source, :now, :n, :missing, :other, :binary)"),
            {
                "c": name,
                "source": source,
                "now": datetime.now(UTC),
                "n": len(rows),
                "missing": len(rows) - len(known),
                "other": other_groups,
                "binary": binary,
            },
        )
        conn.execute(
            sa.text(
                "insert into ml.campaign_outcomes values (:c, :customer_id, :is_treated, :outcome, "
                "cast(:features as jsonb))"
            ),
            [r | {"c": name} for r in rows],
        )
    return CampaignImport(
        name, treated, len(rows) - treated, len(rows) - len(known), other_groups, binary, tuple(features)
    )


_AUDIENCE_SQL = """
with data_end as (select max(ordered_at) as at from marts.orders),
entries as (
    -- a customer's first cohort whose window has passed (a later re-entry is not a fresh random draw)
    select distinct on (h.customer_id) h.customer_id, h."group", h.entered_at, d.outcome_days
    from audiences.audience_membership_history h
    join audiences.audience_definitions d using (audience_name)
    where h.audience_name = :audience
      and h.entered_at + make_interval(days => d.outcome_days) <= (select at from data_end)
    order by h.customer_id, h.entered_at
)
select e.customer_id, e."group" = 'treatment' as is_treated,
       exists (
           select 1 from marts.orders o
           where o.customer_id = e.customer_id and o.ordered_at >= e.entered_at
             and o.ordered_at < e.entered_at + make_interval(days => e.outcome_days)
       )::int::double precision as outcome,
       to_jsonb(s) - 'customer_id' - 'event_timestamp' as features
from entries e
join marts.{snapshots} s on s.customer_id = e.customer_id and s.event_timestamp = e.entered_at
"""

SNAPSHOT_MART = "customer_features"  # the point-in-time snapshots Feast reads


def campaign_from_audience(audience: str, settings: Settings | None = None, name: str | None = None):
    """The audience's cohorts whose outcome window has passed, as campaign `name` (default: audience)."""
    settings = settings or get_settings()
    with engine(settings).connect() as conn:
        result = conn.execute(
            sa.text(_AUDIENCE_SQL.format(snapshots=SNAPSHOT_MART)), {"audience": audience}
        ).mappings()
        rows = [
            {
                "customer_id": r["customer_id"],
                "is_treated": r["is_treated"],
                "outcome": r["outcome"],
                # numbers only: dates and labels of the snapshot are not features of the ML models either
                "features": json.dumps(
                    {k: v for k, v in r["features"].items() if v is None or isinstance(v, int | float)}
                ),
            }
            for r in result
        ]
    if not rows:
        raise ValueError(
            f"audience {audience!r} has no cohort whose outcome window has passed (or no feature snapshot "
            "at its entry)"
        )
    features = tuple(json.loads(rows[0]["features"]))
    return _store(name or audience, f"audience:{audience}", rows, 0, features, settings)
