"""Right to erasure: delete one customer from every table, the online store and Pulse's files, then check.

A request names a customer id or an email address. `resolve` turns it into every identifier that person
has in the warehouse: their customer ids (with the ids `alias` calls merged into them, and `sha256:<hex>`,
the form a user id that was an email is stored in), the anonymous ids of the devices they signed in on,
and the SHA-256 of their email addresses (wherever an `email_sha256` field sits in an event). An email
that more than one customer used is reported and forgotten only when the request confirms it. Then:

- `forget_warehouse` holds the marts lock exclusively (no build runs meanwhile, so none rebuilds a mart
  row from events it read before they were deleted) and the raw-events lock (no load interleaves), puts
  SHA-256s of their ids and email hashes on the suppression list (`raw.forgotten_subjects`: their later
  events are rejected at every load, reason `forgotten_subject`) and deletes, in one transaction, their events from `raw.events` (signed-in events, and the
  anonymous events of their devices), rejects whose payload names them, and every row of every table in
  Pulse's schemas (dbt models, Feast's offline source and push log, scores, segments, recommendations,
  audiences, membership history) that carries one of their ids, their email hash, or one of the deleted
  events. Aggregates that name no one (product counts, segment profiles, lift) are recomputed by the
  next scheduled run.
- `forget_online_store` deletes their entity key from Feast's online store (PostgreSQL or Redis). Feast
  has no per-entity delete, so this writes the keys Feast's own stores use.
- `forget_files` removes their rows from audience exports and file-drop syncs (wherever they were
  written: `audit.export_locations`) and their records from landed and archived event files (a file that
  held only their event is deleted), so re-running an ingest interval cannot bring them back.
- `verify` looks again: every text and JSON value of every table in those schemas, the online store
  (through `get_online_features`) and the files. Anything left is listed, and the request fails.

The audit row (`audit.forget_requests`) keeps counts and a SHA-256 of the subject, never the identifier.
The Airflow DAG passes only the request id between its tasks; the identifiers wait in
`audit.forget_pending` until the request is verified. Not covered (documented in the README): a running
collector's in-memory real-time state (it holds minutes of activity), and the identifiers Airflow keeps in
its own metadata (the run's params).
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
from pulse.csv_export import unescape_cell
from pulse.db import create_schemas, engine
from pulse.events.pii import is_email, normalise_email, sha256
from pulse.exports import export_files
from pulse.locks import hold_raw_events_exclusively, marts_lock
from pulse.transform import compiled_inline

# Schemas whose tables may hold a customer's rows (dbt's, Pulse's own and Feast's offline push log).
DATA_SCHEMAS = ("raw", "staging", "intermediate", "marts", "features", "ml", "audiences")
CUSTOMER_COLUMNS = ("customer_id", "user_id", "previous_id", "previous_customer_id")
ANONYMOUS_COLUMNS = ("anonymous_id",)
EMAIL_COLUMNS = ("email_sha256",)
# Where an event record (a landed file's line, a Segment payload) names a person.
RECORD_ID_KEYS = ("userId", "user_id", "anonymousId", "anonymous_id", "previousId", "previous_id")
# How a user id that was an email address is stored (pulse.events.pii): this prefix and its SHA-256.
HASHED_ID_PREFIX = "sha256:"


class ForgetError(RuntimeError):
    """A request that cannot be carried out, or a check that found the customer's data still present."""


class AmbiguousSubjectError(ForgetError):
    """An email address that more than one customer used: forgetting all of them must be confirmed."""

    def __init__(self, customer_ids: list[str]) -> None:
        self.customer_ids = customer_ids
        super().__init__(
            f"this email address belongs to {len(customer_ids)} customers; forget all of them only if that "
            "is what the request asks (`pulse forget --email ... --yes`, or the DAG's `confirm_multiple`)"
        )


@dataclass
class Identities:
    """Everything that identifies one person in Pulse's data (passed between Airflow tasks as a dict)."""

    subject_kind: str
    subject_sha256: str
    customer_ids: list[str] = field(default_factory=list)
    anonymous_ids: list[str] = field(default_factory=list)
    email_hashes: list[str] = field(default_factory=list)
    # Customers the email itself matched (not through an alias or the hashed-email id): more than one
    # is an ambiguous request.
    matched_customers: list[str] = field(default_factory=list)

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


# SQL: the email hashes a `raw.events` row holds, at any depth of its traits, context or properties: every
# `email_sha256` value, and every string that was an email address (`sha256:<hex>`, pulse.events.pii).
_EMAIL_HASHES_OF_EVENT = (
    "jsonb_path_query(jsonb_build_array(traits, context, properties), "
    "'strict $.** ? (@.type() == \"object\").email_sha256')"
)
_HASHED_STRINGS_OF_EVENT = (
    "jsonb_path_query(jsonb_build_array(traits, context, properties), "
    '\'strict $.** ? (@.type() == "string" && @ starts with "sha256:")\')'
)


def _carries_email_hash(param: str) -> str:
    """SQL: a `raw.events` row that holds one of the hashes in `:param` (bare, and in the `sha256:` form)."""
    return (
        f"(exists (select 1 from {_EMAIL_HASHES_OF_EVENT} as h(v) where v #>> '{{}}' = any(:{param})) "
        f"or exists (select 1 from {_HASHED_STRINGS_OF_EVENT} as h(v) where v #>> '{{}}' = any(:{param})))"
    )


def _hash_forms(hashes: Iterable[str]) -> list[str]:
    """Email hashes as events hold them: bare (`email_sha256`) and as a hashed value (`sha256:<hex>`)."""
    return sorted({form for h in hashes for form in (h, HASHED_ID_PREFIX + h)})


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
    matched: set[str] = set()
    with engine(settings).connect() as conn:
        if email:
            hashed = sha256(normalise_email(email))
            email_hashes.add(hashed)
            matched = set(
                conn.execute(
                    sa.text(
                        "select distinct user_id from raw.events where user_id is not null "
                        f"and {_carries_email_hash('h')}"
                    ),
                    {"h": _hash_forms([hashed])},
                ).scalars()
            ) - {HASHED_ID_PREFIX + hashed}
            customers = {*matched, HASHED_ID_PREFIX + hashed}
            identities = Identities("email", hashed)
        else:
            assert customer_id  # one of the two, checked above
            customers = {customer_id}
            identities = Identities("customer_id", sha256(customer_id))
        # Ids, aliases and email hashes lead to one another (an email-as-id, `sha256:<hex>`, is an
        # email hash too): follow them until nothing new turns up.
        while True:
            customers |= _aliased(conn, customers)
            email_hashes |= _email_hashes_of(conn, customers)
            grown = customers | {HASHED_ID_PREFIX + h for h in email_hashes}
            email_hashes |= {
                c.removeprefix(HASHED_ID_PREFIX) for c in grown if c.startswith(HASHED_ID_PREFIX)
            }
            if grown == customers:
                break
            customers = grown
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
    identities.customer_ids = sorted(customers)
    identities.anonymous_ids = sorted(anonymous - customers)
    identities.email_hashes = sorted(email_hashes)
    identities.matched_customers = sorted(matched)
    return identities


def _email_hashes_of(conn, customers: set[str]) -> set[str]:
    """Every email hash the events of `customers` carry, at any depth."""
    found = conn.execute(
        sa.text(
            f"select v #>> '{{}}' from raw.events, {_EMAIL_HASHES_OF_EVENT} as h(v) "
            "where user_id = any(:c) and jsonb_typeof(v) = 'string' union "
            f"select v #>> '{{}}' from raw.events, {_HASHED_STRINGS_OF_EVENT} as h(v) where user_id = any(:c)"
        ),
        {"c": sorted(customers)},
    ).scalars()
    return {value.removeprefix(HASHED_ID_PREFIX) for value in found}


def check_unambiguous(identities: Identities, confirm_multiple: bool) -> None:
    """An email that several customers used is forgotten for all of them only when confirmed."""
    if len(identities.matched_customers) > 1 and not confirm_multiple:
        raise AmbiguousSubjectError(identities.matched_customers)


def open_request(
    request_id: str,
    customer_id: str | None = None,
    email: str | None = None,
    confirm_multiple: bool = False,
    settings: Settings | None = None,
) -> dict[str, int]:
    """Resolve a request and keep its identifiers in `audit.forget_pending` under `request_id`, for the
    steps that follow (the DAG passes them only the id). A request resolved before keeps its identifiers
    (a re-run after the deletion would find fewer). Returns counts only."""
    settings = settings or get_settings()
    create_schemas(settings)
    with engine(settings).connect() as conn:
        kept = conn.execute(
            sa.text("select identities from audit.forget_pending where request_id = :r"), {"r": request_id}
        ).scalar()
    if kept is not None:
        return Identities.from_dict(kept).counts()
    identities = resolve(customer_id, email, settings)
    check_unambiguous(identities, confirm_multiple)
    with engine(settings).begin() as conn:
        conn.execute(
            sa.text(
                "insert into audit.forget_pending (request_id, identities) values (:r, cast(:i as jsonb)) "
                "on conflict (request_id) do nothing"
            ),
            {"r": request_id, "i": json.dumps(identities.to_dict())},
        )
    return identities.counts()


def pending(request_id: str, settings: Settings | None = None) -> Identities:
    """The identifiers of a request opened with `open_request` and not yet verified."""
    with engine(settings or get_settings()).connect() as conn:
        kept = conn.execute(
            sa.text("select identities from audit.forget_pending where request_id = :r"), {"r": request_id}
        ).scalar()
    if kept is None:
        raise ForgetError(f"no open forget request {request_id!r}: run its first step (resolve) again")
    return Identities.from_dict(kept)


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

    What dbt's own tables need when events go (other senders' orders marked as changed, aggregates that
    name no one emptied) is dbt's macro `forget_events_sql`, run in the same transaction.
    """
    settings = settings or get_settings()
    dbt_statements = [s.strip() for s in compiled_inline("{{ forget_events_sql() }}", settings).split(";")]
    params = {
        "customers": identities.customer_ids,
        "anonymous": identities.anonymous_ids,
        "emails": _hash_forms(identities.email_hashes),
    }
    deleted: dict[str, int] = {}
    # No build meanwhile (it could write mart rows from events it read before they were deleted here);
    # no load meanwhile (it could add their events after the delete, before the suppression list).
    with marts_lock("exclusive", "forget", settings), engine(settings).begin() as conn:
        hold_raw_events_exclusively(conn)
        _suppress(conn, identities)
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
        if events:
            for statement in filter(None, dbt_statements):
                conn.execute(sa.text(statement), {"events": events})
        for table, columns in tables.items():
            where = _row_filter(columns)
            if table in deleted or where is None:
                continue
            count = conn.execute(
                sa.text(f"delete from {_quoted(table)} where {where}"), {**params, "events": events}
            ).rowcount
            if count:
                deleted[table] = count
    return deleted


def _suppress(conn, identities: Identities) -> None:
    """Put the person on the suppression list: SHA-256s of their ids and of their email hashes (hashed
    again, so the list holds no value the warehouse stores anywhere else)."""
    rows = [{"h": sha256(i), "k": "id"} for i in identities.all_ids]
    rows += [{"h": sha256(h), "k": "email"} for h in identities.email_hashes]
    if rows:
        conn.execute(
            sa.text(
                "insert into raw.forgotten_subjects (subject_sha256, kind) values (:h, :k) "
                "on conflict do nothing"
            ),
            rows,
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

    if not settings.redis_url:
        raise ForgetError("the online store is not Redis (PULSE_REDIS_URL is unset)")
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
    """The event record names one of `ids` (ids, or email hashes: an `email_sha256`, a `sha256:<hex>`
    value, or an address hashed here, at any depth)."""
    return isinstance(record, dict) and (
        any(record.get(key) in ids for key in RECORD_ID_KEYS)
        or any(h in ids for h in _email_hashes_in(record))
    )


def _email_hashes_in(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key == "email_sha256" and isinstance(child, str):
                    yield child
                else:
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if item.startswith(HASHED_ID_PREFIX):
                yield item.removeprefix(HASHED_ID_PREFIX)
            elif is_email(item):  # a landed file holds addresses before they are hashed
                yield sha256(normalise_email(item))


def _kept_event_records(path: Path, ids: set[str]) -> tuple[str | None, int]:
    """The file's text without the person's records (None: the file held only theirs), and how many
    records were removed."""
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
            if _names(document, ids):  # a single event, theirs
                return None, 1
            return text, 0
    lines = text.splitlines(keepends=True)
    kept_lines = [line for line in lines if not _line_names(line, ids)]
    return "".join(kept_lines), len(lines) - len(kept_lines)


def _line_names(line: str, ids: set[str]) -> bool:
    # Cheap test first: most lines are someone else's (a line with an email is parsed to hash it).
    if "@" not in line and not any(value in line for value in ids):
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


_EXPORT_ID_COLUMNS = ("customer_id", "email_sha256")


def _kept_export_rows(path: Path, identities: Identities) -> tuple[str, int]:
    """An export's text without the person's rows, and how many of theirs there were: a row is theirs
    when its `customer_id` or `email_sha256` is one of their values."""
    values = set(identities.values) | set(_hash_forms(identities.email_hashes))
    if path.name.lower().endswith(".jsonl"):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept_lines = [line for line in lines if not _export_line_names(line, values)]
        return "".join(kept_lines), len(lines) - len(kept_lines)
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return "", 0
    header, body = rows[0], rows[1:]
    columns = [i for i, name in enumerate(header) if name in _EXPORT_ID_COLUMNS]
    kept = [row for row in body if not any(i < len(row) and unescape_cell(row[i]) in values for i in columns)]
    out = io.StringIO()
    csv.writer(out).writerows([header, *kept])
    return out.getvalue(), len(body) - len(kept)


def _export_line_names(line: str, values: set[str]) -> bool:
    if not any(value in line for value in values):  # most lines are someone else's
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and any(record.get(c) in values for c in _EXPORT_ID_COLUMNS)


def _files_naming(identities: Identities, settings: Settings) -> Iterator[tuple[Path, str | None, int]]:
    """(file, its text without the person or None to delete it, how many of their rows or records) for
    every export and landed event file that holds any: what `forget_files` rewrites and `verify` must
    not find."""
    for path in export_files(settings):
        kept, count = _kept_export_rows(path, identities)
        if count:
            yield path, kept, count
    ids = set(identities.all_ids) | set(identities.email_hashes)
    for path in _event_files(settings) if ids else []:
        text, count = _kept_event_records(path, ids)
        if count:
            yield path, text, count


def forget_files(identities: Identities, settings: Settings | None = None) -> dict[str, int]:
    """Remove the person's rows from audience exports and their records from landed event files."""
    settings = settings or get_settings()
    removed: dict[str, int] = {}
    for path, text, count in list(_files_naming(identities, settings)):
        if text is None:
            path.unlink()
        else:
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
    confirm_multiple: bool = False,
) -> ForgetResult:
    """The whole request in one call (`pulse forget`): resolve, delete everywhere, audit, verify.

    `status(what)` wraps each step (the CLI passes a spinner). An email several customers used raises
    AmbiguousSubjectError unless `confirm_multiple`."""
    settings = settings or get_settings()
    request_id = request_id or f"cli-{uuid.uuid4()}"
    with status("finding their ids"):
        identities = resolve(customer_id, email, settings)
    check_unambiguous(identities, confirm_multiple)
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
