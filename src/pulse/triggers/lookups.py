"""What trigger decisions read, once per batch: scores and customer attributes for conditions, consent
rows, the frequency cap's history and the cancelling events already seen (`pulse.triggers.decisions`)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pulse.triggers.decisions import Trigger, as_json, event_consent, utc
from pulse.triggers.definitions import CUSTOMER_FIELDS, SCORE_FIELDS

log = logging.getLogger(__name__)


def batch_features(
    conn: psycopg.Connection, customers: list[str], wanted: set[str]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    scores = wanted & SCORE_FIELDS
    if scores and table_exists(conn, "ml.scores"):
        models = sorted({f.rsplit("_", 1)[0] for f in scores})
        rows = conn.execute(
            """select distinct on (customer_id, model_name) customer_id, model_name, score, percentile
                 from ml.scores where customer_id = any(%s) and model_name = any(%s)
                order by customer_id, model_name, as_of desc""",
            (customers, models),
        ).fetchall()
        for customer, model, score, percentile in rows:
            out[customer][f"{model}_score"] = score
            out[customer][f"{model}_percentile"] = percentile
    columns = sorted(wanted & CUSTOMER_FIELDS)
    if columns and table_exists(conn, "marts.customers"):
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"select customer_id, {', '.join(columns)} from marts.customers where customer_id = any(%s)",
                (customers,),
            )
            for row in cur.fetchall():
                out[row.pop("customer_id")].update(row)
    return out


def table_exists(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()
    return bool(row and row[0])


def consent_rows(
    conn: psycopg.Connection, todo: Iterable[tuple[str, Trigger, Mapping]]
) -> dict[str, dict[str, bool]]:
    """marts.customer_consent for customers whose entry event carries no consent object."""
    need = sorted(
        {
            r["user_id"]
            for _, t, r in todo
            if t.definition.consent and not event_consent(as_json(r.get("context")))
        }
    )
    if not need:
        return {}
    if not table_exists(conn, "marts.customer_consent"):
        return {}
    out: dict[str, dict[str, bool]] = defaultdict(dict)
    try:
        with conn.transaction():  # a savepoint: the mart's columns are activation's to define
            rows = conn.execute(
                "select customer_id, category, is_granted from marts.customer_consent "
                "where customer_id = any(%s)",
                (need,),
            ).fetchall()
    except psycopg.errors.UndefinedColumn:
        log.warning("marts.customer_consent has no (customer_id, category, is_granted); using the default")
        return {}
    for customer, category, granted in rows:
        if isinstance(granted, bool):
            out[customer][str(category).lower()] = granted
    return out


def cap_history(
    conn: psycopg.Connection, todo: list[tuple[str, Trigger, Mapping[str, Any]]]
) -> dict[tuple[str, str], list[datetime]]:
    history: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    capped = [(t, r) for _, t, r in todo if t.definition.frequency_cap]
    if not capped:
        return history
    longest = max(t.definition.frequency_cap.per for t, _ in capped)  # type: ignore[union-attr]
    oldest = min(utc(r["event_at"]) for _, r in capped) - longest
    rows = conn.execute(
        """select trigger_name, customer_id, entry_at from activation.trigger_timers
            where customer_id = any(%s) and trigger_name = any(%s) and entry_at > %s
              and status in ('pending', 'fired', 'held_out', 'failed')""",
        (sorted({r["user_id"] for _, r in capped}), sorted({t.name for t, _ in capped}), oldest),
    ).fetchall()
    for trigger, customer, at in rows:
        history[(trigger, customer)].append(at)
    return history


def prior_signals(
    conn: psycopg.Connection, customers: list[str], batch_signals: list[Mapping[str, Any]]
) -> dict[str, list[tuple[str, str, datetime]]]:
    """Cancelling events already seen (or in this batch) for these customers."""
    out: dict[str, list[tuple[str, str, datetime]]] = defaultdict(list)
    for event_id, customer, name, at in conn.execute(
        "select event_id, customer_id, event_name, event_at from activation.trigger_signals "
        "where customer_id = any(%s)",
        (customers,),
    ).fetchall():
        out[customer].append((event_id, name, at))
    for r in batch_signals:
        out[r["user_id"]].append((r["event_id"], r["event_name"], utc(r["event_at"])))
    return out
