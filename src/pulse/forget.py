"""Right to erasure: delete one customer from every table, the online store and Pulse's files, then check.

A request names a customer id or an email address. `resolve` turns it into every identifier that person
has in the warehouse: their customer ids (with the ids `alias` calls merged into them), the anonymous ids
of the devices they signed in on, and the SHA-256 of their email addresses. Then:

- `forget_warehouse` deletes, in one transaction, their events from `raw.events` (signed-in events, and the
  anonymous events of their devices), rejects whose payload names them, and every row of every table in
  Pulse's schemas (dbt models, Feast's offline source and push log, scores, segments, recommendations,
  audiences, membership history) that carries one of their ids, their email hash, or one of the deleted
  events. Aggregates that name no one (product counts, segment profiles, lift) are recomputed by the
  next scheduled run.
- `forget_online_store` deletes their entity key from Feast's online store (PostgreSQL or Redis). Feast
  has no per-entity delete, so this writes the keys Feast's own stores use.
- `forget_files` removes their rows from audience exports and their records from landed and archived
  event files, so re-running an ingest interval cannot bring them back.
- `verify` looks again: every text and JSON value of every table in those schemas, the online store
  (through `get_online_features`) and the files. Anything left is listed, and the request fails.

The audit row (`audit.forget_requests`) keeps counts and a SHA-256 of the subject, never the identifier.
Not covered (documented in the README): events of theirs that arrive after the request (stop sending at
the source), a running collector's in-memory real-time state (it holds minutes of activity), and the
identifiers Airflow keeps in its own metadata (the run's params).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pulse.config import Settings, get_settings
from pulse.db import create_schemas, engine
from pulse.events.pii import normalise_email, sha256

# Schemas whose tables may hold a customer's rows (dbt's, Pulse's own and Feast's offline push log).
DATA_SCHEMAS = ("raw", "staging", "intermediate", "marts", "features", "ml", "audiences")
CUSTOMER_COLUMNS = ("customer_id", "user_id", "previous_id", "previous_customer_id")
ANONYMOUS_COLUMNS = ("anonymous_id",)
EMAIL_COLUMNS = ("email_sha256",)
# Incremental dbt models that add up everyone's events without naming anyone: they keep no row of the
# person, but keep counting their events. Emptied when events are deleted; the next build recomputes them.
EVENT_AGGREGATES = ("intermediate.int_product_activity_aggregated_to_days",)
# The stitched events the incremental models read changes from (by `_updated_at`).
STITCHED_EVENTS = "intermediate.int_events_stitched_to_customers"
# Where an event record (a landed file's line, a Segment payload) names a person.
RECORD_ID_KEYS = ("userId", "user_id", "anonymousId", "anonymous_id", "previousId", "previous_id")


class ForgetError(RuntimeError):
    """A request that cannot be carried out, or a check that found the customer's data still present."""


@dataclass
class Identities:
    """Everything that identifies one person in Pulse's data (passed between Airflow tasks as a dict)."""

    subject_kind: str
    subject_sha256: str
    customer_ids: list[str] = field(default_factory=list)
    anonymous_ids: list[str] = field(default_factory=list)
    email_hashes: list[str] = field(default_factory=list)

    @property
    def all_ids(self) -> list[str]:
        return sorted({*self.customer_ids, *self.anonymous_ids})

    @property
    def values(self) -> list[str]:
        """Every identifying string: ids and email hashes (what `verify` searches for)."""
        return sorted({*self.all_ids, *self.email_hashes})

    def counts(self) -> dict[str, int]:
        return {
            "customer_ids": len(self.customer_ids),
            "anonymous_ids": len(self.anonymous_ids),
            "email_hashes": len(self.email_hashes),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identities:
        return cls(**data)


# --------------------------------------------------------------------------------------------------
# Resolving a request to identifiers
# --------------------------------------------------------------------------------------------------


def _carries_email_hash(param: str) -> str:
    """SQL: a `raw.events` row whose traits or properties hold one of the email hashes in `:param`."""
    return (
        f"(traits ->> 'email_sha256' = any(:{param}) or context -> 'traits' ->> 'email_sha256' = any(:{param}) "
        f"or properties ->> 'email_sha256' = any(:{param}))"
    )


def _exists(conn, table: str) -> bool:
    return conn.execute(sa.text("select to_regclass(:t) is not null"), {"t": table}).scalar_one()


def resolve(
    customer_id: str | None = None, email: str | None = None, settings: Settings | None = None
) -> Identities:
    """Every id and email hash of the person named by `customer_id` or `email` (one of them)."""
    if bool(customer_id) == bool(email):
        raise ForgetError("name the customer to forget by exactly one of: a customer id, an email")
    settings = settings or get_settings()
    create_schemas(settings)
    email_hashes: set[str] = set()
    with engine(settings).connect() as conn:
        if email:
            hashed = sha256(normalise_email(email))
            email_hashes.add(hashed)
            found = conn.execute(
                sa.text(
                    "select distinct user_id from raw.events where user_id is not null "
                    f"and ({_carries_email_hash('h')} or user_id = 'sha256:' || :one)"
                ),
                {"h": [hashed], "one": hashed},
            ).scalars()
            customers = set(found)
            identities = Identities("email", hashed)
        else:
            customers = {customer_id}
            identities = Identities("customer_id", sha256(customer_id))
        customers |= _aliased(conn, customers)
        anonymous = set(
            conn.execute(
                sa.text(
                    "select distinct anonymous_id from raw.events "
                    "where user_id = any(:c) and anonymous_id is not null"
                ),
                {"c": sorted(customers)},
            ).scalars()
        )
        if _exists(conn, "marts.identity_graph"):
            anonymous |= set(
                conn.execute(
                    sa.text(
                        "select distinct anonymous_id from marts.identity_graph where customer_id = any(:c)"
                    ),
                    {"c": sorted(customers)},
                ).scalars()
            )
        email_hashes |= set(
            conn.execute(
                sa.text(
                    "select distinct h from raw.events, lateral (values (traits ->> 'email_sha256'), "
                    "(context -> 'traits' ->> 'email_sha256'), (properties ->> 'email_sha256')) as v(h) "
                    "where user_id = any(:c) and h is not null"
                ),
                {"c": sorted(customers)},
            ).scalars()
        )
    identities.customer_ids = sorted(customers)
    identities.anonymous_ids = sorted(anonymous - customers)
    identities.email_hashes = sorted(email_hashes)
    return identities


def _aliased(conn, ids: set[str]) -> set[str]:
    """The ids `alias` calls merged with `ids`, in either direction, transitively."""
    seen = set(ids)
    frontier = set(ids)
    while frontier:
        linked = set(
            conn.execute(
                sa.text(
                    "select previous_id from raw.events where event_type = 'alias' and user_id = any(:f) "
                    "and previous_id is not null union "
                    "select user_id from raw.events where event_type = 'alias' and previous_id = any(:f) "
                    "and user_id is not null"
                ),
                {"f": sorted(frontier)},
            ).scalars()
        )
        frontier = linked - seen
        seen |= linked
    return seen - set(ids)


# --------------------------------------------------------------------------------------------------
# Deleting
# --------------------------------------------------------------------------------------------------


def _like_patterns(values: Iterable[str]) -> list[str]:
    """`"value"` (a JSON string) anywhere in a text, for LIKE, with LIKE's wildcards escaped."""
    escaped = (v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for v in values)
    return [f'%"{v}"%' for v in escaped]


def _base_tables(conn, schemas: Iterable[str]) -> dict[str, dict[str, str]]:
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


def _quoted(table: str) -> str:
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

    The event aggregates that name no one (`EVENT_AGGREGATES`) are emptied in the same transaction.
    """
    settings = settings or get_settings()
    params = {
        "customers": identities.customer_ids,
        "anonymous": identities.anonymous_ids,
        "emails": identities.email_hashes,
    }
    deleted: dict[str, int] = {}
    with engine(settings).begin() as conn:
        # The models lose the same events below: not a deletion the next dbt build must rebuild for.
        conn.execute(sa.text("set local pulse.consistent_delete = 'on'"))
        events = (
            conn.execute(
                sa.text(
                    "delete from raw.events where user_id = any(:customers) or previous_id = any(:customers) "
                    "or (user_id is null and anonymous_id = any(:anonymous)) "
                    f"or {_carries_email_hash('emails')} returning event_id"
                ),
                params,
            )
            .scalars()
            .all()
        )
        deleted["raw.events"] = len(events)
        deleted["raw.events_rejected"] = conn.execute(
            sa.text("delete from raw.events_rejected where payload like any(:patterns)"),
            {"patterns": _like_patterns(identities.values)},
        ).rowcount
        tables = _base_tables(conn, DATA_SCHEMAS)
        if events and STITCHED_EVENTS in tables:
            _touch_shared_orders(conn, events)
        for table, columns in tables.items():
            where = _row_filter(columns)
            if table in deleted or where is None:
                continue
            count = conn.execute(
                sa.text(f"delete from {_quoted(table)} where {where}"), {**params, "events": events}
            ).rowcount
            if count:
                deleted[table] = count
        for table in EVENT_AGGREGATES:  # not the person's rows: not counted as theirs
            if events and table in tables:
                conn.execute(sa.text(f"delete from {_quoted(table)}"))
    return deleted


def _touch_shared_orders(conn, events: list[str]) -> None:
    """Mark as changed the other senders' events of the orders the person's deleted events belong to.

    An order id sent by several customers (a resend) belongs to whoever sent it first; once the person's
    events are gone another sender may hold it. The incremental `orders` and per-customer aggregate
    recompute the order ids of events stitched after their last run, so these events get a newer
    `_updated_at` (the time of this transaction, after that run's start).
    """
    conn.execute(
        sa.text(
            f"update {_quoted(STITCHED_EVENTS)} as shared set _updated_at = now() "
            "where shared.event_name = 'order_completed' and not shared.event_id = any(:events) "
            "and coalesce(shared.order_id, shared.event_id) in ("
            f"select coalesce(gone.order_id, gone.event_id) from {_quoted(STITCHED_EVENTS)} as gone "
            "where gone.event_id = any(:events) and gone.event_name = 'order_completed')"
        ),
        {"events": events},
    )


def _online_views(store) -> list:
    """Every feature view with online values (batch and stream views; a name listed twice counts once)."""
    views = {fv.name: fv for fv in [*store.list_feature_views(), *store.list_stream_feature_views()]}
    return [fv for _, fv in sorted(views.items()) if fv.online]


def _entity_key(customer_id: str):
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=customer_id)])


def _online_tables(store) -> dict[str, str]:
    """PostgreSQL online store: feature view name -> its `schema.table`."""
    from feast.infra.online_stores.helpers import compute_table_id

    config = store.config
    schema = config.online_store.db_schema or config.online_store.user
    return {fv.name: f"{schema}.{compute_table_id(config.project, fv)}" for fv in _online_views(store)}


def _redis_client(settings: Settings):
    import redis

    return redis.Redis.from_url(settings.redis_url)


def forget_online_store(identities: Identities, settings: Settings | None = None) -> int:
    """Delete the person's entity keys from Feast's online store; the number of entries deleted."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key

    from pulse.features.store import feature_store

    settings = settings or get_settings()
    store = feature_store(settings)
    config = store.config
    version = config.entity_key_serialization_version
    keys = [_entity_key(c) for c in identities.customer_ids]
    if not keys:
        return 0
    if config.online_store.type == "redis":
        client = _redis_client(settings)
        return int(client.delete(*(_redis_key(config.project, k, version) for k in keys)))
    serialized = [serialize_entity_key(k, entity_key_serialization_version=version) for k in keys]
    deleted = 0
    with engine(settings).begin() as conn:
        for table in _online_tables(store).values():
            if _exists(conn, table):
                deleted += conn.execute(
                    sa.text(f"delete from {_quoted(table)} where entity_key = any(:k)"), {"k": serialized}
                ).rowcount
    return deleted


def _open_text(path: Path, mode: str):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8", newline="")
    return path.open(mode, encoding="utf-8", newline="")


def _names(record: Any, ids: set[str]) -> bool:
    return isinstance(record, dict) and any(record.get(key) in ids for key in RECORD_ID_KEYS)


def _kept_event_records(path: Path, ids: set[str]) -> tuple[str, int]:
    """The file's text without the person's records, and how many records were removed."""
    from pulse.events.ingest import csv_row_to_payload

    with _open_text(path, "r") as handle:
        text = handle.read()
    stem = path.name.lower().removesuffix(".gz")
    if stem.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        kept = [row for row in rows if not _names(csv_row_to_payload(row), ids)]
        if len(kept) == len(rows):
            return text, 0
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0].keys()) if rows else [])
        writer.writeheader()
        writer.writerows(kept)
        return out.getvalue(), len(rows) - len(kept)
    if stem.endswith(".json"):
        try:
            document = json.loads(text)
        except ValueError:
            document = None  # JSON lines under a .json name
        if isinstance(document, (list, dict)):
            items = document.get("batch") if isinstance(document, dict) else document
            if isinstance(items, list):
                kept = [item for item in items if not _names(item, ids)]
                if isinstance(document, dict):
                    document = {**document, "batch": kept}
                else:
                    document = kept
                return json.dumps(document, ensure_ascii=False), len(items) - len(kept)
            return text, 0
    lines = text.splitlines(keepends=True)
    kept_lines = [line for line in lines if not _line_names(line, ids)]
    return "".join(kept_lines), len(lines) - len(kept_lines)


def _line_names(line: str, ids: set[str]) -> bool:
    if not any(value in line for value in ids):  # cheap test first: most lines are someone else's
        return False
    try:
        return _names(json.loads(line), ids)
    except ValueError:
        return False


def _rewrite(path: Path, text: str) -> None:
    """Replace `path` atomically, keeping its modification time (ingest windows are chosen by it)."""
    stat = path.stat()
    tmp = path.with_name(f".{path.name}.forget-{uuid.uuid4().hex[:8]}")
    with _open_text(tmp, "w") as handle:
        handle.write(text)
    os.utime(tmp, (stat.st_atime, stat.st_mtime))
    os.replace(tmp, path)


def _export_files(settings: Settings) -> list[Path]:
    exports = settings.home_dir / "exports"
    return sorted(exports.glob("*.csv")) if exports.is_dir() else []


def _event_files(settings: Settings) -> list[Path]:
    from pulse.events.ingest import EVENT_FILE_SUFFIXES

    landing = settings.landing_dir
    if not landing.is_dir():
        return []
    return sorted(
        p
        for p in landing.rglob("*")
        if p.is_file() and p.name.lower().removesuffix(".gz").endswith(EVENT_FILE_SUFFIXES)
    )


def _kept_export_rows(path: Path, identities: Identities) -> tuple[str, int]:
    """An export's text without the person's rows, and how many of theirs there were: a row is theirs
    when its `customer_id` or `email_sha256` is one of their values."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return "", 0
    header, body = rows[0], rows[1:]
    columns = [i for i, name in enumerate(header) if name in ("customer_id", "email_sha256")]
    values = set(identities.values)
    kept = [row for row in body if not any(i < len(row) and row[i] in values for i in columns)]
    out = io.StringIO()
    csv.writer(out).writerows([header, *kept])
    return out.getvalue(), len(body) - len(kept)


def _files_naming(identities: Identities, settings: Settings) -> Iterator[tuple[Path, str, int]]:
    """(file, its text without the person, how many of their rows or records) for every export and
    landed event file that holds any: what `forget_files` rewrites and `verify` must not find."""
    for path in _export_files(settings):
        text, count = _kept_export_rows(path, identities)
        if count:
            yield path, text, count
    ids = set(identities.all_ids)
    for path in _event_files(settings) if ids else []:
        text, count = _kept_event_records(path, ids)
        if count:
            yield path, text, count


def forget_files(identities: Identities, settings: Settings | None = None) -> dict[str, int]:
    """Remove the person's rows from audience exports and their records from landed event files."""
    settings = settings or get_settings()
    removed: dict[str, int] = {}
    for path, text, count in list(_files_naming(identities, settings)):
        _rewrite(path, text)
        removed[str(path)] = count
    return removed


# --------------------------------------------------------------------------------------------------
# Checking, and the audit trail
# --------------------------------------------------------------------------------------------------

_TEXT_TYPES = {"text", "character varying", "character"}
_JSON_TYPES = {"jsonb", "json"}


def _remaining_in_warehouse(conn, identities: Identities, online_tables: Iterable[str]) -> dict[str, int]:
    """`schema.table.column` -> rows whose value is, or whose JSON holds, one of the person's ids."""
    schemas = {*DATA_SCHEMAS, *(t.split(".", 1)[0] for t in online_tables)}
    online = set(online_tables)
    values = identities.values
    found: dict[str, int] = {}
    for table, columns in _base_tables(conn, schemas).items():
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
                sa.text(f"select count(*) from {_quoted(table)} where {condition}"),
                {"v": values, "patterns": _like_patterns(values)},
            ).scalar_one()
            if count:
                found[f"{table}.{column}"] = count
    return found


def _remaining_online(store, identities: Identities) -> dict[str, int]:
    """Feature views whose online values for one of the person's customer ids are still there."""
    if not identities.customer_ids:
        return {}
    found: dict[str, int] = {}
    for view in _online_views(store):
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
    online_tables = [] if store.config.online_store.type == "redis" else list(_online_tables(store).values())
    with engine(settings).connect() as conn:
        found = _remaining_in_warehouse(conn, identities, online_tables)
    found.update(_remaining_online(store, identities))
    found.update({str(path): count for path, _, count in _files_naming(identities, settings)})
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
    """Look for the person everywhere; mark the audit row verified, or failed and raise with what is left."""
    settings = settings or get_settings()
    found = remaining(identities, settings)
    with engine(settings).begin() as conn:
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


@dataclass
class ForgetResult:
    request_id: str
    identities: Identities
    deleted_rows: dict[str, int]
    online_keys: int
    files: dict[str, int]


def forget(
    customer_id: str | None = None,
    email: str | None = None,
    settings: Settings | None = None,
    request_id: str | None = None,
    status: Callable[[str], AbstractContextManager] = lambda _: nullcontext(),
) -> ForgetResult:
    """The whole request in one call (`pulse forget`): resolve, delete everywhere, audit, verify.

    `status(what)` wraps each step (the CLI passes a spinner)."""
    settings = settings or get_settings()
    request_id = request_id or f"cli-{uuid.uuid4()}"
    with status("finding their ids"):
        identities = resolve(customer_id, email, settings)
    with status("deleting from the warehouse"):
        deleted = forget_warehouse(identities, settings)
    with status("deleting from the online store"):
        online = forget_online_store(identities, settings)
    with status("removing them from exports and landed files"):
        files = forget_files(identities, settings)
    record_audit(request_id, identities, deleted, online, files, settings)
    with status("checking that nothing is left"):
        verify(request_id, identities, settings)
    return ForgetResult(request_id, identities, deleted, online, files)
