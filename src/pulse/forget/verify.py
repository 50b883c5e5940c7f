"""Checking that nothing of the person is left, and the audit trail (see `pulse.forget`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import create_schemas, engine
from pulse.forget.files import files_naming
from pulse.forget.identities import ForgetError, Identities
from pulse.forget.online import online_tables, online_views
from pulse.forget.warehouse import DATA_SCHEMAS, base_tables, like_patterns, quoted

_TEXT_TYPES = {"text", "character varying", "character"}
_JSON_TYPES = {"jsonb", "json"}


def _remaining_in_warehouse(conn, identities: Identities, online_tables: Iterable[str]) -> dict[str, int]:
    """`schema.table.column` -> rows whose value is, or whose JSON holds, one of the person's ids."""
    schemas = {*DATA_SCHEMAS, *(t.split(".", 1)[0] for t in online_tables)}
    online = set(online_tables)
    values = identities.values
    found: dict[str, int] = {}
    for table, columns in base_tables(conn, schemas).items():
        if table.split(".", 1)[0] not in DATA_SCHEMAS and table not in online:
            continue  # another Feast project's online tables share the schema
        for column, data_type in columns.items():
            if data_type in _TEXT_TYPES:
                condition = f'"{column}" = any(:v)'
                if table == "raw.events_rejected" and column == "payload":
                    condition = f'"{column}" like any(:patterns)'
            elif data_type in _JSON_TYPES:
                condition = (
                    f"exists (select 1 from jsonb_path_query(\"{column}\"::jsonb, 'strict $.**') as j(x) "
                    "where jsonb_typeof(x) = 'string' and x #>> '{}' = any(:v))"
                )
            else:
                continue
            count = conn.execute(
                sa.text(f"select count(*) from {quoted(table)} where {condition}"),
                {"v": values, "patterns": like_patterns(values)},
            ).scalar_one()
            if count:
                found[f"{table}.{column}"] = count
    return found


def _remaining_online(store, identities: Identities) -> dict[str, int]:
    """Feature views whose online values for one of the person's customer ids are still there."""
    if not identities.customer_ids:
        return {}
    found: dict[str, int] = {}
    for view in online_views(store):
        refs = [f"{view.name}:{f.name}" for f in view.features]
        response = store.get_online_features(
            features=refs, entity_rows=[{"customer_id": c} for c in identities.customer_ids]
        ).to_dict()
        present = sum(
            1
            for row in range(len(identities.customer_ids))
            if any(response[f.name][row] is not None for f in view.features)
        )
        if present:
            found[f"online:{view.name}"] = present
    return found


def remaining(identities: Identities, settings: Settings | None = None) -> dict[str, int]:
    """Where anything of the person is still found: warehouse columns, online views, files (empty: none)."""
    from pulse.features.store import feature_store

    settings = settings or get_settings()
    store = feature_store(settings)
    online = [] if store.config.online_store.type == "redis" else list(online_tables(store).values())
    with engine(settings).connect() as conn:
        found = _remaining_in_warehouse(conn, identities, online)
    found.update(_remaining_online(store, identities))
    found.update({str(path): count for path, _, count in files_naming(identities, settings)})
    return found


def record_audit(
    request_id: str,
    identities: Identities,
    deleted_rows: dict[str, int],
    online_keys: int,
    files: dict[str, int],
    settings: Settings | None = None,
) -> None:
    """Write (or, for a re-run of the same request, replace) the request's audit row."""
    settings = settings or get_settings()
    create_schemas(settings)
    row = {
        "r": request_id,
        "k": identities.subject_kind,
        "s": identities.subject_sha256,
        "t": datetime.now(UTC),
        "i": json.dumps(identities.counts()),
        "d": json.dumps(deleted_rows, sort_keys=True),
        "o": online_keys,
        "f": json.dumps(files, sort_keys=True),
    }
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text(
                "insert into audit.forget_requests (request_id, subject_kind, subject_sha256, requested_at, "
                "identities, deleted_rows, online_keys, files, status) "
                "values (:r, :k, :s, :t, cast(:i as jsonb), cast(:d as jsonb), :o, cast(:f as jsonb), 'deleted') "
                "on conflict (request_id) do update set identities = excluded.identities, "
                "deleted_rows = excluded.deleted_rows, online_keys = excluded.online_keys, "
                "files = excluded.files, status = 'deleted', verified_at = null, remaining = null"
            ),
            row,
        )


def verify(request_id: str, identities: Identities, settings: Settings | None = None) -> dict[str, int]:
    """Look for the person everywhere; mark the audit row verified (and drop the request's pending
    identifiers), or failed and raise with what is left."""
    settings = settings or get_settings()
    found = remaining(identities, settings)
    with engine(settings).begin() as conn:
        if not found:
            conn.execute(sa.text("delete from audit.forget_pending where request_id = :r"), {"r": request_id})
        conn.execute(
            sa.text(
                "update audit.forget_requests set status = :st, verified_at = :t, remaining = cast(:r as jsonb) "
                "where request_id = :id"
            ),
            {
                "st": "failed" if found else "verified",
                "t": datetime.now(UTC),
                "r": json.dumps(found, sort_keys=True),
                "id": request_id,
            },
        )
    if found:
        listed = ", ".join(f"{where} ({n})" for where, n in sorted(found.items()))
        raise ForgetError(f"the customer's data is still present in: {listed}")
    return found
