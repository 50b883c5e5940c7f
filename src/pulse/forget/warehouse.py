"""Deleting the person from every table in Pulse's schemas, in one transaction (see `pulse.forget`)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import engine
from pulse.forget.identities import Identities, carries_email_hash, hash_forms
from pulse.forget.suppression import suppress
from pulse.locks import hold_raw_events_exclusively, marts_lock
from pulse.transform import compiled_inline

# Schemas whose tables may hold a customer's rows (dbt's, Pulse's own and Feast's offline push log).
DATA_SCHEMAS = ("raw", "staging", "intermediate", "marts", "features", "ml", "audiences")
CUSTOMER_COLUMNS = ("customer_id", "user_id", "previous_id", "previous_customer_id")
ANONYMOUS_COLUMNS = ("anonymous_id",)
EMAIL_COLUMNS = ("email_sha256",)


def like_patterns(values: Iterable[str]) -> list[str]:
    """`"value"` (a JSON string) anywhere in a text, for LIKE, with LIKE's wildcards escaped."""
    escaped = (v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for v in values)
    return [f'%"{v}"%' for v in escaped]


def base_tables(conn, schemas: Iterable[str]) -> dict[str, dict[str, str]]:
    """`schema.table` -> {column: data type} for every base table in `schemas`."""
    rows = conn.execute(
        sa.text(
            "select c.table_schema, c.table_name, c.column_name, c.data_type "
            "from information_schema.columns c join information_schema.tables t "
            "using (table_schema, table_name) "
            "where t.table_type = 'BASE TABLE' and c.table_schema = any(:s) "
            "order by 1, 2, c.ordinal_position"
        ),
        {"s": list(schemas)},
    ).all()
    tables: dict[str, dict[str, str]] = {}
    for schema, table, column, data_type in rows:
        tables.setdefault(f"{schema}.{table}", {})[column] = data_type
    return tables


def quoted(table: str) -> str:
    schema, name = table.split(".", 1)
    return f'"{schema}"."{name}"'


def _row_filter(columns: dict[str, str]) -> str | None:
    """Which rows of a table with these columns belong to the person (None: the table names no one).

    A row goes if it carries one of their customer ids, their email hash or one of their deleted events;
    a row matched only by an anonymous id goes when it names no customer (a device they share with someone
    who signed in keeps that someone's rows).
    """
    customer = [c for c in CUSTOMER_COLUMNS if c in columns]
    clauses = [f'"{c}" = any(:customers)' for c in customer]
    for column in ANONYMOUS_COLUMNS:
        if column in columns:
            unclaimed = "".join(f' and "{c}" is null' for c in customer)
            clauses.append(f'("{column}" = any(:anonymous){unclaimed})')
    clauses += [f'"{c}" = any(:emails)' for c in EMAIL_COLUMNS if c in columns]
    if "event_id" in columns:
        clauses.append('"event_id" = any(:events)')
    return " or ".join(clauses) or None


def forget_warehouse(identities: Identities, settings: Settings | None = None) -> dict[str, int]:
    """Delete the person's rows from every table in Pulse's schemas, in one transaction: table -> rows.

    What dbt's own tables need when events go (other senders' orders marked as changed, aggregates that
    name no one emptied) is dbt's macro `forget_events_sql`, run in the same transaction.
    """
    settings = settings or get_settings()
    dbt_statements = [s.strip() for s in compiled_inline("{{ forget_events_sql() }}", settings).split(";")]
    params = {
        "customers": identities.customer_ids,
        "anonymous": identities.anonymous_ids,
        "emails": hash_forms(identities.email_hashes),
    }
    deleted: dict[str, int] = {}
    # No build meanwhile (it could write mart rows from events it read before they were deleted here);
    # no load meanwhile (it could add their events after the delete, before the suppression list).
    with marts_lock("exclusive", "forget", settings), engine(settings).begin() as conn:
        hold_raw_events_exclusively(conn)
        suppress(conn, identities)
        # The models lose the same events below: not a deletion the next dbt build must rebuild for.
        conn.execute(sa.text("set local pulse.consistent_delete = 'on'"))
        events = (
            conn.execute(
                sa.text(
                    "delete from raw.events where user_id = any(:customers) or previous_id = any(:customers) "
                    "or (user_id is null and anonymous_id = any(:anonymous)) "
                    f"or {carries_email_hash('emails')} returning event_id"
                ),
                params,
            )
            .scalars()
            .all()
        )
        deleted["raw.events"] = len(events)
        deleted["raw.events_rejected"] = conn.execute(
            sa.text("delete from raw.events_rejected where payload like any(:patterns)"),
            {"patterns": like_patterns(identities.values)},
        ).rowcount
        tables = base_tables(conn, DATA_SCHEMAS)
        if events:
            for statement in filter(None, dbt_statements):
                conn.execute(sa.text(statement), {"events": events})
        for table, columns in tables.items():
            where = _row_filter(columns)
            if table in deleted or where is None:
                continue
            count = conn.execute(
                sa.text(f"delete from {quoted(table)} where {where}"), {**params, "events": events}
            ).rowcount
            if count:
                deleted[table] = count
    return deleted
